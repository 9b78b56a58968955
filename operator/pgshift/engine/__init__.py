"""pgshift engine."""
