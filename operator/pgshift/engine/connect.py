"""Database URLs: parse and validate, connect, and refuse transaction-pooled endpoints.

Credentials reach libpq as connection keywords (in-process) and pg_dump through `PG*`
environment variables; they are never put on a command line. Every message is redacted.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgshift.contract.sqlstates import connect_failure_sqlstate
from pgshift.errors import BadDatabaseUrl, ConnectionError_, PooledConnection
from pgshift.logs import redact, redact_url_error

URL_OPTION = "--database-url / DATABASE_URL"

#: RDS Proxy endpoints: `<name>.proxy-<id>.<region>.rds.amazonaws.com` and custom endpoints
#: `<name>.endpoint.proxy-<id>.<region>.rds.amazonaws.com`. RDS Proxy multiplexes transactions.
_RDS_PROXY = re.compile(r"(^|\.)proxy-[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com(\.cn)?\.?$", re.I)
#: Neon's pooled endpoints (`ep-...-pooler.<region>.aws.neon.tech`) run pgbouncer in
#: transaction mode.
_NEON_POOLER = re.compile(r"-pooler\.[a-z0-9.-]*neon\.tech\.?$", re.I)
#: Supabase's pooler (Supavisor) is in transaction mode on port 6543.
_SUPABASE_POOLER = re.compile(r"(^|\.)pooler\.supabase\.com\.?$", re.I)
#: pgbouncer's default port.
PGBOUNCER_PORT = 6432

#: URL query keys that are not libpq's but say "this is a pooler" (Prisma's convention).
_POOLER_FLAGS = ("pgbouncer",)

#: libpq keyword -> environment variable, for tools (pg_dump) that must not get a URL in argv.
_ENV_OF = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "passfile": "PGPASSFILE",
}


@dataclass(frozen=True)
class Database:
    """A parsed, validated database URL. `repr` never shows the password."""

    params: dict[str, str] = field(repr=False)
    #: `user@host:port/dbname`, safe for messages.
    display: str = ""

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    @property
    def host(self) -> str:
        return self.params.get("host", "")

    @property
    def port(self) -> int | None:
        port = self.params.get("port")
        return int(port) if port and port.isdigit() else None

    @property
    def dbname(self) -> str:
        return self.params.get("dbname") or self.params.get("user") or ""

    def libpq_env(self) -> dict[str, str]:
        """`PG*` variables for pg_dump / pg_restore / psql."""
        return {_ENV_OF[k]: v for k, v in self.params.items() if k in _ENV_OF and v is not None}

    def with_dbname(self, dbname: str) -> Database:
        params = {**self.params, "dbname": dbname}
        return Database(params=params, display=_display(params))


def _display(params: dict[str, str]) -> str:
    user = params.get("user", "")
    host = params.get("host", "") or "localhost"
    port = params.get("port", "")
    return (
        f"{user + '@' if user else ''}{host}{':' + port if port else ''}/{params.get('dbname', '')}"
    )


def parse_url(url: str | None, *, option: str = URL_OPTION) -> Database:
    """Validate a `postgres://` / `postgresql://` URL; errors name the option, never the secret."""
    if not url or not url.strip():
        raise BadDatabaseUrl(f"{option} is not set")
    url = url.strip()
    try:
        split = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise BadDatabaseUrl(
            f"{option}: not a valid URL ({redact_url_error(str(exc), _passwords(url))})"
        ) from None
    if split.scheme.lower() not in ("postgres", "postgresql"):
        raise BadDatabaseUrl(
            f"{option}: expected postgresql://user:password@host:port/dbname, got a "
            f"{(split.scheme + '://') if split.scheme else 'value without a scheme'} URL"
        )
    _refuse_raw_userinfo(url, option)
    query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    for flag in _POOLER_FLAGS:
        if flag in query:
            if query[flag] and query[flag][-1].lower() in ("", "true", "1", "yes", "on"):
                raise PooledConnection(
                    f"{option}: the URL says it goes through a pooler ({flag}={query[flag][-1]})"
                )
            # `pgbouncer=false`: not a libpq keyword, drop it.
            kept = [(k, v) for k, vs in query.items() if k != flag for v in vs]
            url = urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(kept)))
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = redact_url_error(str(exc).strip(), _passwords(url))
        raise BadDatabaseUrl(f"{option}: {reason}") from None
    port = params.get("port")
    if port is not None and not all(p.isdigit() for p in str(port).split(",")):
        raise BadDatabaseUrl(f"{option}: port {port!r} is not a number")
    clean = {k: str(v) for k, v in params.items() if v is not None}
    database = Database(params=clean, display=_display(clean))
    _refuse_pooler_host(database, option)
    return database


def _passwords(url: str) -> list[str | None]:
    """The password of `url` as urllib reads it, raw and decoded (what a parse error may quote)."""
    try:
        raw = urllib.parse.urlsplit(url).password
    except ValueError:
        return []
    return [raw, urllib.parse.unquote(raw)] if raw else []


def _refuse_raw_userinfo(url: str, option: str) -> None:
    """A URL has one `@`, after the user and password and before the host. A second `@`, or a
    `/` before it, is a raw password holding `@` or `/`: libpq and urllib would read another
    password, host and database out of it (and echo its tail in their errors)."""
    authority_and_path = url.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
    if "@" not in authority_and_path:
        return
    userinfo = authority_and_path.split("@", 1)[0]
    if authority_and_path.count("@") > 1 or "/" in userinfo:
        raise BadDatabaseUrl(
            f"{option}: the user or password holds a raw '@' or '/'; percent-encode them "
            "(@ as %40, / as %2F, % as %25, : as %3A)"
        )


def _refuse_pooler_host(db: Database, option: str) -> None:
    for host in filter(None, db.host.split(",")):
        if _RDS_PROXY.search(host):
            raise PooledConnection(f"{option}: {host} is an RDS Proxy endpoint")
        if _NEON_POOLER.search(host):
            raise PooledConnection(f"{option}: {host} is a Neon pooled (pgbouncer) endpoint")
        if _SUPABASE_POOLER.search(host) and db.port == 6543:
            raise PooledConnection(
                f"{option}: {host}:6543 is Supabase's transaction-mode pooler (use port 5432 or "
                "the direct host)"
            )


def connect(
    db: Database,
    *,
    application_name: str = "pgshift",
    autocommit: bool = True,
    connect_timeout: int = 10,
) -> psycopg.Connection[Any]:
    """Open a connection; failures become one redacted line naming the target."""
    # libpq keywords (host, dbname, sslmode...) travel as one mapping: psycopg types its
    # named parameters, not the keyword pass-through.
    kwargs: dict[str, Any] = {**db.params, "application_name": application_name}
    if "connect_timeout" not in db.params:
        kwargs["connect_timeout"] = connect_timeout
    try:
        conn = psycopg.connect(**kwargs, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise ConnectionError_(
            f"cannot connect to {db.display}: {_libpq_reason(exc)}",
            sqlstate=connect_failure_sqlstate(str(exc)),
        ) from None
    return conn


def _libpq_reason(exc: Exception) -> str:
    text = redact(str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # libpq repeats "connection to server at ... failed:" per address; keep the reason.
    reasons = []
    for ln in lines:
        ln = re.sub(r"^connection failed:\s*", "", ln)
        ln = re.sub(r"^connection to server (at|on) .*? failed:\s*", "", ln)
        ln = re.sub(r"^FATAL:\s*", "", ln)
        if ln and ln not in reasons:
            reasons.append(ln)
    return "; ".join(reasons) or type(exc).__name__


def check_session(
    conn: psycopg.Connection[Any], db: Database, *, application_name: str = "pgshift"
) -> None:
    """Refuse connections where a session does not survive a transaction.

    Session advisory locks (the migration lock) only mean something if every transaction of
    the run reaches the same backend, and no other client's. Checks:
    - the backend pid is stable across separate transactions;
    - when a proxy is in between (the pid libpq got at connect time, from the proxy, is not
      the server's `pg_backend_pid()`), a second connection opened while ours is idle must get
      another backend: a transaction pooler hands it ours, a session pooler cannot;
    - on pgbouncer's port, the server must not see another client port than ours.
    A pooler that hands a later transaction another backend is also caught during the run: each
    step checks it runs on the backend that took the lock.
    """
    pids: set[int | None] = set()
    for _ in range(3):
        with conn.transaction():
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        pids.add(row[0] if row else None)
    if len(pids) > 1:
        raise PooledConnection(
            f"{db.display}: consecutive transactions ran on different server backends "
            f"({', '.join(sorted(str(p) for p in pids))}): a transaction pooler is in between"
        )
    (ours,) = pids
    if ours != conn.info.backend_pid and ours is not None:
        other = connect(db, application_name=application_name)
        try:
            row = other.execute("SELECT pg_backend_pid()").fetchone()
        finally:
            other.close()
        if row and row[0] == ours:
            raise PooledConnection(
                f"{db.display}: a second connection was given this connection's server backend "
                f"(pid {ours}) while it was idle: a transaction pooler is in between"
            )
    if db.port == PGBOUNCER_PORT and _behind_proxy(conn):
        raise PooledConnection(
            f"{db.display}: port {PGBOUNCER_PORT} and the server sees another client address "
            "than ours: this looks like pgbouncer"
        )


def _behind_proxy(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    ).fetchone()
    server_sees = row[0] if row else None
    if server_sees is None:  # unix socket: no proxy can sit in between on a port
        return False
    try:
        sock = socket.socket(fileno=conn.pgconn.socket)
        try:
            ours = sock.getsockname()[1]
        finally:
            sock.detach()  # the socket belongs to libpq
    except OSError:
        return False
    return bool(ours != server_sees)
