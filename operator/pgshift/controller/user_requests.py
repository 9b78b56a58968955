"""The user's requests, given as annotations (approve, retry, resume-edited, mark-applied):
each recorded into memory once, and the names among them that name nothing reported. PURE."""

from __future__ import annotations

import re

from pgshift.controller.api import (
    ANNOTATION_ALLOW_DRIFT,
    ANNOTATION_APPROVE,
    ANNOTATION_MARK_APPLIED,
    ANNOTATION_REPLAN,
    ANNOTATION_RESUME_EDITED,
    ANNOTATION_RETRY,
    MigrationSpec,
)
from pgshift.controller.gates import wildcard
from pgshift.controller.intent import Event
from pgshift.controller.memory import Memory, Plan, Problem
from pgshift.controller.names import approval_problems, mark_applied_problem, target_problem
from pgshift.controller.observe import Observed


def values(text: str) -> tuple[str, ...]:
    """An annotation's values: comma- or space-separated."""
    return tuple(v for v in re.split(r"[,\s]+", text or "") if v)


def approve_values(obs: Observed) -> tuple[str, ...]:
    return values(obs.annotations.get(ANNOTATION_APPROVE, ""))


def allow_drift_values(obs: Observed) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values(obs.annotations.get(ANNOTATION_ALLOW_DRIFT, ""))))


def take_requests(obs: Observed, memory: Memory, events: list[Event]) -> Memory:
    """Record new approvals, a retry and a resume-edited request (each value acts once)."""
    # "*" approves what the generation it was first seen at holds, never what a later spec
    # brings (the annotation outlives the spec change): it is kept as "*@<generation>", and a
    # later generation needs a new approval (a name, a key or "*@<generation>").
    # Step keys and migration names name exactly what they approve.
    seen_wildcard = any(v.startswith("*@") for v in memory.approved)
    given = [
        wildcard(obs) if v == "*" else v
        for v in approve_values(obs)
        if not (v == "*" and seen_wildcard)
    ]
    new = [v for v in dict.fromkeys(given) if v not in memory.approved]
    if new:
        memory = memory.with_(approved=(*memory.approved, *new))
        events.append(Event("Normal", "Approved", f"approved: {', '.join(new)}"))
    retry = obs.annotations.get(ANNOTATION_RETRY, "")
    if retry and retry != memory.retry_seen:
        memory = memory.with_(retry_seen=retry, failure=None, attempts=0, not_before="", plan=None)
        events.append(Event("Normal", "RetryRequested", f"retry {retry!r}: planning again"))
    replan = obs.annotations.get(ANNOTATION_REPLAN, "")
    if replan and replan != memory.replan_seen:
        # what the database holds is read again; a failure or a gate is judged on that plan.
        memory = memory.with_(replan_seen=replan, plan=None)
        events.append(Event("Normal", "ReplanRequested", f"replan {replan!r}: planning again"))
    resume = obs.annotations.get(ANNOTATION_RESUME_EDITED, "").strip()
    if resume and resume != memory.resume_edited:
        # like a retry, and the plan and apply Jobs get --resume-edited while `resume` is pending
        memory = memory.with_(
            resume_edited=resume, failure=None, attempts=0, not_before="", plan=None
        )
        events.append(
            Event(
                "Normal",
                "ResumeEditedRequested",
                f"resume-edited {resume!r}: planning again; its applied steps must be unchanged",
            )
        )
    allow = allow_drift_values(obs)
    if allow != memory.allow_drift:
        # what is accepted changed: plan again (a stall on the drift it accepts clears).
        memory = memory.with_(allow_drift=allow, failure=None, attempts=0, not_before="", plan=None)
        if allow:
            events.append(
                Event(
                    "Normal",
                    "AllowDriftRequested",
                    f"allow-drift {', '.join(allow)}: planning again; the edited file is "
                    "accepted as it is now",
                )
            )
    return memory


def problems(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory) -> list[Problem]:
    """The approvals, the mark-applied and spec.target that name nothing in the plan."""
    found = approval_problems(plan, approve_values(obs), memory.matched)
    mark = mark_applied_problem(plan, obs.annotations.get(ANNOTATION_MARK_APPLIED, ""))
    target = target_problem(plan, spec.target)
    return [*found, *(p for p in (mark, target) if p is not None)]


def with_problems(memory: Memory, found: list[Problem], events: list[Event]) -> Memory:
    """Record the names that name nothing; a Warning Event for each one not reported yet."""
    before = {(p.code, p.name) for p in memory.problems}
    for p in found:
        if (p.code, p.name) not in before:
            events.append(Event("Warning", p.code, p.message))
    return memory.with_(problems=tuple(found))
