"""Production against drizzle-kit's snapshot, without a database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgshift.schemadiff import IgnoreList, Snapshot
from pgshift.schemadiff.drizzle import compare_to_snapshot, normalized_type
from pgshift.schemadiff.snapshot import CatalogObject, ObjectKind

QUICKSTART = Path(__file__).resolve().parents[3] / "examples/quickstart/drizzle/meta"
LABEL = "meta/0004_snapshot.json"


def col(table: str, name: str, type_: str, *, nullable: bool = False) -> CatalogObject:
    return CatalogObject(
        ObjectKind.COLUMN, f"public.{table}.{name}",
        {"type": type_, "nullable": nullable, "default": None}, parent=f"public.{table}",
    )


def part(kind: ObjectKind, table: str, name: str) -> CatalogObject:
    return CatalogObject(kind, f"public.{table}.{name}", {}, parent=f"public.{table}")


#: the quickstart as its migrations build it (what the catalog reader returns, in short).
QUICKSTART_DB = Snapshot.of([
    CatalogObject(ObjectKind.TABLE, "public.users"),
    CatalogObject(ObjectKind.TABLE, "public.projects"),
    col("users", "id", "bigint"), col("users", "email", "text"), col("users", "name", "text"),
    col("users", "created_at", "timestamp with time zone"),
    col("projects", "id", "bigint"), col("projects", "owner_id", "bigint"),
    col("projects", "name", "text"), col("projects", "slug", "text"),
    part(ObjectKind.CONSTRAINT, "users", "users_email_unique"),
    part(ObjectKind.CONSTRAINT, "projects", "projects_owner_id_users_id_fk"),
    part(ObjectKind.INDEX, "projects", "projects_owner_id_idx"),
])


def snapshot() -> dict[str, object]:
    data: dict[str, object] = json.loads((QUICKSTART / "0004_snapshot.json").read_text())
    return data


def test_the_quickstart_matches_its_own_snapshot() -> None:
    assert compare_to_snapshot(snapshot(), QUICKSTART_DB, LABEL) == []


def test_what_the_snapshot_has_and_production_lacks_is_reported() -> None:
    db = Snapshot.of(
        o for o in QUICKSTART_DB.objects.values()
        if o.name not in ("public.projects.projects_owner_id_idx", "public.users.email")
    )
    assert [d.message for d in compare_to_snapshot(snapshot(), db, LABEL)] == [
        f"projects.projects_owner_id_idx: index missing in production, in drizzle's snapshot "
        f"({LABEL})",
        f"users.email: column missing in production, in drizzle's snapshot ({LABEL})",
    ]


def test_a_column_nullable_in_production_and_what_was_reported_already() -> None:
    db = Snapshot.of([*QUICKSTART_DB.objects.values(), col("projects", "slug", "text",
                                                          nullable=True)])
    (drift,) = compare_to_snapshot(snapshot(), db, LABEL)
    assert drift.message == (
        f"projects.slug: nullable in production, NOT NULL in drizzle's snapshot ({LABEL})"
    )
    already = frozenset({("public.projects.slug", "nullable")})
    assert compare_to_snapshot(snapshot(), db, LABEL, already=already) == []
    assert compare_to_snapshot(snapshot(), db, LABEL, ignore=IgnoreList(("projects.*",))) == []


@pytest.mark.parametrize(
    ("drizzle", "postgres"),
    [
        ("varchar(255)", "character varying(255)"), ("varchar", "character varying"),
        ("numeric(12, 2)", "numeric(12,2)"), ("timestamp", "timestamp without time zone"),
        ("timestamp (3) with time zone", "timestamp(3) with time zone"),
        ("timestamp(3)", "timestamp(3) without time zone"), ("bigserial", "bigint"),
        ("serial", "integer"), ("text[]", "text[]"), ("char(2)", "character(2)"),
        ("double precision", "double precision"), ("uuid", "uuid"),
    ],
)
def test_drizzle_type_words_read_as_format_type_writes_them(drizzle: str, postgres: str) -> None:
    assert normalized_type(drizzle) == postgres
