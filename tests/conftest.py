"""Fixtures shared by every test: they live here once, not per file."""
