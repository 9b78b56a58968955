"""`kubectl pgshift`: status tables and the action annotations, as a kubectl plugin.

    kubectl pgshift status [NAME] [-n NS | -A] [-w | --watch]
    kubectl pgshift approve NAME STEP_OR_MIGRATION
    kubectl pgshift retry NAME
    kubectl pgshift replan NAME
    kubectl pgshift mark-applied NAME MIGRATION
    kubectl pgshift backups NAME
    kubectl pgshift approve-rollback NAME
    kubectl pgshift backups get NAME SHA256_OR_FILE [-o FILE] [--image IMAGE]

A thin layer: it reads Migration status and sets the annotations `pgshift.dev/approve`,
`pgshift.dev/retry` and `pgshift.dev/mark-applied` (DESIGN.md, Actions) through `kubectl` itself,
so it uses the same kubeconfig, context and credentials as the kubectl that runs it. Rendering
is pure functions of the objects (tested in tests/unit/test_kubectl_plugin.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pgshift.contract.progress import StepProgress
from pgshift.contract.summary import BackupResult, RunSummary, read_summary
from pgshift.controller.api import ContractAfter
from pgshift.controller.gates import APPROVABLE
from pgshift.controller.memory import Failure

RESOURCE = "migrations.pgshift.dev"
ANNOTATION_RETRY = "pgshift.dev/retry"
ANNOTATION_REPLAN = "pgshift.dev/replan"
ANNOTATION_APPROVE = "pgshift.dev/approve"
ANNOTATION_MARK_APPLIED = "pgshift.dev/mark-applied"
ANNOTATION_APPROVE_ROLLBACK = "pgshift.dev/approve-rollback"
LABEL_MIGRATION = "pgshift.dev/migration"
LABEL_ACTION = "pgshift.dev/action"
CONDITION_TYPES = ("Ready", "Complete", "Reconciling", "Stalled")

#: widest a table cell gets before it is cut with an ellipsis.
MAX_CELL = 72


class PluginError(Exception):
    """A failure the plugin explains in one line (exit status 1)."""


# --- rendering (pure) --------------------------------------------------------------------------


def cut(text: str, width: int = MAX_CELL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """kubectl-style columns: upper-case headers, left-aligned, three spaces apart."""
    cells = [[str(h) for h in headers]] + [
        ["" if c is None else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(value: str | None, now: dt.datetime) -> str:
    """kubectl's short ages: 45s, 12m, 5h, 3d."""
    then = parse_time(value)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def human_duration(seconds: int) -> str:
    """A time left, to the precision an estimate deserves: 35s, 4m10s, 2h05m, 3d04h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def backfill_figures(step: StepProgress) -> str:
    """A backfill's rows done (of the table's estimate), batches, rate and time left."""
    if step.rows is None:
        return ""
    text = f"{step.rows} rows"
    if step.rows_estimate and step.rows <= step.rows_estimate:
        text += f" of ~{step.rows_estimate} ({100 * step.rows // step.rows_estimate}%)"
    text += f" in {step.batches or 0} batches"
    if step.rows_per_second is not None:
        text += f", {step.rows_per_second:g} rows/s"
    if step.eta_seconds is not None:
        text += ", done" if step.eta_seconds == 0 else f", ~{human_duration(step.eta_seconds)} left"
    return text


def human_size(size: Any) -> str:
    if not isinstance(size, int | float):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def conditions_of(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {c.get("type", ""): c for c in status.get("conditions") or ()}


def condition_status(obj: Mapping[str, Any], ctype: str) -> str:
    cond = conditions_of(obj).get(ctype)
    return str(cond.get("status", "Unknown")) if cond else "-"


def is_stale(obj: Mapping[str, Any]) -> bool:
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    return observed is None or (generation is not None and observed < generation)


def phase_of(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    if not status:
        return "(no status yet)"
    phase = str(status.get("phase") or "-")
    return f"{phase} (stale)" if is_stale(obj) else phase


def gate_of(obj: Mapping[str, Any]) -> str:
    gate = (obj.get("status") or {}).get("gate") or {}
    if not gate:
        return "-"
    return f"{gate.get('type', '?')}: {gate.get('migration') or gate.get('step') or '?'}"


def render_list(items: Sequence[Mapping[str, Any]], now: dt.datetime, namespaces: bool) -> str:
    """`kubectl pgshift status`: one line per Migration."""
    if not items:
        return "No Migration found."
    headers = ["NAME", "READY", "COMPLETE", "PHASE", "APPLIED", "PENDING", "GATE", "LAST BACKUP"]
    headers.append("AGE")
    if namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in sorted(
        items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
    ):
        meta, status = obj["metadata"], obj.get("status") or {}
        backup = status.get("lastBackup") or {}
        row = [
            meta["name"],
            condition_status(obj, "Ready"),
            condition_status(obj, "Complete"),
            phase_of(obj),
            status.get("appliedVersion") or "-",
            status.get("pendingCount", "-"),
            gate_of(obj),
            age(backup.get("time"), now) if backup else "-",
            age(meta.get("creationTimestamp"), now),
        ]
        if namespaces:
            row.insert(0, meta.get("namespace", ""))
        rows.append(row)
    return render_table(headers, rows)


def _field(label: str, value: Any) -> str:
    return f"{label + ':' if label else '':<14}{value}"


def render_status(obj: Mapping[str, Any], now: dt.datetime) -> str:
    """`kubectl pgshift status NAME`: what it is doing, what holds it, what to do."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    name = meta["name"]
    out = [f"Migration {meta.get('namespace', '')}/{name}"]
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    described = "no status yet" if observed is None else f"status describes {observed}"
    out.append(_field("Generation", f"{generation} ({described})"))
    if is_stale(obj):
        out.append(_field("Note", "pgshift has not acted on the latest spec yet"))
    out.append(_field("Phase", status.get("phase") or "(no status yet)"))
    source = spec.get("source") or {}
    if (source.get("configMap") or {}).get("name"):
        src = f"ConfigMap {source['configMap']['name']}"
    elif (source.get("image") or {}).get("reference"):
        src = f"image {source['image']['reference']}"
    else:
        src = "-"
    if status.get("sourceDigest"):
        src += f" ({cut(status['sourceDigest'], 19)})"
    out.append(_field("Source", src))
    applied = status.get("appliedVersion") or "-"
    out.append(_field("Applied", f"{applied} ({status.get('appliedCount', 0)} migrations)"))
    pending = list(status.get("pending") or [])
    count = status.get("pendingCount", len(pending) if status else "-")
    extra = count - len(pending) if isinstance(count, int) else 0
    more = f", +{extra} more" if extra > 0 else ""
    out.append(_field("Pending", f"{count}" + (f": {', '.join(pending)}{more}" if pending else "")))
    contract = spec.get("contract") or {}
    after = contract.get("after", "-")
    if after == ContractAfter.ROLLOUT:
        rollout = contract.get("rollout") or {}
        names = list(rollout.get("deployments") or ()) or [rollout.get("deployment", "?")]
        after += f" of Deployment{'s' if len(names) > 1 else ''} {', '.join(names)}"
    out.append(_field("Contract", f"after {after}"))

    conds = conditions_of(obj)
    if conds:
        out.append("")
        rows = [
            [
                ctype,
                conds[ctype].get("status", "?"),
                conds[ctype].get("reason", ""),
                age(conds[ctype].get("lastTransitionTime"), now),
            ]
            for ctype in CONDITION_TYPES
            if ctype in conds
        ]
        out.append(render_table(["CONDITION", "STATUS", "REASON", "SINCE"], rows))
        # pgshift gives every condition the same message; show each distinct one once.
        messages: list[str] = []
        for ctype in CONDITION_TYPES:
            text = " ".join(str((conds.get(ctype) or {}).get("message") or "").split())
            if text and text not in messages:
                messages.append(text)
        for text in messages:
            lines = textwrap.wrap(text, width=100 - 14) or [""]
            out.append(_field("Message", lines[0]))
            out.extend(_field("", line) for line in lines[1:])

    step = StepProgress.from_dict(status.get("currentStep"))
    if step:
        out.append("")
        text = f"{step.migration or '?'} [{step.phase or '?'}] {step.key or ''}"
        if step.rows is not None:
            text += f" — {backfill_figures(step)}"
        out.append(_field("Current step", text))
        if step.summary:
            out.append(_field("", cut(step.summary, 100)))
    gate = status.get("gate") or {}
    if gate:
        out.append("")
        held = gate.get("migration") or gate.get("step") or "?"
        kind, key = gate.get("type", "?"), gate.get("step", "?")
        out.append(_field("Gate", f"{kind} holds {held} (step {key})"))
        if gate.get("message"):
            out.append(_field("", cut(gate["message"], 100)))
        if gate.get("type") in APPROVABLE:
            out.append(_field("Approve with", f"kubectl pgshift approve {name} {held}"))
    rollback = status.get("rollback") or {}
    if rollback:
        out.append("")
        if rollback.get("undo"):
            undoes = ", ".join(rollback["undo"])
            out.append(_field("Rollback", f"to {rollback.get('to')}: undoes {undoes}"))
            if rollback.get("approval"):
                out.append(_field("Approve with", f"kubectl pgshift approve-rollback {name}"))
        if rollback.get("undone"):
            out.append(_field("Rolled back", ", ".join(rollback["undone"])))
    failure = Failure.from_storage(status.get("failure"), None)
    if failure:
        out.append("")
        what = failure.migration or "-"
        if failure.sqlstate:
            what += f" (SQLSTATE {failure.sqlstate})"
        out.append(_field("Failure", f"{failure.code or 'Failed'}: {what}"))
        for key in ("statement", "message", "detail", "hint"):
            if getattr(failure, key):
                out.append(_field(f"  {key}", cut(getattr(failure, key), 100)))
        if failure.job:
            out.append(_field("  job", failure.job))
    backup = status.get("lastBackup") or {}
    if backup:
        out.append("")
        out.append(_field("Last backup", backup.get("path", "-")))
        out.append(
            _field(
                "",
                f"{human_size(backup.get('size'))}, sha256 {str(backup.get('sha256', '-'))[:12]}…, "
                f"{backup.get('scope', '-')}, {age(backup.get('time'), now)} ago"
                + (f", claim {backup['claimName']}" if backup.get("claimName") else ""),
            )
        )
    actions = status.get("actions") or {}
    if actions:
        out.append("")
        done = []
        if actions.get("approved"):
            done.append("approved " + ", ".join(actions["approved"]))
        if actions.get("markedApplied"):
            done.append("marked applied " + ", ".join(actions["markedApplied"]))
        if actions.get("retry"):
            done.append(f"retry {actions['retry']}")
        if actions.get("resumeEdited"):
            done.append(f"resume-edited {actions['resumeEdited']}")
        if actions.get("allowDrift"):
            done.append("drift accepted for " + ", ".join(actions["allowDrift"]))
        if actions.get("approvedRollback"):
            done.append(f"approved rollback {actions['approvedRollback']}")
        if actions.get("replan"):
            done.append(f"replan {actions['replan']}")
        out.append(_field("Acted on", "; ".join(done)))
    recovery = status.get("recovery") or []
    if recovery:
        out.append("")
        out.append("What you can do:")
        out.extend(f"  {line}" for line in recovery)
    return "\n".join(out)


