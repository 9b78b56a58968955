"""Offsets in a text to 1-based lines, in time linear in the distance between queries.

`text.count("\n", 0, offset)` per statement made splitting a file of n statements cost
n x its size (issue 14: 65 % of a 20,000-statement file's run). Statements, their comments and
tokens are visited nearly in order, so counting from the previous offset is linear overall.
"""

from __future__ import annotations


class LineCounter:
    """`counter(offset)`: the line of `offset` in `text`, where offset 0 is on line `base`."""

    __slots__ = ("_line", "_offset", "_text")

    def __init__(self, text: str, base: int = 1) -> None:
        self._text = text
        self._offset = 0
        self._line = base

    def __call__(self, offset: int) -> int:
        if offset >= self._offset:
            self._line += self._text.count("\n", self._offset, offset)
        else:  # backwards (rare): count the newlines between, not from the start
            self._line -= self._text.count("\n", offset, self._offset)
        self._offset = offset
        return self._line
