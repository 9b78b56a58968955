"""Benchmark: one operator, a fleet of N Migrations (issue 15).

    .venv/bin/python bench/bench_fleet.py [--n 20 100 1000]
        [--jobs bench|controller] [--kubelet replay|host|node] [--operator-root DIR]
        [--idle 60] [--timeout 900]
    .venv/bin/python bench/bench_fleet.py --check-jobs

N Migrations of the quickstart's drizzle folder (`contract.after: Immediately`, no backup),
each with its own ConfigMap, Secret and database on one private PostgreSQL
(tests/pgserver.py), created in one `kubectl create`, run by the operator of
`--operator-root` (default: this checkout; `OTHER-CHECKOUT` gives "before") as a host process.

Who completes Jobs (`--jobs`), so that the operator's cost is told apart from the rest:
- `bench` (default; what issue 15's operator targets are for): a private control plane with
  no node and a kube-controller-manager without its Job controller (etcd, kube-apiserver, the
  garbage collector, ttl-after-finished...). The bench completes each Job itself and writes
  what the Job controller of this Kubernetes would, in the same order (`BenchJobs`): the Pod
  from the Job's template, the Job's status (startTime, active), the Pod's end with the
  runner's termination message, the interim SuccessCriteriaMet / FailureTarget condition,
  the Pod's tracking finalizer removed, then succeeded / failed and Complete (completionTime)
  / Failed. The operator reads these Jobs and Pods exactly as real ones (`--check-jobs`
  compares the watch events of both, times and uids aside).
- `controller`: the same control plane with the real Job controller (5 syncs at once): the
  bench plays only the kubelet, writing the Pod's status; the Job controller turns it into
  Job status. The gap then holds the Job controller's time too (most of it at N=100).

What the termination message holds (`--kubelet`):
- `replay` (default): the real runner's. The first time a step (the Job's action, sequence
  number and argv) is seen, the runner runs on the host against that Migration's database
  and its result file is recorded; every other Migration's same step replays the record.
- `host`: every Job's runner really runs on the host against its own database.
- `node`: the real local cluster (`localcluster`, containerd + kubelet, the project's image,
  `--jobs controller` only): Pods run for real; the figures include the node's cost (issue
  15: 300 Pods on 2 cores cannot finish in 90 s, so the operator targets are for `--jobs
  bench`).

Printed per N: time to all Complete, the per-step gap (a Job's Pod terminated -> the next Job
of that Migration created: median and p90; `gap_operator`: from the Job seen finished, the
operator's part alone), time to first status (created -> first `status.phase`, median and
max), operator peak RSS and CPU (share of one core while the fleet ran, and over `--idle`
seconds of an idle fleet afterwards), the runner's CPU (host runs) beside the control plane's
and the bench's own, and the 1-minute load at the end. This is a benchmark, not a test: it
asserts only that every Migration reached Complete.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/x.py): the repository root holds `tests`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kubernetes

from tests.pgserver import PgServer, running_server

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart" / "drizzle"
CRD = ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"
NAMESPACE = "fleet"
TICK = os.sysconf("SC_CLK_TCK")


# --- the fleet's objects ------------------------------------------------------------------------


def source_data() -> dict[str, str]:
    """The quickstart's drizzle folder as ConfigMap data (DESIGN.md's encoding)."""
    data = {"_journal.json": (QUICKSTART / "meta" / "_journal.json").read_text()}
    for sql in sorted(QUICKSTART.glob("*.sql")):
        data[sql.name] = sql.read_text()
    return data


def fleet_objects(n: int, urls: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Secrets and ConfigMaps, Migrations) of a fleet of n."""
    data = source_data()
    support: list[dict[str, Any]] = []
    migrations: list[dict[str, Any]] = []
    for i in range(n):
        name = f"app{i:04d}"
        support.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-db"},
                        "stringData": {"DATABASE_URL": urls[i]}})  # fmt: skip
        support.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"{name}-migrations"}, "data": data})  # fmt: skip
        migrations.append({
            "apiVersion": "pgshift.dev/v1alpha1",
            "kind": "Migration",
            "metadata": {"name": name},
            "spec": {
                "database": {"urlSecretRef": {"name": f"{name}-db", "key": "DATABASE_URL"}},
                "source": {"configMap": {"name": f"{name}-migrations"}, "layout": "drizzle"},
                "backup": {"when": "Never"},
                "contract": {"after": "Immediately"},
            },
        })  # fmt: skip
    return support, migrations


def kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=input, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def create_all(kubeconfig: Path, objects: list[dict[str, Any]]) -> None:
    for start in range(0, len(objects), 500):
        chunk = {"apiVersion": "v1", "kind": "List", "items": objects[start : start + 500]}
        kubectl(kubeconfig, "create", "-n", NAMESPACE, "-f", "-", input=json.dumps(chunk))


# --- the cluster ----------------------------------------------------------------------------------


@contextlib.contextmanager
def control_plane_without_node(*, job_controller: bool = True) -> Iterator[Path]:
    """etcd, kube-apiserver and kube-controller-manager, no scheduler and no node: nothing runs
    a Pod but the bench. `job_controller=False` leaves the Job controller out of the controller
    manager (`--jobs bench`: the bench completes Jobs itself). Yields the kubeconfig."""
    from localcluster import build, pki, processes
    from localcluster.control_plane import ControlPlane, Endpoints

    class NoScheduler(ControlPlane):
        def _start(self, name: str, argv: list[str], logs: Path) -> None:
            if name != "kube-scheduler":  # unscheduled Pods stay unbound: the bench binds none
                super()._start(name, argv, logs)

        def _controller_manager_argv(self) -> list[str]:
            argv = super()._controller_manager_argv()
            if job_controller:
                return argv
            return [without_job_controller(a) for a in argv]

    workdir = Path(tempfile.mkdtemp(prefix="pgshift-bench-fleet-"))
    ports = [processes.free_port() for _ in range(3)]
    plane = NoScheduler(
        workdir,
        build.ensure_binaries(),
        pki.make_pki(workdir / "pki"),
        Endpoints(ports[0], ports[1], ports[2], secrets.token_hex(24)),
        workdir.name,
    )
    try:
        plane.start()
        CONTROL_PLANE_PIDS[:] = [m.process.pid for m in plane.managed]
        yield plane.kubeconfig
    finally:
        plane.stop()
        processes.sweep(workdir.name)
        shutil.rmtree(workdir, ignore_errors=True)


def without_job_controller(arg: str) -> str:
    """A kube-controller-manager argument, with job-controller dropped from `--controllers`
    (the garbage collector and ttl-after-finished stay: they delete Jobs and their Pods)."""
    flag = "--controllers="
    if not arg.startswith(flag):
        return arg
    kept = [c for c in arg[len(flag) :].split(",") if c != "job-controller"]
    return flag + ",".join(kept)


CONTROL_PLANE_PIDS: list[int] = []


# --- the bench as kubelet -----------------------------------------------------------------------


