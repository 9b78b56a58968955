"""The comparison alone: snapshots built by hand, no database."""

from __future__ import annotations

import pytest

from pgshift.schemadiff import IgnoreList, Snapshot, changed_keys, compare
from pgshift.schemadiff.compare import BadIgnorePattern, DriftKind
from pgshift.schemadiff.snapshot import CatalogObject, ObjectKind

T, C, IX, X, E = (
    ObjectKind.TABLE, ObjectKind.COLUMN, ObjectKind.INDEX, ObjectKind.CONSTRAINT,
    ObjectKind.EXTENSION,
)


def table(name: str = "public.users") -> CatalogObject:
    return CatalogObject(T, name, {"kind": "r", "unlogged": False})


def column(name: str, type_: str = "text", *, nullable: bool = True,
           default: str | None = None, table_name: str = "public.users") -> CatalogObject:
    return CatalogObject(
        C, f"{table_name}.{name}", {"type": type_, "nullable": nullable, "default": default},
        parent=table_name,
    )


def index(name: str, definition: str = "CREATE INDEX ...", *, valid: bool = True) -> CatalogObject:
    return CatalogObject(
        IX, f"public.users.{name}", {"definition": definition, "valid": valid},
        parent="public.users",
    )


EXPECTED = Snapshot.of([
    table(),
    column("id", "bigint", nullable=False),
    column("avatar", "character varying(255)"),
    column("status", default="'active'::text", nullable=False),
    index("users_created_idx"),
    CatalogObject(X, "public.users.users_pkey", {"definition": "PRIMARY KEY (id)",
                                                 "validated": True}, parent="public.users"),
    CatalogObject(E, "pgcrypto", {"schema": "public"}),
])


def messages(production: Snapshot, **kwargs: object) -> list[str]:
    return [d.message for d in compare(production, EXPECTED, **kwargs).drift]  # type: ignore[arg-type]


def with_changes(*objects: CatalogObject, drop: tuple[str, ...] = ()) -> Snapshot:
    by_key = {k: o for k, o in EXPECTED.objects.items() if k[1] not in drop}
    by_key.update({o.key: o for o in objects})
    return Snapshot.of(by_key.values())


def test_the_same_catalog_is_in_sync() -> None:
    result = compare(EXPECTED, EXPECTED)
    assert result.drift == () and result.compared == len(EXPECTED)


def test_a_changed_type_reads_as_the_issue_writes_it() -> None:
    production = with_changes(column("avatar", "text"))
    assert messages(production) == [
        "users.avatar: type text in production, character varying(255) expected"
    ]


def test_a_dropped_default_and_a_dropped_not_null() -> None:
    production = with_changes(column("status", nullable=True))
    assert messages(production) == [
        "users.status: no default in production, 'active'::text expected",
        "users.status: nullable in production, NOT NULL expected",
    ]


def test_extra_and_missing_objects_say_what_to_do() -> None:
    production = with_changes(column("nickname"), drop=("public.users.users_created_idx",))
    assert messages(production) == [
        "users.nickname: column in production, not made by the migrations "
        "(add it to a migration, drop it, or --ignore it)",
        "users.users_created_idx: index missing in production, expected by the migrations",
    ]
    kinds = [d.kind for d in compare(production, EXPECTED).drift]
    assert kinds == [DriftKind.EXTRA, DriftKind.MISSING]


def test_a_missing_table_is_one_item_not_one_per_column() -> None:
    production = Snapshot.of([CatalogObject(E, "pgcrypto", {"schema": "public"})])
    assert messages(production) == [
        "users: table missing in production, expected by the migrations"
    ]


def test_an_invalid_index_and_a_not_valid_constraint_are_drift() -> None:
    production = with_changes(
        index("users_created_idx", valid=False),
        CatalogObject(X, "public.users.users_pkey", {"definition": "PRIMARY KEY (id)",
                                                     "validated": False}, parent="public.users"),
    )
    assert messages(production) == [
        "users.users_created_idx: INVALID (a failed concurrent build) in production, "
        "valid expected",
        "users.users_pkey: NOT VALID in production, validated expected",
    ]


def test_an_extension_a_dba_added_is_not_drift() -> None:
    production = with_changes(CatalogObject(E, "pg_stat_statements", {"schema": "public"}))
    assert messages(production) == []


@pytest.mark.parametrize(
    "pattern", ["public.users.*_dba_idx", "users.*_dba_idx", "index:*_dba_idx", "table:users"]
)
def test_ignore_patterns_leave_an_object_out_and_count_it(pattern: str) -> None:
    production = with_changes(index("users_email_dba_idx"))
    result = compare(production, EXPECTED, ignore=IgnoreList((pattern,)))
    assert result.drift == () and result.ignored == 1


def test_an_ignore_pattern_of_another_kind_leaves_the_drift() -> None:
    production = with_changes(index("users_email_dba_idx"))
    result = compare(production, EXPECTED, ignore=IgnoreList(("column:*_dba_idx",)))
    assert len(result.drift) == 1 and result.ignored == 0


@pytest.mark.parametrize("pattern", ["idx:foo", "index:", "", "  "])
def test_a_bad_ignore_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(BadIgnorePattern):
        IgnoreList((pattern,))


def test_a_baseline_scope_compares_only_what_later_migrations_changed() -> None:
    before = Snapshot.of([table(), column("id", "bigint", nullable=False),
                          column("avatar", "character varying(255)")])
    scope = changed_keys(before, EXPECTED)
    assert (C, "public.users.avatar") not in scope
    assert (C, "public.users.status") in scope and (IX, "public.users.users_created_idx") in scope
    # push made avatar text: not the source's to judge; a later index missing is
    production = with_changes(column("avatar", "text"), drop=("public.users.users_created_idx",))
    assert messages(production, scope=scope) == [
        "users.users_created_idx: index missing in production, expected by the migrations"
    ]


def test_an_object_a_later_migration_dropped_must_be_absent() -> None:
    before = with_changes(column("legacy"))
    scope = changed_keys(before, EXPECTED)
    assert messages(before, scope=scope) == [
        "users.legacy: column in production, not made by the migrations "
        "(add it to a migration, drop it, or --ignore it)"
    ]


def test_long_definitions_are_cut_for_the_line() -> None:
    long = "CREATE INDEX i ON public.users USING btree (" + ", ".join(["c"] * 80) + ")"
    production = with_changes(index("users_created_idx", long))
    (line,) = messages(production)
    assert line.startswith("users.users_created_idx: definition CREATE INDEX i") and "…" in line
    assert len(line) < 260
