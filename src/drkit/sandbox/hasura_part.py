"""The sandbox's Hasura: the stand-in (standins/hasura.py) on a free loopback port, keeping
its metadata in the sandbox's PostgreSQL (hdb_catalog in the nchat database, as nself's
Hasura does), with an admin secret; seeded with nchat's metadata."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from drkit.adapters.hasura import HasuraClient
from drkit.adapters.postgres.client import dsn_param
from drkit.domain.errors import OperationError
from drkit.domain.stack import Stack
from drkit.infra.atomic import write_atomic
from drkit.sandbox.parts import PartContext, ServiceEntry

NAME = "hasura"


def postgres_dsn(config_path: Path) -> str:
    """The DSN of the PostgreSQL already prepared into the sandbox's stack.yaml."""
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except OSError as exc:
        raise OperationError(f"the sandbox's {config_path} is not readable: {exc.strerror}") from exc
    for service in (config.get("services") or {}).values():
        if service.get("kind") == "postgres" and service.get("dsn"):
            return str(service["dsn"])
    raise OperationError(f"no PostgreSQL in {config_path}: prepare it before Hasura")


def database_url(dsn: str) -> str:
    """A libpq keyword DSN as the postgresql:// URL graphql-engine's --database-url takes."""
    user, host = dsn_param(dsn, "user") or "postgres", dsn_param(dsn, "host") or "127.0.0.1"
    port, dbname = dsn_param(dsn, "port") or "5432", dsn_param(dsn, "dbname") or user
    if host.startswith("/"):  # a socket directory goes in the query string
        return f"postgresql://{quote(user)}@:{port}/{quote(dbname)}?host={quote(host)}"
    return f"postgresql://{quote(user)}@{host}:{port}/{quote(dbname)}"


def prepare(ctx: PartContext) -> ServiceEntry:
    port = ctx.port()
    base = ctx.service_dir(NAME)
    url = f"http://127.0.0.1:{port}"
    secret_file = base / "admin-secret"
    secret = secrets.token_urlsafe(24)
    write_atomic(secret_file, secret.encode(), mode=0o600)
    # graphql-engine takes its admin secret from the environment: runtime.env_file carries it,
    # so the command line holds only flags the real binary accepts.
    env_file = base / "hasura.env"
    write_atomic(env_file, f"HASURA_GRAPHQL_ADMIN_SECRET={secret}\n".encode(), mode=0o600)
    command = [
        sys.executable,
        "-m",
        "drkit.sandbox.standins.hasura",
        "--database-url",
        database_url(postgres_dsn(ctx.config_path)),
        "serve",
        "--server-host",
        "127.0.0.1",
        "--server-port",
        str(port),
    ]
    runtime: dict[str, Any] = {
        "type": "local",
        "command": command,
        "env_file": str(env_file),
        "data_dir": str(base),
        "log_file": str(ctx.logs / f"{NAME}.log"),
    }
    if ctx.os_user:
        runtime["os_user"] = ctx.os_user
    config = {
        "kind": "hasura",
        "runtime": runtime,
        "url": url,
        "password": f"file:{secret_file}",  # the admin secret
        "depends_on": ["postgres"],  # its metadata lives there: it inherits PostgreSQL's rpo
        "rto": "15m",
        "priority": "critical",
        "health": {"type": "hasura", "target": f"{url}/healthz?strict=true"},
    }
    return ServiceEntry(NAME, config, url, {"port": port, "url": url})


def seed(ctx: PartContext, stack: Stack) -> None:
    service = stack.services[NAME]
    if service.url is None:
        raise OperationError("the sandbox's hasura service has no url")
    with HasuraClient(service.url, admin_secret=service.password) as hasura:
        outcome = hasura.replace_metadata(nchat_metadata())
    if not outcome.replaced or outcome.inconsistent:
        raise OperationError(f"sandbox Hasura refused nchat's metadata: {outcome.inconsistent[:1]}")


def _table(schema: str, name: str) -> dict[str, str]:
    return {"schema": schema, "name": name}


