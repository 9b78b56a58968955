"""The lint rules: one module per rule, each with a stable squawk-style id and a docs page.

To add a rule: write `rules/<id_with_underscores>.py` with `RULE = Rule(...)` and a `check`,
list it below, add `docs/rules/<id>.md`, and its cases in tests/unit/safety/test_rules.py.
Opt-in rules (`opt_in=True`) report only when `--enable-rule` names them (or `style`).
"""

from __future__ import annotations

from pgshift.safety.rules import (
    adding_field_with_volatile_default,
    adding_not_nullable_field,
    adding_primary_key_constraint,
    ban_alter_domain_with_add_constraint,
    ban_drop_column,
    ban_drop_database,
    ban_drop_not_null,
    ban_drop_table,
    ban_reindex_without_concurrently,
    ban_table_rewrite,
    ban_truncate_cascade,
    ban_vacuum_full,
    changing_column_type,
    constraint_missing_not_valid,
    disallowed_unique_constraint,
    identifier_too_long,
    prefer_bigint_over_int,
    prefer_bigint_over_smallint,
    prefer_identity,
    prefer_text_field,
    prefer_timestamptz,
    releases_advisory_lock,
    renaming_column,
    renaming_table,
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    require_concurrent_partition_detach,
    require_enum_value_ordering,
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
        ban_table_rewrite,
        require_concurrent_partition_detach,
        ban_alter_domain_with_add_constraint,
        ban_drop_not_null,
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
        identifier_too_long,
        unclassified_statement,
        # opt-in (Rule.opt_in): type style
        prefer_bigint_over_int,
        prefer_bigint_over_smallint,
        prefer_identity,
        prefer_timestamptz,
        prefer_text_field,
        require_enum_value_ordering,
    )
}

#: the opt-in rules, which `--enable-rule style` turns on together.
STYLE: frozenset[str] = frozenset(r.id for r in RULES.values() if r.opt_in)

__all__ = ["RULES", "STYLE", "Rule", "Subject", "Violation"]
