"""``python -m localcluster build | up | down | status`` (and ``serve``, the supervisor)."""

from __future__ import annotations

import argparse
import json
import os
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
        # one state, one cluster: a second one would orphan the first (its netns, its node).
        raise LocalClusterError(
            f"a cluster is already up for state {config.state_file()} (supervisor pid "
            f"{current.info.supervisor_pid}, export KUBECONFIG={current.kubeconfig}): "
            "run `python -m localcluster down` first, or set LOCALCLUSTER_STATE"
        )
    if current is not None:
        current.stop()  # a dead cluster's leftovers go before a new one starts
    images = [Path(a) for a in args.image or []]
    started = time.monotonic()
    handle = cluster.launch(images=images)
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
    left = current.leftovers()
    if left:
        raise LocalClusterError(f"left after down: {', '.join(left)}")
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
    images = [Path(a) for a in json.loads(os.environ.get(cluster.IMAGES_ENV) or "[]")]
    return cluster.serve(Path(args.dir), images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "build", help="build and cache the Kubernetes commands (control plane, node)"
    )
    up = commands.add_parser("up", help="start a cluster in the background")
    up.add_argument(
        "--image",
        action="append",
        metavar="ARCHIVE",
        help="an image archive to import into the node (repeatable); default: the "
        "built pgshift image when `make image` made it",
    )
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
