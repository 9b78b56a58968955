"""Names users give (approvals, mark-applied, spec.target) checked against the plan. PURE.

A name that names nothing in the source must not pass silently (a typo in an approval would
otherwise leave a gate closed with no word, a typo in spec.target would apply everything), and
a name of something already applied is consumed silently (approvals stay in git after use).
What the source holds comes from the plan Job's summary: its steps (keys, migrations), the
pending names and the table of every migration. When the runner had to cut that summary
(4 KiB) a name not in what is left cannot be judged here; the runner, which sees the whole
source, judges it instead (it refuses a name that names nothing before running anything).
"""

from __future__ import annotations

import enum
from dataclasses import replace

from pgshift.controller.memory import Plan, Problem

UNKNOWN_APPROVAL = "UnknownApproval"
UNKNOWN_MARK_APPLIED = "UnknownMarkApplied"
UNKNOWN_TARGET = "UnknownTarget"


class Match(enum.StrEnum):
    #: a pending step (by key) or a pending migration (by name).
    PENDING = "pending"
    #: a migration the plan lists as applied, or a value that matched a pending one before.
    APPLIED = "applied"
    #: nothing in the source has this name.
    NOTHING = "nothing"
    #: the plan's lists were cut and the name is not among what is left.
    UNSURE = "unsure"


def match(plan: Plan, name: str, seen_pending: tuple[str, ...] = ()) -> Match:
    if any(name in (s.key, s.migration) for s in plan.steps) or name in plan.pending:
        return Match.PENDING
    if name in plan.names or name == plan.last_applied or name in seen_pending:
        return Match.APPLIED
    return Match.UNSURE if plan.truncated else Match.NOTHING


def approval_problems(
    plan: Plan, values: tuple[str, ...], seen_pending: tuple[str, ...] = ()
) -> list[Problem]:
    return [
        Problem(
            UNKNOWN_APPROVAL,
            v,
            f"pgshift.dev/approve value {v!r} names no migration or step of the source; "
            "it approves nothing (a step key or a migration name, as status.gate shows)",
        )
        for v in values
        if not v.startswith("*") and match(plan, v, seen_pending) is Match.NOTHING
    ]


def mark_applied_problem(plan: Plan, name: str) -> Problem | None:
    if not name or match(plan, name) is not Match.NOTHING:
        return None
    return Problem(
        UNKNOWN_MARK_APPLIED,
        name,
        f"pgshift.dev/mark-applied value {name!r} names no migration of the source; "
        "nothing was marked",
    )


def target_problem(plan: Plan, target: str) -> Problem | None:
    if not target or target in plan.names or match(plan, target) is not Match.NOTHING:
        return None
    return Problem(
        UNKNOWN_TARGET,
        target,
        f"spec.target {target!r} names no migration of the source; nothing is applied "
        "for it (set it to a migration name, or empty for all)",
    )


def cut_to_target(plan: Plan, target: str) -> Plan:
    """The plan of an untargeted plan Job, cut after `target` (the source's order).

    The plan Job runs without --target so that a target naming nothing is told apart from one
    already applied; the apply Job gets --target and stops there itself.
    """
    if target in plan.pending:
        order = plan.pending
    elif target in plan.names:
        order = plan.names
    else:
        return plan
    allowed = set(order[: order.index(target) + 1])
    steps = tuple(s for s in plan.steps if s.migration in allowed)
    if len(steps) == len(plan.steps):
        return plan
    return replace(
        plan,
        steps=steps,
        affected_tables=tuple(sorted({t for s in steps if s.destructive for t in s.tables})),
    )
