"""Opt-in style: timestamp without time zone stores wall-clock times of no known zone."""

from __future__ import annotations

from pgshift.safety.rules.base import style_rule

RULE = style_rule(
    "prefer-timestamptz", "prefer timestamptz over timestamp",
    {"timestamp": "timestamp without time zone"},
    "use timestamptz (timestamp with time zone)",
    "its values mean different instants for sessions with different TimeZone settings, and "
    "changing it to timestamptz later rewrites the table under an ACCESS EXCLUSIVE lock",
)
