"""A Hasura GraphQL Engine (v2) stand-in: the metadata API and health check drkit uses.

Stands for:
- `POST /v1/metadata` with `export_metadata` (version 1: the metadata object; version 2:
  `{"resource_version": N, "metadata": {...}}`), `replace_metadata` (version 1 args = the
  metadata; version 2 args = `{"metadata", "allow_inconsistent_metadata",
  "resource_version"}`), `reload_metadata` and `get_inconsistent_metadata`.
- Metadata kept in PostgreSQL as Hasura keeps it (`hdb_catalog.hdb_metadata`, one row): a
  PostgreSQL restore brings back the metadata of that moment.
- An inconsistency check as Hasura's schema cache does it, at start, on replace and on
  reload: tracked tables and views must exist, relationship and permission columns too.
  A replace with inconsistencies is refused with 400 unless `allow_inconsistent_metadata`.
- `GET /healthz`: 200 `OK`; 200 `WARN: inconsistent objects in schema`; with `?strict=true`
  500 `ERROR: inconsistent objects in schema`; 500 `ERROR` when the metadata database is
  unreachable. `GET /v1/version`.
- `X-Hasura-Admin-Secret` on the metadata API when an admin secret is set (401
  `access-denied` otherwise), as with `HASURA_GRAPHQL_ADMIN_SECRET`; with
  `HASURA_GRAPHQL_UNAUTHORIZED_ROLE` set, a request without the header is that role and the
  metadata API answers 400 `restricted access : admin only`.
- Answers shaped as graphql-engine's (server/src-lib/Hasura/RQL/DDL/Metadata.hs): replace v2
  `{"is_consistent", "inconsistent_objects"}`, v1 `{"message": "success"}`; reload lists
  `inconsistent_objects` only when there are some.
- `POST /v1/graphql`: one root field over a tracked table with plain columns and `limit`
  (hasura_graphql.py), for smoke checks.

Leaves out: the rest of GraphQL, sources other than `default` (marked inconsistent), functions,
remote schemas, actions, event triggers, metadata versions other than 3, the console.

Run as graphql-engine is run: python -m drkit.sandbox.standins.hasura --database-url
postgresql://user@host:5432/nchat serve --server-port 8080 [--server-host 127.0.0.1], the
admin secret in HASURA_GRAPHQL_ADMIN_SECRET (the sandbox gives it through runtime.env_file).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from drkit.sandbox.standins import BadRequest, JsonHandler, hasura_graphql, serve

VERSION = "v2.0.0-drkit-standin"
CATALOG_SQL = """
create schema if not exists hdb_catalog;
create table if not exists hdb_catalog.hdb_metadata (
    id integer primary key,
    metadata json not null,
    resource_version integer not null default 1 unique
);
create table if not exists hdb_catalog.hdb_version (
    hasura_uuid uuid primary key default gen_random_uuid(),
    version text not null,
    upgraded_on timestamptz not null,
    cli_state jsonb not null default '{}'::jsonb,
    console_state jsonb not null default '{}'::jsonb
);
insert into hdb_catalog.hdb_version (version, upgraded_on)
select '48', now() where not exists (select 1 from hdb_catalog.hdb_version);
"""
PERMISSIONS = ("select_permissions", "insert_permissions", "update_permissions", "delete_permissions")
Columns = dict[tuple[str, str], set[str]]


def empty_metadata() -> dict[str, Any]:
    """What Hasura holds on first start with HASURA_GRAPHQL_DATABASE_URL: one empty source."""
    return {
        "version": 3,
        "sources": [
            {
                "name": "default",
                "kind": "postgres",
                "tables": [],
                "configuration": {
                    "connection_info": {
                        "database_url": {"from_env": "HASURA_GRAPHQL_DATABASE_URL"},
                        "isolation_level": "read-committed",
                        "use_prepared_statements": True,
                    }
                },
            }
        ],
    }


class Catalog:
    """The metadata row in PostgreSQL and the schema cache's verdict on it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.lock = threading.Lock()
        self.inconsistent: list[dict[str, Any]] = []

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)

    def init(self) -> None:
        with self.connect() as conn:
            conn.execute(CATALOG_SQL)
            conn.execute(
                "insert into hdb_catalog.hdb_metadata (id, metadata, resource_version) "
                "values (1, %s, 1) on conflict (id) do nothing",
                (json.dumps(empty_metadata()),),
            )
        self.reload()

    def read(self) -> tuple[int, dict[str, Any]]:
        with self.connect() as conn:
            row = conn.execute(
                "select resource_version, metadata::text from hdb_catalog.hdb_metadata where id = 1"
            ).fetchone()
        if row is None:
            return 0, empty_metadata()
        return int(row[0]), json.loads(row[1])

    def reload(self) -> list[dict[str, Any]]:
        _, metadata = self.read()
        with self.lock, self.connect() as conn:
            self.inconsistent = find_inconsistencies(table_columns(conn), metadata)
            return list(self.inconsistent)

    def replace(self, metadata: dict[str, Any], *, allow_inconsistent: bool, expected: int | None) -> Any:
        with self.lock, self.connect() as conn:
            problems = find_inconsistencies(table_columns(conn), metadata)
            if problems and not allow_inconsistent:
                return 400, {
                    "path": "$.args",
                    "error": "cannot continue due to inconsistent metadata",
                    "code": "unexpected",
                    "internal": problems,
                }
            with conn.transaction():
                row = conn.execute(
                    "select resource_version from hdb_catalog.hdb_metadata where id = 1 for update"
                ).fetchone()
                current = int(row[0]) if row else 0
                if expected is not None and expected != current:
                    return 409, {
                        "path": "$",
                        "error": f"metadata resource version referenced ({expected}) "
                        f"did not match current version ({current})",
                        "code": "conflict",
                    }
                conn.execute(
                    "insert into hdb_catalog.hdb_metadata (id, metadata, resource_version) values (1, %s, 1) "
                    "on conflict (id) do update set metadata = excluded.metadata, "
                    "resource_version = hdb_catalog.hdb_metadata.resource_version + 1",
                    (json.dumps(metadata),),
                )
            self.inconsistent = problems
        # runReplaceMetadataV2 answers formatInconsistentObjs either way (Metadata.hs)
        return 200, {"is_consistent": not problems, "inconsistent_objects": problems}

    def healthy_storage(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("select 1")
            return True
        except psycopg.Error:
            return False


def table_columns(conn: psycopg.Connection[Any]) -> Columns:
    out: Columns = {}
    for schema, table, column in conn.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema not in ('pg_catalog', 'information_schema')"
    ):
        out.setdefault((schema, table), set()).add(column)
    return out


