"""pgshift backup."""
