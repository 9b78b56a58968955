"""Safety: parse with PostgreSQL's own parser (pglast), classify, lint, rewrite. PURE.

The entry point the engine uses (implemented in `analyze.py`):

    analyze(migration, *, override=None, existing_tables=None, rewrite=True) -> Analysis
"""
