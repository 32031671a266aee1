"""The Hasura stand-in's GraphQL: just enough for a smoke check to read through Hasura.

One query with one root field, a tracked table (`schema_table`, or the bare name in
`public`), an optional `limit`, and plain columns: `{ nchat_messages(limit: 1) { id } }`.
Answers as Hasura does: HTTP 200 with `data`, or HTTP 200 with `errors` (code
`validation-failed` for an unknown field, as Hasura's `field 'x' not found in type:
'query_root'`). Anything richer is refused with an error, never guessed at.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

QUERY = re.compile(
    r"^\s*(?:query\s*\w*\s*)?\{\s*(?P<root>\w+)\s*(?:\(\s*limit\s*:\s*(?P<limit>\d+)\s*\))?"
    r"\s*\{\s*(?P<fields>\w+(?:\s+\w+)*)\s*\}\s*\}\s*$"
)


def answer(conn: psycopg.Connection[Any], metadata: dict[str, Any], body: Any) -> dict[str, Any]:
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str):
        return _error("$", "parse-failed", "the body must be an object with a 'query' string")
    match = QUERY.match(query)
    if match is None:
        return _error("$.query", "not-supported", "the stand-in answers one root field with plain columns")
    root, fields = match["root"], match["fields"].split()
    table = _tracked(metadata).get(root)
    if table is None:
        return _error(
            f"$.selectionSet.{root}", "validation-failed", f"field '{root}' not found in type: 'query_root'"
        )
    statement = sql.SQL("select {} from {}.{}").format(
        sql.SQL(", ").join(sql.Identifier(f) for f in fields),
        sql.Identifier(table[0]),
        sql.Identifier(table[1]),
    )
    if match["limit"]:
        statement += sql.SQL(" limit {}").format(sql.Literal(int(match["limit"])))
    try:
        rows = conn.execute(statement).fetchall()
    except psycopg.errors.UndefinedColumn as exc:
        conn.rollback()
        return _error(f"$.selectionSet.{root}", "validation-failed", str(exc).splitlines()[0])
    return {"data": {root: [dict(zip(fields, (_plain(v) for v in row), strict=True)) for row in rows]}}


def _tracked(metadata: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Root field names of the tracked tables of source `default`."""
    found: dict[str, tuple[str, str]] = {}
    for source in metadata.get("sources", []):
        if source.get("name") != "default":
            continue
        for entry in source.get("tables", []):
            spec = entry.get("table", {})
            schema, name = str(spec.get("schema", "public")), str(spec.get("name", ""))
            found[name if schema == "public" else f"{schema}_{name}"] = (schema, name)
    return found


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _error(path: str, code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"extensions": {"path": path, "code": code}, "message": message}]}
