"""The Rollout gate (`spec.contract.after: Rollout`). PURE: API bodies in, a verdict out.

The gate opens only when every named Deployment has completely rolled out a pod template
that was not there when this generation of the Migration was first observed:

- the pod-template hashes of each Deployment's ReplicaSets are recorded when a generation is
  first seen (`status.rollout`), so a `kubectl scale`, an HPA or a `kubectl rollout undo` back
  to a known template never opens it, and a new template rolled out *before* the contract
  step became gated still does;
- "completely": the Deployment's controller observed its generation, updated = available =
  desired replicas, and no Pod of an older ReplicaSet is left, terminating ones included
  (the old application may still be serving through them).

`kubectl rollout status` only looks at counts, and a scale changes the generation too, which is
why neither a generation nor a "complete" flag alone can open a destructive step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the label the Deployment controller puts on its ReplicaSets and their Pods.
LABEL_HASH = "pod-template-hash"
ANNOTATION_REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class DeploymentView:
    """What the gate needs to know about one Deployment, as observed now."""

    name: str
    exists: bool
    generation: int = 0
    observed_generation: int = 0
    desired: int = 1
    replicas: int = 0
    updated: int = 0
    available: int = 0
    #: hash of the ReplicaSet that runs the Deployment's current template; "" while none does
    #: (the controller has not created it yet, or the Deployment is paused).
    current_hash: str = ""
    #: the hashes of all the Deployment's ReplicaSets (old revisions kept for `rollout undo`).
    hashes: tuple[str, ...] = ()
    #: Pods of the Deployment's other ReplicaSets, terminating ones included.
    old_pods: int = 0
    #: why it could not be observed (e.g. RBAC), "" when fine.
    problem: str = ""


@dataclass(frozen=True)
class RolloutRecord:
    """Kept in `status.rollout`: the templates known when `generation` was first observed."""

    generation: int
    #: Deployment name -> pod-template hashes its ReplicaSets had then (none: not there yet).
    known: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Deployments last reported missing (a Warning Event is posted when one goes missing).
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    open: bool
    #: what the gate waits for (or what opened it).
    message: str
    missing: tuple[str, ...] = ()


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(
        o.get("uid") == uid and o.get("controller", True)
        for o in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _owner_uid(obj: Mapping[str, Any]) -> str:
    for o in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if o.get("controller"):
            return str(o.get("uid") or "")
    return ""


def _template_key(template: Mapping[str, Any] | None) -> str:
    """A template as the controller compares it: the pod-template-hash label left out."""
    t = json.loads(json.dumps(template or {}))
    meta = t.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != LABEL_HASH}
    meta["labels"] = labels
    meta.pop("creationTimestamp", None)
    return json.dumps(t, sort_keys=True)


def _revision(rs: Mapping[str, Any]) -> int:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_REVISION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as a `labelSelector` query string."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def view_of(
    name: str,
    deployment: Mapping[str, Any] | None,
    replicasets: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
) -> DeploymentView:
    """One Deployment, its ReplicaSets and the Pods its selector matches, as the gate sees it."""
    if deployment is None:
        return DeploymentView(name=name, exists=False)
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    uid = str(meta.get("uid") or "")
    owned = [rs for rs in replicasets if _owned_by(rs, uid)]
    want = _template_key(spec.get("template"))
    current = [rs for rs in owned if _template_key((rs.get("spec") or {}).get("template")) == want]
    current_rs = max(current, key=_revision) if current else None
    current_uid = str((current_rs or {}).get("metadata", {}).get("uid") or "")
    owned_uids = {str((rs.get("metadata") or {}).get("uid") or "") for rs in owned}
    old_pods = sum(1 for p in pods if _owner_uid(p) in owned_uids and _owner_uid(p) != current_uid)
    replicas = spec.get("replicas")
    return DeploymentView(
        name=name,
        exists=True,
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        desired=1 if replicas is None else int(replicas),
        replicas=int(status.get("replicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        current_hash=str(_labels(current_rs).get(LABEL_HASH, "")) if current_rs else "",
        hashes=tuple(sorted({str(_labels(rs).get(LABEL_HASH, "")) for rs in owned} - {""})),
        old_pods=old_pods,
    )


def record(generation: int, views: Sequence[DeploymentView]) -> RolloutRecord | None:
    """The templates known now; None when a Deployment could not be observed (never guess:
    an empty record would make every template look new)."""
    if any(v.problem for v in views):
        return None
    return RolloutRecord(generation=generation, known={v.name: v.hashes for v in views})


def _waits_for(v: DeploymentView, known: tuple[str, ...], generation: int) -> str:
    """Why this Deployment keeps the gate closed; "" when it has rolled out a new template."""
    if v.problem:
        return f"Deployment {v.name}: {v.problem}"
    if not v.exists:
        return f"Deployment {v.name} not found (yet)"
    if v.observed_generation < v.generation:
        return f"Deployment {v.name}: its controller has not observed generation {v.generation} yet"
    if not v.current_hash:
        return f"Deployment {v.name}: no ReplicaSet runs its current pod template yet"
    if v.current_hash in known:
        return (
            f"Deployment {v.name}: a rollout of a new pod template (the current one, "
            f"{v.current_hash}, was there when generation {generation} of this Migration was "
            "first seen; scaling or undoing to a known template does not open the gate)"
        )
    counts = (v.updated, v.available, v.replicas)
    if any(c != v.desired for c in counts):
        return (
            f"Deployment {v.name}: the rollout of {v.current_hash} to finish (updated "
            f"{v.updated}, available {v.available}, total {v.replicas} of {v.desired} replicas)"
        )
    if v.old_pods:
        return f"Deployment {v.name}: {v.old_pods} Pod(s) of older ReplicaSets to go away"
    return ""


def gate(rec: RolloutRecord | None, views: Sequence[DeploymentView]) -> Verdict:
    """Open when every Deployment completely rolled out a template unknown to `rec`."""
    missing = tuple(v.name for v in views if not v.exists and not v.problem)
    if rec is None:
        problems = "; ".join(f"Deployment {v.name}: {v.problem}" for v in views if v.problem)
        return Verdict(False, problems or "the Deployments to be observed", missing)
    waits = [
        w for v in views if (w := _waits_for(v, tuple(rec.known.get(v.name, ())), rec.generation))
    ]
    if waits:
        return Verdict(False, "; ".join(waits), missing)
    done = ", ".join(f"{v.name} ({v.current_hash})" for v in views)
    return Verdict(True, f"Deployment(s) {done} rolled out a new pod template", missing)


def record_to_status(rec: RolloutRecord) -> dict[str, Any]:
    return {
        "generation": rec.generation,
        "knownTemplateHashes": {k: list(v) for k, v in sorted(rec.known.items())},
        "notFound": list(rec.missing) or None,
    }


def record_from_status(d: Mapping[str, Any] | None) -> RolloutRecord | None:
    if not d or "generation" not in d:
        return None
    return RolloutRecord(
        generation=int(d["generation"]),
        known={str(k): tuple(v or ()) for k, v in (d.get("knownTemplateHashes") or {}).items()},
        missing=tuple(d.get("notFound") or ()),
    )


def replace_missing(rec: RolloutRecord, missing: tuple[str, ...]) -> RolloutRecord:
    return RolloutRecord(generation=rec.generation, known=rec.known, missing=missing)


def rolled_back(views: Sequence[DeploymentView]) -> Verdict:
    """For the contract steps of down files (a rollback): open when every Deployment has
    completely rolled out its current template, whichever it is: a `rollout undo` or a git
    revert back to a known template is exactly the application's rollback they wait for."""
    missing = tuple(v.name for v in views if not v.exists and not v.problem)
    waits = [w for v in views if (w := _waits_for(v, (), 0))]
    if waits:
        return Verdict(False, "; ".join(waits), missing)
    done = ", ".join(f"{v.name} ({v.current_hash})" for v in views)
    return Verdict(True, f"Deployment(s) {done} completely rolled out", missing)
