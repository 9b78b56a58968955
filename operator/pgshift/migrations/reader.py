"""Read a folder or ConfigMap data into a `Source`, exactly as drizzle's migrator reads it.

Every layout is first reduced to a flat mapping `key -> text` (the ConfigMap encoding), so a
folder, a mounted ConfigMap and an image's folder take one path through the same code:

- drizzle (stable): `_journal.json` beside `<tag>.sql` (a folder has `meta/_journal.json`);
- drizzle-v1: `<YYYYMMDDHHMMSS>_<name>.sql` (a folder has `<folder>/migration.sql`);
- plain: `NNNN_<name>.sql`.
Down files (`pgshift rollback`) sit beside them: `<name>.down.sql` in every flat encoding
(plain `NNNN_<name>.down.sql`, drizzle `<tag>.down.sql`, v1 `<folder>.down.sql`), and
`<folder>/down.sql` in a drizzle-kit 1.0 folder. They are never migrations: drizzle's migrators
read only journal entries (stable) or each folder's `migration.sql` (v1).
Snapshots are never read: the migrator does not read them either.
"""

from __future__ import annotations

import calendar
import errno
import json
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pgshift.errors import SourceError
from pgshift.migrations.model import Layout, Migration, Source, split_chunks

JOURNAL_KEY = "_journal.json"
#: Kubernetes' rule for ConfigMap keys.
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
#: the suffix of a down file's key (`0003_add_slug.down.sql` undoes `0003_add_slug`).
DOWN_SUFFIX = ".down.sql"
#: a drizzle-kit 1.0 folder's down file, beside its `migration.sql`.
V1_DOWN_FILE = "down.sql"
V1_NAME = re.compile(r"^(\d{14})_[^/]*$")
PLAIN_NAME = re.compile(r"^(\d+)_[^/]*$")
#: the tracking table's `created_at` is a bigint: a larger `when` would fail its INSERT only
#: after the file's statements ran.
BIGINT_MAX = 2**63 - 1


