"""The stack.yaml entry of each nself service, as nself-org/cli v0.9.x generates it.

Read from src/services/docker/compose-modules/core-services.sh (postgres, hasura, auth,
minio, redis), utility-services.sh (functions, meilisearch, mailpit, nself-admin),
monitoring-services.sh and nginx.sh; which services exist from
src/lib/build/service-detection.sh. Every container is `${PROJECT_NAME}_<service>`; the
compose file says `name: ${PROJECT_NAME}`, so volume `postgres_data` is
`${PROJECT_NAME}_postgres_data` and the network `${PROJECT_NAME}_network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drkit.domain.errors import ConfigError

HOST = "127.0.0.1"
CANARY_PASSWORD_ENV = "DRKIT_AUTH_CANARY_PASSWORD"  # noqa: S105 (a variable name, not a secret)
MEILI_KEYS = ("SEARCH_API_KEY", "MEILISEARCH_MASTER_KEY", "MEILI_MASTER_KEY")


@dataclass
class Ctx:
    """What the builders read (the merged .env values) and what they report."""

    env: Mapping[str, str]
    project: str
    notes: list[str] = field(default_factory=list)

    def flag(self, key: str, default: str) -> bool:
        """nself's test: `[[ "${KEY:-default}" == "true" ]]` (only the word true turns it on)."""
        raw = self.env.get(key, "")
        value = raw or default
        if value != "true" and value.strip().lower() in ("true", "yes", "1", "on"):
            self.notes.append(f"{key}={raw}: nself only treats the exact word `true` as on, so this is off")
        return value == "true"

    def port(self, *keys: str, default: int) -> int:
        """The first of `keys` that is set, as a port number."""
        key = next((k for k in keys if self.env.get(k, "").strip()), keys[0])
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ConfigError(f"{key}={raw!r} in the project's .env is not a port number")
        return int(raw)

    def compose(self, service: str, volume: str | None = None, mount: str | None = None) -> dict[str, Any]:
        runtime: dict[str, Any] = {"type": "compose", "container": f"{self.project}_{service}"}
        if volume:
            runtime["volume"] = f"{self.project}_{volume}"
            runtime["mount"] = mount
        return runtime


def postgres_published(ctx: Ctx) -> tuple[bool, str]:
    """core-services.sh: `ports: 127.0.0.1:${POSTGRES_PORT}:5432` only when
    POSTGRES_EXPOSE_PORT=true, or =auto (its default) with ENV=dev; else `expose` only."""
    expose = ctx.env.get("POSTGRES_EXPOSE_PORT") or "auto"
    env = ctx.env.get("ENV") or "dev"
    published = expose == "true" or (expose == "auto" and env == "dev")
    return published, f"POSTGRES_EXPOSE_PORT={expose} with ENV={env}"


def postgres(ctx: Ctx) -> dict[str, Any]:
    db = ctx.env.get("POSTGRES_DB") or ctx.project  # `${POSTGRES_DB:-${PROJECT_NAME}}`, unchanged
    user = ctx.env.get("POSTGRES_USER") or "postgres"
    published, why = postgres_published(ctx)
    runtime = ctx.compose("postgres", "postgres_data", "/var/lib/postgresql/data")
    if published:
        dsn = f"host={HOST} port={ctx.port('POSTGRES_PORT', default=5432)} user={user} dbname={db}"
        ctx.notes.append(f"postgres: published on {HOST} ({why}); drkit dials it there")
    else:
        # Not reachable from the host: the compose runtime runs the tools through the container,
        # where the server is the container itself on the project's network.
        dsn = f"host={ctx.project}_postgres port=5432 user={user} dbname={db}"
        ctx.notes.append(
            f"postgres: not published ({why}); drkit reaches it through the container "
            f"{ctx.project}_postgres. To dial it from the host instead, set POSTGRES_EXPOSE_PORT=true "
            "in .env and run `nself build && nself restart`"
        )
    image = ctx.env.get("POSTGRES_VERSION") or "16-alpine"
    ctx.notes.append(
        f"postgres: image postgres:{image} (uid 70 in the alpine images), data in volume {runtime['volume']}"
    )
    return {
        "kind": "postgres",
        "runtime": runtime,
        "dsn": dsn,
        "password": "env:POSTGRES_PASSWORD",
        # crash recovery after an unclean stop can take a while
        "health": {"type": "sql", "timeout": "2m"},
        "backup": {"wal_mode": "stream", "databases": [db]},
    }


