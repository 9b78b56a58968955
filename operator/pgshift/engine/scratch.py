"""The scratch target: a server where pgshift may create, use and drop its own databases.

Never production, checked, not assumed: after connecting to both, the scratch connection is
refused when its server (system identifier, or host and port when the identifier cannot be
read) and its database name equal production's (`same_database`); the scratch server must run
production's PostgreSQL major, and the role must be allowed to create databases.

pgshift drops only the databases it created (`is_ours`): the name has the fixed prefix and
the run id, the database is owned by the current role, and its `COMMENT ON DATABASE` marker
carries the same run id. A scratch database left by a killed run (same three marks, no session
connected to it) is dropped by the next run (`ScratchServer.clean_leftovers`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from pgshift.engine.connect import Database, connect, parse_url
from pgshift.errors import (
    ConnectionError_,
    DatabaseError,
    ScratchIsProduction,
    ScratchNoCreateDb,
    ScratchNotOurs,
    ScratchVersionMismatch,
)
from pgshift.logs import redact

SCRATCH_OPTION = "--scratch-url"
#: every scratch database's name starts with it, then the run id.
PREFIX = "pgshift_scratch_"
#: the `COMMENT ON DATABASE` of a scratch database: this, then the run id.
MARKER = "pgshift scratch database; run "
_RUN_ID = re.compile(r"^[0-9a-f]{12}$")

Emit = Callable[..., None]


def new_run_id() -> str:
    return secrets.token_hex(6)


def scratch_name(run_id: str) -> str:
    return f"{PREFIX}{run_id}"


def marker(run_id: str) -> str:
    return f"{MARKER}{run_id}"


def is_ours(name: str, owner_is_us: bool, comment: str | None, run_id: str | None = None) -> bool:
    """PURE: whether pgshift created this database (see the module); `run_id`: that run's."""
    if not name.startswith(PREFIX) or not owner_is_us or comment is None:
        return False
    rid = name.removeprefix(PREFIX)
    if not _RUN_ID.match(rid) or (run_id is not None and rid != run_id):
        return False
    return comment == marker(rid)


@dataclass(frozen=True)
class ServerIdentity:
    """Which server and database a connection reached, as the server itself says."""

    #: `pg_control_system()`'s identifier; None when the role may not read it.
    system_identifier: str | None
    #: the URL's host and port.
    host: str
    port: int | None
    #: `inet_server_addr()` / `inet_server_port()` (None over a Unix socket).
    address: str | None
    server_port: int | None
    database: str
    major: int

    @property
    def server(self) -> str:
        """For messages: host and port as the URL says (never credentials)."""
        return f"{self.host or 'localhost'}{':' + str(self.port) if self.port else ''}"


def same_server(a: ServerIdentity, b: ServerIdentity) -> bool:
    """PURE: the two identities name one server (by its identifier when both were read, by
    address otherwise: a clone of the data directory shares the identifier, and is refused)."""
    if a.system_identifier and b.system_identifier:
        return a.system_identifier == b.system_identifier
    by_url = (a.host, a.port or 5432) == (b.host, b.port or 5432) and bool(a.host)
    by_server = a.address is not None and (a.address, a.server_port) == (
        b.address,
        b.server_port,
    )
    return by_url or by_server


def same_database(a: ServerIdentity, b: ServerIdentity) -> bool:
    return same_server(a, b) and a.database == b.database


def identity(conn: psycopg.Connection[Any], db: Database) -> ServerIdentity:
    row = conn.execute(
        "SELECT current_database(), inet_server_addr()::text, inet_server_port(), "
        "current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    system_id: str | None = None
    # needs superuser or pg_monitor's grant; host and port decide otherwise
    with contextlib.suppress(psycopg.Error), conn.transaction():
        found = conn.execute("SELECT system_identifier::text FROM pg_control_system()")
        value = found.fetchone()
        system_id = value[0] if value else None
    return ServerIdentity(
        system_identifier=system_id,
        host=db.host,
        port=db.port,
        address=row[1],
        server_port=row[2],
        database=row[0],
        major=int(row[3]) // 10000,
    )


def url_with_dbname(url: str, dbname: str) -> str:
    """The same URL (credentials, host, options) naming another database."""
    split = urllib.parse.urlsplit(url.strip())
    # a `?dbname=` would win over the path in libpq: it goes
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True)
         if k != "dbname"]
    )
    path = "/" + urllib.parse.quote(dbname, safe="")
    return urllib.parse.urlunsplit(split._replace(path=path, query=query))


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    run_id: str
    url: str = ""

    def __repr__(self) -> str:  # the URL holds the password
        return f"ScratchDatabase({self.name!r})"