def _summary_of(pod: Mapping[str, Any]) -> RunSummary | None:
    """The runner's summary in a Pod's termination message, read through the contract (None:
    no message, not a summary, or a schema version this plugin cannot read)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        message = ((cs.get("state") or {}).get("terminated") or {}).get("message")
        if message:
            try:
                return read_summary(message)
            except ValueError:  # UnknownSummaryVersion included: shown as unknown
                continue
    return None


def _job_state(job: Mapping[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return "Running" if (job.get("status") or {}).get("active") else "Pending"


def render_backups(
    obj: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    now: dt.datetime,
) -> str:
    """`kubectl pgshift backups NAME`: the backups on the claim and the backup Jobs still kept.

    The list is `status.backups`, which the operator keeps as the runner reports it (each
    backup names the dumps its `--keep` pruned): no Pod is needed to list, and a pruned file
    never shows. `backups get` checks the file's sha256 when it copies it."""
    status = obj.get("status") or {}
    migration = obj["metadata"]["name"]
    uid = obj["metadata"].get("uid", "<uid>")
    out = []
    kept = on_claim(status)
    if kept:
        out.append(f"Backups of {migration} on the claim (oldest first):")
        out.append(
            render_table(
                ["PATH", "SIZE", "TAKEN", "SCOPE", "SHA256", "CLAIM"],
                [
                    [
                        b.get("path", "-"),
                        human_size(b.get("size")),
                        (str(b.get("time")) + f" ({age(b.get('time'), now)} ago)")
                        if b.get("time")
                        else "-",
                        b.get("scope", "-")
                        + (f" ({', '.join(b['tables'])})" if b.get("tables") else ""),
                        b.get("sha256", "-"),
                        b.get("claimName", "-"),
                    ]
                    for b in kept
                ],
            )
        )
    else:
        out.append(f"No backup recorded for {migration}.")
    pods_by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        job_name = ((pod.get("metadata") or {}).get("labels") or {}).get("job-name")
        if job_name:
            pods_by_job.setdefault(job_name, []).append(pod)
    rows = []
    for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp", "")):
        name = job["metadata"]["name"]
        info: BackupResult | None = None
        for pod in pods_by_job.get(name, []):
            summary = _summary_of(pod)
            info = (summary.backup if summary else None) or info
        rows.append(
            [
                name,
                _job_state(job),
                info.file if info else "-",
                human_size(info.size if info else None),
                (info.sha256 if info else "-")[:12],
                age(job["metadata"].get("creationTimestamp"), now),
            ]
        )
    if rows:
        out.append("")
        out.append("Backup Jobs still kept:")
        out.append(render_table(["JOB", "STATE", "FILE", "SIZE", "SHA256", "AGE"], rows))
    out.append("")
    if kept:
        sha = kept[-1].get("sha256", "<sha256>")
        out.append(
            f"Copy one off the claim: kubectl pgshift backups get {migration} {sha[:12]} -o FILE"
        )
        out.append(
            "Restore one (spec.suspend: true first; writes since its time are lost): "
            f"kubectl annotate migration/{migration} pgshift.dev/restore={uid}/{sha} --overwrite"
        )
    return "\n".join(out)