def redis(ctx: Ctx) -> dict[str, Any]:
    # `redis-server --appendonly yes`, files at /data in volume redis_data
    service: dict[str, Any] = {
        "kind": "redis",
        "runtime": ctx.compose("redis", "redis_data", "/data"),
        "url": f"redis://{HOST}:{ctx.port('REDIS_PORT', default=6379)}/0",
        "health": {"type": "redis"},
    }
    if ctx.env.get("REDIS_PASSWORD"):
        service["password"] = "env:REDIS_PASSWORD"  # noqa: S105 (a reference, not a secret)
    return service


def minio(ctx: Ctx) -> dict[str, Any]:
    url = f"http://{HOST}:{ctx.port('MINIO_PORT', default=9000)}"
    buckets = ctx.env.get("MINIO_DEFAULT_BUCKETS") or "uploads"
    ctx.notes.append(
        f"minio: nself creates the bucket(s) {buckets} (MINIO_DEFAULT_BUCKETS); drkit backs up every "
        "bucket (list some under `buckets:` to narrow it)"
    )
    return {
        "kind": "s3",
        "runtime": ctx.compose("minio", "minio_data", "/data"),
        "url": url,
        "access_key": "env:MINIO_ROOT_USER",
        "secret_key": "env:MINIO_ROOT_PASSWORD",
        "health": {"type": "http", "target": f"{url}/minio/health/live"},
    }


def hasura(ctx: Ctx) -> dict[str, Any]:
    url = f"http://{HOST}:{ctx.port('HASURA_PORT', default=8080)}"
    service: dict[str, Any] = {
        "kind": "hasura",
        "runtime": ctx.compose("hasura"),
        "url": url,
        "depends_on": ["postgres"],
        # strict: fails on inconsistent metadata, which a plain /healthz does not
        "health": {"type": "hasura", "target": f"{url}/healthz?strict=true"},
    }
    if ctx.env.get("HASURA_GRAPHQL_ADMIN_SECRET"):
        service["password"] = "env:HASURA_GRAPHQL_ADMIN_SECRET"  # noqa: S105 (a reference)
    return service


def auth(ctx: Ctx) -> dict[str, Any]:
    port = ctx.port("AUTH_PORT", default=4000)
    domain = ctx.env.get("BASE_DOMAIN", "")
    email = f"drkit-canary@{domain if '.' in domain else 'example.com'}"
    return {
        "kind": "auth",
        "runtime": ctx.compose("auth"),
        "url": f"http://{HOST}:{port}",
        "password": f"env:{CANARY_PASSWORD_ENV}",
        # auth tracks its tables through Hasura's metadata API when it starts
        "depends_on": ["postgres", "hasura"],
        # /healthz answers 200 without checking anything: sign in a canary instead
        "health": {"type": "auth", "target": f"http://{email.replace('@', '%40')}@{HOST}:{port}"},
    }


def functions(ctx: Ctx) -> dict[str, Any]:
    url = f"http://{HOST}:{ctx.port('FUNCTIONS_PORT', default=3008)}"
    return {
        "kind": "functions",
        "runtime": ctx.compose("functions"),
        "url": url,
        "depends_on": ["postgres", "hasura"],
        "health": {"type": "http", "target": f"{url}/healthz"},
    }


def meilisearch(ctx: Ctx) -> dict[str, Any]:
    url = f"http://{HOST}:{ctx.port('SEARCH_PORT', 'MEILISEARCH_PORT', default=7700)}"
    service: dict[str, Any] = {
        "kind": "meilisearch",
        # dumps land in /meili_data/dumps inside the volume; the runtime finds its host path
        "runtime": ctx.compose("meilisearch", "meilisearch_data", "/meili_data"),
        "url": url,
        "depends_on": ["postgres"],
        "health": {"type": "http", "target": f"{url}/health"},
    }
    # utility-services.sh: MEILI_MASTER_KEY: ${SEARCH_API_KEY:-${MEILISEARCH_MASTER_KEY}}
    key = next((k for k in MEILI_KEYS if ctx.env.get(k)), None)
    if key:
        service["password"] = f"env:{key}"
    else:
        ctx.notes.append(
            "meilisearch: no key in SEARCH_API_KEY, MEILISEARCH_MASTER_KEY or MEILI_MASTER_KEY; nself "
            "falls back to a built-in default (src/lib/config/smart-defaults.sh): set one and rebuild"
        )
    return service


