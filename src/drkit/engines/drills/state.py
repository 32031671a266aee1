"""What a drill captures just before it injects the failure, and compares after the
recovery: PostgreSQL's every user table (row count and a hash of its rows in key order),
Redis's keys (count per database, and a digest of every key up to a limit), the object
store's current objects (key and ETag per bucket), MeiliSearch's document counts, and
Hasura's metadata hash. Captured as plain JSON-able data, so the journal holds it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from psycopg import sql

from drkit.adapters.hasura import HasuraClient
from drkit.adapters.postgres.client import connect, service_dsn
from drkit.adapters.redis.client import RedisServer
from drkit.adapters.redis.sample import choose_sample, digest_keys
from drkit.adapters.s3.objects import ObjectStore, configured_buckets, endpoint_for
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.search.server import client_for

REDIS_KEYS = 10_000
State = dict[str, Any]


def describe_servers(ws: Workspace) -> dict[str, Any]:
    """Versions and data sizes, for the report (never fails a drill: what cannot be read is
    left out)."""
    out: dict[str, Any] = {"versions": {}, "data_sizes": {}}
    for name, service in ws.stack.services.items():
        try:
            if service.kind == "postgres":
                with connect(service_dsn(service)) as conn:
                    row = conn.execute(
                        "select current_setting('server_version'), pg_database_size(current_database())"
                    ).fetchone()
                if row:
                    out["versions"][name] = f"PostgreSQL {row[0]}"
                    out["data_sizes"][name] = int(row[1])
            elif service.kind == "redis" and service.url:
                with RedisServer(service.url, password=service.password) as server:
                    info = server.info("server") | server.info("memory")
                out["versions"][name] = f"Redis {info.get('redis_version')}"
                out["data_sizes"][name] = int(info.get("used_memory", 0))
        except DrkitError:
            continue
    return out


def capture(ws: Workspace) -> dict[str, State]:
    out: dict[str, State] = {}
    for name, service in ws.stack.services.items():
        taker = CAPTURE.get(service.kind)
        if taker is not None:
            out[name] = taker(service)
    return out


def compare(before: dict[str, State], after: dict[str, State]) -> dict[str, list[str]]:
    """Per service, the differences (empty: equal)."""
    out: dict[str, list[str]] = {}
    for name, was in before.items():
        now = after.get(name, {})
        diffs = [
            f"{key}: {_short(was.get(key))} before, {_short(now.get(key))} after"
            for key in sorted(set(was) | set(now))
            if was.get(key) != now.get(key)
        ]
        out[name] = diffs
    return out


def _postgres(service: Service) -> State:
    state: State = {}
    with connect(service_dsn(service)) as conn:
        tables = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'p') "
            "and n.nspname not in ('pg_catalog', 'information_schema', 'hdb_catalog') "
            "and n.nspname not like 'pg_toast%' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            row = conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                ).format(rel)
            ).fetchone()
            state[f"{schema}.{table}"] = [int(row[0]), str(row[1])] if row else None
    return state


def _redis(service: Service) -> State:
    if not service.url:
        return {}
    with RedisServer(service.url, password=service.password) as server:
        keyspace = server.keyspace()
        state: State = {f"db{db}": n for db, n in sorted(keyspace.keys.items())}
        for db, keys in choose_sample(server, keyspace, size=REDIS_KEYS, scan_limit=REDIS_KEYS).items():
            for digest in digest_keys(server, db, keys):
                state[f"db{db}:{digest.key}"] = f"{digest.type}:{digest.sha256}"
    return state


def _objects(service: Service) -> State:
    store = ObjectStore(endpoint_for(service))
    state: State = {}
    for bucket in configured_buckets(service) or tuple(store.buckets()):
        current = store.current(bucket)
        state[bucket] = hashlib.sha256(
            json.dumps(sorted((k, o.etag, o.size) for k, o in current.items())).encode()
        ).hexdigest()
        state[f"{bucket} objects"] = len(current)
    return state


def _search(service: Service) -> State:
    with client_for(service) as meili:
        return {f"index {k}": v for k, v in sorted(meili.document_counts().items())}


def _hasura(service: Service) -> State:
    if not service.url:
        return {}
    with HasuraClient(service.url, admin_secret=service.password) as hasura:
        metadata = hasura.export_metadata().metadata
    return {"metadata": hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()}


CAPTURE: dict[str, Callable[[Service], State]] = {
    "postgres": _postgres,
    "redis": _redis,
    "s3": _objects,
    "meilisearch": _search,
    "hasura": _hasura,
}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