def on_claim(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The backups status says are on the claim; the last backup alone for a status written
    before `status.backups` existed."""
    kept = [b for b in status.get("backups") or () if isinstance(b, Mapping)]
    last = status.get("lastBackup") or {}
    if last and not any(b.get("sha256") == last.get("sha256") for b in kept):
        kept.append(last)
    return kept


def find_backup(status: Mapping[str, Any], wanted: str) -> Mapping[str, Any]:
    """The backup a sha256 (or a prefix of 6+ characters) or a file name names."""
    kept = on_claim(status)
    found = [
        b
        for b in kept
        if (len(wanted) >= 6 and str(b.get("sha256", "")).startswith(wanted))
        or wanted in (b.get("path"), str(b.get("path", "")).rsplit("/", 1)[-1])
    ]
    if len(found) != 1:
        known = ", ".join(
            f"{str(b.get('path', '')).rsplit('/', 1)[-1]} ({str(b.get('sha256', ''))[:12]})"
            for b in kept
        )
        what = "names no backup" if not found else "names more than one backup"
        raise PluginError(f"{wanted!r} {what} on the claim; known: {known or 'none'}")
    return found[0]


#: where the copy Pod mounts the backup claim (the runner's BACKUP_ROOT).
COPY_ROOT = "/backups"


def copy_pod(
    name: str, claim: str, image: str, run_as: int, owner: Mapping[str, Any]
) -> dict[str, Any]:
    """A short-lived Pod that mounts the claim read-only and sleeps, so `kubectl exec cat`
    copies one file off it. No Kubernetes token, non-root, read-only root filesystem; it ends
    by itself after its deadline even if the plugin dies, and the Migration owns it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {LABEL_MIGRATION: owner["metadata"]["name"], LABEL_ACTION: "backup-copy"},
            "ownerReferences": [
                {
                    "apiVersion": owner.get("apiVersion", "pgshift.dev/v1alpha1"),
                    "kind": "Migration",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 900,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": run_as,
                "runAsGroup": run_as,
                "fsGroup": run_as,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "copy",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "900"],
                    "volumeMounts": [{"name": "backups", "mountPath": COPY_ROOT, "readOnly": True}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [
                {
                    "name": "backups",
                    "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
                }
            ],
        },
    }


# --- kubectl (thin) ----------------------------------------------------------------------------


class Kubectl:
    """Runs the kubectl that runs us (or $KUBECTL), with the user's namespace and context."""

    def __init__(
        self,
        namespace: str | None = None,
        context: str | None = None,
        kubeconfig: str | None = None,
    ) -> None:
        self.binary = os.environ.get("KUBECTL", "kubectl")
        self.namespace = namespace
        self.globals: list[str] = []
        if context:
            self.globals += ["--context", context]
        if kubeconfig:
            self.globals += ["--kubeconfig", kubeconfig]

    def _cmd(self, args: Sequence[str], namespaced: bool) -> list[str]:
        cmd = [self.binary, *self.globals]
        if namespaced and self.namespace:
            cmd += ["--namespace", self.namespace]
        return cmd + list(args)

    def run(self, *args: str, namespaced: bool = True, stdin: str | None = None) -> str:
        cmd = self._cmd(args, namespaced)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False, input=stdin)
        except FileNotFoundError:
            raise PluginError(f"{self.binary} not found on PATH") from None
        if done.returncode != 0:
            raise PluginError(done.stderr.strip() or f"{' '.join(cmd)} failed")
        return done.stdout

    def run_bytes(self, *args: str) -> bytes:
        """stdout as bytes (a dump copied through `kubectl exec cat`)."""
        cmd = self._cmd(args, True)
        try:
            done = subprocess.run(cmd, capture_output=True, check=False)
        except FileNotFoundError:
            raise PluginError(f"{self.binary} not found on PATH") from None
        if done.returncode != 0:
            raise PluginError(done.stderr.decode(errors="replace").strip() or "kubectl failed")
        return done.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.run("get", *args, "-o", "json")))

    def annotate(self, name: str, key: str, value: str) -> str:
        return self.run("annotate", RESOURCE, name, f"{key}={value}", "--overwrite").strip()

    def stream(self, *args: str) -> Iterator[dict[str, Any]]:
        """The objects `kubectl get ... -o json --watch` prints, one by one, as they come."""
        cmd = [self.binary, *self.globals]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        cmd += ["get", *args, "-o", "json", "--watch"]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise PluginError(f"{self.binary} not found on PATH") from None
        assert proc.stdout is not None and proc.stderr is not None
        try:
            yield from json_objects(iter(proc.stdout.readline, ""))
            if proc.wait() != 0:
                raise PluginError(proc.stderr.read().strip() or f"{' '.join(cmd)} failed")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()


