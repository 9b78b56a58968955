"""`pgshift operator`: run the kopf operator (one active replica, no peering)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import kopf

from pgshift.controller import metrics
from pgshift.controller.config import Settings


def run(
    namespaces: list[str] | None = None,
    *,
    liveness: str | None = None,
    verbose: bool = False,
    log_format: str | None = None,
) -> None:
    """Block running the operator until SIGINT/SIGTERM.

    Namespaces (and every other setting) default to the environment (`PGSHIFT_*`, see
    `config.Settings`); none means cluster-wide.
    """
    settings = Settings.from_env()
    try:
        scrape = metrics.parse_endpoint(settings.metrics)
    except metrics.EndpointError as exc:
        # bad configuration: one line, exit 2, before anything is watched or started.
        print(f"pgshift operator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    fmt = (log_format or settings.log_format).lower()
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if fmt == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger("pgshift").setLevel(logging.DEBUG if verbose else logging.INFO)
    # importing registers the handlers with kopf's default registry.
    from pgshift.controller import handlers  # noqa: F401

    if scrape is not None:
        metrics.serve(scrape)
    chosen = list(namespaces or settings.namespaces)
    endpoint = settings.liveness if liveness is None else liveness
    kopf.run(
        # kopf would otherwise name itself from getpass.getuser(), which fails for a uid with no
        # passwd entry (any runAsUser, OpenShift's random uids).
        identity=f"pgshift@{os.environ.get('HOSTNAME') or socket.gethostname()}",  # type: ignore[arg-type]
        standalone=True,
        clusterwide=not chosen,
        namespaces=chosen,
        liveness_endpoint=endpoint or None,
    )


def main(argv: list[str] | None = None) -> int:
    """`pgshift operator [-n NS ...] [--liveness URL] [--log-format json|plain] [-v]`."""
    parser = argparse.ArgumentParser(prog="pgshift operator")
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only these (repeatable)"
    )
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--liveness", default=None, help="kopf probe endpoint ('' = none)")
    parser.add_argument("--log-format", choices=("json", "plain"), default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    argv = list(argv or [])
    if argv[:1] == ["--"]:  # `pgshift operator -- -n NS`: argparse's REMAINDER keeps the "--"
        argv = argv[1:]
    args = parser.parse_args(argv)
    run(
        [] if args.all_namespaces else args.namespace,
        liveness=args.liveness,
        verbose=args.verbose,
        log_format=args.log_format,
    )
    return 0
