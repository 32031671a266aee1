"""`drkit init --preset nself`: a stack.yaml for an nself project, read from its .env files.

How nself picks its environment and merges its files is in `nself_env`; what each service
looks like (containers `${PROJECT_NAME}_<service>`, named volumes, which flags turn services
on, whether PostgreSQL is published) in `nself_services`. Both cite nself-org/cli's source.
This module assembles the document, says what it found, and writes it.

Secrets are written as references (`dotenv:/abs/.env.secrets#POSTGRES_PASSWORD`), never as values.
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
from drkit.config.nself_env import ProjectEnv, read_project_env
from drkit.config.nself_services import BUILDERS, CANARY_PASSWORD_ENV, HOST, Ctx, enabled, unmanaged
from drkit.config.secrets import parse_env_text
from drkit.domain.errors import ConfigError, UsageError
from drkit.infra.atomic import write_atomic

__all__ = ["CANARY_PASSWORD_ENV", "HOST", "GeneratedConfig", "nself_config", "parse_env_text"]
__all__ += ["read_project_env", "stack_document", "write_config"]

# RTO / RPO / priority from the source procedures' "Recovery Objectives". Hasura's "0
# (stateless)" there means it keeps no data of its own: its metadata lives in PostgreSQL, so
# it sets no rpo and inherits PostgreSQL's (domain/stack.py, with_inherited_rpo).
OBJECTIVES: dict[str, tuple[str | None, str | None, str]] = {
    "postgres": ("30m", "5m", "critical"),
    "hasura": ("15m", None, "critical"),
    "auth": ("15m", "5m", "critical"),
    "redis": ("10m", "15m", "high"),
    "minio": ("1h", "1h", "medium"),
    "meilisearch": ("2h", "1d", "low"),
    "functions": (None, None, "medium"),
    "monitoring": (None, None, "low"),
    "nginx": (None, None, "high"),
}
SECRET_FIELDS = ("password", "access_key", "secret_key")


def project_name(env: Mapping[str, str], project_dir: Path) -> str:
    """PROJECT_NAME, or (as nself does) the directory name, lowercased, `-` for the rest."""
    name = env.get("PROJECT_NAME", "").strip()
    if not name:
        name = re.sub(r"[^a-z0-9-]", "-", project_dir.resolve().name.lower()).strip("-")
    return name or "my-project"


def stack_document(
    env: Mapping[str, str], project_dir: Path, notes: list[str] | None = None
) -> dict[str, Any]:
    """The stack.yaml content for an nself project, as plain data; `notes` receives what was
    decided and why (services on/off, how PostgreSQL is reached)."""
    ctx = Ctx(env, project_name(env, project_dir))
    chosen = []
    for name in BUILDERS:
        on, why = enabled(ctx, name)
        ctx.notes.append(f"{name}: {'on' if on else 'off'} ({why})")
        if on:
            chosen.append(name)
    services = {}
    for name in chosen:
        service = BUILDERS[name](ctx)
        service["depends_on"] = [d for d in service.get("depends_on", []) if d in chosen]
        if not service["depends_on"]:
            del service["depends_on"]
        services[name] = {**service, **_objectives(name)}
    ctx.notes += [f"not managed: {u}" for u in unmanaged(ctx)]
    state_dir = project_dir.resolve() / ".drkit"
    if "postgres" in services:
        spool = state_dir / "wal-spool" / "postgres"
        ctx.notes.append(
            f"postgres: `drkit wal-stream` runs pg_receivewal inside {ctx.project}_postgres and it "
            f"writes into {spool}, which the container must mount at the same path: add "
            f"`- {spool}:{spool}` under services.postgres.volumes in docker-compose.override.yml, "
            "then `nself restart` (`drkit check` tells whether it is mounted)"
        )
    if notes is not None:
        notes += ctx.notes
    return {
        "version": 1,
        "stack": ctx.project,
        "state_dir": str(state_dir),
        "repositories": {"local": {"type": "fs", "path": f"/var/backups/drkit/{ctx.project}"}},
        "services": services,
        "checks": nchat_checks(),
        "smoke": nchat_smoke(services),
    }


def render(doc: dict[str, Any], project: ProjectEnv, findings: list[str]) -> str:
    read = ", ".join(p.name for p in project.files) or "(none)"
    found = "".join(f"#   {line}\n" for line in findings)
    header = f"""# Written by `drkit init --preset nself` from {read}.
