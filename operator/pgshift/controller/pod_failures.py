"""What the kubelet reports about a Job's Pod, and what the operator makes of it. PURE.

One table (``TABLE``) says, for each way a Pod fails to run the runner, which name the
Migration's status gives it and whether pgshift waits, resumes or stalls:

- waiting ErrImageNeverPull / InvalidImageName -> ImageUnavailable: Stalled now;
- waiting ImagePullBackOff / ErrImagePull -> ImageUnavailable: Reconciling for a grace period
  after the Pod was created (Settings.image_pull_grace), then Stalled;
- an init container terminated with exit code != 0 -> SourceUnreadable: Stalled, with its log
  tail (the init container's FallbackToLogsOnError termination message);
- the Job's DeadlineExceeded -> DeadlineExceeded: resumes (another Job); Stalled after
  DEADLINE_LIMIT deadlines in a row at the same step (no step progress);
- the runner terminated OOMKilled -> OutOfMemory: resumes once, then Stalled (hint:
  spec.job.resources);
- waiting CreateContainerConfigError for a missing Secret or key -> SecretNotFound:
  Reconciling (the Pod starts by itself once the Secret exists);
- waiting CreateContainerConfigError for anything else -> ContainerConfigError: Stalled.

``classify`` reads Pods (the API's JSON) into a ``PodVerdict``; ``escalate`` turns a
resumable failure into a stalling one when it repeats. The reconciler and the state machine
call these two and nothing else here.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Outcome(enum.StrEnum):
    STALL = "Stall"  # a human must act; the Pod will not get further by itself
    WAIT_THEN_STALL = "WaitThenStall"  # Reconciling for a grace period, then Stall
    WAIT = "Wait"  # Reconciling: it resolves by itself (a Secret created late)
    RESUME = "Resume"  # another Job resumes; Stall after DEADLINE_LIMIT without progress
    RESUME_ONCE = "ResumeOnce"  # another Job once; Stall when it happens again


@dataclass(frozen=True)
class Row:
    #: the kubelet's (or the Job controller's) reasons this row matches.
    kubelet: tuple[str, ...]
    #: waiting | terminated (runner) | init (an init container that ended badly) | job
    where: str
    code: str
    outcome: Outcome
    hint: str


PULL_GRACE_SECONDS = 120.0
DEADLINE_LIMIT = 3
OOM_LIMIT = 2
LOG_TAIL = 800

IMAGE_NEVER_PULL = Row(
    ("ErrImageNeverPull", "InvalidImageName"),
    "waiting",
    "ImageUnavailable",
    Outcome.STALL,
    "the image is not on the node and may not be pulled: fix spec.job.image or "
    "spec.source.image, or make the image available, then retry",
)
IMAGE_PULL_BACKOFF = Row(
    ("ImagePullBackOff", "ErrImagePull"),
    "waiting",
    "ImageUnavailable",
    Outcome.WAIT_THEN_STALL,
    "the image cannot be pulled: check its name and the registry's credentials "
    "(imagePullSecrets of the ServiceAccount), then retry",
)
INIT_FAILED = Row(
    ("*",),
    "init",
    "SourceUnreadable",
    Outcome.STALL,
    "the init container could not copy the migrations out of spec.source.image: check "
    "spec.source.image.path and that the image has `cp`, then retry",
)
DEADLINE = Row(
    ("DeadlineExceeded",),
    "job",
    "DeadlineExceeded",
    Outcome.RESUME,
    "raise spec.job.activeDeadlineSeconds, or make the step faster (spec.backfill)",
)
OOM = Row(
    ("OOMKilled",),
    "terminated",
    "OutOfMemory",
    Outcome.RESUME_ONCE,
    "the runner ran out of memory: raise spec.job.resources.limits.memory",
)
SECRET_MISSING = Row(
    ("CreateContainerConfigError",),
    "waiting",
    "CreateContainerConfigError",  # decide.py names it SecretNotFound (Reconciling)
    Outcome.WAIT,
    "create the Secret (or its key) named in spec.database.urlSecretRef",
)
CONFIG_ERROR = Row(
    ("CreateContainerConfigError",),
    "waiting",
    "ContainerConfigError",
    Outcome.STALL,
    "the kubelet refused the container's configuration: see the message, fix the "
    "namespace's policies or spec.job, then retry",
)

#: every row, in the order they are tried.
TABLE: tuple[Row, ...] = (
    IMAGE_NEVER_PULL,
    IMAGE_PULL_BACKOFF,
    INIT_FAILED,
    DEADLINE,
    OOM,
    SECRET_MISSING,
    CONFIG_ERROR,
)

#: failure codes a Job can end with that come from this table (for status.py's reasons).
STALL_CODES = ("ImageUnavailable", "SourceUnreadable", "OutOfMemory", "ContainerConfigError")


@dataclass(frozen=True)
class PodVerdict:
    row: Row
    #: ``JobState.reason``: the row's code.
    reason: str
    message: str
    #: the Pod will not get further by itself: fold its Job as failed now, even if the Job
    #: controller still counts it active (a waiting Pod stays until activeDeadlineSeconds).
    terminal: bool
    #: for WAIT_THEN_STALL: seconds left before it stalls.
    wake_after: float | None = None


def _secret_missing(message: str) -> bool:
    text = message.lower()
    return "secret" in text and ("not found" in text or "couldn't find key" in text)


def _age(pod: Mapping[str, Any], now: dt.datetime) -> float:
    created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
    try:
        # the API's "...Z", or "+00:00" when the client's models were serialized back.
        born = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if born.tzinfo is None:
        born = born.replace(tzinfo=dt.UTC)
    return max(0.0, (now - born).total_seconds())


def _verdict(row: Row, container: str, detail: str, *, terminal: bool) -> PodVerdict:
    text = f"container {container}" + (f": {detail.strip()}" if detail.strip() else "")
    return PodVerdict(row, row.code, f"{text} | {row.hint}", terminal)


def classify(
    pods: Iterable[Mapping[str, Any]],
    now: dt.datetime,
    *,
    log_tail: str = "",
    pull_grace: float = PULL_GRACE_SECONDS,
) -> PodVerdict | None:
    """The first row of ``TABLE`` a Job's Pods match, or None (running, or nothing known).

    ``log_tail``: the failed init container's log, when its termination message is empty.
    """
    for pod in pods:
        status = pod.get("status") or {}
        for cs in status.get("initContainerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term and int(term.get("exitCode") or 0) != 0:
                tail = (term.get("message") or log_tail or "").strip()[-LOG_TAIL:]
                detail = f"exit code {term.get('exitCode')} ({term.get('reason') or 'Error'})"
                return _verdict(INIT_FAILED, str(cs.get("name")), f"{detail}: {tail}",
                                terminal=True)  # fmt: skip
        statuses = [*(status.get("initContainerStatuses") or []),
                    *(status.get("containerStatuses") or [])]  # fmt: skip
        for cs in statuses:
            state = cs.get("state") or {}
            name = str(cs.get("name"))
            waiting = state.get("waiting")
            if waiting:
                reason = str(waiting.get("reason") or "")
                message = str(waiting.get("message") or "")
                if reason in IMAGE_NEVER_PULL.kubelet:
                    return _verdict(IMAGE_NEVER_PULL, name, message, terminal=True)
                if reason in IMAGE_PULL_BACKOFF.kubelet:
                    left = pull_grace - _age(pod, now)
                    verdict = _verdict(IMAGE_PULL_BACKOFF, name, message, terminal=left <= 0)
                    if left > 0:
                        return PodVerdict(
                            verdict.row,
                            reason,
                            f"{verdict.message} (waiting {left:.0f} s more before giving up)",
                            terminal=False,
                            wake_after=left,
                        )
                    return verdict
                if reason in SECRET_MISSING.kubelet:
                    if _secret_missing(message):
                        return PodVerdict(SECRET_MISSING, SECRET_MISSING.code, message, False)
                    return _verdict(CONFIG_ERROR, name, message, terminal=True)
            term = state.get("terminated")
            if term and term.get("reason") in OOM.kubelet:
                return _verdict(OOM, name, f"OOMKilled (exit code {term.get('exitCode')})",
                                terminal=True)  # fmt: skip
    return None


def escalate(
    code: str, previous_code: str, attempts: int, step: str = "", previous_step: str = ""
) -> tuple[bool, int]:
    """(retryable, attempts) for a failure of ``code``, the ``attempts``-th retryable one in a
    row, given the previous failure's code and step.

    A deadline resumes while steps progress: attempts restart at 1 when the step moved on, and
    it stalls after DEADLINE_LIMIT deadlines at the same step. Out of memory resumes once.
    Codes outside the table keep their retryable flag (True here) and count.
    """
    if code == DEADLINE.code:
        if previous_code != DEADLINE.code or step != previous_step:
            attempts = 1
        return attempts < DEADLINE_LIMIT, attempts
    if code == OOM.code:
        if previous_code != OOM.code:
            attempts = 1
        return attempts < OOM_LIMIT, attempts
    return True, attempts


def hint_for(code: str) -> str:
    return next((row.hint for row in TABLE if row.code == code), "")
