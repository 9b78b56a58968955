"""What a catalog is to the comparison: a flat map of objects, each with what matters of it.

One `CatalogObject` per table, column, constraint, index, enum, sequence, function, view and
extension. Names are qualified (`schema.table`, `schema.table.column`, `schema.function(args)`);
a column, constraint or index names its table as `parent`, so a table missing as a whole is one
drift, not one per column. Attributes are plain values (text, bool, tuples of text), already
normalized by the reader (`engine/catalog.py`): definitions from `pg_get_*def`, a constraint's
`NOT VALID` moved into `validated`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

Attr = str | bool | int | tuple[str, ...] | None


class ObjectKind(enum.StrEnum):
    TABLE = "table"
    COLUMN = "column"
    CONSTRAINT = "constraint"
    INDEX = "index"
    ENUM = "enum"
    SEQUENCE = "sequence"
    FUNCTION = "function"
    VIEW = "view"
    EXTENSION = "extension"


#: (kind, qualified name): an object's identity in both catalogs.
Key = tuple[ObjectKind, str]


@dataclass(frozen=True)
class CatalogObject:
    kind: ObjectKind
    #: qualified: `public.users`, `public.users.email`, `public.users.users_email_key`.
    name: str
    attrs: Mapping[str, Attr] = field(default_factory=dict)
    #: the table's qualified name, for a column, constraint or index.
    parent: str | None = None

    @property
    def key(self) -> Key:
        return (self.kind, self.name)

    @property
    def display(self) -> str:
        """The name as a person reads it: `users.avatar` (the `public.` schema left out)."""
        return self.name.removeprefix("public.")


@dataclass(frozen=True)
class Snapshot:
    """A catalog's objects by key (see the module)."""

    objects: Mapping[Key, CatalogObject] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[CatalogObject]) -> Snapshot:
        return cls(MappingProxyType({o.key: o for o in objects}))

    def get(self, key: Key) -> CatalogObject | None:
        return self.objects.get(key)

    def __len__(self) -> int:
        return len(self.objects)
