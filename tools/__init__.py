"""interestlens.tools."""
