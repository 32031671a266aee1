"""An nself-shaped project on a real Docker engine: its `.env*` files and compose file, and
its containers and named volumes, created with plain `docker` (Debian ships no `docker
compose` v2 plugin; the compose file is what nself would write, the containers are what
`docker compose up` would make of it, on host networking on loopback ports).

PostgreSQL's pg_hba.conf lets replication in only through the container's unix socket, as
nself's does: drkit's tools must run inside the container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
  # nself: replication only from inside the container
  sed -i '/^host[[:space:]]*replication/d' "$PGDATA/pg_hba.conf"
  /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -o "-c listen_addresses= -c port=$PGPORT" -w start >/dev/null
  psql -X -q -p "$PGPORT" -d postgres -c "create database \"$POSTGRES_DB\""
  /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec /usr/lib/postgresql/15/bin/postgres -D "$PGDATA" -c listen_addresses=127.0.0.1 -c port="$PGPORT" \
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
    network_mode: host
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
    pg_port: int
    redis_port: int
    spool: Path
    docker_host: str = ""

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user=postgres dbname={self.name} password={PASSWORD}"


def write_project(root: Path, name: str, image: str) -> Project:
    root.mkdir(parents=True)
    project = Project(root, name, free_port(), free_port(), root / ".drkit" / "wal-spool" / "postgres")
    (root / ".env").write_text(
        f"PROJECT_NAME={name}\nENV=prod\nPOSTGRES_DB={name}\nPOSTGRES_USER=postgres\n"
        f"POSTGRES_PORT={project.pg_port}\nREDIS_ENABLED=true\nREDIS_PORT={project.redis_port}\n"
        "HASURA_ENABLED=false\nAUTH_ENABLED=false\nFUNCTIONS_ENABLED=false\nMINIO_ENABLED=false\n"
        "MEILISEARCH_ENABLED=false\nMONITORING_ENABLED=false\n"
    )
    (root / ".env.secrets").write_text(f"POSTGRES_PASSWORD={PASSWORD}\n")
    (root / ".env.secrets").chmod(0o600)
    (root / "docker-compose.yml").write_text(COMPOSE.format(image=image))
    (root / "docker-compose.override.yml").write_text(OVERRIDE.format(spool=project.spool))
    return project


def create_containers(engine: DockerEngine, project: Project) -> None:
    """`docker compose up -d`, by hand."""
    name, image = project.name, engine.image
    project.spool.mkdir(parents=True)  # drkit wal-stream gives it to the container's user
    for volume in ("postgres_data", "redis_data"):
        engine.docker("volume", "create", f"{name}_{volume}")
    engine.docker(
        "run", "-d", "--name", f"{name}_postgres", "--user", "postgres", "--stop-signal", "SIGINT",
        "--network", "host", "-e", "PGDATA=/var/lib/postgresql/data", "-e", f"PGPORT={project.pg_port}",
        "-e", f"POSTGRES_DB={name}", "-e", f"POSTGRES_PASSWORD={PASSWORD}",
        "-v", f"{name}_postgres_data:/var/lib/postgresql/data", "-v", f"{project.spool}:{project.spool}",
        "--entrypoint", "sh", image, "-c", PG_INIT,
    )  # fmt: skip
    engine.docker(
        "run", "-d", "--name", f"{name}_redis", "--user", "redis", "--network", "host",
        "-v", f"{name}_redis_data:/data", "--entrypoint", "redis-server", image,
        "--appendonly", "yes", "--dir", "/data", "--bind", "127.0.0.1", "--port", str(project.redis_port),
    )  # fmt: skip
