"""The cluster demo: `python -m examples.cluster_demo [--stay]`.

Builds the pgshift image (cached), starts a local Kubernetes cluster (localcluster: control
plane and a real node, kubelet + containerd, with the image imported), a throwaway PostgreSQL
the node's Pods reach, and the pgshift operator (a host process; its Jobs run in the image on
the node); applies `examples/quickstart` (its drizzle-kit folder as a kustomize-generated
ConfigMap, a backup claim and a Migration) and watches the Migration with `kubectl get
migrations` until it is Ready, approves the contract gate if one waits, and shows
where the backup is. `--stay` keeps everything running until Ctrl-C so you can look around.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "shop"
CRD = ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"
QUICKSTART = ROOT / "examples" / "quickstart"


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


@contextlib.contextmanager
def operator(kubeconfig: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PGSHIFT_LOG_FORMAT": "plain",
        "PGSHIFT_LIVENESS": "",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            # the operator ends with the demo, however the demo ends (SIGKILL included).
            ["setpriv", "--pdeathsig", "TERM", "--",
             sys.executable, "-m", "pgshift.controller", "-n", NAMESPACE],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def watch(cluster: Any, until: str, rounds: int = 300) -> str:
    """Print `kubectl get migrations` whenever it changes, until the column text appears."""
    last = ""
    for _ in range(rounds):
        table = cluster.kubectl("-n", NAMESPACE, "get", "migrations").stdout
        if table != last:
            print(table.rstrip(), flush=True)
            last = table
        if until in table:
            return table
        time.sleep(1)
    raise SystemExit(f"the Migration did not reach {until}; see the operator log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.cluster_demo")
    parser.add_argument("--stay", action="store_true", help="keep running until Ctrl-C")
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, CI cancelling) unwinds like Ctrl-C: operator, PostgreSQL and cluster stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from localcluster import image
    from localcluster.cluster import launch
    from localcluster.network import NODE_NETWORKS
    from tests.pgserver import running_server

    say("building the pgshift image from the Dockerfile (buildah; cached after the first run)")
    built = image.build(say=lambda line: print(f"  {line}", flush=True))
    say("starting a local Kubernetes cluster (control plane, a kubelet node, the image imported)")
    cluster = launch(images=[built.archive], tie_to_parent=True)
    try:
        # the Jobs' Pods reach PostgreSQL at the host end of the node's veth.
        with running_server(host=cluster.host_ip, allow=NODE_NETWORKS) as pg:
            say("starting PostgreSQL and creating database 'shop'")
            url = pg.create_database("shop")
            k = cluster.kubectl
            k("apply", "-f", str(CRD))
            k("wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s")
            k("create", "namespace", NAMESPACE)
            k("-n", NAMESPACE, "wait", "--for=create", "serviceaccount/default", "--timeout=30s")
            # the database URL goes into a Secret; only the Jobs' Pods ever see it.
            k("-n", NAMESPACE, "create", "secret", "generic", "shop-db",
              f"--from-literal=DATABASE_URL={url}")  # fmt: skip
            log = Path(tempfile.mkdtemp(prefix="pgshift-demo-")) / "operator.log"
            say(f"starting the pgshift operator (log: {log})")
            with operator(cluster.kubeconfig, log):
                say(f"kubectl apply -k examples/quickstart -n {NAMESPACE}")
                print(k("apply", "-k", str(QUICKSTART), "-n", NAMESPACE).stdout.rstrip())
                say("kubectl get migrations -w (plan Job, backup Job, apply Job ...)")
                table = watch(cluster, "True")
                if "Complete" not in table:
                    gate = k("-n", NAMESPACE, "get", "migration", "shop",
                             "-o", "jsonpath={.status.gate.migration}").stdout  # fmt: skip
                    say(f"Ready: only the contract step waits. Approving it: {gate}")
                    k("-n", NAMESPACE, "annotate", "migration/shop", f"pgshift.dev/approve={gate}")
                    watch(cluster, "Complete")
                say(f"kubectl pgshift status -n {NAMESPACE}   (the kubectl plugin)")
                plugin = Path(sys.executable).parent / "kubectl-pgshift"
                subprocess.run(
                    [str(plugin), "status", "-n", NAMESPACE],
                    env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
                    check=False,
                )
                say("kubectl get jobs; kubectl get pods -o wide (the node ran them in the image)")
                print(k("-n", NAMESPACE, "get", "jobs").stdout.rstrip())
                print(k("-n", NAMESPACE, "get", "pods", "-o", "wide").stdout.rstrip())
                say("events")
                events = k("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp",
                           "--field-selector", "involvedObject.kind=Migration")  # fmt: skip
                print(events.stdout.rstrip())
                backup = k("-n", NAMESPACE, "get", "migration", "shop", "-o",
                           "jsonpath={.status.lastBackup.path} {.status.lastBackup.size} "
                           "{.status.lastBackup.sha256}").stdout.split()  # fmt: skip
                if backup:
                    host = cluster.host_path_for_claim(NAMESPACE, "shop-db-backups")
                    on_host = host / backup[0].removeprefix("/backups/")
                    say("the backup")
                    print(f"  {backup[0]} on claim shop-db-backups ({backup[1]} bytes, "
                          f"sha256 {backup[2]})\n  on this machine: {on_host}")  # fmt: skip
                if args.stay:
                    say("look around (Ctrl-C ends the demo and removes everything)")
                else:
                    say("look around: run `.venv/bin/python -m examples.cluster_demo --stay` "
                        "to keep all this up, then")  # fmt: skip
                print(f"  export KUBECONFIG={cluster.kubeconfig}")
                print(f"  kubectl -n {NAMESPACE} get migrations,jobs,pods")
                print(f"  kubectl -n {NAMESPACE} describe migration shop")
                print(f"  kubectl -n {NAMESPACE} logs job/<name>")
                print(f"  PATH=$PWD/.venv/bin:$PATH kubectl pgshift status -n {NAMESPACE}")
                print(f"  psql -h {pg.host} -p {pg.port} -U {pg.user} shop"
                      "  (the password: tests/pgserver.py)")  # fmt: skip
                if args.stay:
                    with contextlib.suppress(KeyboardInterrupt):
                        signal.pause()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
