"""An nself-shaped project on a real Docker engine: its `.env*` files and compose file, and
its containers and named volumes, created with plain `docker` (Debian ships no `docker
compose` v2 plugin; the compose file is what nself would write, the containers are what
`docker compose up` would make of it).

PostgreSQL is on the project's own bridge network and publishes no port (nself's prod
default): the host reaches it only at its address on that network, as drkit does (`docker
inspect`). Its pg_hba.conf lets replication in only through the container's unix socket, as
nself's does: drkit's tools must run inside the container. Redis is published on loopback,
as nself publishes it (host networking stands for `127.0.0.1:${REDIS_PORT}:6379`).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drkit.config.secrets import parse_env_text
from drkit.domain.errors import OperationError
from drkit.infra.ports import free_port
from tests.integration.docker_engine import DockerEngine

PASSWORD = "s3cret-Pw"

PG_INIT = r"""
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pw
  /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pw -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pw
  # nself: replication only from inside the container; the postgres image's
  # `host all all all scram-sha-256` for everything else
  sed -i '/^host[[:space:]]*replication/d' "$PGDATA/pg_hba.conf"
  echo 'host all all all scram-sha-256' >> "$PGDATA/pg_hba.conf"
  /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -o "-c listen_addresses= -c port=$PGPORT" -w start >/dev/null
  psql -X -q -p "$PGPORT" -d postgres -c "create database \"$POSTGRES_DB\""
  /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec /usr/lib/postgresql/15/bin/postgres -D "$PGDATA" -c listen_addresses='*' -c port="$PGPORT" \
  -c unix_socket_directories=/var/run/postgresql
"""

COMPOSE = """\
# What nself generates (abridged): services named ${{PROJECT_NAME}}_<service>, named volumes,
# PostgreSQL not published. The test creates the same containers with plain `docker`.
services:
  postgres:
    image: {image}
    container_name: ${{PROJECT_NAME}}_postgres
    user: postgres
    stop_signal: SIGINT
    networks: [{name}_network]
    expose: ["5432"]
    environment:
      PGDATA: /var/lib/postgresql/data
      POSTGRES_DB: ${{POSTGRES_DB}}
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD}}
    volumes:
      - postgres_data:/var/lib/postgresql/data
  redis:
    image: {image}
    container_name: ${{PROJECT_NAME}}_redis
    user: redis
    network_mode: host
    command: redis-server --appendonly yes --dir /data --bind 127.0.0.1 --port ${{REDIS_PORT}}
    volumes:
      - redis_data:/data
networks:
  {name}_network:
    name: {name}_network
    driver: bridge
volumes:
  postgres_data:
    name: ${{PROJECT_NAME}}_postgres_data
  redis_data:
    name: ${{PROJECT_NAME}}_redis_data
"""

OVERRIDE = """\
# docker-compose.override.yml for drkit (docs/nself.md): pg_receivewal runs in the
# container and writes into drkit's spool, mounted at the same path.
services:
  postgres:
    volumes:
      - {spool}:{spool}
"""


@dataclass
class Project:
    dir: Path
    name: str
    redis_port: int
    spool: Path
    docker_host: str = ""

    @property
    def pg_address(self) -> str:
        """PostgreSQL's address on the project network, asked each time (a restart may move it)."""
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        found = subprocess.run(
            ["docker", "inspect", "-f", fmt, f"{self.name}_postgres"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "DOCKER_HOST": self.docker_host},
        )  # fmt: skip
        address = found.stdout.strip()
        if found.returncode != 0 or not address:
            raise OperationError(f"{self.name}_postgres has no address: {found.stderr.strip()}")
        return address

    @property
    def dsn(self) -> str:
        return f"host={self.pg_address} port=5432 user=postgres dbname={self.name} password={PASSWORD}"


def write_project(root: Path, name: str, image: str) -> Project:
    root.mkdir(parents=True)
    project = Project(root, name, free_port(), root / ".drkit" / "wal-spool" / "postgres")
    (root / ".env").write_text(
        f"PROJECT_NAME={name}\nENV=prod\nPOSTGRES_DB={name}\nPOSTGRES_USER=postgres\n"
        f"POSTGRES_EXPOSE_PORT=false\nREDIS_ENABLED=true\nREDIS_PORT={project.redis_port}\n"
        "HASURA_ENABLED=false\nAUTH_ENABLED=false\nFUNCTIONS_ENABLED=false\nMINIO_ENABLED=false\n"
        "MEILISEARCH_ENABLED=false\nMONITORING_ENABLED=false\n"
    )
    (root / ".env.secrets").write_text(f"POSTGRES_PASSWORD={PASSWORD}\n")
    (root / ".env.secrets").chmod(0o600)
    (root / "docker-compose.yml").write_text(COMPOSE.format(image=image, name=name))
    (root / "docker-compose.override.yml").write_text(OVERRIDE.format(spool=project.spool))
    return project


