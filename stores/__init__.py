"""interestlens.stores."""