def monitoring(ctx: Ctx) -> dict[str, Any]:
    url = f"http://{HOST}:{ctx.port('PROMETHEUS_PORT', default=9090)}"
    return {
        "kind": "monitoring",
        "runtime": ctx.compose("prometheus"),
        "url": url,
        "health": {"type": "http", "target": f"{url}/-/healthy"},
    }


def nginx(ctx: Ctx) -> dict[str, Any]:
    # always generated (nginx.sh); nothing of it to back up, but the stack is down without it
    url = f"http://{HOST}:{ctx.port('NGINX_PORT', default=80)}"
    ssl = ctx.env.get("SSL_MODE") or "none"
    if ssl != "none":
        ctx.notes.append(f"nginx: SSL_MODE={ssl}; if port 80 redirects, point its probe at the HTTPS port")
    return {
        "kind": "http",
        "runtime": ctx.compose("nginx"),
        "url": url,
        "health": {"type": "http", "target": f"{url}/health"},
    }


def enabled(ctx: Ctx, name: str) -> tuple[bool, str]:
    """Whether nself generates service `name`, and why (service-detection.sh's defaults)."""
    env = ctx.env
    if name in ("postgres", "nginx"):
        return True, "always generated"
    if name in ("hasura", "auth"):
        key = f"{name.upper()}_ENABLED"
        return ctx.flag(key, "true"), f"{key}={env.get(key) or 'unset (default true)'}"
    if name == "minio":
        for key in ("MINIO_ENABLED", "STORAGE_ENABLED"):
            if env.get(key):
                return ctx.flag(key, "false"), f"{key}={env[key]}"
        return False, "MINIO_ENABLED and STORAGE_ENABLED unset (default false)"
    if name == "meilisearch":
        return _search_enabled(ctx)
    key = f"{name.upper()}_ENABLED"
    return ctx.flag(key, "false"), f"{key}={env.get(key) or 'unset (default false)'}"


def _search_enabled(ctx: Ctx) -> tuple[bool, str]:
    """utility-services.sh `generate_search_services`: MEILISEARCH_ENABLED=true, or
    SEARCH_ENABLED=true with SEARCH_PROVIDER meilisearch (its default); TYPESENSE_ENABLED wins."""
    env = ctx.env
    if env.get("TYPESENSE_ENABLED") == "true" or (
        env.get("SEARCH_ENABLED") == "true" and (env.get("SEARCH_PROVIDER") or "meilisearch") == "typesense"
    ):
        ctx.notes.append("search: the provider is Typesense, which drkit does not back up")
        return False, "the search provider is typesense"
    if env.get("MEILISEARCH_ENABLED") == "true":
        return True, "MEILISEARCH_ENABLED=true"
    if env.get("SEARCH_ENABLED") == "true":
        return True, "SEARCH_ENABLED=true with SEARCH_PROVIDER=meilisearch"
    return False, f"MEILISEARCH_ENABLED={env.get('MEILISEARCH_ENABLED') or 'unset (default false)'}"


BUILDERS = {
    "postgres": postgres,
    "redis": redis,
    "minio": minio,
    "hasura": hasura,
    "auth": auth,
    "functions": functions,
    "meilisearch": meilisearch,
    "monitoring": monitoring,
    "nginx": nginx,
}


def unmanaged(ctx: Ctx) -> list[str]:
    """Services nself runs that drkit does not back up, named so the user knows."""
    env, out = ctx.env, []
    if env.get("MAILPIT_ENABLED") == "true":
        out.append(f"mailpit ({ctx.project}_mailpit): a mail catcher, nothing to back up")
    if env.get("NSELF_ADMIN_ENABLED") == "true":
        out.append(f"nself-admin ({ctx.project}_admin): its volume nself_admin_data is not backed up")
    for i in range(1, 21):
        spec = env.get(f"CS_{i}", "")
        if spec:
            name = spec.split(":")[0]
            out.append(
                f"custom service {name} (CS_{i}): not backed up; keep its state "
                "in PostgreSQL or MinIO, or add it to stack.yaml yourself"
            )
    return out
