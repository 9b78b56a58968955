"""Opt-in style: text (with a CHECK on its length) over varchar(n) and char(n)."""

from __future__ import annotations

from pgshift.safety.rules.base import style_rule

RULE = style_rule(
    "prefer-text-field", "prefer text over varchar(n) and char(n)",
    {"varchar": "varchar(n)", "bpchar": "char(n)"},
    "use text with a CHECK (length(col) <= n) constraint (added NOT VALID, then VALIDATE)",
    "changing the limit later (anything but widening a varchar) rewrites the table under an "
    "ACCESS EXCLUSIVE lock, while a CHECK on a text column can be replaced without one; "
    "char(n) also pads with spaces",
)
