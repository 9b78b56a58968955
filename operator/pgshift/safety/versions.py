"""Which PostgreSQL majors pgshift supports, and the syntax each older one lacks. PURE.

pglast embeds one PostgreSQL grammar per release (`GRAMMAR_MAJOR`: pglast 8 parses as
PostgreSQL 18). Every statement is parsed with it, whatever the server, so a statement an older
server does not know parses fine here and would fail only on the server, possibly halfway
through a file run outside a transaction. `too_new` finds, in a parsed statement, the syntax
that `server_major` lacks (the `FEATURES` table below, newest first per major); the engine
refuses such a file with `SyntaxTooNew` before anything runs, and `pgshift lint
--server-version N` does the same offline. Syntax newer than the grammar cannot be parsed at
all: it is refused as `error[Parse]` (docs/postgres-versions.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import parser

from pgshift.errors import SyntaxTooNew

#: the majors pgshift is tested on (docs/postgres-versions.md); older ones are refused.
SUPPORTED_MAJORS = (13, 14, 15, 16, 17, 18)
#: the PostgreSQL major whose grammar pglast embeds.
GRAMMAR_MAJOR: int = parser.get_postgresql_version()[0]

Fields = dict[str, Any]


@dataclass(frozen=True)
class Feature:
    #: what the user wrote, as the error names it
    name: str
    #: the first major that accepts it
    since: int
    #: (node type, its fields) -> is this node the feature?
    matches: Callable[[str, Fields], bool]
    #: text one of which pglast's JSON of a statement using it contains (a cheap first filter)
    markers: tuple[str, ...]


def _node(kind: str, test: Callable[[Fields], bool] = lambda f: True) -> Callable[..., bool]:
    return lambda k, f: k == kind and test(f)


def _subtype(name: str) -> Callable[..., bool]:
    return _node("AlterTableCmd", lambda f: f.get("subtype") == name)


def _constraint(test: Callable[[Fields], bool]) -> Callable[..., bool]:
    return _node("Constraint", test)


_SQL_JSON_16 = {
    "JsonObjectConstructor", "JsonArrayConstructor", "JsonArrayQueryConstructor",
    "JsonObjectAgg", "JsonArrayAgg", "JsonIsPredicate",
}  # fmt: skip
_SQL_JSON_17 = {"JsonTable", "JsonFuncExpr", "JsonParseExpr", "JsonScalarExpr",
                "JsonSerializeExpr"}  # fmt: skip

FEATURES: tuple[Feature, ...] = (
    Feature("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY", 14,
            _node("PartitionCmd", lambda f: bool(f.get("concurrent"))), ("concurrent",)),
    Feature("ALTER TABLE ... DETACH PARTITION ... FINALIZE", 14,
            _subtype("AT_DetachPartitionFinalize"), ("AT_DetachPartitionFinalize",)),
    Feature("UNIQUE NULLS NOT DISTINCT", 15,
            lambda k, f: k in ("IndexStmt", "Constraint") and bool(f.get("nulls_not_distinct")),
            ("nulls_not_distinct",)),
    Feature("MERGE", 15, _node("MergeStmt"), ("MergeStmt",)),
    Feature("ALTER TABLE ... SET ACCESS METHOD", 15,
            _subtype("AT_SetAccessMethod"), ("AT_SetAccessMethod",)),
    Feature("SQL/JSON constructors and IS JSON", 16,
            lambda k, f: k in _SQL_JSON_16, ("Json",)),
    Feature("JSON_TABLE and the SQL/JSON query functions", 17,
            lambda k, f: k in _SQL_JSON_17, ("Json",)),
    Feature("MERGE ... WHEN NOT MATCHED BY SOURCE", 17,
            _node("MergeWhenClause",
                  lambda f: f.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"),
            ("MERGE_WHEN_NOT_MATCHED_BY_SOURCE",)),
    Feature("MERGE ... RETURNING", 17,
            _node("MergeStmt", lambda f: bool(f.get("returningList") or f.get("returningClause"))),
            ("MergeStmt",)),
    Feature("ALTER TABLE ... ALTER COLUMN ... SET EXPRESSION", 17,
            _subtype("AT_SetExpression"), ("AT_SetExpression",)),
    Feature("NOT NULL ... NOT VALID", 18,
            _constraint(lambda f: f.get("contype") == "CONSTR_NOTNULL"
                        and bool(f.get("skip_validation"))), ("CONSTR_NOTNULL",)),
    # PostgreSQL 18 made VIRTUAL the default: `GENERATED ALWAYS AS (expr)` without STORED is
    # virtual there and a syntax error before.
    Feature("virtual generated columns (GENERATED ALWAYS AS (...) [VIRTUAL])", 18,
            _constraint(lambda f: f.get("contype") == "CONSTR_GENERATED"
                        and f.get("generated_kind") == "v"), ("CONSTR_GENERATED",)),
    Feature("NOT ENFORCED constraints", 18,
            _constraint(lambda f: f.get("contype") in ("CONSTR_CHECK", "CONSTR_FOREIGN")
                        and not f.get("is_enforced", False)), ("CONSTR_CHECK", "CONSTR_FOREIGN")),
    Feature("temporal keys (WITHOUT OVERLAPS / PERIOD)", 18,
            _constraint(lambda f: bool(f.get("without_overlaps") or f.get("fk_with_period")
                                       or f.get("pk_with_period"))),
            ("without_overlaps", "_with_period")),
    Feature("ALTER CONSTRAINT ... [NOT] ENFORCED / [NO] INHERIT", 18,
            _node("ATAlterConstraint",
                  lambda f: bool(f.get("alterEnforceability") or f.get("alterInheritability"))),
            ("ATAlterConstraint",)),
)  # fmt: skip


def _nodes(tree: Any) -> Iterator[tuple[str, Fields]]:
    """Every `{"NodeType": {fields}}` in a parse tree as pglast's JSON gives it."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key[:1].isupper() and isinstance(value, dict):
                    yield key, value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def too_new(
    stmt: Any, server_major: int, among: Iterable[Feature] = FEATURES
) -> list[Feature]:
    """The features (of `among`) in one parsed statement (pglast JSON) that `server_major`
    lacks, oldest first."""
    found: dict[str, Feature] = {}
    wanted = [f for f in among if f.since > server_major]
    for kind, fields in _nodes(stmt):
        for feature in wanted:
            if feature.name not in found and feature.matches(kind, fields):
                found[feature.name] = feature
    return sorted(found.values(), key=lambda f: (f.since, f.name))


