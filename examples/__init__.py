"""Examples: the quickstart drizzle-kit folder and `make demo` (python -m examples.demo)."""
