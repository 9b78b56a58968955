"""Splitting a file costs time linear in its size (issue 14: counting each statement's line from
the start of its chunk made a 20,000-statement file cost statements x size)."""

from __future__ import annotations

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
    for attempt in range(2):
        m = migration(sql + f"-- {attempt}\n")  # a new text each time: not cached
        t0 = time.perf_counter()
        split_statements(m)
        best = min(best, time.perf_counter() - t0)
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
        # linear: ~10x; quadratic line counting made it ~50-100x. Generous for a busy machine.
        assert large < 25 * small, (comments, small, large)
        assert [s.line for s in split_statements(migration(_file(5, comments)))] == (
            [1, 2, 3, 4, 5] if comments else [1, 3, 5, 7, 9]
        )
