"""Steps: one file's planned statements cut into runs of one phase and one transaction mode.

A step never spans files; its key is `<hash12>-<index>` (`<hash12>.<6 hex>-<index>` under
settings that change the cut, `plan_version`), and it carries the hash of its text as written
(`step_text_hash`), so --resume-edited can move records of unchanged steps (`resume_renames`).
`as_written_steps` puts a file's as-written form under its stable steps. PURE.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from pgshift.engine.tracking import StepRecord
from pgshift.errors import EditedAppliedStep
from pgshift.migrations.model import Migration
from pgshift.safety.model import Directives, LockClass, Phase, PlannedStatement, TxMode


@dataclass(frozen=True)
class Step:
    """A run of consecutive statements of one file with one phase and one transaction mode."""

    key: str
    migration: Migration
    #: position of the step within its file, from 0.
    index: int
    phase: Phase
    tx: TxMode
    statements: tuple[PlannedStatement, ...]
    #: the last step of its file: writing the tracking row belongs to it.
    last: bool
    #: finished in an earlier run (recorded in pgshift_steps).
    done: bool = False
    #: what the file's steps were cut from (`plan_version`); recorded with the step.
    version: str = ""
    #: a top-level COMMIT in the file came right before this step: it never shares a
    #: transaction with the step before it.
    after_commit: bool = False
    #: sha256 of the step's statement text (`step_text_hash`); recorded with the step, so a
    #: rerun of an edited file can tell whether the applied steps are unchanged.
    text_hash: str = ""

    @property
    def destructive(self) -> bool:
        return any(s.destructive for s in self.statements)

    @property
    def tables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for s in self.statements:
            for t in s.tables:
                seen.setdefault(t, None)
        return tuple(seen)

    @property
    def summary(self) -> str:
        parts = [s.summary for s in self.statements if s.summary]
        text = "; ".join(parts) or (self.statements[0].sql.strip().splitlines() or [""])[0]
        return text[:160]

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "migration": self.migration.name,
            "phase": self.phase.value,
            "tx": self.tx.value,
            "destructive": self.destructive,
            "tables": list(self.tables),
            "summary": self.summary,
        }


def step_key(migration: Migration, index: int, version: str = "") -> str:
    """`<hash12>-<index>`; `<hash12>.<6 hex>-<index>` when settings other than the defaults
    shape the file's steps (see `plan_version`), so records of one cut never pass for another's."""
    if version and version != migration.hash:
        return f"{migration.hash[:12]}.{version[:6]}-{index}"
    return f"{migration.hash[:12]}-{index}"


def plan_version(migration: Migration, override: Directives | None, rewrite: bool) -> str:
    """What a file's steps were cut from: its hash, and the settings that change the cut (its
    override's phase, transaction mode, backfill and rewrite, and `--no-rewrite`; not `allow`,
    which only silences lint). The file's hash itself with the defaults, so records made before
    this existed still match. Stored with each step record: a half-applied file resumed under
    other settings would be cut differently, which is Drift, like an edited file."""
    parts = []
    if not rewrite:
        parts.append("no-rewrite")
    if override is not None:
        parts.append(
            f"phase={override.phase.value if override.phase else ''};"
            f"no-transaction={override.no_transaction};backfill={override.backfill};"
            f"key={override.backfill_key or ''};rewrite={override.rewrite}"
        )
    if not parts or parts == [
        "phase=;no-transaction=False;backfill=False;key=;rewrite=True"
    ]:
        return migration.hash
    text = "\0".join([migration.hash, *parts])
    return hashlib.sha256(text.encode()).hexdigest()


def step_text_hash(phase: Phase, tx: TxMode, statements: tuple[PlannedStatement, ...]) -> str:
    """What a step runs, as the file wrote it: its phase, transaction mode and each statement's
    source text and rewrite (the rendered SQL follows from those, and `render=False` leaves it
    out). Independent of the file's hash, so the steps an edit did not touch keep theirs."""
    # the sha256 of "\0".join(parts), fed part by part: a 50 MB step's text is not joined.
    h = hashlib.sha256(f"{phase.value}\0{tx.value}".encode())
    for st in statements:
        h.update(f"\0{st.source_index}\0{st.rewrite}\0".encode())
        h.update(st.original_sql.encode())
    return h.hexdigest()


def cut_steps(
    migration: Migration,
    statements: tuple[PlannedStatement, ...],
    done: Collection[str] = (),
    version: str = "",
) -> tuple[Step, ...]:
    """Cut one file's statements into steps. Autocommit and batched statements are alone; a
    top-level COMMIT in the file (`after_commit`) ends a step."""
    groups: list[list[PlannedStatement]] = []
    for st in statements:
        joinable = (
            groups
            and not st.after_commit
            and st.tx is TxMode.TRANSACTION
            and groups[-1][-1].tx is TxMode.TRANSACTION
            and groups[-1][-1].phase is st.phase
        )
        if joinable:
            groups[-1].append(st)
        else:
            groups.append([st])
    if not groups:
        # an empty file still gets a step: its tracking row must be written.
        empty = PlannedStatement(
            sql="",
            phase=Phase.EXPAND,
            tx=TxMode.TRANSACTION,
            lock=LockClass.WEAK,
            destructive=False,
            source_index=0,
            line=1,
            original_sql="",
        )
        groups.append([empty])
    steps = []
    for i, g in enumerate(groups):
        key = step_key(migration, i, version)
        steps.append(
            Step(
                key=key,
                migration=migration,
                index=i,
                phase=g[0].phase,
                tx=g[0].tx,
                statements=tuple(g),
                last=i == len(groups) - 1,
                done=key in done,
                version=version or migration.hash,
                after_commit=i > 0 and g[0].after_commit,
                text_hash=step_text_hash(g[0].phase, g[0].tx, tuple(g)),
            )
        )
    return tuple(steps)