def stamp() -> str:
    """Now, as Kubernetes writes times (RFC 3339, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Kubelet:
    """Ends runner Pods: runs the runner on the host (the first time a step is seen, or always
    with `host`) and writes the Pod's status with its result as termination message."""

    core: Any
    urls: dict[str, str]
    source: Path
    runner: Path
    replay: bool
    records: dict[tuple[str, ...], tuple[int, str]] = field(default_factory=dict)
    locks: dict[tuple[str, ...], threading.Lock] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)
    host_runs: int = 0
    replayed: int = 0
    #: the Pods (`--jobs controller`) or Jobs (`--jobs bench`) taken in hand already.
    done: set[str] = field(default_factory=set)

    def finish(self, pod: dict[str, Any]) -> float:
        """Ends a Pod the Job controller created; returns when its end was written."""
        labels = pod["metadata"].get("labels") or {}
        runner = runner_container(pod["spec"])
        code, message = self.result(labels, runner)
        return self.end(pod["metadata"]["name"], runner, code, message)

    def result(self, labels: dict[str, str], runner: dict[str, Any]) -> tuple[int, str]:
        """The runner's exit code and termination message for this step: run on the host, or
        the record of the same step (action, seq, argv) of another Migration."""
        argv = [*runner.get("command", []), *runner.get("args", [])]
        key = (labels.get("pgshift.dev/action", ""), labels.get("pgshift.dev/seq", ""), *argv[1:])
        with self.guard:
            lock = self.locks.setdefault(key, threading.Lock())
        with lock:
            record = self.records.get(key) if self.replay else None
            if record is None:
                record = self._run(argv, labels.get("pgshift.dev/migration", ""))
                self.records[key] = record
            else:
                self.replayed += 1
        return record

    def end(self, pod: str, runner: dict[str, Any], code: int, message: str) -> float:
        """Writes the Pod's status as the kubelet does when its one container exited."""
        now = stamp()
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "startTime": now,
            "containerStatuses": [{
                "name": "runner", "ready": False, "restartCount": 0,
                "image": runner.get("image", ""), "imageID": "", "started": False,
                "state": {"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "message": message, "startedAt": now, "finishedAt": now,
                }},
            }],
        }  # fmt: skip
        self.core.patch_namespaced_pod_status(
            pod, NAMESPACE, {"status": status}, _content_type="application/merge-patch+json"
        )  # fmt: skip
        return time.monotonic()

    def _run(self, argv: list[str], migration: str) -> tuple[int, str]:
        self.host_runs += 1
        with tempfile.TemporaryDirectory(prefix="pgshift-bench-run-") as tmp:
            result = Path(tmp) / "termination-log"
            args = [str(self.runner), *argv[1:]]
            args = [str(self.source) if a == "/migrations" else a for a in args]
            args = [str(result) if a == "/dev/termination-log" else a for a in args]
            env = {"PATH": os.environ["PATH"], "HOME": tmp, "TMPDIR": tmp,
                   "DATABASE_URL": self.urls[migration]}  # fmt: skip
            done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
            message = result.read_text() if result.exists() else done.stderr[-2000:]
        return done.returncode, message


def runner_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return dict(next(c for c in pod_spec["containers"] if c["name"] == "runner"))


#: what the Job controller puts on the Pods it creates, and its conditions' reasons.
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
SUCCESS = ("SuccessCriteriaMet", "Complete", "CompletionsReached",
           "Reached expected number of succeeded pods")  # fmt: skip
FAILURE = ("FailureTarget", "Failed", "BackoffLimitExceeded",
           "Job has reached the specified backoff limit")  # fmt: skip


def job_condition(kind: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}  # fmt: skip


def unsupported(job: dict[str, Any]) -> str:
    """What of a Job the bench's Job controller does not play ("" when it plays all): the
    operator's Jobs are one Pod, backoffLimit 0, restartPolicy Never (DESIGN.md). PURE."""
    spec = job.get("spec") or {}
    if spec.get("backoffLimit", 6) != 0:
        return f"backoffLimit {spec.get('backoffLimit', 6)} (only 0)"
    for key in ("completions", "parallelism"):
        if spec.get(key, 1) != 1:
            return f"{key} {spec[key]} (only 1)"
    for key in ("podFailurePolicy", "successPolicy", "suspend", "managedBy"):
        if spec.get(key):
            return f"spec.{key}"
    if spec.get("completionMode", "NonIndexed") != "NonIndexed":
        return f"completionMode {spec['completionMode']}"
    return ""