def check_sql(text: str, server_major: int, where: Callable[[int], str]) -> None:
    """Refuse the first statement of `text` that uses syntax `server_major` lacks (`where(offset)`
    names its file and line). `text` must parse (syntax errors are the parser's to report)."""
    if server_major < GRAMMAR_MAJOR:
        check_parsed(parser.parse_sql_json(text), server_major, where)


def check_parsed(tree_json: str, server_major: int, where: Callable[[int], str]) -> None:
    """`check_sql` on pglast's JSON of the text (`parser.parse_sql_json`), already at hand."""
    wanted = [f for f in FEATURES if f.since > server_major
              and any(m in tree_json for m in f.markers)]  # fmt: skip
    if not wanted:  # the usual case: no JSON to decode, no tree to walk
        return
    for piece in _statements_json(tree_json):
        wanted_here = [f for f in wanted if any(m in piece for m in f.markers)]
        if not wanted_here:
            continue
        raw = json.loads(piece)
        missing = too_new(raw.get("stmt"), server_major, wanted_here)
        if missing:
            first = missing[0]
            raise SyntaxTooNew(
                f"{where(int(raw.get('stmt_location', 0)))}: {first.name} needs PostgreSQL "
                f"{first.since}; the server is PostgreSQL {server_major}"
            )


#: where each top-level statement's object starts in pglast's JSON. Only `RawStmt` has a field
#: named `stmt`, and a `"` inside a JSON string is always escaped, so this never matches within
#: a statement.
_STATEMENT_START = '{"stmt":'


def _statements_json(tree_json: str) -> Iterator[str]:
    """Each top-level statement's JSON object (`{"stmt": ..., "stmt_location": ...}`), cut
    from the file's JSON without decoding it: a file of 20,000 INSERTs with one `NOT NULL` in
    it decodes only the statement that holds it (issue 14)."""
    start = tree_json.find(_STATEMENT_START)
    while start >= 0:
        following = tree_json.find("," + _STATEMENT_START, start)
        if following < 0:  # the last one: the list and the root object close after it
            yield tree_json[start : tree_json.rindex("]")]
            return
        yield tree_json[start:following]
        start = following + 1


def feature_table() -> Iterable[tuple[int, str]]:
    """(since, name) for the docs and tests."""
    return sorted((f.since, f.name) for f in FEATURES)