def create_containers(engine: DockerEngine, project: Project) -> None:
    """`docker compose up -d`, by hand."""
    name, image = project.name, engine.image
    project.spool.mkdir(parents=True)  # drkit wal-stream gives it to the container's user
    for volume in ("postgres_data", "redis_data"):
        engine.docker("volume", "create", f"{name}_{volume}")
    # docker picks the subnet from its default pools, avoiding networks this host already routes
    engine.docker("network", "create", "--driver", "bridge", f"{name}_network")
    engine.docker(
        "run", "-d", "--name", f"{name}_postgres", "--user", "postgres", "--stop-signal", "SIGINT",
        "--network", f"{name}_network", "-e", "PGDATA=/var/lib/postgresql/data", "-e", "PGPORT=5432",
        "-e", f"POSTGRES_DB={name}", "-e", f"POSTGRES_PASSWORD={PASSWORD}",
        "-v", f"{name}_postgres_data:/var/lib/postgresql/data", "-v", f"{project.spool}:{project.spool}",
        "--entrypoint", "sh", image, "-c", PG_INIT,
    )  # fmt: skip
    engine.docker(
        "run", "-d", "--name", f"{name}_redis", "--user", "redis", "--network", "host",
        "-v", f"{name}_redis_data:/data", "--entrypoint", "redis-server", image,
        "--appendonly", "yes", "--dir", "/data", "--bind", "127.0.0.1", "--port", str(project.redis_port),
    )  # fmt: skip


SERVICE_KEYS = frozenset(
    {"image", "container_name", "command", "environment", "volumes", "networks", "restart", "expose",
     "depends_on", "user"}
)  # fmt: skip


def compose_document(project: Project) -> dict[str, Any]:
    """docker-compose.yml with docker-compose.override.yml merged over it, as `docker compose`
    merges them (services by name; a service's volumes, networks and expose lists joined,
    other keys replaced)."""
    env = parse_env_text((project.dir / ".env").read_text())
    base = yaml.safe_load(interpolate((project.dir / "docker-compose.yml").read_text(), env))
    override_path = project.dir / "docker-compose.override.yml"
    override = yaml.safe_load(interpolate(override_path.read_text(), env)) if override_path.exists() else {}
    merged = dict(base)
    services = {k: dict(v) for k, v in base.get("services", {}).items()}
    for name, extra in (override.get("services") or {}).items():
        current = services.setdefault(name, {})
        for key, value in extra.items():
            if key in ("volumes", "networks", "expose") and key in current:
                current[key] = [*current[key], *[v for v in value if v not in current[key]]]
            else:
                current[key] = value
    merged["services"] = services
    return merged


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}` and `${NAME:-default}`, from the project's .env."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return env.get(name) or default

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", value, text)


def run_service(
    engine: DockerEngine,
    project: Project,
    service: str,
    *,
    command: list[str] | None = None,
    once: bool = False,
    socket: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker compose up -d SERVICE` (or, `once`, `docker compose run --rm SERVICE COMMAND`),
    by hand, from the merged compose files. A key this translation does not know fails the
    test: the override must be made of what compose takes. `socket`: the host's docker socket
    for a `/var/run/docker.sock` mount (the test's engine has its own)."""
    doc = compose_document(project)
    spec = doc["services"][service]
    unknown = set(spec) - SERVICE_KEYS
    if unknown:
        raise AssertionError(f"service {service}: keys this test cannot run: {sorted(unknown)}")
    args = ["run", "--rm"] if once else ["run", "-d", "--name", str(spec["container_name"])]
    if not once and spec.get("restart"):
        args += ["--restart", str(spec["restart"])]
    for network in spec.get("networks", []):
        name = doc.get("networks", {}).get(network, {}).get("name", network)
        args += ["--network", name, "--network-alias", service]  # compose: the service's name resolves
    for key, value in (spec.get("environment") or {}).items():
        args += ["-e", f"{key}={value}"]
    for volume in spec.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source == "/var/run/docker.sock" and socket:
            source = socket
        elif not source.startswith("/"):
            source = doc.get("volumes", {}).get(source, {}).get("name", f"{project.name}_{source}")
        args += ["-v", f"{source}:{rest}"]
    if spec.get("user"):
        args += ["--user", str(spec["user"])]
    run = [*args, str(spec["image"]), *(command if command is not None else spec.get("command", []))]
    return engine.docker(*run, timeout=1800, check=not once)
