"""The one retry table: which failures a later attempt may get past. PURE (no psycopg, no kopf).

The runner writes its decision into the summary (`failure.retryable`); the controller, which
reads the summary, decides again from the same table, so the two never disagree.

| SQLSTATE | meaning | retryable |
| --- | --- | --- |
| 08*   | connection exception (refused, lost, reset) | yes |
| 40001 | serialization failure | yes |
| 40P01 | deadlock | yes |
| 55P03 | lock not available (lock_timeout) | yes |
| 57P01 | admin shutdown (fast shutdown, pg_terminate_backend) | yes |
| 57P02 | crash shutdown (another backend crashed) | yes |
| 57P03 | cannot connect now (starting up, shutting down, recovery) | yes |
| 53300 | too many connections | yes |
| 28*   | invalid authorization (wrong password, no pg_hba entry, unknown role) | no |
| 3D000 | invalid catalog name (the database does not exist) | no |
| 57P04 | database dropped | no |
| 53100 | disk full | no |
| 57014 | query cancelled (statement_timeout, pg_cancel_backend) | no (1) |

(1) unless the runner's own SIGTERM cancelled it: then it is `Interrupted`, and a rerun resumes.

Any other SQLSTATE (a syntax error, a constraint violation...) is not retryable: the same
statement fails the same way. A connection lost mid-run without any SQLSTATE (the server
crashed, the network dropped) counts as class 08.
"""

from __future__ import annotations

import re

RETRYABLE_CLASSES = frozenset({"08"})
RETRYABLE_CODES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
#: listed so the table reads whole; anything not retryable above is not retryable anyway.
NOT_RETRYABLE_CLASSES = frozenset({"28"})
NOT_RETRYABLE_CODES = frozenset({"3D000", "57P04", "53100", "57014"})
QUERY_CANCELED = "57014"
#: what a connection lost without a SQLSTATE is taken for (08006: connection_failure).
CONNECTION_FAILURE = "08006"
#: libpq could not establish the connection (refused, no route, DNS).
CANNOT_CONNECT = "08001"


def is_retryable(sqlstate: str | None, *, cancelled_by_us: bool = False) -> bool:
    """Whether a failure with this SQLSTATE is worth another attempt. `None`: no SQLSTATE,
    i.e. the connection was lost (class 08). `cancelled_by_us`: the runner's own SIGTERM
    cancelled the statement (57014 then means "interrupted, rerun to resume")."""
    if sqlstate is None or sqlstate == "":
        return True
    if sqlstate == QUERY_CANCELED:
        return cancelled_by_us
    if sqlstate[:2] in NOT_RETRYABLE_CLASSES or sqlstate in NOT_RETRYABLE_CODES:
        return False
    return sqlstate in RETRYABLE_CODES or sqlstate[:2] in RETRYABLE_CLASSES


#: libpq puts a failed connection's reason into text only (no SQLSTATE field for start-up
#: errors), so the server's start-up messages are recognised by their text (PostgreSQL's
#: English messages, `lc_messages` C or en; a translated one counts as 08001, retryable).
_STARTUP_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), code)
    for pattern, code in (
        (r"password authentication failed", "28P01"),
        (r"authentication failed for user", "28000"),
        (r"no pg_hba\.conf entry", "28000"),
        (r"pg_hba\.conf rejects connection", "28000"),
        (r'role "[^"]*" does not exist', "28000"),
        (r'role "[^"]*" is not permitted to log in', "28000"),
        (
            r"server requested a password but no password was supplied|fe_sendauth: no password",
            "28000",
        ),
        (r'database "[^"]*" does not exist', "3D000"),
        (r"too many clients already|remaining connection slots are reserved", "53300"),
        (r'too many connections for (role|database) "', "53300"),
        (
            r"the database system is (starting up|shutting down|in recovery mode|not yet accepting"
            r"|not accepting connections)",
            "57P03",
        ),
        (r"terminating connection due to administrator command", "57P01"),
        (r"is not currently accepting connections", "55000"),
        (r"permission denied for database", "42501"),
    )
)
#: libpq's VERBOSE form puts the SQLSTATE after the severity: `FATAL:  28P01: ...`.
_VERBOSE = re.compile(r"\b(?:FATAL|ERROR|PANIC):\s+([0-9A-Z]{5}):")


def connect_failure_sqlstate(message: str) -> str:
    """The SQLSTATE of a failed connection attempt, from libpq's message; 08001 (cannot
    connect: refused, unreachable, DNS, timeout) when the server said nothing we know."""
    verbose = _VERBOSE.search(message)
    if verbose:
        return verbose.group(1)
    for pattern, code in _STARTUP_MESSAGES:
        if pattern.search(message):
            return code
    return CANNOT_CONNECT
