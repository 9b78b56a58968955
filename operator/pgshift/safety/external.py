"""Statements whose effects reach past the current database. PURE.

A verification (and later a rehearsal) replays the source on a scratch database; a statement
there that creates a role, alters the database or the server, moves a tablespace, subscribes
to a publication, writes through dblink or a foreign table, or schedules a pg_cron job would
change something shared with production. `external_effects(migrations)` names each one
(file, line, what) from the parse tree, and from the text of DO and function bodies, which
PostgreSQL's SQL parser does not look into; the replay refuses them unless allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pglast import ast
from pglast.enums import AlterTableType, ObjectType
from pglast.visitors import Visitor

from pgshift.migrations.model import Migration
from pgshift.safety.nodes import items
from pgshift.safety.statements import split_statements


@dataclass(frozen=True)
class ExternalEffect:
    path: str
    line: int
    #: what reaches out: "CREATE ROLE", "dblink_exec()", "cron.schedule()".
    what: str

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


#: statements whose target is shared by every database of the server (or lives outside it).
_STATEMENTS: dict[type[ast.Node], str] = {
    ast.CreateRoleStmt: "CREATE ROLE",
    ast.AlterRoleStmt: "ALTER ROLE",
    ast.AlterRoleSetStmt: "ALTER ROLE ... SET",
    ast.DropRoleStmt: "DROP ROLE",
    ast.GrantRoleStmt: "GRANT/REVOKE of a role",
    ast.CreatedbStmt: "CREATE DATABASE",
    ast.DropdbStmt: "DROP DATABASE",
    ast.AlterDatabaseStmt: "ALTER DATABASE",
    ast.AlterDatabaseSetStmt: "ALTER DATABASE ... SET",
    ast.AlterSystemStmt: "ALTER SYSTEM",
    ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
    ast.DropTableSpaceStmt: "DROP TABLESPACE",
    ast.AlterTableSpaceOptionsStmt: "ALTER TABLESPACE",
    ast.AlterTableMoveAllStmt: "ALTER ... ALL IN TABLESPACE",
    ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
    ast.AlterSubscriptionStmt: "ALTER SUBSCRIPTION",
    ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",
}

#: COMMENT ON / SECURITY LABEL ON / RENAME / OWNER TO of these: shared catalogs.
_SHARED_OBJECTS = frozenset({
    ObjectType.OBJECT_DATABASE, ObjectType.OBJECT_ROLE, ObjectType.OBJECT_TABLESPACE,
    ObjectType.OBJECT_SUBSCRIPTION,
})

#: functions that act outside the database: dblink's, pg_cron's, server files, server settings.
_FUNCTIONS = frozenset({
    "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
    "dblink_open", "dblink_fetch", "lo_export", "pg_file_write", "pg_reload_conf",
})
_CRON = frozenset({"schedule", "schedule_in_database", "unschedule", "alter_job"})

#: the same in the text of DO and function bodies.
_IN_TEXT = re.compile(
    r"\b(dblink(?:_exec|_connect(?:_u)?|_send_query|_open|_fetch)?|lo_export|pg_file_write"
    r"|pg_reload_conf|cron\s*\.\s*(?:schedule(?:_in_database)?|unschedule|alter_job))\s*\(",
    re.IGNORECASE,
)


class _Finder(Visitor):
    def __init__(self, foreign: set[str], foreign_schemas: set[str]) -> None:
        super().__init__()
        self.found: list[str] = []
        self.foreign = foreign
        self.foreign_schemas = foreign_schemas

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        names = [(p.sval or "").lower() for p in items(node.funcname) if isinstance(p, ast.String)]
        if not names:
            return
        if names[-1] in _FUNCTIONS:
            self.found.append(f"{'.'.join(names)}()")
        elif len(names) == 2 and names[0] == "cron" and names[1] in _CRON:
            self.found.append(f"cron.{names[1]}()")

    def visit_DefElem(self, ancestors: object, node: ast.DefElem) -> None:
        if node.defname != "as":  # the body of DO and CREATE FUNCTION / PROCEDURE
            return
        values = node.arg if isinstance(node.arg, tuple | list) else (node.arg,)
        for value in values:
            text = getattr(value, "sval", None)
            if isinstance(text, str):
                for match in _IN_TEXT.finditer(text):
                    word = re.sub(r"\s+", "", match.group(1)).lower()
                    self.found.append(f"{word}() in a body")

    def visit_CopyStmt(self, ancestors: object, node: ast.CopyStmt) -> None:
        if node.is_program:
            self.found.append("COPY ... PROGRAM")
        elif node.filename:
            self.found.append("COPY with a server file")

    def visit_CommentStmt(self, ancestors: object, node: ast.CommentStmt) -> None:
        if node.objtype in _SHARED_OBJECTS:
            self.found.append(f"COMMENT ON {_object_word(node.objtype)}")

    def visit_SecLabelStmt(self, ancestors: object, node: ast.SecLabelStmt) -> None:
        if node.objtype in _SHARED_OBJECTS:
            self.found.append(f"SECURITY LABEL ON {_object_word(node.objtype)}")

    def visit_RenameStmt(self, ancestors: object, node: ast.RenameStmt) -> None:
        if node.renameType in _SHARED_OBJECTS:
            self.found.append(f"ALTER {_object_word(node.renameType)} ... RENAME")

    def visit_AlterOwnerStmt(self, ancestors: object, node: ast.AlterOwnerStmt) -> None:
        if node.objectType in _SHARED_OBJECTS:
            self.found.append(f"ALTER {_object_word(node.objectType)} ... OWNER TO")

    def visit_AlterTableCmd(self, ancestors: object, node: ast.AlterTableCmd) -> None:
        if node.subtype == AlterTableType.AT_SetTableSpace:
            self.found.append("SET TABLESPACE")

    def visit_CreateStmt(self, ancestors: object, node: ast.CreateStmt) -> None:
        if node.tablespacename:
            self.found.append(f"TABLESPACE {node.tablespacename}")

    def visit_IndexStmt(self, ancestors: object, node: ast.IndexStmt) -> None:
        if node.tableSpace:
            self.found.append(f"TABLESPACE {node.tableSpace}")

    def _write(self, relation: ast.RangeVar | None, verb: str) -> None:
        if relation is None:
            return
        if (relation.relname or "").lower() in self.foreign or (
            (relation.schemaname or "").lower() in self.foreign_schemas
        ):
            self.found.append(f"{verb} on foreign table {relation.relname}")

    def visit_InsertStmt(self, ancestors: object, node: ast.InsertStmt) -> None:
        self._write(node.relation, "INSERT")

    def visit_UpdateStmt(self, ancestors: object, node: ast.UpdateStmt) -> None:
        self._write(node.relation, "UPDATE")

    def visit_DeleteStmt(self, ancestors: object, node: ast.DeleteStmt) -> None:
        self._write(node.relation, "DELETE")

    def visit_TruncateStmt(self, ancestors: object, node: ast.TruncateStmt) -> None:
        for rv in items(node.relations):
            self._write(rv, "TRUNCATE")


def _object_word(objtype: object) -> str:
    return str(getattr(objtype, "name", objtype)).removeprefix("OBJECT_")


def external_effects(migrations: Iterable[Migration]) -> list[ExternalEffect]:
    """Every statement of these migrations whose effect reaches past the database (module)."""
    found: list[ExternalEffect] = []
    #: foreign tables the source creates (and schemas it imports foreign tables into): a write
    #: to one is a write to another server.
    foreign: set[str] = set()
    foreign_schemas: set[str] = set()
    for migration in migrations:
        for statement in split_statements(migration):
            node = statement.node
            if isinstance(node, ast.CreateForeignTableStmt):
                rv = node.base.relation if node.base is not None else None
                if rv is not None:  # by its bare name: a write to it by any path is caught
                    foreign.add((rv.relname or "").lower())
            if isinstance(node, ast.ImportForeignSchemaStmt) and node.local_schema:
                foreign_schemas.add(node.local_schema.lower())
            what = _STATEMENTS.get(type(node))
            if what is not None:
                found.append(ExternalEffect(migration.path, statement.line, what))
                continue
            finder = _Finder(foreign, foreign_schemas)
            finder(node)
            found.extend(ExternalEffect(migration.path, statement.line, w) for w in finder.found)
    return found
