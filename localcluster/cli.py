"""``python -m localcluster build | up | down | status`` (and ``serve``, the supervisor)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from localcluster import build, cluster, config
from localcluster.errors import LocalClusterError


def cmd_build(_: argparse.Namespace) -> int:
    binaries = build.ensure_binaries()
    for name, path in asdict(binaries).items():
        print(f"{name}: {path}")
    return 0


def _load_state() -> cluster.Cluster | None:
    path = config.state_file()
    if not path.is_file():
        return None
    return cluster.Cluster(cluster.ClusterInfo(**json.loads(path.read_text())))


def cmd_up(args: argparse.Namespace) -> int:
    current = _load_state()
    if current is not None and current.supervisor_alive():
        print(f"already up: export KUBECONFIG={current.kubeconfig}")
        return 0
    roots = json.loads(Path(args.image_roots).read_text()) if args.image_roots else None
    started = time.monotonic()
    handle = cluster.launch(image_roots=roots)
    config.state_file().parent.mkdir(parents=True, exist_ok=True)
    config.state_file().write_text(json.dumps(asdict(handle.info), indent=2))
    print(
        f"local cluster ready in {time.monotonic() - started:.1f} s at {handle.server}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={handle.kubeconfig}")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    current = _load_state()
    if current is None:
        print("no local cluster is up", file=sys.stderr)
        return 0
    current.stop()
    config.state_file().unlink(missing_ok=True)
    left = current.leftover_pids()
    if left:
        raise LocalClusterError(f"processes left after down: {left}")
    print("local cluster stopped", file=sys.stderr)
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    current = _load_state()
    if current is None or not current.supervisor_alive():
        print("down")
        return 1
    print(f"up at {current.server} (supervisor pid {current.info.supervisor_pid})")
    print(f"export KUBECONFIG={current.kubeconfig}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return cluster.serve(Path(args.dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build and cache kube-apiserver and kube-controller-manager")
    up = commands.add_parser("up", help="start a cluster in the background")
    up.add_argument("--image-roots", help="JSON file mapping image references to local folders")
    commands.add_parser("down", help="stop the cluster started by `up`")
    commands.add_parser("status", help="say whether a cluster is up")
    serve = commands.add_parser("serve", help=argparse.SUPPRESS)
    serve.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    handler = {
        "build": cmd_build,
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "serve": cmd_serve,
    }[args.command]
    try:
        return handler(args)
    except LocalClusterError as error:
        print(f"localcluster: {error}", file=sys.stderr)
        return 2