def qualified(spec: Any) -> tuple[str, str]:
    if isinstance(spec, str):
        return "public", spec
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return str(spec.get("schema", "public")), spec["name"]
    raise BadRequest({"path": "$.args", "error": f"bad table reference {spec!r}", "code": "parse-failed"})


def find_inconsistencies(columns: Columns, metadata: dict[str, Any]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for source in metadata.get("sources", []):
        name = source.get("name", "")
        if name != "default":
            problems.append(_problem("source", name, f"source {name!r}: the stand-in serves only 'default'"))
            continue
        for entry in source.get("tables", []):
            problems.extend(_table_problems(columns, entry))
    return problems


def _table_problems(columns: Columns, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
    schema, table = qualified(entry.get("table"))
    if (schema, table) not in columns:
        reason = f'no such table/view exists in source: "{table}"'
        yield _problem("table", f"table {table} in source default", reason, entry.get("table"))
        return
    for kind in ("object_relationships", "array_relationships"):
        for rel in entry.get(kind, []):
            for missing in _relationship_gaps(columns, (schema, table), rel.get("using", {})):
                reason = f'in table "{table}": in relationship "{rel.get("name")}": {missing}'
                yield _problem(
                    kind.replace("_relationships", "_relation"),
                    f"{rel.get('name')} in table {table}",
                    reason,
                    rel,
                )
    for kind in PERMISSIONS:
        for perm in entry.get(kind, []):
            wanted = perm.get("permission", {}).get("columns", [])
            absent = [c for c in wanted if isinstance(wanted, list) and c not in columns[(schema, table)]]
            if absent:
                reason = f'in table "{table}": no such column exists: "{absent[0]}"'
                yield _problem(kind[:-1], f"{perm.get('role')} permission in table {table}", reason, perm)


def _relationship_gaps(columns: Columns, here: tuple[str, str], using: dict[str, Any]) -> Iterator[str]:
    fk = using.get("foreign_key_constraint_on")
    manual = using.get("manual_configuration")
    if isinstance(fk, str):
        yield from _absent(columns, here, [fk])
    elif isinstance(fk, dict):
        cols = fk.get("columns") or [fk.get("column")]
        yield from _absent(columns, qualified(fk.get("table")), [str(c) for c in cols])
    elif isinstance(manual, dict):
        mapping = manual.get("column_mapping", {})
        yield from _absent(columns, here, list(mapping))
        yield from _absent(columns, qualified(manual.get("remote_table")), list(mapping.values()))


def _absent(columns: Columns, table: tuple[str, str], wanted: list[str]) -> Iterator[str]:
    if table not in columns:
        yield f'no such table/view exists in source: "{table[1]}"'
        return
    for column in wanted:
        if column not in columns[table]:
            yield f'no such column exists: "{column}"'


def _problem(kind: str, name: str, reason: str, definition: Any = None) -> dict[str, Any]:
    """One entry of `inconsistent_objects`, shaped as Hasura reports it."""
    return {"type": kind, "name": name, "reason": f"Inconsistent object: {reason}", "definition": definition}


class HasuraHandler(JsonHandler):
    catalog: Catalog
    admin_secret: str | None = None
    unauthorized_role: str | None = None  # HASURA_GRAPHQL_UNAUTHORIZED_ROLE

    def route(self, method: str) -> None:
        path = self.path_only
        if method == "GET" and path in ("/healthz", "/hasura/healthz"):
            self.healthz(self.query.get("strict", "false").lower() == "true")
        elif method == "GET" and path == "/v1/version":
            self.reply_json(200, {"version": VERSION})
        elif method == "POST" and path == "/v1/metadata":
            if self.authorized():
                self.metadata_call(self.json_body())
        elif method == "POST" and path == "/v1/graphql":
            if self.authorized():
                self.graphql(self.json_body())
        else:
            self.reply_json(404, {"path": "$", "error": "resource does not exist", "code": "not-found"})

    def authorized(self) -> bool:
        if self.admin_secret is None:
            return True
        given = self.headers.get("X-Hasura-Admin-Secret")
        if given is not None and hmac.compare_digest(given.encode(), self.admin_secret.encode()):
            return True
        if given is None and self.unauthorized_role:
            # the request runs as the unauthorized role, and the metadata API is admin only
            # (hasura/graphql-engine App.hs, accessDeniedErrMsg)
            error = "restricted access : admin only"
            self.reply_json(400, {"path": "$.args", "error": error, "code": "access-denied"})
            return False
        error = "invalid x-hasura-admin-secret/x-hasura-access-key"
        if given is None:
            error = "x-hasura-admin-secret/x-hasura-access-key required, but not found"
        self.reply_json(401, {"path": "$", "error": error, "code": "access-denied"})
        return False

    def graphql(self, body: Any) -> None:
        _version, metadata = self.catalog.read()
        with self.catalog.connect() as conn:
            self.reply_json(200, hasura_graphql.answer(conn, metadata, body))

    def healthz(self, strict: bool) -> None:
        if not self.catalog.healthy_storage():
            self.reply_text(500, "ERROR")
        elif self.catalog.inconsistent:
            code = 500 if strict else 200
            self.reply_text(code, ("ERROR" if strict else "WARN") + ": inconsistent objects in schema")
        else:
            self.reply_text(200, "OK")

    def metadata_call(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise BadRequest(
                {"path": "$", "error": "expected an object with a 'type'", "code": "parse-failed"}
            )
        kind, args, version = body["type"], body.get("args") or {}, body.get("version", 1)
        try:
            if kind == "export_metadata":
                resource_version, metadata = self.catalog.read()
                out = (
                    {"resource_version": resource_version, "metadata": metadata} if version == 2 else metadata
                )
                self.reply_json(200, out)
            elif kind == "replace_metadata":
                self.replace(args, version)
            elif kind == "reload_metadata":  # runReloadMetadata: the objects only when there are some
                problems = self.catalog.reload()
                listed = {"inconsistent_objects": problems} if problems else {}
                self.reply_json(200, {"message": "success", "is_consistent": not problems, **listed})
            elif kind == "get_inconsistent_metadata":
                problems = self.catalog.inconsistent
                self.reply_json(200, {"is_consistent": not problems, "inconsistent_objects": problems})
            else:
                raise BadRequest(
                    {
                        "path": "$.type",
                        "error": f"the stand-in does not implement {kind!r}",
                        "code": "not-supported",
                    }
                )
        except psycopg.Error as exc:
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection error"
            self.reply_json(
                500, {"path": "$", "error": f"database query error: {error}", "code": "unexpected"}
            )

    def replace(self, args: Any, version: int) -> None:
        if not isinstance(args, dict):
            raise BadRequest({"path": "$.args", "error": "expected an object", "code": "parse-failed"})
        v2 = version == 2 or ("metadata" in args and "sources" not in args)
        metadata = args.get("metadata") if v2 else args
        if not isinstance(metadata, dict) or metadata.get("version") != 3:
            error = "expected metadata version 3 (with 'sources'), as export_metadata gives"
            raise BadRequest({"path": "$.args", "error": error, "code": "parse-failed"})
        if not isinstance(metadata.get("sources", []), list):
            raise BadRequest({"path": "$.args.sources", "error": "expected a list", "code": "parse-failed"})
        expected = args.get("resource_version") if v2 else None
        status, out = self.catalog.replace(
            metadata,
            allow_inconsistent=bool(args.get("allow_inconsistent_metadata", False)) if v2 else False,
            expected=int(expected) if expected is not None else None,
        )
        if status == 200 and not v2:
            out = {"message": "success"}  # runReplaceMetadataV1
        self.reply_json(status, out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """graphql-engine's own options (`--database-url URL serve --server-port P ...`), each also
    from its HASURA_GRAPHQL_* variable, as the admin secret and the unauthorized role are."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="graphql-engine", description="Hasura stand-in")
    parser.add_argument("--database-url", default=env("HASURA_GRAPHQL_DATABASE_URL"))
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve")
    serve_cmd.add_argument("--server-host", default=env("HASURA_GRAPHQL_SERVER_HOST", "*"))
    serve_cmd.add_argument("--server-port", type=int, default=int(env("HASURA_GRAPHQL_SERVER_PORT", "8080")))
    serve_cmd.add_argument("--admin-secret", default=env("HASURA_GRAPHQL_ADMIN_SECRET"))
    serve_cmd.add_argument("--unauthorized-role", default=env("HASURA_GRAPHQL_UNAUTHORIZED_ROLE"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or HASURA_GRAPHQL_DATABASE_URL) is required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host = "0.0.0.0" if args.server_host == "*" else args.server_host  # noqa: S104 (graphql-engine's default)
    catalog = Catalog(args.database_url)
    try:
        catalog.init()
    except psycopg.Error as exc:
        sys.stderr.write(f"FATAL: cannot reach the metadata database: {str(exc).strip()}\n")
        sys.exit(1)
    if catalog.inconsistent:
        sys.stderr.write(f"WARN: {len(catalog.inconsistent)} inconsistent objects in the metadata\n")
    attrs = {
        "catalog": catalog,
        "admin_secret": args.admin_secret,
        "unauthorized_role": args.unauthorized_role,
    }
    handler = type("Handler", (HasuraHandler,), attrs)
    serve(handler, host, args.server_port, name="hasura")


if __name__ == "__main__":
    main()
