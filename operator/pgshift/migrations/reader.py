"""Read a folder or ConfigMap data into a `Source`, exactly as drizzle's migrator reads it.

Every layout is first reduced to a flat mapping `key -> text` (the ConfigMap encoding), so a
folder, a mounted ConfigMap and an image's folder take one path through the same code:

- drizzle (stable): `_journal.json` beside `<tag>.sql` (a folder has `meta/_journal.json`);
- drizzle-v1: `<YYYYMMDDHHMMSS>_<name>.sql` (a folder has `<folder>/migration.sql`);
- plain: `NNNN_<name>.sql`.
Snapshots are never read: the migrator does not read them either.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

from pgshift.errors import SourceError
from pgshift.migrations.model import Layout, Migration, Source, split_chunks

JOURNAL_KEY = "_journal.json"
#: Kubernetes' rule for ConfigMap keys.
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
V1_NAME = re.compile(r"^(\d{14})_[^/]*$")
PLAIN_NAME = re.compile(r"^(\d+)_[^/]*$")


def read_source(path: str | Path, layout: Layout | str = Layout.AUTO) -> Source:
    """Read a migrations folder in any layout (including a mounted ConfigMap)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder (--dir)")
    files, shown = _flatten_folder(folder)
    return read_mapping(files, layout, origin=str(folder), shown=shown)


def read_mapping(
    files: Mapping[str, str],
    layout: Layout | str = Layout.AUTO,
    *,
    origin: str = "",
    shown: Mapping[str, str] | None = None,
) -> Source:
    """Read the flat `key -> text` encoding (a ConfigMap's `data`).

    `shown` maps keys to the paths printed in messages (the folder form, when read from disk).
    """
    shown = shown or {}
    chosen = Layout(layout) if isinstance(layout, str) else layout
    if chosen is Layout.AUTO:
        chosen = detect_layout(files, origin)

    def where(key: str) -> str:
        return shown.get(key) or (f"{origin}/{key}" if origin else key)

    if chosen is Layout.DRIZZLE:
        migrations = _read_journal(files, where)
    elif chosen is Layout.DRIZZLE_V1:
        migrations = _read_numbered(files, where, V1_NAME, _v1_millis, chosen)
    else:
        migrations = _read_numbered(files, where, PLAIN_NAME, int, chosen)
    _check_unique_when(migrations)
    return Source(layout=chosen, migrations=tuple(migrations), origin=origin)


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


def _flatten_folder(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    shown: dict[str, str] = {}

    def add(key: str, file: Path) -> None:
        files[key] = _read_text(file)
        shown[key] = str(file)

    journal = folder / "meta" / JOURNAL_KEY
    if journal.is_file():
        add(JOURNAL_KEY, journal)
    for entry in sorted(folder.iterdir()):
        # a mounted ConfigMap also holds `..data` and `..<timestamp>` entries: not keys.
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            sql = entry / "migration.sql"
            if not sql.is_file():
                continue
            # drizzle-orm 1.0 applies every folder that holds a migration.sql, whatever its name,
            # with `created_at` from the name's first 14 characters: never skip one silently.
            if not V1_NAME.match(entry.name):
                raise SourceError(
                    f"{sql}: the folder name does not start with a YYYYMMDDHHMMSS timestamp "
                    "and `_` (drizzle-kit 1.0 names them <YYYYMMDDHHMMSS>_<name>)"
                )
            add(f"{entry.name}.sql", sql)
        elif entry.is_file() and (entry.suffix == ".sql" or entry.name == JOURNAL_KEY):
            add(entry.name, entry)
    if (folder / "meta" / JOURNAL_KEY).is_file() and any(
        V1_NAME.match(k[:-4]) and shown[k].endswith("migration.sql") for k in files
    ):
        raise SourceError(
            f"{journal}: a folder has both a journal and v1 migration folders; "
            "drizzle-kit 1.0 refuses this too (run `drizzle-kit up` to finish the upgrade)"
        )
    return files, shown


def _read_text(file: Path) -> str:
    try:
        # newline="" keeps CRLF as written: the hash is over the file's exact text.
        with file.open(encoding="utf-8", newline="") as fh:
            return fh.read()
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
    for position, entry in enumerate(entries):
        label = f"{journal_path}: entries[{position}]"
        if not isinstance(entry, dict):
            raise SourceError(f"{label}: not an object")
        tag, when = entry.get("tag"), entry.get("when")
        if not isinstance(tag, str) or not tag:
            raise SourceError(f"{label}: \"tag\" is missing or not a string")
        if not isinstance(when, int) or isinstance(when, bool) or when < 0:
            raise SourceError(f"{label} ({tag}): \"when\" is missing or not a non-negative integer")
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