@dataclass
class BenchJobs:
    """Plays kube-controller-manager's Job controller for the operator's Jobs (`--jobs bench`).

    The writes and their order are those of the Job controller of the control plane's
    Kubernetes (1.33, JobManagedBy and JobPodReplacementPolicy on: the terminal condition waits
    behind an interim one), as recorded from it with one Pod ended by this bench:
    1. the Pod, from the Job's template: generateName `<job>-`, the `job-name` and
       `controller-uid` labels (also as `batch.kubernetes.io/...`), the Job as controlling
       owner, the job-tracking finalizer; then the Job's status: startTime, active 1, ready 0,
       terminating 0, uncountedTerminatedPods {};
    2. the Pod ended (`Kubelet.end`, the runner's result as termination message): the Pod's
       uid in uncountedTerminatedPods.succeeded (or .failed) with the interim condition
       SuccessCriteriaMet (or FailureTarget), and active 0;
    3. the finalizer removed from the Pod;
    4. succeeded (or failed) 1, uncountedTerminatedPods {} and Complete with completionTime
       (or Failed), reasons and messages as the controller writes them.
    The apiserver validates each status write as it does the controller's (the 1.33 Job
    status rules), so a write out of order fails here. Not played: activeDeadlineSeconds (a
    step the bench ends takes ms) and anything `unsupported` names.
    """

    core: Any
    batch: Any
    kubelet: Kubelet

    def complete(self, job: dict[str, Any]) -> float:
        """Runs one Job to its end; returns when its Pod's end was written."""
        problem = unsupported(job)
        if problem:
            raise RuntimeError(f"the bench's Job controller does not play {problem}")
        meta, template = job["metadata"], job["spec"]["template"]
        name, uid = meta["name"], meta["uid"]
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}),
                  "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}  # fmt: skip
        pod_body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{name}-", "labels": labels,
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                     "uid": uid, "controller": True, "blockOwnerDeletion": True}],
                "finalizers": [TRACKING_FINALIZER],
            },
            "spec": template["spec"],
        }  # fmt: skip
        created = self.core.create_namespaced_pod(NAMESPACE, pod_body, _preload_content=False)
        pod = json.loads(created.data)
        self._status(name, {"startTime": stamp(), "active": 1, "ready": 0, "terminating": 0,
                            "uncountedTerminatedPods": {}})  # fmt: skip
        runner = runner_container(template["spec"])
        code, message = self.kubelet.result(labels, runner)
        ended = self.kubelet.end(pod["metadata"]["name"], runner, code, message)
        interim, final, reason, text = SUCCESS if code == 0 else FAILURE
        counter = "succeeded" if code == 0 else "failed"
        first = job_condition(interim, reason, text, stamp())
        uncounted = {counter: [pod["metadata"]["uid"]]}
        self._status(name, {"active": None, "conditions": [first],
                            "uncountedTerminatedPods": uncounted})  # fmt: skip
        self.core.patch_namespaced_pod(
            pod["metadata"]["name"], NAMESPACE, {"metadata": {"finalizers": None}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        now = stamp()
        last: dict[str, Any] = {"conditions": [first, job_condition(final, reason, text, now)],
                                counter: 1, "uncountedTerminatedPods": {counter: None}}  # fmt: skip
        if code == 0:
            last["completionTime"] = now
        self._status(name, last)
        return ended

    def _status(self, job: str, status: dict[str, Any]) -> None:
        self.batch.patch_namespaced_job_status(
            job, NAMESPACE, {"status": status}, _content_type="application/merge-patch+json"
        )  # fmt: skip

    def release(self) -> None:
        """Drops the tracking finalizer of every Pod left with one (a run that timed out), so
        the namespace can be deleted for the next N."""
        pods = self.core.list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/managed-by=pgshift"
        )  # fmt: skip
        for pod in pods.items:
            if TRACKING_FINALIZER in (pod.metadata.finalizers or []):
                with contextlib.suppress(kubernetes.client.exceptions.ApiException):
                    self.core.patch_namespaced_pod(
                        pod.metadata.name, NAMESPACE, {"metadata": {"finalizers": None}},
                        _content_type="application/merge-patch+json",
                    )  # fmt: skip


# --- --check-jobs: the bench's Job controller against the real one -----------------------------


class FixedKubelet(Kubelet):
    """Ends the check's Pods with a fixed result: exit 0 for the Job `ok`, 1 for `bad`."""

    def result(self, labels: dict[str, str], runner: dict[str, Any]) -> tuple[int, str]:
        return (0 if labels.get("check") == "ok" else 1), '{"check": true}'


def scrubbed(event: Any) -> str:
    """An event as JSON without what differs from run to run (times, uids, generated names,
    resource versions). PURE."""
    text = json.dumps(event, sort_keys=True)
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]*"', '"TIME"', text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UID", text)
    text = re.sub(r'"(ok|bad)-[a-z0-9]{5}"', r'"\1-POD"', text)
    return re.sub(r'"resourceVersion": "\d+"', '"resourceVersion": "RV"', text)