def read_source(path: str | Path, layout: Layout | str = Layout.AUTO) -> Source:
    """Read a migrations folder in any layout (including a mounted ConfigMap)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder (--dir)")
    files, shown, skipped = _flatten_folder(folder)
    return read_mapping(files, layout, origin=str(folder), shown=shown, skipped=skipped)


def read_mapping(
    files: Mapping[str, str],
    layout: Layout | str = Layout.AUTO,
    *,
    origin: str = "",
    shown: Mapping[str, str] | None = None,
    skipped: Sequence[str] = (),
) -> Source:
    """Read the flat `key -> text` encoding (a ConfigMap's `data`).

    `shown` maps keys to the paths printed in messages (the folder form, when read from disk);
    `skipped`: v1-named folders without a `migration.sql` (drizzle skips them too).
    """
    shown = shown or {}
    downs = {k: v for k, v in files.items() if k.endswith(DOWN_SUFFIX)}
    files = {k: v for k, v in files.items() if not k.endswith(DOWN_SUFFIX)}
    chosen = Layout(layout) if isinstance(layout, str) else layout
    if chosen is Layout.AUTO:
        # a folder with drizzle-kit 1.0 migration folders is v1, whatever else lies beside them
        # (read as plain, its folders would get other created_at values than drizzle's).
        v1_folders = any(path.endswith("/migration.sql") for path in shown.values())
        chosen = Layout.DRIZZLE_V1 if v1_folders else detect_layout(files, origin)
    else:
        _check_layout(chosen, files, shown, origin)

    def where(key: str) -> str:
        return shown.get(key) or (f"{origin}/{key}" if origin else key)

    unlisted: list[str] = []
    if chosen is Layout.DRIZZLE:
        migrations = _read_journal(files, where)
        listed = {f"{m.name}.sql" for m in migrations}
        # drizzle's migrator reads the journal only: a file it does not list is never applied.
        unlisted = [where(k) for k in sorted(files) if k.endswith(".sql") and k not in listed]
    elif chosen is Layout.DRIZZLE_V1:
        migrations = _read_numbered(files, where, V1_NAME, _v1_millis, chosen)
        unlisted = list(skipped)
    else:
        migrations = _read_numbered(files, where, PLAIN_NAME, int, chosen)
    _check_unique_when(migrations)
    return Source(
        layout=chosen,
        migrations=tuple(migrations),
        origin=origin,
        unlisted=tuple(unlisted),
        downs=_read_downs(downs, migrations, where),
    )


def _read_downs(  # type: ignore[no-untyped-def]
    downs: Mapping[str, str], migrations: list[Migration], where
) -> tuple[Migration, ...]:
    """Each down file as a Migration with the name and `when` of the migration it undoes; a
    down file that undoes no migration is an error naming it (a typo would be found only when
    a rollback needs it)."""
    by_name = {m.name: m for m in migrations}
    out: list[Migration] = []
    for key in sorted(downs):
        name = key[: -len(DOWN_SUFFIX)]
        up = by_name.get(name)
        if up is None:
            raise SourceError(
                f"{where(key)}: a down file undoes the migration {name}, which the source "
                f"does not have (a down file is named after its migration: {name}.sql -> "
                f"{name}{DOWN_SUFFIX})"
            )
        out.append(_migration(up.name, up.when, where(key), downs[key], up.layout))
    return tuple(out)


def _check_layout(
    chosen: Layout, files: Mapping[str, str], shown: Mapping[str, str], origin: str
) -> None:
    """A layout named explicitly must be the folder's: read otherwise, a drizzle folder would
    record other `created_at` values than drizzle does, and drizzle would apply it all again."""
    where = origin or "source"
    has_journal = JOURNAL_KEY in files
    from_v1_folders = [k for k in files if shown.get(k, "").endswith("/migration.sql")]
    if chosen is Layout.DRIZZLE and not has_journal:
        raise SourceError(
            f"{where}: layout drizzle, but there is no meta/_journal.json "
            "(use layout auto, plain or drizzle-v1 for a folder without a journal)"
        )
    if chosen is not Layout.DRIZZLE and has_journal:
        raise SourceError(
            f"{where}: layout {chosen.value}, but the folder has drizzle-kit's journal "
            "(meta/_journal.json): drizzle records each migration by the journal's `when`; "
            "use layout drizzle or auto"
        )
    if chosen is Layout.PLAIN and from_v1_folders:
        raise SourceError(
            f"{where}: layout plain, but {shown[from_v1_folders[0]]} is a drizzle-kit 1.0 "
            "migration folder; use layout drizzle-v1 or auto"
        )
    # drizzle-v1 over flat `<YYYYMMDDHHMMSS>_<name>.sql` files is right: that is its ConfigMap
    # encoding, mounted as a folder in the runner's Job; other names fail in _read_numbered.


def detect_layout(files: Mapping[str, str], origin: str = "") -> Layout:
    if JOURNAL_KEY in files:
        return Layout.DRIZZLE
    sql_keys = [k for k in files if k.endswith(".sql")]
    if not sql_keys:
        raise SourceError(
            f"{origin or 'source'}: no migrations found (expected meta/_journal.json, "
            "<timestamp>_<name>/migration.sql folders or NNNN_<name>.sql files)"
        )
    if all(V1_NAME.match(k[:-4]) for k in sql_keys):
        return Layout.DRIZZLE_V1
    return Layout.PLAIN


# --- folders -> the flat encoding -------------------------------------------------------------


def _looks_like_migration(name: str) -> bool:
    return name.lower().endswith(".sql") or name == JOURNAL_KEY or bool(V1_NAME.match(name))


def _flatten_folder(folder: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The folder as `key -> text`, the paths to show, and v1-named folders without a
    `migration.sql` (drizzle skips those). Nothing that looks like a migration is skipped
    silently: a `*.sql` folder, a broken or looping symlink, an unreadable entry or a `.SQL`
    file is an error naming it. Other entries (snapshots, READMEs) are not read, as by drizzle.
    """
    files: dict[str, str] = {}
    shown: dict[str, str] = {}
    skipped: list[str] = []

    def add(key: str, file: Path) -> None:
        files[key] = _read_text(file)
        shown[key] = str(file)

    journal = folder / "meta" / JOURNAL_KEY
    journal_kind = _kind(journal, required=True)
    if journal_kind == "file":
        add(JOURNAL_KEY, journal)
    elif journal_kind != "missing":  # read as plain, drizzle's folder would get other created_at
        raise SourceError(f"{journal}: not a regular file")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):  # names: Path order, 10x faster
        # a mounted ConfigMap also holds `..data` and `..<timestamp>` entries: not keys.
        if entry.name.startswith("."):
            continue
        kind = _kind(entry, required=_looks_like_migration(entry.name))
        if kind == "dir":
            if entry.name.lower().endswith(".sql"):
                raise SourceError(f"{entry}: is a folder, not a migration file")
            sql = entry / "migration.sql"
            if _kind(sql, required=sql.is_symlink()) != "file":
                if V1_NAME.match(entry.name):
                    skipped.append(str(entry))
                continue
            # drizzle-orm 1.0 applies every folder that holds a migration.sql, whatever its name,
            # with `created_at` from the name's first 14 characters: never skip one silently.
            if not V1_NAME.match(entry.name):
                raise SourceError(
                    f"{sql}: the folder name does not start with a YYYYMMDDHHMMSS timestamp "
                    "and `_` (drizzle-kit 1.0 names them <YYYYMMDDHHMMSS>_<name>)"
                )
            add(f"{entry.name}.sql", sql)
            down = entry / V1_DOWN_FILE
            if _kind(down, required=down.is_symlink()) == "file":
                add(f"{entry.name}{DOWN_SUFFIX}", down)
        elif kind == "file" and (entry.suffix == ".sql" or entry.name == JOURNAL_KEY):
            add(entry.name, entry)
        elif kind == "file" and entry.name.lower().endswith(".sql"):
            raise SourceError(
                f"{entry}: migration files end in lower-case `.sql` (drizzle and pgshift read "
                "only those); rename it"
            )
        elif kind == "other" and _looks_like_migration(entry.name):
            raise SourceError(f"{entry}: not a regular file or folder")
    if (folder / "meta" / JOURNAL_KEY).is_file() and any(
        V1_NAME.match(k[:-4]) and shown[k].endswith("migration.sql") for k in files
    ):
        raise SourceError(
            f"{journal}: a folder has both a journal and v1 migration folders; "
            "drizzle-kit 1.0 refuses this too (run `drizzle-kit up` to finish the upgrade)"
        )
    return files, shown, skipped


