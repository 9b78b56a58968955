"""safety/fastparse.py builds the same trees as pglast's checked parse (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pglast import ast, parser

from pgshift.safety.fastparse import parse_sql

_HERE = Path(__file__).parent
#: every SQL statement text the safety tests hold (string literals that parse), and more.
_EXTRA = [
    "CREATE TABLE t (a int NOT NULL DEFAULT 1, b bool, c char(1), d float8 DEFAULT 1.5e3, "
    "e text COLLATE \"C\" CHECK (e <> ''), PRIMARY KEY (a)) PARTITION BY RANGE (a)",
    "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id) ON DELETE CASCADE "
    "NOT VALID",
    "INSERT INTO t (a, b) VALUES (1, true), (2, false) ON CONFLICT (a) DO UPDATE SET b = "
    "excluded.b RETURNING *",
    "SELECT x'1F'::bit(8), b'101', 1.5::numeric(10, 2), -2147483649, $1, 'a' || E'\\n'",
    "CREATE INDEX CONCURRENTLY i ON t USING gin ((a::text) gin_trgm_ops) WHERE b IS NOT NULL",
    "DO $$ BEGIN PERFORM 1; END $$",
    "CREATE TYPE e AS ENUM ('a', 'b'); ALTER TYPE e ADD VALUE 'c' BEFORE 'a'",
    "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "UPDATE t SET a = a + 1 WHERE ctid IN (SELECT ctid FROM t LIMIT 10)",
    "COMMENT ON COLUMN t.a IS 'é ☃'; SELECT 'é' AS \"☃\"",
]


def _texts() -> list[str]:
    found: list[str] = list(_EXTRA)
    for path in sorted(_HERE.glob("*.py")):
        for literal in re.findall(r'"((?:[^"\\\n]|\\.){12,})"', path.read_text()):
            if re.match(r"(?i)\s*(create|alter|insert|update|delete|select|drop|do|with|set)\b",
                        literal):
                found.append(literal.encode().decode("unicode_escape", errors="ignore"))
    return found


def _strict(a: Any, b: Any, where: str) -> None:
    """Equal, and of the same types all the way down (True is not 1, a tuple not a list)."""
    assert type(a) is type(b), where
    if isinstance(a, ast.Node):
        for name in a.__slots__:
            _strict(getattr(a, name, None), getattr(b, name, None), f"{where}.{name}")
    elif isinstance(a, tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _strict(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_trees_are_pglasts() -> None:
    compared = 0
    for text in _texts():
        try:
            expected = parser.parse_sql(text)
        except parser.ParseError:
            continue
        _strict(parse_sql(text), expected, text[:60])
        compared += 1
    assert compared > 100


def test_errors_are_pglasts() -> None:
    with pytest.raises(parser.ParseError) as checked:
        parser.parse_sql("SELECT 1;\nSELEC 2")
    with pytest.raises(parser.ParseError) as fast:
        parse_sql("SELECT 1;\nSELEC 2")
    assert fast.value.args == checked.value.args


def test_nodes_built_outside_a_parse_keep_pglasts_checks() -> None:
    parse_sql("SELECT 1")
    with pytest.raises(ValueError, match="Bad value"):
        ast.RangeVar(relname=1)
