"""SIGTERM as Ctrl-C: a Job's deadline or deletion cancels the running query and ends cleanly."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler. A KeyboardInterrupt, because psycopg answers exactly that
    by cancelling the running query on the server before re-raising."""


@contextmanager
def sigterm_cancels() -> Iterator[None]:
    """While running steps, SIGTERM interrupts like Ctrl-C (the query is cancelled)."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests calling the API from a thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
