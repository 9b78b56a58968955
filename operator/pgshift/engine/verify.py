"""`pgshift verify`: production's schema against the schema its applied migrations build.

1. Before anything connects, statements whose effects reach past a database are refused
   (`safety.external`) unless allowed: the replay would run them on the scratch server.
2. Production's tracking table says how far it is; the expected schema is built by applying
   the source up to production's last applied migration (all of it when none is recorded) to
   a new scratch database, with the engine (its safe rewrites apply, as in production).
3. Both catalogs are read over the schemas the source creates or uses (`catalog.used_schemas`
   on the scratch side) and compared (`schemadiff.compare`); production's under the migration
   lock, so no run is half-way. With a baseline, only the objects the migrations after `upTo`
   made or changed are compared (`schemadiff.changed_keys`).
4. The scratch database is dropped, whatever happened (`engine.scratch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pgshift.engine import catalog
from pgshift.engine.connect import parse_url
from pgshift.engine.scratch import ScratchServer, identity, new_run_id
from pgshift.engine.session import EngineSession, connected, migration_lock, quiet
from pgshift.errors import ExternalEffects, SourceError, UnknownMigration, VerifyReplayFailed
from pgshift.migrations.model import Layout, Source
from pgshift.safety.external import external_effects
from pgshift.safety.model import Directives
from pgshift.schemadiff import IgnoreList, Snapshot, changed_keys, compare
from pgshift.schemadiff.compare import Comparison, Drift
from pgshift.schemadiff.drizzle import compare_to_snapshot
from pgshift.settings import Allow, DestructivePolicy, RunSettings, Selection

Emit = Callable[..., None]


@dataclass(frozen=True)
class VerifyOptions:
    scratch_url: str | None
    ignore: IgnoreList = field(default_factory=IgnoreList)
    #: compare only objects of the migrations after this one (a database adopted by baseline).
    baseline_up_to: str | None = None
    #: run statements that reach past the database on the scratch server anyway.
    allow_external: bool = False


@dataclass(frozen=True)
class Verified:
    comparison: Comparison
    schemas: tuple[str, ...]
    expected_up_to: str | None
    pending: int
    cleaned: tuple[str, ...]
    #: drizzle-kit's snapshot of the last applied migration, when the source ships it.
    snapshot_file: str | None = None
    #: drift from that snapshot the catalog comparison did not already report.
    snapshot_drift: tuple[Drift, ...] = ()


def check_external(source: Source) -> None:
    found = external_effects(source.migrations)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ExternalEffects(
            f"{found[0].describe()} reaches past the database{more}: the verification replays "
            "every migration on the scratch server",
            effects=[f.describe() for f in found],
        )


def verify(
    source: Source,
    overrides: Mapping[str, Directives],
    settings: RunSettings,
    url: str | None,
    options: VerifyOptions,
    emit: Emit = quiet,
) -> Verified:
    if not options.allow_external:
        check_external(source)
    if options.baseline_up_to is not None and source.get(options.baseline_up_to) is None:
        raise UnknownMigration(
            f"verify --baseline {options.baseline_up_to}: no migration of that name in "
            f"{source.origin}"
        )
    with EngineSession(source, overrides, settings, url, emit) as production:
        state = production.read_state()
        prod_identity = identity(production.conn, parse_url(url))
        last = state.last_applied or (source.migrations[-1].name if source.migrations else None)
        pending = len(state.pending) if state.last_applied else 0
        with ScratchServer(
            options.scratch_url,
            prod_identity,
            application_name=settings.application_name,
            emit=emit,
        ) as server:
            cleaned = server.clean_leftovers()
            scratch = server.create(new_run_id())
            try:
                server.check_created(scratch)
                before: Snapshot | None = None
                if options.baseline_up_to is not None:
                    _replay(source, overrides, settings, scratch.url, options.baseline_up_to)
                    before = _snapshot(scratch.url, settings)[0]
                if last is not None:
                    _replay(source, overrides, settings, scratch.url, last)
                expected, schemas = _snapshot(scratch.url, settings)
            finally:
                server.drop(scratch)
        with migration_lock(production.conn, settings, emit):
            actual = catalog.read_snapshot(production.conn, schemas, settings.tracking)
    scope = changed_keys(before, expected) if before is not None else None
    comparison = compare(actual, expected, ignore=options.ignore, scope=scope)
    snapshot_file: str | None = None
    snapshot_drift: tuple[Drift, ...] = ()
    found = drizzle_snapshot(source, last) if options.baseline_up_to is None else None
    if found is not None:
        snapshot_file, data = found
        reported = frozenset((d.name, d.attribute) for d in comparison.drift)
        snapshot_drift = tuple(
            compare_to_snapshot(
                data, actual, snapshot_file, ignore=options.ignore, already=reported
            )
        )
    emit("verify.compared", compared=comparison.compared, drift=len(comparison.drift),
         snapshotDrift=len(snapshot_drift))
    return Verified(
        comparison, tuple(schemas), last, pending, tuple(cleaned), snapshot_file, snapshot_drift
    )


def drizzle_snapshot(source: Source, name: str | None) -> tuple[str, Mapping[str, Any]] | None:
    """drizzle-kit's `meta/NNNN_snapshot.json` of migration `name`, when the source ships it
    (the stable layout from a folder; a ConfigMap source leaves snapshots out): its name as
    shown (`meta/0004_snapshot.json`) and its content. A snapshot that is not JSON is bad input."""
    migration = source.get(name) if name else None
    if migration is None or source.layout is not Layout.DRIZZLE:
        return None
    shown = f"meta/{migration.name.split('_', 1)[0]}_snapshot.json"
    path = Path(migration.path).parent / shown
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise SourceError(f"{path}: not a drizzle-kit snapshot (a JSON object)")
    return shown, data


def _replay(
    source: Source,
    overrides: Mapping[str, Directives],
    settings: RunSettings,
    scratch_url: str,
    target: str,
) -> None:
    """Apply the source up to `target` on the scratch database, every step, no gate."""
    replay = replace(
        settings,
        allow=Allow(),
        selection=Selection(
            target=target, destructive=DestructivePolicy.ALLOW, rewrite=settings.selection.rewrite
        ),
    )
    with EngineSession(source, overrides, replay, scratch_url) as scratch:
        applied = scratch.apply()
    failure = applied.outcome.failure
    if failure is not None:
        where = " ".join(p for p in (failure.migration, f"line {failure.line}"
                                     if failure.line else "") if p)
        state = f" [{failure.sqlstate}]" if failure.sqlstate else ""
        raise VerifyReplayFailed(
            f"the migrations do not build on an empty database: {where}: "
            f"{failure.message}{state}"
        )


def _snapshot(scratch_url: str, settings: RunSettings) -> tuple[Snapshot, list[str]]:
    with connected(scratch_url, settings) as conn:
        schemas = catalog.used_schemas(conn, settings.tracking)
        return catalog.read_snapshot(conn, schemas, settings.tracking), schemas


