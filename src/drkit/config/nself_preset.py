"""`drkit init --preset nself`: a stack.yaml for an nself project, read from its .env files.

nself (nself-org/cli) loads, later files winning: .env.dev, .env.local, then for
ENV=staging .env.staging, for ENV=prod .env.staging, .env.prod and .env.secrets, and last
.env. Values are plain KEY=VALUE lines, optionally quoted. Containers are named
`${PROJECT_NAME}_<service>`, ports are published on 127.0.0.1, and the database is
`${POSTGRES_DB}` (default: the project name with `-` as `_`).

Secrets are written as references (`env:POSTGRES_PASSWORD`), never as values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from drkit.config.models import StackModel
from drkit.config.nchat_checks import nchat_checks, nchat_smoke
from drkit.config.secrets import parse_env_text
from drkit.domain.errors import ConfigError, UsageError
from drkit.infra.atomic import write_atomic

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST = "127.0.0.1"
CANARY_PASSWORD_ENV = "DRKIT_AUTH_CANARY_PASSWORD"  # noqa: S105 (a variable name, not a secret)

# RTO / RPO / priority from the source procedures' "Recovery Objectives".
OBJECTIVES: dict[str, tuple[str | None, str | None, str]] = {
    "postgres": ("30m", "5m", "critical"),
    "hasura": ("15m", "0s", "critical"),
    "auth": ("15m", "5m", "critical"),
    "redis": ("10m", "15m", "high"),
    "minio": ("1h", "1h", "medium"),
    "meilisearch": ("2h", "1d", "low"),
    "functions": (None, None, "medium"),
    "monitoring": (None, None, "low"),
}
# The service a flag turns off; postgres is always there.
ENABLE_FLAGS = {
    "redis": ("REDIS_ENABLED",),
    "minio": ("MINIO_ENABLED",),
    "hasura": ("HASURA_ENABLED",),
    "auth": ("AUTH_ENABLED",),
    "functions": ("FUNCTIONS_ENABLED",),
    "meilisearch": ("MEILISEARCH_ENABLED", "SEARCH_ENABLED"),
    "monitoring": ("MONITORING_ENABLED", "PROMETHEUS_ENABLED"),
}


def env_files(project_dir: Path, env: Mapping[str, str]) -> list[Path]:
    """The .env files nself would load for this project, in loading order."""
    stage = _normalise_env(env.get("NSELF_ENV") or env.get("ENV") or "dev")
    names = [".env.dev", ".env.local"]
    if stage == "staging":
        names.append(".env.staging")
    elif stage == "prod":
        names += [".env.staging", ".env.prod", ".env.secrets"]
    names.append(".env")
    return [project_dir / n for n in names if (project_dir / n).is_file()]


def read_project_env(project_dir: Path) -> tuple[dict[str, str], list[Path]]:
    """The merged settings of an nself project, and the files they came from."""
    if not project_dir.is_dir():
        raise UsageError(f"{project_dir}: not a directory")
    merged: dict[str, str] = {}
    # ENV itself may be set in any base file: read them first to know which files apply.
    for path in env_files(project_dir, {}):
        merged.update(parse_env_text(path.read_text()))
    files = env_files(project_dir, merged)
    merged = {}
    for path in files:
        merged.update(parse_env_text(path.read_text()))
    if not files:
        raise UsageError(f"{project_dir}: no .env, .env.dev or .env.local here; is it an nself project?")
    return merged, files


def project_name(env: Mapping[str, str], project_dir: Path) -> str:
    """PROJECT_NAME, or (as nself does) the directory name, lowercased, `-` for the rest."""
    name = env.get("PROJECT_NAME", "").strip()
    if not name:
        name = re.sub(r"[^a-z0-9-]", "-", project_dir.resolve().name.lower()).strip("-")
    return name or "my-project"


def stack_document(env: Mapping[str, str], project_dir: Path) -> dict[str, Any]:
    """The stack.yaml content for an nself project, as plain data."""
    project = project_name(env, project_dir)
    builders = {
        "postgres": _postgres,
        "redis": _redis,
        "minio": _minio,
        "hasura": _hasura,
        "auth": _auth,
        "functions": _functions,
        "meilisearch": _meilisearch,
        "monitoring": _monitoring,
    }
    enabled = [s for s in builders if s == "postgres" or _enabled(env, s)]
    services = {}
    for name in enabled:
        service = builders[name](env, project)
        service["depends_on"] = [d for d in service.get("depends_on", []) if d in enabled]
        if not service["depends_on"]:
            del service["depends_on"]
        services[name] = {**service, **_objectives(name)}
    return {
        "version": 1,
        "stack": project,
        "repositories": {"local": {"type": "fs", "path": f"/var/backups/drkit/{project}"}},
        "services": services,
        "checks": nchat_checks(),
        "smoke": nchat_smoke(services),
    }


def render(doc: dict[str, Any], sources: list[Path]) -> str:
    read = ", ".join(p.name for p in sources) or "(none)"
    header = f"""# Written by `drkit init --preset nself` from {read}.
