"""The drizzle-kit (< 0.26) form of a foreign key, guarded in a DO block, made safe:

    DO $$ BEGIN ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY ... ; EXCEPTION
    WHEN duplicate_object THEN null; END $$
->
    DO $$ BEGIN ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY ... NOT VALID; EXCEPTION
    WHEN duplicate_object THEN NULL; END $$
    ALTER TABLE t VALIDATE CONSTRAINT c

The guard stays (the file may run where the constraint exists); validating a constraint that
already existed is harmless.
"""

from __future__ import annotations

from pglast import ast, parse_sql

from pgshift.safety.names import render
from pgshift.safety.nodes import required
from pgshift.safety.plpgsql import guarded_statements
from pgshift.safety.rewrites import not_valid
from pgshift.safety.rewrites.base import Functions, Part

ID = "guarded-not-valid-constraint"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    if not isinstance(node, ast.DoStmt):
        return None
    inner = guarded_statements(node)
    if not inner or len(inner) != 1:
        return None
    parts = not_valid.rewrite(inner[0])
    if not parts:
        return None
    add, check = parts
    block = (
        f"DO $pgshift$ BEGIN {render(add.node)}; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $pgshift$"
    )
    (raw,) = parse_sql(block)
    return [
        Part(required(raw.stmt, "the DO block"), add.tx, add.lock, "guarded " + add.summary),
        check,
    ]