def _kind(path: Path, *, required: bool) -> str:
    """One of "file", "dir", "other" or "missing", following symlinks. A broken or looping symlink
    (or one that cannot be followed) is an error when `required`, else "missing"."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink() and required:
            raise SourceError(f"{path}: a symlink to nothing ({os.readlink(path)})") from None
        return "missing"
    except OSError as exc:
        if required:
            reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror
            raise SourceError(f"{path}: cannot be read ({reason})") from None
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def _read_text(file: Path) -> str:
    try:
        # bytes decoded whole keep CRLF as written (the hash is over the file's exact text),
        # at a third of a text stream's cost per file (a long history reads thousands).
        with open(file, "rb") as fh:
            return fh.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(f"{file}: cannot read ({exc.strerror})") from None


# --- layouts ----------------------------------------------------------------------------------


def _read_journal(files: Mapping[str, str], where) -> list[Migration]:  # type: ignore[no-untyped-def]
    journal_path = where(JOURNAL_KEY)
    try:
        journal = json.loads(files[JOURNAL_KEY])
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{journal_path}: malformed JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    entries = journal.get("entries") if isinstance(journal, dict) else None
    if not isinstance(entries, list):
        raise SourceError(f"{journal_path}: no \"entries\" list")
    dialect = journal.get("dialect")
    if dialect not in (None, "postgresql", "pg"):
        raise SourceError(f"{journal_path}: dialect is {dialect!r}, pgshift applies postgresql")
    migrations: list[Migration] = []
    position_of: dict[str, int] = {}
    for position, entry in enumerate(entries):
        label = f"{journal_path}: entries[{position}]"
        if not isinstance(entry, dict):
            raise SourceError(f"{label}: not an object")
        tag, when = entry.get("tag"), entry.get("when")
        if not isinstance(tag, str) or not tag:
            raise SourceError(f"{label}: \"tag\" is missing or not a string")
        if not isinstance(when, int) or isinstance(when, bool) or when < 0:
            raise SourceError(f"{label} ({tag}): \"when\" is missing or not a non-negative integer")
        if when > BIGINT_MAX:
            raise SourceError(
                f"{label} ({tag}): \"when\" {when} does not fit the tracking table's bigint "
                "created_at"
            )
        if tag in position_of:
            raise SourceError(
                f"{label}: tag {tag!r} is also entries[{position_of[tag]}]; "
                "drizzle would apply the file twice"
            )
        position_of[tag] = position
        key = f"{tag}.sql"
        if key not in files:
            raise SourceError(f"{label}: file {where(key)} is missing")
        migrations.append(_migration(tag, when, where(key), files[key], Layout.DRIZZLE))
    return migrations


def _read_numbered(files, where, pattern, when_of, layout: Layout) -> list[Migration]:  # type: ignore[no-untyped-def]
    migrations: list[Migration] = []
    for key in files:
        if not key.endswith(".sql"):
            continue
        name = key[:-4]
        match = pattern.match(name)
        if not match:
            raise SourceError(
                f"{where(key)}: name does not match the {layout.value} layout "
                f"({'YYYYMMDDHHMMSS_<name>' if layout is Layout.DRIZZLE_V1 else 'NNNN_<name>.sql'})"
            )
        try:
            when = when_of(match.group(1))
        except ValueError as exc:
            raise SourceError(f"{where(key)}: {exc}") from None
        if when > BIGINT_MAX:
            raise SourceError(
                f"{where(key)}: the number {when} does not fit the tracking table's bigint "
                "created_at"
            )
        migrations.append(_migration(name, when, where(key), files[key], layout))
    # v1: drizzle sorts folder names; plain: by number, then name.
    if layout is Layout.DRIZZLE_V1:
        migrations.sort(key=lambda m: m.name)
    else:
        migrations.sort(key=lambda m: (m.when, m.name))
    return migrations


def _v1_millis(stamp: str) -> int:
    """`20250101120000` (UTC) -> epoch milliseconds, as drizzle-kit 1.0 stores `created_at`."""
    try:
        parsed = time.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"{stamp} is not a valid YYYYMMDDHHMMSS timestamp") from None
    return calendar.timegm(parsed) * 1000


def _migration(name: str, when: int, path: str, sql: str, layout: Layout) -> Migration:
    if "\x00" in sql:
        # libpq sends C strings: the statements after a NUL would never reach the server, and
        # the tracking row would still say the whole file ran.
        line = sql.count("\n", 0, sql.index("\x00")) + 1
        raise SourceError(f"{path}:{line}: a NUL byte in the file; remove it")
    if sql.startswith("\ufeff"):
        raise SourceError(
            f"{path}: starts with a UTF-8 byte-order mark, which drizzle sends to the server "
            "and PostgreSQL refuses; save the file without it"
        )
    return Migration(
        name=name, when=when, path=path, sql=sql, chunks=split_chunks(sql), layout=layout
    )


def _check_unique_when(migrations: list[Migration]) -> None:
    seen: dict[int, Migration] = {}
    for m in migrations:
        if m.layout is Layout.DRIZZLE_V1:
            continue  # v1 identifies migrations by name
        other = seen.get(m.when)
        if other is not None:
            raise SourceError(
                f"{m.path}: has the same `when`/number ({m.when}) as {other.path}; "
                "drizzle could not tell them apart"
            )
        seen[m.when] = m


def configmap_problems(data: Mapping[str, str], limit_bytes: int = 1024 * 1024) -> list[str]:
    """Why this mapping cannot be a ConfigMap: bad keys, or too large (empty when fine)."""
    problems = [
        f"key {k!r} is not a valid ConfigMap key" for k in data if not CONFIGMAP_KEY.match(k)
    ]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    if size > limit_bytes:
        problems.append(f"{size} bytes exceeds the ConfigMap limit of {limit_bytes} bytes")
    return problems
