"""pgshift: ship PostgreSQL schema migrations safely, from drizzle-kit folders or plain SQL."""

__version__ = "0.1.0"
