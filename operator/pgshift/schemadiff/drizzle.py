"""Production's snapshot against drizzle-kit's own snapshot of the last applied migration. PURE.

drizzle-kit writes `meta/NNNN_snapshot.json` beside each migration of the stable layout: what
its schema (`schema.ts`) looked like when the migration was generated. A database that the SQL
files built can still differ from it (a custom migration, a file edited by hand, `drizzle-kit
push` of another schema), so this is a second opinion beside the catalog comparison. Only what
the snapshot says is checked, one way: each table, column (type, NOT NULL), index, foreign key,
unique and check constraint and enum of the snapshot must be in production as it says. Objects
the snapshot does not know (a custom migration's function, a DBA's index) are not its business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pgshift.schemadiff.compare import Drift, DriftKind, IgnoreList, value_text
from pgshift.schemadiff.snapshot import CatalogObject, ObjectKind, Snapshot

_IN = "in drizzle's snapshot"

#: drizzle-kit's column type words -> `format_type`'s.
_TYPES = {
    "serial": "integer", "bigserial": "bigint", "smallserial": "smallint",
    "int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint",
    "varchar": "character varying", "char": "character", "bool": "boolean",
    "timestamp": "timestamp without time zone", "time": "time without time zone",
    "timestamptz": "timestamp with time zone", "float8": "double precision", "float4": "real",
    "decimal": "numeric",
}
_WITH_ARGS = re.compile(r"^([a-z0-9_ ]+?)\s*(\([^)]*\))?(\s+with(?:out)? time zone)?(\[\])*$")


def normalized_type(text: str) -> str:
    """`varchar(255)` -> `character varying(255)`, `numeric(12, 2)` -> `numeric(12,2)`,
    `timestamp (3) with time zone` -> `timestamp(3) with time zone`."""
    t = " ".join(text.strip().lower().split())
    arrays = ""
    while t.endswith("[]"):
        t, arrays = t[:-2].rstrip(), arrays + "[]"
    match = _WITH_ARGS.match(t)
    if match is None:
        return t + arrays
    base, args, zone = match.group(1).strip(), match.group(2) or "", match.group(3) or ""
    base = _TYPES.get(base, base)
    if zone and base.startswith(("timestamp", "time")):
        base = base.split(" ")[0]
    elif base in ("timestamp without time zone", "time without time zone") and args:
        word, rest = base.split(" ", 1)
        return f"{word}{args.replace(' ', '')} {rest}{arrays}"
    return f"{base}{args.replace(' ', '')}{zone}{arrays}"


def _qualified(key: str, entry: Mapping[str, Any]) -> str:
    schema = entry.get("schema") or ""
    name = entry.get("name") or key.split(".")[-1]
    return f"{schema or 'public'}.{name}"


def _entries(value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(value, Mapping):
        return []
    return [(str(k), v) for k, v in value.items() if isinstance(v, Mapping)]


def compare_to_snapshot(
    data: Mapping[str, Any],
    production: Snapshot,
    label: str,
    *,
    ignore: IgnoreList | None = None,
    already: frozenset[tuple[str, str | None]] = frozenset(),
) -> list[Drift]:
    """Drift of production from drizzle-kit's snapshot `data` (see the module); `label` names
    the file in each line; `already`: (name, attribute) the catalog comparison reported."""
    ignore = ignore or IgnoreList()
    out: list[Drift] = []

    def report(obj: CatalogObject, kind: DriftKind, attribute: str | None, text: str) -> None:
        if (obj.name, attribute) in already or (obj.name, None) in already:
            return
        if obj.parent is not None and (obj.parent, None) in already:
            return
        if not ignore.covers(obj):
            line = f"{obj.display}: {text} ({label})"
            out.append(Drift(kind, obj.kind, obj.name, attribute, line))

    def missing(obj: CatalogObject) -> None:
        report(obj, DriftKind.MISSING, None, f"{obj.kind.value} missing in production, {_IN}")

    for key, table in _entries(data.get("tables")):
        name = _qualified(key, table)
        shown = CatalogObject(ObjectKind.TABLE, name)
        if production.get((ObjectKind.TABLE, name)) is None:
            missing(shown)
            continue
        for column_key, column in _entries(table.get("columns")):
            cname = f"{name}.{column.get('name') or column_key}"
            actual = production.get((ObjectKind.COLUMN, cname))
            obj = CatalogObject(ObjectKind.COLUMN, cname, parent=name)
            if actual is None:
                missing(obj)
                continue
            want = normalized_type(str(column.get("type", "")))
            have = str(actual.attrs.get("type", ""))
            if want and normalized_type(have) != want and have.split(".")[-1] != want:
                report(obj, DriftKind.CHANGED, "type",
                       f"type {have} in production, {column.get('type')} {_IN}")
            not_null = bool(column.get("notNull")) or bool(column.get("primaryKey"))
            if not_null == bool(actual.attrs.get("nullable")):
                word = "nullable" if not_null else "NOT NULL"
                expected = "NOT NULL" if not_null else "nullable"
                report(obj, DriftKind.CHANGED, "nullable",
                       f"{word} in production, {expected} {_IN}")
        for part, kind in (
            ("indexes", ObjectKind.INDEX),
            ("foreignKeys", ObjectKind.CONSTRAINT),
            ("uniqueConstraints", ObjectKind.CONSTRAINT),
            ("checkConstraints", ObjectKind.CONSTRAINT),
            ("compositePrimaryKeys", ObjectKind.CONSTRAINT),
        ):
            for part_key, entry in _entries(table.get(part)):
                pname = f"{name}.{entry.get('name') or part_key}"
                if production.get((kind, pname)) is None:
                    missing(CatalogObject(kind, pname, parent=name))
    for key, enum in _entries(data.get("enums")):
        name = _qualified(key, enum)
        obj = CatalogObject(ObjectKind.ENUM, name)
        actual = production.get((ObjectKind.ENUM, name))
        values = tuple(str(v) for v in enum.get("values") or ())
        if actual is None:
            missing(obj)
        elif actual.attrs.get("labels") != values:
            have = value_text(actual.attrs.get("labels"))
            report(obj, DriftKind.CHANGED, "labels",
                   f"labels {have} in production, {value_text(values)} {_IN}")
    return sorted(out, key=lambda d: (d.name, d.attribute or ""))
