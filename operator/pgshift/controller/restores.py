"""The restore action and phase Restored. PURE.

`pgshift.dev/restore=<metadata.uid>/<backup sha256>` restores one backup of this Migration:
refused for good (a Warning Event, phase RestoreRefused while the value stays) when the uid is
not this object's or no backup of it has that sha256; refused until it holds (the same) while
`spec.suspend` is not true, so nothing re-applies behind the restore. The restore Job is the
one Job that starts while the Migration is suspended. Once it finished, the Migration stays in
phase Restored, whatever `spec.suspend` says, until `pgshift.dev/resume` gets a new value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pgshift.contract.reasons import Reason, failure_reason
from pgshift.controller.api import ANNOTATION_RESTORE, ANNOTATION_RESUME, MigrationSpec
from pgshift.controller.fold import describe
from pgshift.controller.intent import Action, Decision, Event, RestoreTarget, RunJob
from pgshift.controller.memory import Memory
from pgshift.controller.observe import Observed, parse_iso

#: the short name `jobs.job_name` gives restore Jobs (a failure names its Job).
RESTORE_JOB_SUFFIX = "-restore"


def age(since: str, now: dt.datetime) -> str:
    """`3h12m` from an ISO time to now ("?" when unreadable)."""
    then = parse_iso(since)
    if then is None:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{rest % 60}s" if minutes else f"{rest}s"


def known_backups(memory: Memory) -> list[Mapping[str, Any]]:
    """The backups status knows of (still on the claim), newest last."""
    out = list(memory.backups_kept)
    if memory.last_backup and not any(
        b.get("sha256") == memory.last_backup.get("sha256") for b in out
    ):
        out.append(memory.last_backup)
    return out


def _lost(backup: Mapping[str, Any], now: dt.datetime) -> str:
    when = str(backup.get("time") or "?")
    path = backup.get("path")
    return f"backup {path} of {when} ({age(when, now)} old): writes since {when} are lost"


def _resume_hint(name: str) -> str:
    return (
        f"kubectl annotate migration/{name} {ANNOTATION_RESUME}=$(date +%s) --overwrite "
        "(then spec.suspend: false)"
    )


def restore_step(
    obs: Observed, spec: MigrationSpec, memory: Memory, events: list[Event]
) -> tuple[Memory, Decision | None]:
    """What the restore action and phase Restored decide; None: they do not hold this one."""
    name = obs.ref.name
    resume = obs.annotations.get(ANNOTATION_RESUME, "").strip()
    if resume and resume != memory.resume_seen:
        memory = memory.with_(resume_seen=resume)
        if memory.restored:
            events.append(
                Event("Normal", "Resumed", f"{ANNOTATION_RESUME}={resume}: planning again")
            )
            memory = memory.with_(restored=None, plan=None)
    f = memory.failure
    if f and f.job.endswith(RESTORE_JOB_SUFFIX):
        # a failed restore stalls even while suspended; a retry runs the same value again.
        memory = memory.with_(restore_seen="")
        return memory, Decision(
            memory,
            failure_reason(f.code),
            f"the restore failed: {describe(f)}"
            + (f" | hint: {f.hint}" if f.hint else "")
            + f" | then: kubectl annotate migration/{name} pgshift.dev/retry=$(date +%s) "
            "--overwrite",
        )
    value = obs.annotations.get(ANNOTATION_RESTORE, "").strip()
    if not value:
        memory = memory.with_(restore_refused="") if memory.restore_refused else memory
    elif value != memory.restore_seen:
        return _request(obs, spec, memory, events, value)
    elif memory.restore_refused:
        return memory, Decision(memory, Reason.RESTORE_REFUSED, memory.restore_refused)
    if memory.restored:
        r = memory.restored
        when = str(r.get("backupTime") or "?")
        pending = ", ".join(r.get("pendingAgain") or ()) or "none"
        return memory, Decision(
            memory,
            Reason.RESTORED,
            f"restored {r.get('path')} (taken {when}, {age(when, obs.now)} before now): writes "
            f"since {when} are lost; pending again: {pending}. Next: edit or remove those "
            "migrations in the source if they must not re-apply, then " + _resume_hint(name),
        )
    return memory, None


def _request(
    obs: Observed, spec: MigrationSpec, memory: Memory, events: list[Event], value: str
) -> tuple[Memory, Decision | None]:
    uid, _, sha = value.partition("/")
    head = f"{ANNOTATION_RESTORE}={value} refused: "
    backups = known_backups(memory)
    backup = next((b for b in backups if sha and b.get("sha256") == sha), None)
    permanent = ""
    if not sha:
        permanent = "the value must be <metadata.uid>/<backup sha256>"
    elif uid != obs.ref.uid:
        permanent = (
            f"it names object {uid}, this Migration is {obs.ref.uid} (an annotation copied from "
            "another or an earlier object never restores)"
        )
    elif backup is None:
        shown = ", ".join(f"{b.get('sha256')} ({b.get('time')})" for b in backups[-5:])
        permanent = f"no backup of this Migration has sha256 {sha}; known: {shown or 'none'}"
    if permanent:
        message = head + permanent + " (kubectl pgshift backups lists them)"
        events.append(Event("Warning", "RestoreRefused", message))
        memory = memory.with_(restore_seen=value, restore_refused=message)
        return memory, Decision(memory, Reason.RESTORE_REFUSED, message)
    assert backup is not None
    lost = _lost(backup, obs.now)
    if not spec.suspend:
        message = (
            head + f"set spec.suspend: true first, so nothing re-applies behind the restore; {lost}"
        )
        if message != memory.restore_refused:
            events.append(Event("Warning", "RestoreRefused", message))
        memory = memory.with_(restore_refused=message)
        return memory, Decision(memory, Reason.RESTORE_REFUSED, message)
    memory = memory.with_(
        restore_seen=value,
        restore_refused="",
        restored=None,
        failure=None,
        attempts=0,
        not_before="",
        job_action=Action.RESTORE.value,
    )
    path = str(backup.get("path") or "")
    run = RunJob(
        Action.RESTORE,
        restore=RestoreTarget(path=path, sha256=sha, restore_id=value),
        notes={
            "generation": str(obs.ref.generation),
            "path": path,
            "sha256": sha,
            "backupTime": str(backup.get("time") or ""),
            "restoreId": value,
        },
    )
    events.append(Event("Normal", "Restoring", f"restoring {lost}"))
    return memory, Decision(memory, Reason.RESTORING, f"restoring {lost}", run=run)