def job_events(job_controller: bool) -> list[str]:
    """The watch events of two Jobs of the operator's shape, one whose Pod succeeds and one
    whose Pod fails, completed by the Job controller or by `BenchJobs`."""
    with control_plane_without_node(job_controller=job_controller) as kubeconfig:
        kubernetes.config.load_kube_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        api = kubernetes.client.ApiClient()
        core, batch = kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
        kubectl(kubeconfig, "create", "namespace", NAMESPACE)
        for _ in range(100):
            with contextlib.suppress(RuntimeError):
                kubectl(kubeconfig, "get", "-n", NAMESPACE, "serviceaccount", "default")
                break
            time.sleep(0.2)
        events: list[str] = []
        pods: dict[str, str] = {}
        stop = threading.Event()

        def on_job(kind: str, obj: dict[str, Any]) -> None:
            events.append(scrubbed(["Job", kind, obj["metadata"]["name"], obj.get("status")]))

        def on_pod(kind: str, obj: dict[str, Any]) -> None:
            meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
            pods.setdefault(meta["labels"]["job-name"], meta["name"])
            events.append(scrubbed(["Pod", kind, meta, obj["spec"], obj.get("status")]))

        watches = [threading.Thread(target=watch, args=(stop, call, fn), daemon=True)
                   for call, fn in ((batch.list_namespaced_job, on_job),
                                    (core.list_namespaced_pod, on_pod))]  # fmt: skip
        for t in watches:
            t.start()
        time.sleep(1)
        kubelet = FixedKubelet(core, {}, Path(), Path(), replay=True)
        bench_jobs = BenchJobs(core, batch, kubelet)
        runner = {"name": "runner", "image": "pgshift", "command": ["pgshift", "check"],
                  "terminationMessagePolicy": "FallbackToLogsOnError"}  # fmt: skip
        for name in ("ok", "bad"):
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": name, "labels": {"check": name}},
                   "spec": {"backoffLimit": 0, "template": {
                       "metadata": {"labels": {"check": name}},
                       "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                "containers": [runner]}}}}  # fmt: skip
            kubectl(kubeconfig, "create", "-n", NAMESPACE, "-f", "-", input=json.dumps(job))
            if not job_controller:
                got = kubectl(kubeconfig, "get", "-n", NAMESPACE, "job", name, "-o", "json")
                bench_jobs.complete(json.loads(got))
            else:
                for _ in range(100):
                    if name in pods:
                        break
                    time.sleep(0.1)
                kubelet.end(pods[name], runner, *kubelet.result({"check": name}, runner))
            time.sleep(3)  # the Job controller's last writes, and the watches'
        stop.set()
        return events


def check_jobs() -> int:
    """Compares what the Job controller and `BenchJobs` write, event by event."""
    real, bench = job_events(job_controller=True), job_events(job_controller=False)
    if real == bench:
        print(f"bench_fleet --check-jobs: the same {len(real)} Job and Pod events as "
              "kube-controller-manager's Job controller writes")  # fmt: skip
        return 0
    diff = difflib.unified_diff(real, bench, "job-controller", "bench", lineterm="")
    print("bench_fleet --check-jobs: the bench's Jobs differ from the Job controller's:")
    print("\n".join(diff))
    return 1


# --- what the bench watches ---------------------------------------------------------------------


@dataclass
class Timeline:
    created: dict[str, float] = field(default_factory=dict)
    first_status: dict[str, float] = field(default_factory=dict)
    complete: dict[str, float] = field(default_factory=dict)
    #: per Migration: seq -> when its Job was first seen, and when its Pod terminated.
    job_seen: dict[str, dict[int, float]] = field(default_factory=dict)
    pod_ended: dict[str, dict[int, float]] = field(default_factory=dict)
    #: per Migration: seq -> when its Job was seen Complete or Failed (the Job controller).
    job_done: dict[str, dict[int, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gaps(self, since: str = "pod") -> list[float]:
        """Next Job seen minus this Job's Pod terminated (`pod`) or Job finished (`job`: the
        operator's part alone; the Job controller's is the difference)."""
        found = []
        for name, ended in (self.pod_ended if since == "pod" else self.job_done).items():
            seen = self.job_seen.get(name, {})
            for seq, t in ended.items():
                if seq + 1 in seen:
                    found.append(seen[seq + 1] - t)
        return found


def watch(stop: threading.Event, list_call: Any, on_event: Any, **kw: Any) -> None:
    version = ""
    while not stop.is_set():
        w = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        try:
            stream = w.stream(  # type: ignore[no-untyped-call]
                list_call, namespace=NAMESPACE, timeout_seconds=5, resource_version=version, **kw
            )
            for ev in stream:
                obj = ev["raw_object"]  # the API's JSON, camelCase, for every kind
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                on_event(ev["type"], obj)
                if stop.is_set():
                    break
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 410:  # too old: watch from now
                version = ""
            else:
                print(f"bench watch: {exc.status} {exc.reason}", file=sys.stderr)
                time.sleep(0.5)
        except Exception as exc:  # a watch that fails says so: its figures would be missing
            print(f"bench watch: {exc!r}", file=sys.stderr)
            time.sleep(0.5)


# --- the operator process ------------------------------------------------------------------------


def operator_cmd(root: Path) -> list[str]:
    return [str(root / ".venv" / "bin" / "python"), "-m", "pgshift.controller", "-n", NAMESPACE]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- one run -------------------------------------------------------------------------------------


def run_fleet(n: int, args: argparse.Namespace, kubeconfig: Path, pg: PgServer, host_ip: str
              ) -> dict[str, Any]:  # fmt: skip
    kubernetes.config.load_kube_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    api = kubernetes.client.ApiClient()
    core = kubernetes.client.CoreV1Api(api)
    batch = kubernetes.client.BatchV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRD))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/migrations.pgshift.dev",
            "--timeout=60s")  # fmt: skip
    with contextlib.suppress(RuntimeError):
        kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=300s")
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    # the namespace's ServiceAccount comes from a controller: Jobs' Pods need it.
    for _ in range(100):
        with contextlib.suppress(RuntimeError):
            kubectl(kubeconfig, "get", "-n", NAMESPACE, "serviceaccount", "default")
            break
        time.sleep(0.2)

    names = [f"app{i:04d}" for i in range(n)]
    for name in names:
        pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.psql(f'CREATE DATABASE "{name}"')
    urls = {name: pg.url(name).replace("127.0.0.1", host_ip) for name in names}
    support, migrations = fleet_objects(n, [urls[x] for x in names])
    create_all(kubeconfig, support)

    source = Path(tempfile.mkdtemp(prefix="pgshift-bench-source-"))
    for key, text in source_data().items():
        (source / key).write_text(text)
    kubelet = Kubelet(core, urls, source, args.operator_root / ".venv" / "bin" / "pgshift",
                      replay=args.kubelet == "replay")  # fmt: skip
    bench_jobs = BenchJobs(core, batch, kubelet) if args.jobs == "bench" else None
    timeline = Timeline()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=4)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)

    def on_migration(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        now = time.monotonic()
        with timeline.lock:
            timeline.created.setdefault(name, now)
            if phase:
                timeline.first_status.setdefault(name, now)
            if phase == "Complete":
                timeline.complete.setdefault(name, now)

    def on_job(kind: str, obj: dict[str, Any]) -> None:
        labels = obj["metadata"].get("labels") or {}
        name, seq = labels.get("pgshift.dev/migration"), labels.get("pgshift.dev/seq")
        if name and seq is not None:
            now = time.monotonic()
            conds = (obj.get("status") or {}).get("conditions") or []
            done = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in conds)  # fmt: skip
            with timeline.lock:
                timeline.job_seen.setdefault(name, {}).setdefault(int(seq), now)
                if done:
                    timeline.job_done.setdefault(name, {}).setdefault(int(seq), now)
            job = obj["metadata"]["name"]
            started = (obj.get("status") or {}).get("startTime")
            if bench_jobs is None or kind == "DELETED" or done or started or job in kubelet.done:
                return
            kubelet.done.add(job)
            pool.submit(complete_job, obj)

    def complete_job(obj: dict[str, Any]) -> None:
        assert bench_jobs is not None
        try:
            ended(obj, bench_jobs.complete(obj))
        except Exception as exc:  # a benchmark's Job controller: say so, the Job stays active
            print(f"bench jobs: {obj['metadata']['name']}: {exc!r}", file=sys.stderr)

    def ended(obj: dict[str, Any], t: float) -> None:
        labels = obj["metadata"].get("labels") or {}
        name, seq = labels.get("pgshift.dev/migration"), labels.get("pgshift.dev/seq")
        if name and seq is not None:
            with timeline.lock:
                timeline.pod_ended.setdefault(name, {}).setdefault(int(seq), t)

    def on_pod(kind: str, obj: dict[str, Any]) -> None:
        phase = (obj.get("status") or {}).get("phase")
        pod = obj["metadata"]["name"]
        if phase in ("Succeeded", "Failed"):
            ended(obj, time.monotonic())
            return
        if bench_jobs or args.kubelet == "node" or kind == "DELETED" or pod in kubelet.done:
            return
        kubelet.done.add(pod)
        pool.submit(complete_pod, obj)

    def complete_pod(obj: dict[str, Any]) -> None:
        try:
            ended(obj, kubelet.finish(obj))
        except Exception as exc:  # a benchmark's kubelet: say so, the Pod stays Pending
            print(f"bench kubelet: {obj['metadata']['name']}: {exc!r}", file=sys.stderr)

    selector = "app.kubernetes.io/managed-by=pgshift"
    by_label = {"label_selector": selector}
    crd = {"group": "pgshift.dev", "version": "v1alpha1", "plural": "migrations"}
    threads = [
        threading.Thread(target=watch, args=(stop, call, fn), kwargs=kw, daemon=True)
        for call, fn, kw in (
            (custom.list_namespaced_custom_object, on_migration, crd),
            (batch.list_namespaced_job, on_job, by_label),
            (core.list_namespaced_pod, on_pod, by_label),
        )
    ]
    for t in threads:
        t.start()

    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PGSHIFT_LOG_FORMAT": "plain",
           "PGSHIFT_LIVENESS": "", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="pgshift-bench-op-")) / "operator.log"
    with log.open("wb") as out:
        op = subprocess.Popen(operator_cmd(args.operator_root), env=env, stdout=out,
                              stderr=subprocess.STDOUT, cwd=args.operator_root)  # fmt: skip
    try:
        time.sleep(5)  # the operator's start-up (imports, watches) is not the fleet's cost
        cpu0, plane0 = cpu_seconds(op.pid), sum(cpu_seconds(p) for p in CONTROL_PLANE_PIDS)
        t0 = time.monotonic()
        create_all(kubeconfig, migrations)
        deadline = t0 + args.timeout
        while len(timeline.complete) < n and time.monotonic() < deadline:
            if op.poll() is not None:
                raise RuntimeError(f"the operator exited with {op.returncode}; log: {log}")
            time.sleep(0.5)
        t_all = time.monotonic() - t0
        busy_cpu = cpu_seconds(op.pid) - cpu0
        plane_cpu = sum(cpu_seconds(p) for p in CONTROL_PLANE_PIDS) - plane0
        complete = len(timeline.complete)
        peak_busy = peak_rss_mb(op.pid)
        # idle: the fleet is Complete; what does it cost to keep watching it?
        cpu1, i0 = cpu_seconds(op.pid), time.monotonic()
        time.sleep(args.idle)
        idle_share = (cpu_seconds(op.pid) - cpu1) / (time.monotonic() - i0)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        myself = resource.getrusage(resource.RUSAGE_SELF)
        runner_cpu = (children.ru_utime + children.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        firsts = [timeline.first_status[x] - timeline.created[x]
                  for x in timeline.first_status if x in timeline.created]  # fmt: skip
        gaps, operator_gaps = timeline.gaps(), timeline.gaps("job")
        return {
            "n": n,
            "kubelet": args.kubelet,
            "jobs": args.jobs,
            "operator": str(args.operator_root),
            "complete": f"{complete}/{n}",
            "all_complete_s": round(t_all, 1),
            "gap_median_s": round(statistics.median(gaps), 2) if gaps else None,
            "gap_p90_s": round(pct(gaps, 0.9), 2) if gaps else None,
            "gap_operator_median_s": round(statistics.median(operator_gaps), 2)
            if operator_gaps
            else None,
            "gap_operator_p90_s": round(pct(operator_gaps, 0.9), 2) if operator_gaps else None,
            "first_status_median_s": round(statistics.median(firsts), 2) if firsts else None,
            "first_status_max_s": round(max(firsts), 2) if firsts else None,
            "operator_peak_rss_mb": round(max(peak_busy, peak_rss_mb(op.pid)), 1),
            "operator_rss_idle_mb": round(rss_mb(op.pid), 1),
            "operator_cpu_busy_core": round(busy_cpu / max(t_all, 1e-9), 3),
            "operator_cpu_busy_s": round(busy_cpu, 1),
            "operator_cpu_idle_core": round(idle_share, 4),
            "runner_cpu_s": round(runner_cpu, 1),
            "runner_host_runs": kubelet.host_runs,
            "replayed": kubelet.replayed,
            "control_plane_cpu_s": round(plane_cpu, 1),
            # the bench's own work (watches, and with `--jobs bench` the Job controller's).
            "bench_cpu_s": round(
                myself.ru_utime + myself.ru_stime - self_before.ru_utime - self_before.ru_stime, 1
            ),
            "load_1m": round(os.getloadavg()[0], 2),
            "operator_log": str(log),
        }
    finally:
        stop.set()
        op.send_signal(signal.SIGTERM)
        try:
            op.wait(timeout=30)
        except subprocess.TimeoutExpired:
            op.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        if bench_jobs is not None:
            with contextlib.suppress(kubernetes.client.exceptions.ApiException):
                bench_jobs.release()
        shutil.rmtree(source, ignore_errors=True)
        for name in names:
            with contextlib.suppress(subprocess.CalledProcessError):
                pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--kubelet", choices=("replay", "host", "node"), default="replay")
    parser.add_argument(
        "--jobs",
        choices=("bench", "controller"),
        default=None,
        help="who completes Jobs: the bench (default; no Job controller) or "
        "kube-controller-manager's Job controller (default with --kubelet node)",
    )
    parser.add_argument(
        "--operator-root",
        type=Path,
        default=ROOT,
        help="the checkout whose .venv runs the operator (default: this one)",
    )
    parser.add_argument(
        "--check-jobs",
        action="store_true",
        help="only compare the bench's Job completion with the Job controller's, and exit",
    )
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="per N, seconds")
    args = parser.parse_args(argv)  # fmt: skip
    args.operator_root = args.operator_root.resolve()
    if args.check_jobs:
        return check_jobs()
    if args.jobs is None:
        args.jobs = "controller" if args.kubelet == "node" else "bench"
    if args.jobs == "bench" and args.kubelet == "node":
        print("bench_fleet: --jobs bench needs --kubelet replay or host (on the real node "
              "the kubelet runs Pods and the Job controller completes their Jobs)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not (args.operator_root / ".venv" / "bin" / "python").exists():
        print(f"bench_fleet: --operator-root {args.operator_root} has no .venv", file=sys.stderr)
        return 2
    results = []
    with contextlib.ExitStack() as stack:
        if args.kubelet == "node":
            from localcluster import image
            from localcluster.cluster import launch
            from localcluster.network import NODE_NETWORKS

            archive = image.archive_path()
            cluster = launch(images=[archive if archive.exists() else image.build().archive],
                             tie_to_parent=True)  # fmt: skip
            stack.callback(cluster.stop)
            kubeconfig, host_ip = cluster.kubeconfig, cluster.host_ip
            pg = stack.enter_context(running_server(host=host_ip, allow=NODE_NETWORKS,
                                                    max_connections=300))  # fmt: skip
        else:
            plane = control_plane_without_node(job_controller=args.jobs == "controller")
            kubeconfig = stack.enter_context(plane)
            host_ip = "127.0.0.1"
            pg = stack.enter_context(running_server(max_connections=300))
        for n in args.n:
            result = run_fleet(n, args, kubeconfig, pg, host_ip)
            results.append(result)
            print(json.dumps(result), flush=True)
    print(table(results))
    return 0 if all(r["complete"] == f"{r['n']}/{r['n']}" for r in results) else 1


def table(results: list[dict[str, Any]]) -> str:
    cols = ["n", "kubelet", "jobs", "complete", "all_complete_s", "gap_median_s", "gap_p90_s",
            "gap_operator_median_s",
            "first_status_median_s", "first_status_max_s", "operator_peak_rss_mb",
            "operator_cpu_busy_core", "operator_cpu_idle_core", "runner_cpu_s",
            "control_plane_cpu_s", "bench_cpu_s", "load_1m"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in results]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
