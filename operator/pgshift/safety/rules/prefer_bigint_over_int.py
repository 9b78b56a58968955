"""Opt-in style: integer keys run out at 2^31; widening one later rewrites the table."""

from __future__ import annotations

from pgshift.safety.rules.base import style_rule

RULE = style_rule(
    "prefer-bigint-over-int", "prefer bigint over integer",
    {"int4": "integer", "serial": "serial", "serial4": "serial"},
    "use bigint (or bigserial / GENERATED ... AS IDENTITY on bigint)",
    "it overflows at 2,147,483,647, and changing it to bigint later rewrites the table under "
    "an ACCESS EXCLUSIVE lock",
)
