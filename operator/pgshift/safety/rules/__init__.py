"""The lint rules: one module per rule, each with a stable squawk-style id and a docs page.

To add a rule: write `rules/<id_with_underscores>.py` with `RULE = Rule(...)` and a `check`,
list it below, add `docs/rules/<id>.md`, and a test in tests/unit/safety/rules/.
"""

from __future__ import annotations

from pgshift.safety.rules import (
    adding_field_with_volatile_default,
    adding_not_nullable_field,
    adding_primary_key_constraint,
    ban_drop_column,
    ban_drop_database,
    ban_drop_table,
    ban_reindex_without_concurrently,
    ban_truncate_cascade,
    ban_vacuum_full,
    changing_column_type,
    constraint_missing_not_valid,
    disallowed_unique_constraint,
    releases_advisory_lock,
    renaming_column,
    renaming_table,
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    transaction_nesting,
    unbatched_backfill,
    unclassified_statement,
)
from pgshift.safety.rules.base import Rule, Subject, Violation

#: every rule by id, in the order findings for one statement are reported.
RULES: dict[str, Rule] = {
    m.RULE.id: m.RULE
    for m in (
        require_concurrent_index_creation,
        require_concurrent_index_deletion,
        constraint_missing_not_valid,
        adding_not_nullable_field,
        disallowed_unique_constraint,
        adding_primary_key_constraint,
        adding_field_with_volatile_default,
        changing_column_type,
        ban_drop_column,
        ban_drop_table,
        renaming_column,
        renaming_table,
        unbatched_backfill,
        ban_vacuum_full,
        ban_reindex_without_concurrently,
        ban_truncate_cascade,
        transaction_nesting,
        releases_advisory_lock,
        ban_drop_database,
        unclassified_statement,
    )
}

__all__ = ["RULES", "Rule", "Subject", "Violation"]
