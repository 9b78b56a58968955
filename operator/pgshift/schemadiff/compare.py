"""Production's snapshot against the expected one: drift, each a line a person can act on.

`compare(production, expected, ignore=..., scope=...)`:
- an object expected and absent from production is `missing`; one in production and not
  expected is `extra` (never for extensions: a DBA's extension blocks nobody); one in both
  with an attribute that differs is `changed`, one item per attribute;
- the items of a column, constraint or index whose table is missing or extra are left out
  (the table's own item says it);
- `ignore` patterns (`--ignore`) drop items; `scope` (with a baseline: the objects the
  migrations after `upTo` made or changed, `changed_keys`) limits the keys looked at.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pgshift.schemadiff.snapshot import Attr, CatalogObject, Key, ObjectKind, Snapshot


class DriftKind(enum.StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    CHANGED = "changed"


@dataclass(frozen=True)
class Drift:
    kind: DriftKind
    object_kind: ObjectKind
    #: qualified name (`public.users.avatar`).
    name: str
    #: the attribute that differs (`type`, `default`...), for `changed`.
    attribute: str | None
    message: str


class BadIgnorePattern(ValueError):
    """An `--ignore` pattern that names an unknown object kind (`idx:*`)."""


@dataclass(frozen=True)
class IgnoreList:
    """Patterns (`fnmatch`, case-sensitive) over qualified names or the shown name, optionally
    `kind:pattern` (`index:public.*_dba_idx`). A pattern that matches a table also covers its
    columns, constraints and indexes."""

    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        kinds = {k.value for k in ObjectKind}
        for pattern in self.patterns:
            kind, sep, rest = pattern.partition(":")
            if not pattern.strip() or (sep and (kind not in kinds or not rest)):
                raise BadIgnorePattern(
                    f"{pattern!r}: give NAME or KIND:NAME with KIND one of {', '.join(kinds)}"
                )

    def covers(self, obj: CatalogObject) -> bool:
        for pattern in self.patterns:
            kind, sep, rest = pattern.partition(":")
            if sep and kind != obj.kind.value:
                # `table:NAME` covers the table's columns, constraints and indexes too
                on_table = kind == ObjectKind.TABLE.value and obj.parent is not None
                if on_table and obj.parent is not None and _matches(rest, obj.parent):
                    return True
                continue
            glob = rest if sep else pattern
            if _matches(glob, obj.name) or (obj.parent is not None and _matches(glob, obj.parent)):
                return True
        return False


def _matches(glob: str, name: str) -> bool:
    return fnmatchcase(name, glob) or fnmatchcase(name.removeprefix("public."), glob)


@dataclass(frozen=True)
class Comparison:
    drift: tuple[Drift, ...]
    #: drift items an `--ignore` pattern dropped.
    ignored: int
    #: objects looked at (in scope, in either catalog).
    compared: int


def changed_keys(before: Snapshot, after: Snapshot) -> frozenset[Key]:
    """The keys a run of migrations made, dropped or changed: from `before` to `after`."""
    keys = set(before.objects) | set(after.objects)
    return frozenset(
        k for k in keys if (o := before.get(k)) is None or (n := after.get(k)) is None
        or o.attrs != n.attrs
    )


def compare(
    production: Snapshot,
    expected: Snapshot,
    *,
    ignore: IgnoreList | None = None,
    scope: frozenset[Key] | None = None,
) -> Comparison:
    ignore = ignore or IgnoreList()
    keys = set(production.objects) | set(expected.objects)
    if scope is not None:
        keys &= scope
    absent_tables = {
        name
        for (kind, name) in keys
        if kind is ObjectKind.TABLE
        and (production.get((kind, name)) is None) != (expected.get((kind, name)) is None)
    }
    drift: list[Drift] = []
    ignored = 0
    for key in sorted(keys, key=_order):
        prod, exp = production.get(key), expected.get(key)
        obj = exp or prod
        assert obj is not None
        if obj.parent is not None and obj.parent in absent_tables:
            continue
        items = _differences(prod, exp)
        if not items:
            continue
        if ignore.covers(obj):
            ignored += len(items)
            continue
        drift.extend(items)
    return Comparison(tuple(drift), ignored, len(keys))


_KIND_ORDER = {k: i for i, k in enumerate(ObjectKind)}


def _order(key: Key) -> tuple[str, int]:
    return (key[1], _KIND_ORDER[key[0]])


def _differences(prod: CatalogObject | None, exp: CatalogObject | None) -> list[Drift]:
    if prod is None and exp is not None:
        return [Drift(DriftKind.MISSING, exp.kind, exp.name, None, _missing(exp))]
    if exp is None and prod is not None:
        if prod.kind is ObjectKind.EXTENSION:
            return []
        return [Drift(DriftKind.EXTRA, prod.kind, prod.name, None, _extra(prod))]
    assert prod is not None and exp is not None
    out = []
    for attr in sorted(set(prod.attrs) | set(exp.attrs)):
        p, e = prod.attrs.get(attr), exp.attrs.get(attr)
        if p != e:
            message = f"{exp.display}: {_changed(exp.kind, attr, p, e)}"
            out.append(Drift(DriftKind.CHANGED, exp.kind, exp.name, attr, message))
    return out


def _missing(obj: CatalogObject) -> str:
    what = obj.kind.value
    if obj.kind is ObjectKind.COLUMN and obj.attrs.get("type"):
        what += f" ({obj.attrs['type']})"
    return f"{obj.display}: {what} missing in production, expected by the migrations"


def _extra(obj: CatalogObject) -> str:
    return (
        f"{obj.display}: {obj.kind.value} in production, not made by the migrations "
        "(add it to a migration, drop it, or --ignore it)"
    )


#: boolean attributes: how each value reads.
_FLAGS: dict[str, tuple[str, str]] = {
    "nullable": ("nullable", "NOT NULL"),
    "validated": ("validated", "NOT VALID"),
    "valid": ("valid", "INVALID (a failed concurrent build)"),
    "cycle": ("CYCLE", "NO CYCLE"),
    "unlogged": ("UNLOGGED", "logged"),
}

_LONG = 100


def value_text(value: Attr) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        text = ", ".join(value)
        return f"({text})"
    text = " ".join(str(value).split())
    return text if len(text) <= _LONG else text[: _LONG - 1] + "…"


def _changed(kind: ObjectKind, attr: str, prod: Attr, exp: Attr) -> str:
    if attr in _FLAGS and isinstance(prod, bool) and isinstance(exp, bool):
        yes, no = _FLAGS[attr]
        return f"{yes if prod else no} in production, {yes if exp else no} expected"
    if attr == "default" and (prod is None or exp is None):
        if prod is None:
            return f"no default in production, {value_text(exp)} expected"
        return f"default {value_text(prod)} in production, no default expected"
    return f"{attr} {value_text(prod)} in production, {value_text(exp)} expected"