def json_objects(chunks: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Concatenated JSON objects (kubectl's `-o json --watch`) read as they complete. PURE."""
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                obj, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                break  # incomplete: wait for more
            buffer = buffer[end:]
            if isinstance(obj, dict):
                yield obj


class StatusWatch:
    """What `status --watch` prints for each object kubectl's watch delivers: the detail (one
    name) or the table (all), only when status, spec generation or the set of Migrations
    changed (a re-delivery of the same object prints nothing). PURE."""

    def __init__(self, name: str | None, all_namespaces: bool) -> None:
        self.name, self.all_namespaces = name, all_namespaces
        self.items: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._last: Any = None

    def feed(self, obj: Mapping[str, Any], now: dt.datetime) -> str | None:
        objects = obj.get("items") if str(obj.get("kind", "")).endswith("List") else [obj]
        for item in objects or ():
            meta = item.get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            if meta.get("deletionTimestamp") and self.name is None:
                self.items.pop(key, None)
            else:
                self.items[key] = item
        seen = sorted(
            (
                k,
                (v.get("metadata") or {}).get("generation"),
                json.dumps(v.get("status"), sort_keys=True),
            )
            for k, v in self.items.items()
        )
        if seen == self._last:
            return None
        self._last = seen
        stamp = f"--- {now.strftime('%H:%M:%S')} ---"
        if self.name is not None and self.items:
            return f"{stamp}\n{render_status(list(self.items.values())[-1], now)}"
        ordered = [self.items[k] for k in sorted(self.items)]
        return f"{stamp}\n{render_list(ordered, now, namespaces=self.all_namespaces)}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cmd_watch(
    k: Kubectl, name: str | None, all_namespaces: bool, out: Callable[[str], None] = print
) -> None:
    """`status --watch`: print again whenever the Migration (or any, without a name) changes;
    the operator updates a backfill's figures at most every 10 s. Ends with Ctrl-C."""
    args = (
        [RESOURCE, name] if name else [RESOURCE] + (["--all-namespaces"] if all_namespaces else [])
    )
    view = StatusWatch(name, all_namespaces)
    for obj in k.stream(*args):
        text = view.feed(obj, _now())
        if text is not None:
            out(text)


def cmd_status(k: Kubectl, name: str | None, all_namespaces: bool) -> str:
    if name:
        return render_status(k.get_json(RESOURCE, name), _now())
    if all_namespaces:
        items = k.get_json(RESOURCE, "--all-namespaces")["items"]
    else:
        items = k.get_json(RESOURCE)["items"]
    return render_list(items, _now(), namespaces=all_namespaces)


def rollback_approval(migration: Mapping[str, Any]) -> str:
    """The `pgshift.dev/approve-rollback` value the Migration asks for (its status names
    exactly what is undone), or a PluginError when no rollback waits."""
    rollback = (migration.get("status") or {}).get("rollback") or {}
    value = rollback.get("approval")
    if not value or not rollback.get("undo"):
        name = (migration.get("metadata") or {}).get("name", "?")
        raise PluginError(f"migration {name}: no rollback waits for approval (status.rollback)")
    return str(value)


def cmd_backups(k: Kubectl, name: str) -> str:
    obj = k.get_json(RESOURCE, name)
    selector = f"{LABEL_MIGRATION}={name},{LABEL_ACTION}=backup"
    jobs = k.get_json("jobs", "-l", selector)["items"]
    pods = k.get_json("pods", "-l", selector)["items"]
    return render_backups(obj, jobs, pods, _now())


def _image_and_user(k: Kubectl, obj: Mapping[str, Any], name: str) -> tuple[str, int]:
    """The runner image and user of this Migration's Jobs (a kept Job says what the operator
    chose), else spec.job.image and the operator's default user."""
    image = str(((obj.get("spec") or {}).get("job") or {}).get("image") or "")
    user = 65532
    jobs = k.get_json("jobs", "-l", f"{LABEL_MIGRATION}={name}")["items"]
    for job in jobs:
        pod_spec = job["spec"]["template"]["spec"]
        image = image or pod_spec["containers"][0].get("image", "")
        user = int((pod_spec.get("securityContext") or {}).get("runAsUser") or user)
    if not image:
        raise PluginError(
            "no image known to copy with: pass --image (a runner image: it has cat, sleep)"
        )
    return image, user


def cmd_backups_get(k: Kubectl, name: str, wanted: str, to: str | None, image: str | None) -> str:
    """Copy one backup off the claim through a short-lived Pod, and check its sha256."""
    import hashlib
    import time

    obj = k.get_json(RESOURCE, name)
    backup = find_backup(obj.get("status") or {}, wanted)
    path = str(backup.get("path") or "")
    claim = str(backup.get("claimName") or "")
    if not path.startswith(COPY_ROOT + "/") or not claim:
        raise PluginError(f"backup {path!r}: no path on the claim or no claim recorded")
    chosen, user = _image_and_user(k, obj, name)
    image = image or chosen
    target = to or path.rsplit("/", 1)[-1]
    pod = f"{name[:40]}-copy-{int(time.time()) % 100000}"
    manifest = copy_pod(pod, claim, image, user, obj)
    k.run("create", "-f", "-", stdin=json.dumps(manifest))
    try:
        k.run("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=180s")
        data = k.run_bytes("exec", pod, "-c", "copy", "--", "cat", path)
    finally:
        k.run("delete", "pod", pod, "--wait=false", "--ignore-not-found")
    digest = hashlib.sha256(data).hexdigest()
    if digest != backup.get("sha256"):
        raise PluginError(
            f"{path}: copied {len(data)} bytes with sha256 {digest}, status records "
            f"{backup.get('sha256')}: not written to {target}"
        )
    with open(target, "wb") as fh:
        fh.write(data)
    return f"{target}: {len(data)} bytes, sha256 {digest} (checked)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl pgshift",
        description="Status and actions for pgshift Migrations.",
    )
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--kubeconfig", help="kubeconfig file")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", help="one Migration in detail, or a table of all of them")
    s.add_argument("name", nargs="?")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument(
        "-w", "--watch", action="store_true", help="print again on every change (Ctrl-C ends)"
    )
    a = sub.add_parser("approve", help="open an Approval or Destructive gate")
    a.add_argument("name")
    a.add_argument("target", metavar="STEP_OR_MIGRATION")
    r = sub.add_parser("retry", help="run a stalled Migration again")
    r.add_argument("name")
    rp = sub.add_parser("replan", help="plan again now (a change pgshift cannot see)")
    rp.add_argument("name")
    m = sub.add_parser("mark-applied", help="record a migration you applied by hand")
    m.add_argument("name")
    m.add_argument("migration")
    b = sub.add_parser(
        "backups",
        help="the backups on the claim; `backups get NAME SHA_OR_FILE [-o FILE]` copies one",
    )
    b.add_argument("words", nargs="+", metavar="[get] NAME [SHA256_OR_FILE]")
    b.add_argument("-o", "--output", dest="to", help="backups get: the local file to write")
    b.add_argument("--image", help="backups get: the image of the copy Pod (needs cat, sleep)")
    rb = sub.add_parser(
        "approve-rollback", help="run the down files a spec.target below what is applied asks for"
    )
    rb.add_argument("name")
    for sp in (s, a, r, rp, m, b, rb):
        # kubectl does not pass its own flags to plugins: accept them after the verb too.
        sp.add_argument("-n", "--namespace", dest="sub_namespace", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    k = Kubectl(args.sub_namespace or args.namespace, args.context, args.kubeconfig)
    try:
        if args.command == "status" and args.watch:
            cmd_watch(k, args.name, args.all_namespaces, lambda text: print(text, flush=True))
        elif args.command == "status":
            print(cmd_status(k, args.name, args.all_namespaces))
        elif args.command == "approve":
            print(k.annotate(args.name, ANNOTATION_APPROVE, args.target))
            print(f"pgshift will run the gated step(s) of {args.target}; follow with:")
            print(f"  kubectl pgshift status {args.name}")
        elif args.command == "retry":
            # every value acts once: a fresh one asks for a fresh attempt.
            print(k.annotate(args.name, ANNOTATION_RETRY, str(int(_now().timestamp()))))
        elif args.command == "replan":
            print(k.annotate(args.name, ANNOTATION_REPLAN, str(int(_now().timestamp()))))
        elif args.command == "mark-applied":
            print(k.annotate(args.name, ANNOTATION_MARK_APPLIED, args.migration))
        elif args.command == "backups":
            words = list(args.words)
            if words[0] == "get":
                if len(words) != 3:
                    raise PluginError(
                        "usage: kubectl pgshift backups get NAME SHA256_OR_FILE [-o FILE]"
                    )
                print(cmd_backups_get(k, words[1], words[2], args.to, args.image))
            elif len(words) == 1:
                print(cmd_backups(k, words[0]))
            else:
                raise PluginError("usage: kubectl pgshift backups NAME | backups get NAME SHA256")
        elif args.command == "approve-rollback":
            value = rollback_approval(k.get_json(RESOURCE, args.name))
            print(k.annotate(args.name, ANNOTATION_APPROVE_ROLLBACK, value))
            print(f"pgshift will undo what status.rollback lists ({value}); follow with:")
            print(f"  kubectl pgshift status {args.name}")
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # how a watch ends
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
