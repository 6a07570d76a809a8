"""Benchmarks for interestlens (not an installed package: run from the repo root, see bench/README.md)."""