# Environment {project.choice.name}: {project.choice.reason}.
# Secrets are references, resolved when drkit runs (dotenv: reads them from your .env files).
# The auth probe signs in as a canary account: create that user in hasura-auth and
# export {CANARY_PASSWORD_ENV} with its password (until then the auth probe reports it).
# Keep the repository on another disk, and add an off-site (s3) one.
# What init found:
{found}"""
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


def validate(text: str, label: str) -> None:
    """Fail closed: what we write must load with the same schema drkit reads."""
    try:
        StackModel.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(f"{label}: the generated configuration is invalid: {exc}") from exc


@dataclass(frozen=True)
class GeneratedConfig:
    """A stack.yaml ready to write, with what it was made from and what init found."""

    text: str
    stack: str
    services: tuple[str, ...]
    checks: int
    sources: tuple[str, ...]
    environment: str = "dev"
    findings: tuple[str, ...] = ()


def nself_config(project_dir: Path, shell: Mapping[str, str] | None = None) -> GeneratedConfig:
    """Read an nself project and produce its stack.yaml (validated, not yet written).
    `shell` is the environment nself would see (default: this process's)."""
    project = read_project_env(project_dir, shell)
    notes: list[str] = [f"environment: {project.choice.name} ({project.choice.reason})"]
    notes.append("files: " + " -> ".join(p.name for p in project.files))
    doc = stack_document(project.values, project_dir, notes)
    notes += _point_secrets_at_env_files(doc, project)
    notes += _undetermined(doc)
    text = render(doc, project, notes)
    validate(text, str(project_dir))
    return GeneratedConfig(
        text=text,
        stack=doc["stack"],
        services=tuple(doc["services"]),
        checks=len(doc["checks"]),
        sources=tuple(str(p) for p in project.files),
        environment=project.choice.name,
        findings=tuple(notes),
    )


def _point_secrets_at_env_files(doc: dict[str, Any], project: ProjectEnv) -> list[str]:
    """`env:KEY` -> `dotenv:/abs/.env#KEY` when the project's env files define KEY (the last
    file that does wins, as nself merges them), so drkit runs without exporting anything.
    Returns one line per secret saying where it was found (never its value)."""
    found = []
    for name, service in doc["services"].items():
        for fld in SECRET_FIELDS:
            ref = service.get(fld)
            if not isinstance(ref, str) or not ref.startswith("env:"):
                continue
            key = ref.removeprefix("env:")
            defining = project.defined_in(key)
            if defining is not None:
                service[fld] = f"dotenv:{defining.resolve()}#{key}"
                found.append(f"secret: {name}.{fld} = {key} from {defining.name}")
            else:
                found.append(
                    f"secret: {name}.{fld} = {key}: not in the .env files; export it before running drkit"
                )
    return found


def _undetermined(doc: dict[str, Any]) -> list[str]:
    volumes = [s["runtime"]["volume"] for s in doc["services"].values() if s["runtime"].get("volume")]
    return [
        "unknown: the host paths of volumes " + ", ".join(volumes) + " (found with `docker volume inspect`)",
        "unknown: whether pg_hba.conf lets drkit replicate (`drkit check` tells, and how to fix it)",
    ]


def write_config(config: GeneratedConfig, out: Path, *, overwrite: bool) -> None:
    """Write atomically; an existing file is replaced only when `overwrite`."""
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; not replacing it", hint="pass --yes to replace it")
    write_atomic(out, config.text.encode())


def _objectives(name: str) -> dict[str, Any]:
    rto, rpo, priority = OBJECTIVES[name]
    out: dict[str, Any] = {"priority": priority}
    if rto:
        out["rto"] = rto
    if rpo:
        out["rpo"] = rpo
    return out
