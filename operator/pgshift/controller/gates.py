"""Gates: what holds a step back (a Deny policy, an approval, the Rollout gate), what stands
approved, and what the Migration says while a gate holds. PURE."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pgshift.contract.reasons import Reason
from pgshift.contract.steps import Phase
from pgshift.controller.api import ContractAfter, Destructive, MigrationSpec
from pgshift.controller.intent import Decision, Event
from pgshift.controller.memory import Memory, Plan, Step
from pgshift.controller.observe import Observed
from pgshift.controller.rollout import Verdict, record, replace_missing
from pgshift.controller.rollout import gate as rollout_gate


class Gate(enum.StrEnum):
    """Why a step may not run now. The value is status.gate.type (Denied shows as Destructive)."""

    #: destructive, and spec.safety.destructive is Deny: nothing opens it but a spec change.
    DENIED = "Denied"
    #: destructive, and spec.safety.destructive is RequireApproval.
    DESTRUCTIVE = "Destructive"
    #: a contract step, and spec.contract.after is Approval.
    APPROVAL = "Approval"
    #: a contract step, and spec.contract.after is Rollout.
    ROLLOUT = "Rollout"


#: the gates (as status.gate.type) that a `pgshift.dev/approve` annotation opens.
APPROVABLE = frozenset({Gate.APPROVAL, Gate.DESTRUCTIVE})


def wildcard(obs: Observed) -> str:
    """How a "*" approval is recorded: for the generation it was given at."""
    return f"*@{obs.ref.generation}"


def approvals(obs: Observed, memory: Memory) -> tuple[str, ...]:
    """What stands approved now: names and keys, and "*" if given for this generation."""
    named = tuple(v for v in memory.approved if not v.startswith("*"))
    return (*named, "*") if wildcard(obs) in memory.approved else named


def approved(step: Step, values: tuple[str, ...]) -> bool:
    return step.key in values or step.migration in values or "*" in values


def gate_of(obs: Observed, spec: MigrationSpec, step: Step, memory: Memory) -> Gate | None:
    """None when the step may run; else the gate that holds it."""
    if step.destructive and spec.safety.destructive is Destructive.DENY:
        return Gate.DENIED
    if step.phase == Phase.CONTRACT:
        after = spec.contract.after
        if after is ContractAfter.APPROVAL and not approved(step, approvals(obs, memory)):
            return Gate.APPROVAL
        if after is ContractAfter.ROLLOUT and not rollout_verdict(obs, memory).open:
            return Gate.ROLLOUT
    if (
        step.destructive
        and spec.safety.destructive is Destructive.REQUIRE_APPROVAL
        and not approved(step, approvals(obs, memory))
    ):
        return Gate.DESTRUCTIVE
    return None


def rollout_verdict(obs: Observed, memory: Memory) -> Verdict:
    rec = memory.rollout
    if rec is not None and rec.generation != obs.ref.generation:
        rec = None  # recorded for another generation: not this spec's baseline.
    return rollout_gate(rec, obs.rollout or ())


def record_rollout(obs: Observed, memory: Memory) -> Memory:
    """The first look at a generation records the pod templates its Deployments have then."""
    if obs.spec is None or obs.spec.contract.after is not ContractAfter.ROLLOUT:
        return memory
    if obs.rollout is None or (memory.rollout and memory.rollout.generation == obs.ref.generation):
        return memory
    rec = record(obs.ref.generation, obs.rollout)
    return memory.with_(rollout=rec) if rec is not None else memory


@dataclass(frozen=True)
class _Opens:
    """What opens a held gate, and what is told meanwhile."""

    text: str
    memory: Memory
    wake_after: float | None = None
    events: tuple[Event, ...] = ()


def _opens(obs: Observed, memory: Memory, step: Step, gate: Gate) -> _Opens:
    if gate is not Gate.ROLLOUT:
        return _Opens(
            f"kubectl annotate migration/{obs.ref.name} pgshift.dev/approve={step.migration} "
            "--overwrite",
            memory,
        )
    verdict = rollout_verdict(obs, memory)
    events: tuple[Event, ...] = ()
    if memory.rollout is not None:
        gone = [n for n in verdict.missing if n not in memory.rollout.missing]
        events = tuple(
            Event(
                "Warning",
                "DeploymentNotFound",
                f"Deployment {n} not found (yet): the Rollout gate of step {step.key} "
                "waits for it (it may come in a later sync wave)",
            )
            for n in gone
        )
        memory = memory.with_(rollout=replace_missing(memory.rollout, verdict.missing))
    return _Opens(verdict.message, memory, obs.settings.poll_seconds, events)


def at_gate(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory, gate: Gate) -> Decision:
    """The first pending step is held by `gate`: say so, and what opens it."""
    step = plan.steps[0]
    if gate is Gate.DENIED:
        return Decision(
            memory.with_(
                gate={"type": Gate.DESTRUCTIVE.value, "step": step.key, "migration": step.migration}
            ),
            Reason.DESTRUCTIVE_DENIED,
            f"step {step.key} of {step.migration} is destructive ({step.summary or step.phase}) "
            "and spec.safety.destructive is Deny",
        )
    opens = _opens(obs, memory, step, gate)
    what = "destructive step" if gate is Gate.DESTRUCTIVE else f"{step.phase} step"
    held = f"{what} {step.key} of {step.migration}" + (f" ({step.summary})" if step.summary else "")
    only_contract_left = all(s.phase == Phase.CONTRACT for s in plan.steps)
    memory = opens.memory.with_(
        gate={
            "type": gate.value,
            "step": step.key,
            "migration": step.migration,
            "message": f"opens on: {opens.text}",
        },
        current_step=None,
    )
    if only_contract_left:
        reason = Reason.AWAITING_ROLLOUT if gate is Gate.ROLLOUT else Reason.AWAITING_APPROVAL
        return Decision(
            memory,
            reason,
            f"ready for the new application version; {held} waits for: {opens.text}",
            wake_after=opens.wake_after,
            events=opens.events,
        )
    later = next(s for s in plan.steps if s.phase != Phase.CONTRACT)
    return Decision(
        memory,
        Reason.BLOCKED_BY_GATE,
        f"{later.phase} step {later.key} of {later.migration} is held behind {held}, "
        f"which waits for: {opens.text}",
        wake_after=opens.wake_after,
        events=opens.events,
    )
