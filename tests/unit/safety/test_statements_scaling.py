"""Splitting a file costs time linear in its size (issue 14: counting each statement's line from
the start of its chunk made a 20,000-statement file cost statements x size)."""

from __future__ import annotations

import gc
import time

from pgshift.safety.lines import LineCounter
from pgshift.safety.statements import split_statements
from tests.unit.safety.helpers import migration

#: a long comment per statement: size grows, parse trees stay small.
_PADDING = "-- " + "x" * 300


def _file(statements: int, comments: bool) -> str:
    tail = f" {_PADDING}\n" if comments else "\n" + " " * 300 + "\n"
    return "".join(f"SELECT {i};{tail}" for i in range(statements))


def _seconds(sql: str) -> float:
    best = float("inf")
    for attempt in range(3):
        m = migration(sql + f"-- {attempt}\n")  # a new text each time: not cached
        gc.disable()  # the collector's passes over live trees are noise here
        try:
            t0 = time.perf_counter()
            split_statements(m)
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def test_line_counter_counts_forwards_and_backwards() -> None:
    text = "a\nb\n\nc\nd"
    line_at = LineCounter(text, base=10)
    expected = {i: 10 + text.count("\n", 0, i) for i in range(len(text) + 1)}
    for offset in [0, 3, 8, 2, 2, 5, 0, 7, 4]:
        assert line_at(offset) == expected[offset]


def test_splitting_is_linear_in_the_number_of_statements() -> None:
    for comments in (False, True):
        small, large = _seconds(_file(500, comments)), _seconds(_file(5000, comments))
        # linear: ~10x; quadratic line counting made it ~60x. Generous for a busy machine.
        assert large < 30 * small, (comments, small, large)
        assert [s.line for s in split_statements(migration(_file(5, comments)))] == (
            [1, 2, 3, 4, 5] if comments else [1, 3, 5, 7, 9]
        )


_BATCHED_CASES = [
    "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);  INSERT INTO a VALUES (2);\n"
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
    "CREATE RULE r AS ON INSERT TO a DO ALSO (NOTIFY a; NOTIFY b);\nSELECT 'x;y', $$;$$;\n"
    "SELECT 3",
    "SELECT E'it\\'s; ok', 'a''b;c', \"x;\"\"y\", $t$ ; $x$ ; $t$, a$$b;\n"
    "/* nested /* ; */ ; */ SELECT U&'d\\0061t;a', e'\\\\'; -- ; \nSELECT 1;\n"
    "SELECT 'unterminated; on purpose? no: '';' ;\nSELECT $$ $ $$;",
    "-- a comment\nDROP TABLE a; -- pgshift:allow=ban-drop-table\n"
    "/* block ; */ SELECT 1;\n-- pgshift:allow=ban-drop-table\nDROP TABLE b;\n"
    "SELECT 2; /* trailing */\n-- pgshift:no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n",
]
_BAD_CASES = [
    "SELECT 1;\nSELECT (1;\nSELECT 2;\n",
    "SELECT 1;\nSELECT 2;\nSELEC 3;\nSELECT 4;\n",
    "SELECT 1;\nSELECT 2;\nSELECT 'unterminated;\n",
    "SELECT 1;\n-- pgshift:allow=ban-drop-table\n",
]


def _outcome(sql: str) -> object:
    try:
        return [(s.index, s.line, s.text, s.directives, s.node) for s in split_statements(
            migration(sql))]
    except Exception as exc:  # the error is part of what must not change
        return (type(exc).__name__, str(exc))


def test_large_chunks_parsed_in_batches_split_as_the_whole(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pgshift.safety import statements

    for sql in _BATCHED_CASES + _BAD_CASES:
        whole = _outcome(sql)
        for size in (1, 8, 30):  # every cut, a few cuts, wrong cuts inside bodies joined
            monkeypatch.setattr(statements, "BATCHED_ABOVE", 0)
            monkeypatch.setattr(statements, "BATCH_CHARS", size)
            statements._CACHE.clear()
            assert _outcome(sql) == whole, (sql, size)
            monkeypatch.undo()
            statements._CACHE.clear()


def test_a_large_file_is_streamed_without_keeping_its_trees(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pgshift.safety import statements

    monkeypatch.setattr(statements, "BATCHED_ABOVE", 100)
    m = migration(_file(200, comments=False))
    assert statements.is_large(m)
    streamed = statements.iter_statements(m)
    assert not isinstance(streamed, tuple)
    assert [s.line for s in streamed] == list(range(1, 400, 2))
    assert (m.path, m.sql) not in statements._CACHE


def test_cuts_are_the_scanners_semicolons(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pglast import parser

    from pgshift.safety import statements

    monkeypatch.setattr(statements, "BATCH_CHARS", 1)
    for sql in _BATCHED_CASES:
        semicolons = {t.end + 1 for t in parser.scan(sql) if sql[t.start : t.end + 1] == ";"}
        assert set(statements._cuts(sql)) == semicolons - {len(sql)}, sql