def step_index(key: str) -> int:
    """The index in a step key `<hash12>[.<6 hex>]-<index>`."""
    return int(key.rsplit("-", 1)[1])


def resume_renames(
    migration: Migration,
    steps: tuple[Step, ...],
    records: list[StepRecord],
    checkpoints: Mapping[str, tuple[str | None, int]],
) -> list[tuple[str, str]]:
    """--resume-edited: the step records (and backfill checkpoints: key -> (text hash, rows))
    that an earlier version of this file (or of its plan) left, moved to the keys of `steps`,
    the file's plan now. Each record's step must exist now with the same statement text
    (`text_hash`), else EditedAppliedStep lists every step that differs: resuming would skip
    text that never ran, or run a step's statements twice. A checkpoint without progress
    (only tagged) that no longer matches is dropped instead."""
    by_index = {s.index: s for s in steps}
    renames: list[tuple[str, str]] = []
    changed: list[str] = []

    def match(key: str, text_hash: str | None, what: str) -> str | None:
        index = step_index(key)
        now = by_index.get(index)
        if text_hash is None:
            changed.append(f"{key} ({what}; recorded before pgshift kept step text hashes)")
        elif now is None:
            changed.append(f"{key} ({what}; the file has no step {index} now)")
        elif now.text_hash != text_hash:
            changed.append(f"{key} ({what}; now step {now.key} at line {now.statements[0].line})")
        else:
            return now.key
        return None

    recorded = {r.step for r in records}
    for r in sorted(records, key=lambda r: step_index(r.step)):
        new = match(r.step, r.text_hash, "applied")
        if new is not None:
            renames.append((r.step, new))
    for key, (text_hash, rows) in sorted(checkpoints.items()):
        if key in recorded:
            continue  # the step's record decides; its checkpoint follows it
        now = by_index.get(step_index(key))
        if rows == 0 and (now is None or now.text_hash != text_hash):
            renames.append((key, ""))  # no progress: nothing to keep
            continue
        new = match(key, text_hash, f"backfill, {rows} rows done")
        if new is not None:
            renames.append((key, new))
    if changed:
        raise EditedAppliedStep(
            f"{migration.path}: --resume-edited: migration {migration.name} was edited in "
            f"steps an earlier run applied: {'; '.join(changed)}",
            migration=migration.name,
        )
    return [(old, new) for old, new in renames if old != new]


def holds_lock_past_new_tables(statements: tuple[PlannedStatement, ...]) -> bool:
    """In one transaction, would a strong lock on an existing table (`LockClass.STRONG`: a
    foreign key referencing an existing `users` takes SHARE ROW EXCLUSIVE on it) be held while
    a statement runs that is not on tables created in that same transaction (`on_new_only`)?
    Such a statement may wait for its own locks, or scan rows, with the first lock held: the
    stable steps commit in between, so that would hold the lock longer than they do."""
    locked = False
    for st in statements:
        if locked and not st.on_new_only:
            return True
        locked = locked or st.lock is LockClass.STRONG
    return False


def as_written_steps(
    steps: tuple[Step, ...], statements: tuple[PlannedStatement, ...]
) -> tuple[Step, ...] | None:
    """A file's steps (its stable cut, keys and phases) carrying another form of the same file
    (`statements`: safety's analysis with the run's new tables, statements run as written), all
    in one transaction; None when that form cannot be run so.

    Refused too when, after a statement that takes a strong lock on an existing table, one
    follows that is not on tables this file's transaction created (`holds_lock_past_new_tables`).

    Each statement goes into the step that held the first statement made from the same source
    statement (a rewrite's statements take the original's place, so order is kept); a step left
    without statements runs nothing. Refused when a statement needs its own transaction, or would
    belong to a later phase than its step (stops are decided on the stable steps).
    """
    if not steps or any(st.tx is not TxMode.TRANSACTION for st in statements):
        return None
    if holds_lock_past_new_tables(statements):
        return None
    if any(step.after_commit for step in steps):  # the file asked for a commit in between
        return None
    home: dict[int, int] = {}
    for i, step in enumerate(steps):
        for st in step.statements:
            home.setdefault(st.source_index, i)
    groups: list[list[PlannedStatement]] = [[] for _ in steps]
    last = 0
    for st in statements:
        at = home.get(st.source_index)
        if at is None or at < last or st.phase.rank > steps[at].phase.rank:
            return None
        groups[at].append(st)
        last = at
    out = []
    for step, group in zip(steps, groups, strict=True):
        if not group:
            group = [
                PlannedStatement(
                    sql="",
                    phase=step.phase,
                    tx=TxMode.TRANSACTION,
                    lock=LockClass.WEAK,
                    destructive=False,
                    source_index=step.statements[0].source_index,
                    line=step.statements[0].line,
                    original_sql="",
                )
            ]
        out.append(replace(step, tx=TxMode.TRANSACTION, statements=tuple(group)))
    return tuple(out)
