"""`drkit init --preset nself --compose-service`: drkit as services of the nself compose project
(docs/nself.md, "drkit in the compose project").

nself starts its stack with `docker compose up` on `docker-compose.yml` and, when present,
`docker-compose.override.yml` (nself-org/cli src/lib/utils/docker.sh; `nself start` runs
`docker compose --project-name P --env-file F up -d`, which reads the override by default).
Every service is on one network, `${PROJECT_NAME}_network` (`DOCKER_NETWORK` in
compose-generate.sh), Prometheus included (monitoring-services.sh), and nself writes
`monitoring/prometheus/prometheus.yml` only when it is missing (monitoring-setup.sh), so a
scrape job added there stays.

The override adds:
- `drkit`: the drkit image running `drkit schedule run` (the jobs, and `wal-stream` for
  PostgreSQL); `drkit-metrics`: the same image running `drkit metrics --listen`, on the
  project network where Prometheus scrapes it as `drkit-metrics:9188`;
- to both, at the paths the host uses (so the same stack.yaml works inside and out): the
  stack.yaml and the env files its `dotenv:` secrets name (read-only), the state directory
  (with the WAL spool, which PostgreSQL's container mounts at the same path), the repository,
  the docker socket (drkit runs PostgreSQL's own tools in its container and stops and starts
  containers for a restore), and each service's named volume where docker says it lives
  (an in-place restore works in the volume as `docker volume inspect` shows it);
- to `postgres`, the spool mount.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from drkit.domain.errors import ConfigError
from drkit.infra.atomic import write_atomic

OVERRIDE = "docker-compose.override.yml"
PROMETHEUS = Path("monitoring/prometheus/prometheus.yml")
METRICS_PORT = 9188
METRICS_SERVICE = "drkit-metrics"
DOCKER_SOCKET = "/var/run/docker.sock"
JOB = "drkit"

Mountpoint = Callable[[str], str | None]  # a named volume -> its host path (docker volume inspect)


@dataclass(frozen=True)
class ComposeService:
    """What `--compose-service` writes: the override (merged into an existing one) and the
    scrape job, with what it decided."""

    override_path: Path
    override_text: str
    prometheus_path: Path | None  # None: nself's Prometheus config is not there
    prometheus_text: str | None
    findings: tuple[str, ...]


def pg_major(env: Mapping[str, str]) -> int:
    """The PostgreSQL major nself runs: `postgres:${POSTGRES_VERSION:-16-alpine}`."""
    raw = env.get("POSTGRES_VERSION") or "16-alpine"
    found = re.match(r"^(\d+)", raw)
    if not found:
        raise ConfigError(
            f"POSTGRES_VERSION={raw!r} in the project's .env does not start with a major version"
        )
    return int(found.group(1))


def compose_service(
    doc: Mapping[str, Any],
    project_dir: Path,
    stack_file: Path,
    env: Mapping[str, str],
    mountpoint: Mountpoint,
    *,
    image: str | None = None,
) -> ComposeService:
    project = str(doc["stack"])
    image = image or f"drkit:pg{pg_major(env)}"
    notes = [
        f"compose: services drkit (`drkit schedule run`) and {METRICS_SERVICE} (`drkit metrics --listen "
        f"0.0.0.0:{METRICS_PORT}`), image {image}, on {project}_network; build the image with "
        f"`docker build -f contrib/docker/Dockerfile --build-arg PG_MAJOR={pg_major(env)} -t {image} .`"
    ]
    mounts, volume_notes = _mounts(doc, stack_file.resolve(), mountpoint)
    notes += volume_notes
    services = _services(project, image, stack_file.resolve(), mounts)
    override_path = project_dir / OVERRIDE
    existing = _existing(override_path)
    merged = _merge(existing, services, _spool(doc))
    if existing:
        notes.append(f"compose: {override_path.name} existed: its other entries are kept")
    text = (
        "# drkit in the compose project: written by `drkit init --preset nself --compose-service`\n"
        "# (docs/nself.md). `nself start` reads this file; run `nself restart` after changing it.\n"
        + yaml.safe_dump(merged, sort_keys=False, width=110)
    )
    prometheus_path, prometheus_text, note = _scrape_job(project_dir)
    notes.append(note)
    return ComposeService(override_path, text, prometheus_path, prometheus_text, tuple(notes))


def _mounts(doc: Mapping[str, Any], stack_file: Path, mountpoint: Mountpoint) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    state = str(doc["state_dir"])
    mounts = [f"{DOCKER_SOCKET}:{DOCKER_SOCKET}", f"{stack_file}:{stack_file}:ro", f"{state}:{state}"]
    for path in sorted(_env_files(doc)):
        mounts.append(f"{path}:{path}:ro")
    for repo in doc.get("repositories", {}).values():
        if repo.get("type") == "fs" and repo.get("path"):
            mounts.append(f"{repo['path']}:{repo['path']}")
    project = str(doc["stack"])
    for name, service in doc.get("services", {}).items():
        volume = service.get("runtime", {}).get("volume")
        if not volume:
            continue
        where = mountpoint(volume)
        if where is None:
            where = f"/var/lib/docker/volumes/{volume}/_data"
            notes.append(
                f"compose: {name}: volume {volume} not found by docker; assumed at {where} (check it)"
            )
        key = volume.removeprefix(f"{project}_")  # the compose file's key (`name: ${PROJECT_NAME}`)
        mounts.append(f"{key}:{where}")
    return mounts, notes


def _env_files(doc: Mapping[str, Any]) -> set[str]:
    found = set()
    for service in doc.get("services", {}).values():
        for value in service.values():
            if isinstance(value, str) and value.startswith("dotenv:"):
                found.add(value.removeprefix("dotenv:").partition("#")[0])
    return found


def _spool(doc: Mapping[str, Any]) -> str | None:
    postgres = doc.get("services", {}).get("postgres")
    if not postgres or postgres.get("backup", {}).get("wal_mode") != "stream":
        return None
    spool = f"{doc['state_dir']}/wal-spool/postgres"
    return f"{spool}:{spool}"


def _services(project: str, image: str, stack_file: Path, mounts: list[str]) -> dict[str, Any]:
    common: dict[str, Any] = {
        "image": image,
        "restart": "unless-stopped",
        "environment": {"DRKIT_CONFIG": str(stack_file)},
        "networks": [f"{project}_network"],
        "volumes": mounts,
    }
    return {
        "drkit": {
            "container_name": f"{project}_drkit",
            **common,
            "command": ["schedule", "run"],
            "depends_on": ["postgres"],
        },
        METRICS_SERVICE: {
            "container_name": f"{project}_drkit_metrics",
            **common,
            "command": ["metrics", "--listen", f"0.0.0.0:{METRICS_PORT}"],
            "expose": [str(METRICS_PORT)],
        },
    }


def _existing(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path}: not readable as YAML ({exc}); fix or move it, then run init again"
        ) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not isinstance(loaded.get("services", {}), dict):
        raise ConfigError(f"{path}: not a compose file (no `services:` mapping); fix or move it")
    return loaded


def _merge(existing: dict[str, Any], services: dict[str, Any], spool: str | None) -> dict[str, Any]:
    merged = dict(existing)
    current = dict(merged.get("services") or {})
    current.update(services)
    if spool is not None:
        postgres = dict(current.get("postgres") or {})
        volumes = list(postgres.get("volumes") or [])
        if spool not in volumes:
            volumes.append(spool)
        postgres["volumes"] = volumes
        current["postgres"] = postgres
    merged["services"] = current
    return merged


def _scrape_job(project_dir: Path) -> tuple[Path | None, str | None, str]:
    path = project_dir / PROMETHEUS
    if not path.is_file():
        return (
            None,
            None,
            (
                f"compose: no {PROMETHEUS} (monitoring off): add a scrape job for "
                f"{METRICS_SERVICE}:{METRICS_PORT} to your Prometheus yourself"
            ),
        )
    text = path.read_text()
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return None, None, f"compose: {path} is not valid YAML ({exc}); no scrape job added"
    jobs = config.get("scrape_configs") or []
    if any(isinstance(j, dict) and j.get("job_name") == JOB for j in jobs):
        return None, None, f"compose: {PROMETHEUS} already has a `{JOB}` scrape job"
    job = {
        "job_name": JOB,
        "scrape_interval": "60s",  # status reads the repository: once a minute is plenty
        "scrape_timeout": "30s",
        "static_configs": [{"targets": [f"{METRICS_SERVICE}:{METRICS_PORT}"]}],
    }
    if list(config)[-1:] == ["scrape_configs"]:  # nself's layout: append, keeping its comments
        block = yaml.safe_dump([job], sort_keys=False, indent=2)
        indented = "".join(f"  {line}\n" for line in block.splitlines())
        added = (
            text.rstrip("\n") + "\n\n  # drkit (`drkit init --preset nself --compose-service`)\n" + indented
        )
    else:
        config["scrape_configs"] = [*jobs, job]
        added = yaml.safe_dump(config, sort_keys=False)
    return (
        path,
        added,
        f"compose: scrape job `{JOB}` ({METRICS_SERVICE}:{METRICS_PORT}) added to {PROMETHEUS}",
    )


def write_compose_service(generated: ComposeService) -> list[str]:
    """Write the override and the scrape job; a file that changes is kept beside it first.
    Returns what was written."""
    written = []
    for path, text in ((generated.override_path, generated.override_text),
                       (generated.prometheus_path, generated.prometheus_text)):  # fmt: skip
        if path is None or text is None:
            continue
        if path.exists():
            old = path.read_bytes()
            if old == text.encode():
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            write_atomic(path.with_name(f"{path.name}.before-drkit-{stamp}"), old)
        write_atomic(path, text.encode())
        written.append(str(path))
    return written
