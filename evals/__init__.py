"""interestlens.evals."""
