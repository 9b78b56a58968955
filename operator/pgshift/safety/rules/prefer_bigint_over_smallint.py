"""Opt-in style: smallint runs out at 32767; widening it later rewrites the table."""

from __future__ import annotations

from pgshift.safety.rules.base import style_rule

RULE = style_rule(
    "prefer-bigint-over-smallint", "prefer bigint over smallint",
    {"int2": "smallint", "smallserial": "smallserial", "serial2": "smallserial"},
    "use bigint (or integer when the range is known to be small forever)",
    "it overflows at 32,767, and changing its type later rewrites the table under an ACCESS "
    "EXCLUSIVE lock",
)
