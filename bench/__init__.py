"""Benchmarks against peers run side by side (python -m bench.<name>); not tests."""