class ScratchServer:
    """A checked connection to the scratch server (see the module). Context manager."""

    def __init__(
        self,
        url: str | None,
        production: ServerIdentity,
        *,
        application_name: str = "pgshift",
        emit: Emit | None = None,
    ) -> None:
        self.db = parse_url(url, option=f"{SCRATCH_OPTION} / SCRATCH_DATABASE_URL")
        self._url = url or ""
        self.production = production
        self.application_name = application_name
        self.emit = emit or (lambda event, **fields: None)
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> ScratchServer:
        self._conn = _connect(self.db, self.application_name)
        try:
            self.check(identity(self._conn, self.db), what="the scratch connection")
            self._check_createdb()
        except BaseException:
            self._conn.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("ScratchServer used outside its `with` block")
        return self._conn

    def check(self, scratch: ServerIdentity, *, what: str) -> None:
        """Refuse production itself, and another major (see the module)."""
        prod = self.production
        if same_database(scratch, prod):
            how = (
                "system identifier" if scratch.system_identifier and prod.system_identifier
                else "host and port"
            )
            raise ScratchIsProduction(
                f"{SCRATCH_OPTION}: {what} reaches production's database {prod.database!r} on "
                f"{prod.server} (same {how} and database name): a scratch target must not be "
                "production"
            )
        if scratch.major != prod.major:
            raise ScratchVersionMismatch(
                f"{SCRATCH_OPTION}: the scratch server {scratch.server} runs PostgreSQL "
                f"{scratch.major}, production {prod.server} runs {prod.major}: the expected "
                "schema must be built by the same major"
            )

    def _check_createdb(self) -> None:
        row = self.conn.execute(
            "SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        if row is None or not row[1]:
            role = row[0] if row else "the role"
            raise ScratchNoCreateDb(
                f"{SCRATCH_OPTION}: role {role!r} may not create databases on {self.db.display}"
            )

    def _ours(self) -> list[tuple[str, bool, str | None, int]]:
        """Databases with the prefix: name, owned by the current role, comment, sessions."""
        rows = self.conn.execute(
            "SELECT d.datname, d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user),"
            " shobj_description(d.oid, 'pg_database'),"
            " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname)::int"
            " FROM pg_database d WHERE starts_with(d.datname, %s) ORDER BY 1",
            (PREFIX,),
        ).fetchall()
        return [(r[0], bool(r[1]), r[2], int(r[3])) for r in rows]

    def clean_leftovers(self) -> list[str]:
        """Drop the scratch databases of killed runs: pgshift's (`is_ours`), with no session
        connected (a run in progress keeps its connection). Never any other database."""
        dropped = []
        for name, owner_is_us, comment, sessions in self._ours():
            if not is_ours(name, owner_is_us, comment) or sessions:
                continue
            try:
                self.conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as exc:  # another run got there first, or it came back to life
                self.emit("scratch.leftoverKept", database=name, reason=_first_line(exc))
                continue
            dropped.append(name)
            self.emit("scratch.leftoverDropped", database=name)
        return dropped

    def create(self, run_id: str | None = None) -> ScratchDatabase:
        """A new, empty database (from template0) owned by the current role, with the marker."""
        run_id = run_id or new_run_id()
        name = scratch_name(run_id)
        ident = sql.Identifier(name)
        try:
            self.conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
            self.conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(marker(run_id)))
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"{SCRATCH_OPTION}: cannot create scratch database {name} on "
                f"{self.db.display}: {_first_line(exc)}",
                sqlstate=exc.sqlstate,
            ) from None
        self.emit("scratch.created", database=name)
        return ScratchDatabase(name, run_id, url_with_dbname(self._url, name))

    def check_created(self, scratch: ScratchDatabase) -> None:
        """Connect to the new database and check it again: not production, and ours."""
        db = parse_url(scratch.url, option=SCRATCH_OPTION)
        conn = _connect(db, self.application_name)
        try:
            found = identity(conn, db)
        finally:
            conn.close()
        self.check(found, what=f"scratch database {scratch.name}")
        if found.database != scratch.name:
            raise ScratchIsProduction(
                f"{SCRATCH_OPTION}: connecting to {scratch.name} reached {found.database!r}"
            )

    def drop(self, scratch: ScratchDatabase | str, run_id: str | None = None) -> None:
        """Drop one scratch database of this run; refuses any database pgshift did not create."""
        name = scratch.name if isinstance(scratch, ScratchDatabase) else scratch
        rid = scratch.run_id if isinstance(scratch, ScratchDatabase) else run_id
        found = {n: (o, c) for n, o, c, _s in self._ours()}
        if name not in found or not is_ours(name, *found[name], run_id=rid):
            raise ScratchNotOurs(
                f"{SCRATCH_OPTION}: refusing to drop database {name!r}: it does not carry "
                f"pgshift's name prefix, owner and marker for run {rid}"
            )
        try:
            self.conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"{SCRATCH_OPTION}: cannot drop scratch database {name}: {_first_line(exc)} "
                "(the next run drops it)",
                sqlstate=exc.sqlstate,
            ) from None
        self.emit("scratch.dropped", database=name)


def _connect(db: Database, application_name: str) -> psycopg.Connection[Any]:
    """`connect`, with a hint that names the scratch option rather than production's."""
    try:
        return connect(db, application_name=application_name)
    except ConnectionError_ as exc:
        raise ConnectionError_(
            exc.message.replace("cannot connect to", "cannot connect to the scratch server"),
            sqlstate=exc.sqlstate,
            hint=f"check {SCRATCH_OPTION} / SCRATCH_DATABASE_URL, the host, port and credentials",
        ) from None


def _first_line(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
