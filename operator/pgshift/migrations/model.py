"""The values every other part reads: a source is an ordered tuple of migrations."""

from __future__ import annotations

import enum
import functools
import hashlib
from dataclasses import dataclass, field

#: drizzle-kit's separator between the chunks of one file; chunks are sent to the server as is.
BREAKPOINT = "--> statement-breakpoint"
#: characters encoded at a time for a file's hash (UTF-8 of a slice is the slice of the UTF-8:
#: a Python str never splits a character).
_HASH_SLICE = 1 << 20


class Layout(enum.StrEnum):
    """How migrations are laid out on disk (or encoded in a ConfigMap)."""

    AUTO = "auto"
    #: drizzle-kit 0.x: `meta/_journal.json` beside `<tag>.sql` (ConfigMap: `_journal.json` key).
    DRIZZLE = "drizzle"
    #: drizzle-kit 1.0: `<YYYYMMDDHHMMSS>_<name>/migration.sql` (ConfigMap: `<folder>.sql` keys).
    DRIZZLE_V1 = "drizzle-v1"
    #: hand-written `NNNN_name.sql` files; `created_at` is the number.
    PLAIN = "plain"


class TrackingForm(enum.StrEnum):
    """The shape of drizzle's tracking table that a layout implies."""

    #: `id, hash, created_at`; a migration is applied when a row has its `created_at`.
    STABLE = "stable"
    #: adds `name, applied_at`; a migration is applied when a row has its folder name.
    V1 = "v1"


@dataclass(frozen=True)
class Chunk:
    """One piece of a file between drizzle breakpoints, exactly as drizzle would send it."""

    index: int
    sql: str
    #: 1-based line in the file where the chunk starts, for messages.
    line: int


@dataclass(frozen=True)
class Migration:
    """One migration file, read exactly as drizzle's migrator reads it."""

    #: the journal tag, the v1 folder name, or the plain file's stem (`0003_add_slug`).
    name: str
    #: drizzle's `folderMillis` / the tracking row's `created_at`.
    when: int
    #: where it was read from, for messages (`drizzle/0003_add_slug.sql`).
    path: str
    sql: str
    chunks: tuple[Chunk, ...]
    layout: Layout

    @functools.cached_property
    def hash(self) -> str:
        """sha256 hex of the whole file's UTF-8 text, as drizzle stores it (computed once).
        Encoded a slice at a time: a 50 MB file is not copied whole (issue 14)."""
        h = hashlib.sha256()
        for start in range(0, len(self.sql), _HASH_SLICE):
            h.update(self.sql[start : start + _HASH_SLICE].encode("utf-8"))
        return h.hexdigest()


@dataclass(frozen=True)
class Source:
    """Every migration of a folder or ConfigMap, in the order they must be applied."""

    layout: Layout
    migrations: tuple[Migration, ...]
    #: where it was read from (a folder path, or `configmap:<ns>/<name>`).
    origin: str = ""
    #: files drizzle's migrator ignores, and so pgshift too: `.sql` files a journal does not
    #: list, v1 folders without a `migration.sql`. Lint and plan name them (a lost backfill).
    unlisted: tuple[str, ...] = ()
    #: down files (`<name>.down.sql`): each read as a Migration with the name and `when` of the
    #: migration it undoes, its own path, text and hash. Never applied; `pgshift rollback` runs
    #: them. They count in `digest`, never in a migration's hash.
    downs: tuple[Migration, ...] = ()
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(m.name for m in self.migrations))

    @property
    def tracking_form(self) -> TrackingForm:
        return TrackingForm.V1 if self.layout is Layout.DRIZZLE_V1 else TrackingForm.STABLE

    @property
    def digest(self) -> str:
        """sha256 over every migration's name, `when` and hash, in order, then each down
        file's name and hash.

        The operator pins it when it plans and the runner refuses a different source, whatever
        the encoding (folder, ConfigMap, image) that carried it.
        """
        h = hashlib.sha256()
        for m in self.migrations:
            h.update(f"{m.name}\0{m.when}\0{m.hash}\n".encode())
        # only when there are any: the digests of sources without down files stay as they were.
        for d in self.downs:
            h.update(f"down\0{d.name}\0{d.hash}\n".encode())
        return "sha256:" + h.hexdigest()

    def down_of(self, name: str) -> Migration | None:
        """The down file of migration `name`, if the source ships one."""
        for d in self.downs:
            if d.name == name:
                return d
        return None

    def get(self, name: str) -> Migration | None:
        for m in self.migrations:
            if m.name == name:
                return m
        return None

    def index_of(self, name: str) -> int:
        for i, m in enumerate(self.migrations):
            if m.name == name:
                return i
        raise KeyError(name)


def split_chunks(sql: str) -> tuple[Chunk, ...]:
    """Split on drizzle's breakpoint marker, keeping each chunk's starting line."""
    chunks: list[Chunk] = []
    line = 1
    for index, text in enumerate(sql.split(BREAKPOINT)):
        chunks.append(Chunk(index=index, sql=text, line=line))
        line += text.count("\n")
    return tuple(chunks)
