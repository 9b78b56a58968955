"""Read a database's catalog into a `schemadiff.Snapshot` (I/O; the comparison is pure).

Only the schemas asked for are read, and never the objects of an extension (they come with
`CREATE EXTENSION`), the sequences of identity columns (part of their column), PostgreSQL 18's
NOT NULL constraints (the column's `nullable` says it) or pgshift's own tracking tables.
Definitions come from PostgreSQL itself (`pg_get_constraintdef`, `pg_get_indexdef`,
`pg_get_viewdef`, `pg_get_functiondef`), so two databases built by different but equivalent
statements (a CONCURRENTLY index, a NOT VALID constraint validated later) read the same; a
constraint's `NOT VALID` is its `validated` attribute, an index's failed build its `valid`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import psycopg

from pgshift.engine import tracking as tracking_sql
from pgshift.schemadiff.snapshot import CatalogObject, ObjectKind, Snapshot
from pgshift.settings import Tracking

#: schemas no source owns.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

_NOT_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass
    AND d.objid = {oid} AND d.deptype IN ({types}))"""


def _not_member(catalog: str, oid: str, types: str = "'e'") -> str:
    return _NOT_MEMBER.format(catalog=catalog, oid=oid, types=types)


_TABLES = f"""
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence = 'u'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f')
  AND {_not_member('pg_class', 'c.oid')}
"""

_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(ad.adbin, ad.adrelid), a.attidentity::text, a.attgenerated::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')
  AND n.nspname = ANY(%(schemas)s) AND {_not_member('pg_class', 'c.oid')}
"""

# 'n': PostgreSQL 18's NOT NULL constraints, which the column's nullability already says.
_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid), con.convalidated
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype IN ('c', 'f', 'p', 'u', 'x') AND n.nspname = ANY(%(schemas)s)
  AND {_not_member('pg_class', 'c.oid')}
"""

_INDEXES = f"""
SELECT n.nspname, t.relname, i.relname, pg_get_indexdef(i.oid), x.indisvalid
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {_not_member('pg_class', 't.oid')}
"""

_ENUMS = f"""
SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {_not_member('pg_type', 't.oid')}
GROUP BY n.nspname, t.typname
"""

# 'i': the sequence of an identity column belongs to the column.
_SEQUENCES = f"""
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart::text,
       s.seqincrement::text, s.seqmin::text, s.seqmax::text, s.seqcycle, s.seqcache::text
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {_not_member('pg_class', 'c.oid', "'e', 'i'")}
"""

_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p')
  AND {_not_member('pg_proc', 'p.oid')}
"""

_VIEWS = f"""
SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')
  AND {_not_member('pg_class', 'c.oid')}
"""

_EXTENSIONS = """
SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
"""

_USED_SCHEMAS = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname <> ALL(%(skip)s) AND n.nspname NOT LIKE 'pg\\_%%'
  AND (n.nspname <> 'public'
       OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid)
       OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid)
       OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid AND t.typtype = 'e'))
ORDER BY 1
"""


def used_schemas(conn: psycopg.Connection[Any], tracking: Tracking) -> list[str]:
    """The schemas a database built by the migrations alone holds: each one the source created,
    and `public` when the source put something in it (a fresh database always has it)."""
    skip = [*SYSTEM_SCHEMAS, tracking.schema]
    return [row[0] for row in conn.execute(_USED_SCHEMAS, {"skip": skip}).fetchall()]


def _name(*parts: str) -> str:
    return ".".join(parts)


def _rows(conn: psycopg.Connection[Any], query: str, schemas: list[str]) -> list[tuple[Any, ...]]:
    return conn.execute(query, {"schemas": schemas}).fetchall()


def read_snapshot(
    conn: psycopg.Connection[Any], schemas: Collection[str], tracking: Tracking
) -> Snapshot:
    """The objects of `schemas` (see the module), in one transaction: one consistent view."""
    wanted = sorted(set(schemas))
    with conn.transaction():
        objects = list(_objects(conn, wanted))
    ours = _tracking_relations(tracking)
    return Snapshot.of(
        o
        for o in objects
        if not ((o.parent or o.name) in ours or o.name in ours)
    )


def _tracking_relations(tracking: Tracking) -> frozenset[str]:
    """pgshift's own tables (and their serial sequence), when the tracking schema is one the
    source uses too."""
    tables = (
        tracking.table,
        tracking_sql.STEPS_TABLE,
        tracking_sql.BACKFILL_TABLE,
        tracking_sql.SCHEMA_TABLE,
    )
    return frozenset(
        _name(tracking.schema, n) for t in tables for n in (t, f"{t}_id_seq")
    )


def _objects(conn: psycopg.Connection[Any], schemas: list[str]) -> Iterator[CatalogObject]:
    for schema, table, kind, unlogged in _rows(conn, _TABLES, schemas):
        yield CatalogObject(
            ObjectKind.TABLE, _name(schema, table), {"kind": kind, "unlogged": bool(unlogged)}
        )
    for schema, table, column, type_, nullable, default, identity, generated in _rows(
        conn, _COLUMNS, schemas
    ):
        attrs: dict[str, Any] = {"type": type_, "nullable": bool(nullable), "default": default}
        if identity:
            attrs["identity"] = {"a": "ALWAYS", "d": "BY DEFAULT"}.get(identity, identity)
        if generated:
            # a generated column's expression is in pg_attrdef like a default
            attrs["generated"] = attrs.pop("default")
        yield CatalogObject(
            ObjectKind.COLUMN, _name(schema, table, column), attrs, parent=_name(schema, table)
        )
    for schema, table, name, definition, validated in _rows(conn, _CONSTRAINTS, schemas):
        yield CatalogObject(
            ObjectKind.CONSTRAINT,
            _name(schema, table, name),
            {"definition": definition.removesuffix(" NOT VALID"), "validated": bool(validated)},
            parent=_name(schema, table),
        )
    for schema, table, name, definition, valid in _rows(conn, _INDEXES, schemas):
        yield CatalogObject(
            ObjectKind.INDEX,
            _name(schema, table, name),
            {"definition": definition, "valid": bool(valid)},
            parent=_name(schema, table),
        )
    for schema, name, labels in _rows(conn, _ENUMS, schemas):
        yield CatalogObject(ObjectKind.ENUM, _name(schema, name), {"labels": tuple(labels)})
    for schema, name, type_, start, increment, low, high, cycle, cache in _rows(
        conn, _SEQUENCES, schemas
    ):
        yield CatalogObject(
            ObjectKind.SEQUENCE,
            _name(schema, name),
            {
                "type": type_, "start": start, "increment": increment, "min": low, "max": high,
                "cycle": bool(cycle), "cache": cache,
            },
        )
    for schema, name, arguments, definition in _rows(conn, _FUNCTIONS, schemas):
        yield CatalogObject(
            ObjectKind.FUNCTION,
            f"{_name(schema, name)}({arguments})",
            {"definition": " ".join(definition.split())},
        )
    for schema, name, materialized, definition in _rows(conn, _VIEWS, schemas):
        yield CatalogObject(
            ObjectKind.VIEW,
            _name(schema, name),
            {"materialized": bool(materialized), "definition": " ".join(definition.split())},
        )
    for name, schema in conn.execute(_EXTENSIONS).fetchall():
        yield CatalogObject(ObjectKind.EXTENSION, name, {"schema": schema})
