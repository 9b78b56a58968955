"""pgshift controller."""
