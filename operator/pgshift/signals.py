"""SIGTERM (and SIGINT) end a run cleanly, at any point: the running query cancelled, an
`Interrupted` summary, the documented exit code (1), within a second.

One process-wide handler (`install`, the first thing the CLI does), in three modes:
- the first signal raises `Terminated` where the program is. It is a KeyboardInterrupt, which
  psycopg answers by cancelling the running query on the server before re-raising; the runner
  turns it into a failure with reason Interrupted.
- every later signal is only counted: the first one's clean-up (the cancel, the summary, the
  result file) runs to its end instead of being cut short by a second `Terminated`.
- after `hold()` (the steps are over: bookkeeping, releasing the lock, writing the result) a
  signal is only counted, and the CLI reports the run as Interrupted: raising there could only
  lose what the summary must say (what the tracking table holds).
`shielded()` makes a few lines atomic (one log line written whole): a signal inside is raised
at its end. Only the main thread handles signals; these functions are for it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(KeyboardInterrupt):
    """Raised by the handler. A KeyboardInterrupt, because psycopg answers exactly that by
    cancelling the running query on the server before re-raising."""


@dataclass
class _State:
    installed: bool = False
    previous: tuple[Any, ...] = ()
    #: signals received since `install`.
    received: int = 0
    #: `Terminated` was raised once: later signals are only counted.
    raised: bool = False
    held: bool = False
    shield_depth: int = 0
    #: a signal came inside `shielded()`: raised when the last shield ends.
    pending: bool = False


_state = _State()


def _handler(signum: int, _frame: Any) -> None:
    _state.received += 1
    if _state.raised or _state.held:
        return
    if _state.shield_depth:
        _state.pending = True
        return
    _state.raised = True
    raise Terminated(f"signal {signum}")


def install() -> bool:
    """Handle SIGTERM and SIGINT as above, from now on (state reset). False outside the main
    thread (an API caller in a thread: signals are not ours to take)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    # the state first: a signal may come as soon as the first handler is in place.
    _state.received = 0
    _state.raised = _state.held = _state.pending = False
    _state.shield_depth = 0
    if not _state.installed:
        _state.previous = tuple(signal.getsignal(s) for s in _SIGNALS)
        _state.installed = True
    for s in _SIGNALS:
        signal.signal(s, _handler)
    return True


def uninstall() -> None:
    """Give the signals back to the handlers `install` found."""
    if not _state.installed or threading.current_thread() is not threading.main_thread():
        return
    for s, previous in zip(_SIGNALS, _state.previous, strict=True):
        signal.signal(s, previous)
    _state.installed = False


def ignore_from_now() -> None:
    """The process is about to exit with its code: a signal now is ignored (the interpreter's
    teardown would otherwise give the default action back, and a SIGTERM would kill it)."""
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    _state.installed = False


def hold() -> None:
    """From now on a signal is only counted (see the module): the run is finishing."""
    if _state.installed:
        _state.held = True


def requested() -> bool:
    """Whether a SIGTERM/SIGINT came since `install`."""
    return _state.received > 0


@contextmanager
def shielded() -> Iterator[None]:
    """A signal inside waits for the end of the block, then raises (unless held)."""
    if not _state.installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.shield_depth += 1
    try:
        yield
    finally:
        _state.shield_depth -= 1
        if not _state.shield_depth and _state.pending:
            _state.pending = False
            if not (_state.raised or _state.held):
                _state.raised = True
                raise Terminated("signal")


@contextmanager
def sigterm_cancels() -> Iterator[None]:
    """While running steps a SIGTERM interrupts like Ctrl-C. Under the CLI the handler is in
    place already; an API caller gets it for the block (and its previous handlers back)."""
    if _state.installed:
        yield
        return
    mine = install()
    try:
        yield
    finally:
        if mine:
            uninstall()