def _fk(column: str) -> dict[str, Any]:
    return {"foreign_key_constraint_on": column}


def _fk_from(table: str, column: str, *, schema: str = "public") -> dict[str, Any]:
    return {"foreign_key_constraint_on": {"column": column, "table": _table(schema, table)}}


def _user_select(columns: list[str], filter_: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{"role": "user", "permission": {"columns": columns, "filter": filter_ or {}}}]


def _auth_tables() -> list[dict[str, Any]]:
    """hasura-auth's tables as it tracks them; auth.users linked to nchat_users by id."""
    me = {"id": {"_eq": "X-Hasura-User-Id"}}
    profile = {
        "manual_configuration": {
            "remote_table": _table("public", "nchat_users"),
            "column_mapping": {"id": "id"},
        }
    }
    return [
        {
            "table": _table("auth", "users"),
            "configuration": {"custom_name": "users", "custom_root_fields": {"select": "users"}},
            "object_relationships": [{"name": "profile", "using": profile}],
            "array_relationships": [
                {"name": "refreshTokens", "using": _fk_from("refresh_tokens", "user_id", schema="auth")}
            ],
            "select_permissions": _user_select(["id", "email", "display_name"], me),
        },
        {
            "table": _table("auth", "refresh_tokens"),
            "object_relationships": [{"name": "user", "using": _fk("user_id")}],
        },
    ]


def _nchat_tables() -> list[dict[str, Any]]:
    """nchat's tables, their relationships and the `user` role's permissions."""
    me = {"id": {"_eq": "X-Hasura-User-Id"}}
    own_message = {"columns": ["channel_id", "content"], "check": {}, "set": {"user_id": "X-Hasura-User-Id"}}
    return [
        {
            "table": _table("public", "nchat_users"),
            "array_relationships": [
                {"name": "messages", "using": _fk_from("nchat_messages", "user_id")},
                {"name": "channels_created", "using": _fk_from("nchat_channels", "created_by")},
            ],
            "select_permissions": _user_select(["id", "display_name", "avatar_url", "status"]),
            "update_permissions": [
                {
                    "role": "user",
                    "permission": {"columns": ["display_name", "avatar_url", "status"], "filter": me},
                }
            ],
        },
        {
            "table": _table("public", "nchat_channels"),
            "object_relationships": [{"name": "creator", "using": _fk("created_by")}],
            "array_relationships": [{"name": "messages", "using": _fk_from("nchat_messages", "channel_id")}],
            "select_permissions": _user_select(["id", "name", "topic", "is_private", "created_at"]),
        },
        {
            "table": _table("public", "nchat_messages"),
            "object_relationships": [
                {"name": "channel", "using": _fk("channel_id")},
                {"name": "author", "using": _fk("user_id")},
            ],
            "array_relationships": [
                {"name": "attachments", "using": _fk_from("nchat_attachments", "message_id")}
            ],
            "select_permissions": _user_select(
                ["id", "channel_id", "user_id", "content", "edited", "created_at"]
            ),
            "insert_permissions": [{"role": "user", "permission": own_message}],
        },
        {
            "table": _table("public", "nchat_attachments"),
            "object_relationships": [{"name": "message", "using": _fk("message_id")}],
            "select_permissions": _user_select(
                ["id", "message_id", "object_key", "size_bytes", "content_type"]
            ),
        },
    ]


def nchat_metadata() -> dict[str, Any]:
    """nchat's Hasura metadata (version 3): hasura-auth's and nchat's tables, relationships
    and the `user` role's permissions (no foreign key links nchat_users to auth.users: rows
    are copied, so that relationship is a manual one)."""
    source = {
        "name": "default",
        "kind": "postgres",
        "tables": [*_auth_tables(), *_nchat_tables()],
        "configuration": {
            "connection_info": {
                "database_url": {"from_env": "HASURA_GRAPHQL_DATABASE_URL"},
                "isolation_level": "read-committed",
                "use_prepared_statements": True,
            }
        },
    }
    return {"version": 3, "sources": [source]}