# Secrets are references, resolved when drkit runs (dotenv: reads them from your .env files).
# The auth probe signs in as a canary account: create that user in hasura-auth and
# export {CANARY_PASSWORD_ENV} with its password (until then the auth probe reports it).
# Keep the repository on another disk, and add an off-site (s3) one.
"""
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


def validate(text: str, label: str) -> None:
    """Fail closed: what we write must load with the same schema drkit reads."""
    try:
        StackModel.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(f"{label}: the generated configuration is invalid: {exc}") from exc


@dataclass(frozen=True)
class GeneratedConfig:
    """A stack.yaml ready to write, with what it was made from."""

    text: str
    stack: str
    services: tuple[str, ...]
    checks: int
    sources: tuple[str, ...]


def nself_config(project_dir: Path) -> GeneratedConfig:
    """Read an nself project and produce its stack.yaml (validated, not yet written)."""
    env, sources = read_project_env(project_dir)
    doc = stack_document(env, project_dir)
    _point_secrets_at_env_files(doc, sources)
    text = render(doc, sources)
    validate(text, str(project_dir))
    return GeneratedConfig(
        text=text,
        stack=doc["stack"],
        services=tuple(doc["services"]),
        checks=len(doc["checks"]),
        sources=tuple(str(p) for p in sources),
    )


def _point_secrets_at_env_files(doc: dict[str, Any], sources: list[Path]) -> None:
    """`env:KEY` -> `dotenv:/abs/.env#KEY` when the project's env files define KEY (the last
    file that does wins, as nself merges them), so drkit runs without exporting anything."""
    for service in doc["services"].values():
        ref = service.get("password")
        if not isinstance(ref, str) or not ref.startswith("env:"):
            continue
        key = ref.removeprefix("env:")
        defining = [p for p in sources if key in parse_env_text(p.read_text())]
        if defining:
            service["password"] = f"dotenv:{defining[-1].resolve()}#{key}"


def write_config(config: GeneratedConfig, out: Path, *, overwrite: bool) -> None:
    """Write atomically; an existing file is replaced only when `overwrite`."""
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; not replacing it", hint="pass --yes to replace it")
    write_atomic(out, config.text.encode())


def _postgres(env: Mapping[str, str], project: str) -> dict[str, Any]:
    db = env.get("POSTGRES_DB") or project.replace("-", "_")
    user = env.get("POSTGRES_USER") or "postgres"
    port = _port(env, "POSTGRES_PORT", default=5432)
    return {
        "kind": "postgres",
        "runtime": _compose(project, "postgres"),
        "dsn": f"host={HOST} port={port} user={user} dbname={db}",
        "password": "env:POSTGRES_PASSWORD",
        # crash recovery after an unclean stop can take a while
        "health": {"type": "sql", "timeout": "2m"},
        "backup": {"wal_mode": "stream", "databases": [db]},
    }


def _redis(env: Mapping[str, str], project: str) -> dict[str, Any]:
    service: dict[str, Any] = {
        "kind": "redis",
        "runtime": _compose(project, "redis"),
        "url": f"redis://{HOST}:{_port(env, 'REDIS_PORT', default=6379)}/0",
        "health": {"type": "redis"},
    }
    if env.get("REDIS_PASSWORD"):
        service["password"] = "env:REDIS_PASSWORD"  # noqa: S105 (a reference, not a secret)
    return service


def _minio(env: Mapping[str, str], project: str) -> dict[str, Any]:
    url = f"http://{HOST}:{_port(env, 'MINIO_PORT', default=9000)}"
    return {
        "kind": "s3",
        "runtime": _compose(project, "minio"),
        "url": url,
        "health": {"type": "http", "target": f"{url}/minio/health/live"},
    }


def _hasura(env: Mapping[str, str], project: str) -> dict[str, Any]:
    url = f"http://{HOST}:{_port(env, 'HASURA_PORT', default=8080)}"
    return {
        "kind": "hasura",
        "runtime": _compose(project, "hasura"),
        "url": url,
        "depends_on": ["postgres"],
        # strict: fails on inconsistent metadata, which a plain /healthz does not
        "health": {"type": "hasura", "target": f"{url}/healthz?strict=true"},
        **({"password": "env:HASURA_GRAPHQL_ADMIN_SECRET"} if env.get("HASURA_GRAPHQL_ADMIN_SECRET") else {}),
    }


def _auth(env: Mapping[str, str], project: str) -> dict[str, Any]:
    port = _port(env, "AUTH_PORT", default=4000)
    domain = env.get("BASE_DOMAIN", "")
    email = f"drkit-canary@{domain if '.' in domain else 'example.com'}"
    return {
        "kind": "auth",
        "runtime": _compose(project, "auth"),
        "url": f"http://{HOST}:{port}",
        "password": f"env:{CANARY_PASSWORD_ENV}",
        # auth tracks its tables through Hasura's metadata API when it starts
        "depends_on": ["postgres", "hasura"],
        # /healthz answers 200 without checking anything: sign in a canary instead
        "health": {"type": "auth", "target": f"http://{email.replace('@', '%40')}@{HOST}:{port}"},
    }


def _functions(env: Mapping[str, str], project: str) -> dict[str, Any]:
    url = f"http://{HOST}:{_port(env, 'FUNCTIONS_PORT', default=3008)}"
    return {
        "kind": "functions",
        "runtime": _compose(project, "functions"),
        "url": url,
        "depends_on": ["postgres", "hasura"],
        "health": {"type": "http", "target": f"{url}/healthz"},
    }


def _meilisearch(env: Mapping[str, str], project: str) -> dict[str, Any]:
    url = f"http://{HOST}:{_port(env, 'SEARCH_PORT', 'MEILISEARCH_PORT', default=7700)}"
    runtime = _compose(project, "meilisearch")
    # dumps are written inside the container's volume; drkit reads them from the host
    runtime["data_dir"] = f"/var/lib/docker/volumes/{project}_meilisearch_data/_data"
    service: dict[str, Any] = {
        "kind": "meilisearch",
        "runtime": runtime,
        "url": url,
        "depends_on": ["postgres"],
        "health": {"type": "http", "target": f"{url}/health"},
    }
    if env.get("MEILI_MASTER_KEY"):
        service["password"] = "env:MEILI_MASTER_KEY"  # noqa: S105 (a reference, not a secret)
    return service


def _monitoring(env: Mapping[str, str], project: str) -> dict[str, Any]:
    url = f"http://{HOST}:{_port(env, 'PROMETHEUS_PORT', default=9090)}"
    return {
        "kind": "monitoring",
        "runtime": _compose(project, "prometheus"),
        "url": url,
        "health": {"type": "http", "target": f"{url}/-/healthy"},
    }


def _compose(project: str, service: str) -> dict[str, Any]:
    return {"type": "compose", "container": f"{project}_{service}"}


def _objectives(name: str) -> dict[str, Any]:
    rto, rpo, priority = OBJECTIVES[name]
    out: dict[str, Any] = {"priority": priority}
    if rto:
        out["rto"] = rto
    if rpo:
        out["rpo"] = rpo
    return out


def _enabled(env: Mapping[str, str], service: str) -> bool:
    """On unless a flag for it says false (nself writes them; a missing one means default)."""
    flags = [env[f].strip().lower() for f in ENABLE_FLAGS[service] if f in env]
    provider = env.get("SEARCH_PROVIDER", "meilisearch").strip().lower() or "meilisearch"
    if service == "meilisearch" and provider != "meilisearch":
        return env.get("MEILISEARCH_ENABLED", "").strip().lower() == "true"
    return not flags or not all(f == "false" for f in flags)


def _port(env: Mapping[str, str], *keys: str, default: int) -> int:
    """The first of `keys` that is set, as a port number."""
    key = next((k for k in keys if env.get(k, "").strip()), keys[0])
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{key}={raw!r} in the project's .env is not a port number")
    return int(raw)


def _normalise_env(value: str) -> str:
    value = value.strip().lower()
    if value in ("development", "develop", "devel", "dev"):
        return "dev"
    if value in ("production", "prod"):
        return "prod"
    if value in ("staging", "stage"):
        return "staging"
    return value
