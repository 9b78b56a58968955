"""Benchmark: one operator, a fleet of N Migrations (issue 15).

    flock /work/wt/heavy.lock .venv/bin/python bench/bench_fleet.py [--n 20 100 1000]
        [--kubelet replay|host|node] [--operator-root DIR] [--idle 60] [--timeout 600]

N Migrations of the quickstart's drizzle folder (`contract.after: Immediately`, no backup),
each with its own ConfigMap, Secret and database on one private PostgreSQL
(tests/pgserver.py), created in one `kubectl create`, run by the operator of
`--operator-root` (default: this checkout; `/work/wt/base` gives "before") as a host process.

Where Jobs run (`--kubelet`), so that the operator's cost is told apart from the node's:
- `replay` (default; what issue 15's targets are for): a private control plane with no node
  (etcd, kube-apiserver, kube-controller-manager: the real Job controller). The bench plays
  kubelet: it watches the runner Pods the Job controller creates and writes their status as
  the kubelet would (`phase`, `containerStatuses[].state.terminated` with `exitCode`, `reason`
  and the termination message), and the Job controller marks the Job Complete or Failed. The
  message is the real runner's: the first time a step (the Job's action, sequence number and
  argv) is seen, the runner runs on the host against that Migration's database and its
  result file is recorded; every other Migration's same step replays the record.
- `host`: the same, but every Job's runner really runs on the host against its own database.
- `node`: the real local cluster (`localcluster`, containerd + kubelet, the project's image):
  Pods run for real; the figures include the node's cost (issue 15: 300 Pods on 2 cores cannot
  finish in 90 s, so the operator targets are for `replay`).

Printed per N: time to all Complete, the per-step gap (a Job's Pod terminated -> the next Job
of that Migration created: median and p90; `gap_operator`: from the Job seen finished, the
operator's part without the Job controller's), time to first status (created -> first
`status.phase`, median and max), operator peak RSS and CPU (share of one core while the fleet
ran, and over `--idle` seconds of an idle fleet afterwards), and the runner's CPU (host runs)
beside the control plane's. This is a benchmark, not a test: it asserts only that every
Migration reached Complete.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
def control_plane_without_node() -> Iterator[Path]:
    """etcd, kube-apiserver and kube-controller-manager (the Job controller), no scheduler and
    no node: nothing runs a Pod but the bench. Yields the kubeconfig."""
    from localcluster import build, pki, processes
    from localcluster.control_plane import ControlPlane, Endpoints

    class NoScheduler(ControlPlane):
        def _start(self, name: str, argv: list[str], logs: Path) -> None:
            if name != "kube-scheduler":  # unscheduled Pods stay unbound: the bench binds none
                super()._start(name, argv, logs)

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


CONTROL_PLANE_PIDS: list[int] = []


# --- the bench as kubelet -----------------------------------------------------------------------


@dataclass
class Kubelet:
    """Completes runner Pods: runs the runner on the host (the first time a step is seen, or
    always with `host`) and writes the Pod's status with its result as termination message."""

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
    done: set[str] = field(default_factory=set)

    def finish(self, pod: dict[str, Any]) -> float:
        meta = pod["metadata"]
        runner = next(c for c in pod["spec"]["containers"] if c["name"] == "runner")
        argv = [*runner.get("command", []), *runner.get("args", [])]
        labels = meta.get("labels") or {}
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
        code, message = record
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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
            meta["name"], NAMESPACE, {"status": status},
            _content_type="application/merge-patch+json",
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
    timeline = Timeline()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=4)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)

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
        if args.kubelet == "node" or kind == "DELETED" or pod in kubelet.done:
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
        runner_cpu = (children.ru_utime + children.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        firsts = [timeline.first_status[x] - timeline.created[x]
                  for x in timeline.first_status if x in timeline.created]  # fmt: skip
        gaps, operator_gaps = timeline.gaps(), timeline.gaps("job")
        return {
            "n": n,
            "kubelet": args.kubelet,
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
        shutil.rmtree(source, ignore_errors=True)
        for name in names:
            with contextlib.suppress(subprocess.CalledProcessError):
                pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--kubelet", choices=("replay", "host", "node"), default="replay")
    parser.add_argument(
        "--operator-root",
        type=Path,
        default=ROOT,
        help="the checkout whose .venv runs the operator (default: this one)",
    )
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="per N, seconds")
    args = parser.parse_args(argv)  # fmt: skip
    args.operator_root = args.operator_root.resolve()
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
            kubeconfig = stack.enter_context(control_plane_without_node())
            host_ip = "127.0.0.1"
            pg = stack.enter_context(running_server(max_connections=300))
        for n in args.n:
            result = run_fleet(n, args, kubeconfig, pg, host_ip)
            results.append(result)
            print(json.dumps(result), flush=True)
    print(table(results))
    return 0 if all(r["complete"] == f"{r['n']}/{r['n']}" for r in results) else 1


def table(results: list[dict[str, Any]]) -> str:
    cols = ["n", "kubelet", "complete", "all_complete_s", "gap_median_s", "gap_p90_s",
            "gap_operator_median_s",
            "first_status_median_s", "first_status_max_s", "operator_peak_rss_mb",
            "operator_cpu_busy_core", "operator_cpu_idle_core", "runner_cpu_s",
            "control_plane_cpu_s"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in results]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
