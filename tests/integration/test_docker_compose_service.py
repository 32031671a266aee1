"""drkit as a service of the nself compose project, on a real Docker engine (its own dockerd).

The drkit image is built from contrib/docker/Dockerfile FROM the locally made Debian base
(docker_image.py; no registry is reachable). `drkit init --preset nself --compose-service`
writes the override; its `drkit` and `drkit-metrics` services are created with `docker run`
as `docker compose up` would (Debian bookworm has no compose v2): docker_project.run_service
translates the merged compose files and fails on any key it does not know. PostgreSQL
publishes no port and lets replication in only through its own socket, as nself's does.

Shown: the image builds; the drkit service streams WAL (`drkit schedule run` supervises
`wal-stream`) and takes a base backup of the unpublished PostgreSQL; Prometheus's scrape
target `drkit-metrics:9188` answers from another container on the project network; a
point-in-time restore in place, run in a one-off container of the drkit service, works.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import OperationError
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.docker_engine import DockerEngine
from tests.integration.docker_image import build_drkit_image
from tests.integration.docker_project import (
    Project,
    compose_document,
    create_containers,
    run_service,
    write_project,
)

NAME = "mall"
# What nself writes when monitoring is on (src/lib/build/core-modules/monitoring-setup.sh), abridged.
PROMETHEUS = """global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: 'prometheus'
    static_configs:
      - targets: ['prometheus:9090']

  - job_name: 'postgres'
    static_configs:
      - targets: ['postgres-exporter:9187']
"""


@pytest.fixture(scope="module")
def drkit_image(docker_engine: DockerEngine) -> Iterator[str]:
    started = time.monotonic()
    image, built = build_drkit_image(docker_engine)
    print(f"drkit image {image}: built in {built:.0f}s, ready after {time.monotonic() - started:.0f}s")
    yield image


@pytest.fixture(scope="module")
def project(docker_engine: DockerEngine) -> Iterator[Project]:
    root = Path(tempfile.mkdtemp(prefix="drkit-compose-", dir="/tmp")) / NAME
    proj = write_project(root, NAME, docker_engine.image)
    proj.docker_host = docker_engine.host
    (root / "monitoring" / "prometheus").mkdir(parents=True)
    (root / "monitoring" / "prometheus" / "prometheus.yml").write_text(PROMETHEUS)
    create_containers(docker_engine, proj)
    wait_for(lambda: sql(proj, "select 1") == 1, timeout=120, what="PostgreSQL in its container",
             retry_on=(OperationError, psycopg.Error))  # fmt: skip
    yield proj
    shutil.rmtree(root.parent, ignore_errors=True)


def sql(project: Project, query: str) -> Any:
    with connect(project.dsn) as conn:
        cur = conn.execute(query)  # type: ignore[arg-type]
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


def in_service(engine: DockerEngine, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`docker compose exec drkit drkit ARGS`."""
    return engine.docker("exec", f"{NAME}_drkit", "drkit", *args, timeout=timeout, check=False)


@pytest.mark.timeout(900)  # the image's build (about 30 s idle) runs in this test's setup
def test_the_drkit_compose_service_streams_backs_up_is_scraped_and_restores(
    docker_engine: DockerEngine, drkit_image: str, project: Project
) -> None:
    env = {"DOCKER_HOST": docker_engine.host}
    init = run_drkit("init", "--preset", "nself", "--project-dir", str(project.dir), "--compose-service",
                     "--image", drkit_image, env=env)  # fmt: skip
    assert init.code == 0, init.stdout + init.stderr
    # As in test_docker_nself: the services this project runs, the repository beside it.
    config = project.dir / "stack.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["services"] = {k: v for k, v in doc["services"].items() if k in ("postgres", "redis")}
    doc["repositories"]["local"]["path"] = str(project.dir.parent / "repo")
    doc.pop("smoke", None)
    doc["checks"] = []
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    again = run_drkit("init", "--preset", "nself", "--project-dir", str(project.dir), "--compose-service",
                      "--image", drkit_image, env=env)  # fmt: skip
    assert again.code == 0, again.stdout + again.stderr  # stack.yaml kept: the override follows it

    # The override's shape: the two services, the spool mount once, the mounts at host paths.
    merged = compose_document(project)
    drkit, metrics = merged["services"]["drkit"], merged["services"]["drkit-metrics"]
    assert drkit["command"] == ["schedule", "run"] and drkit["image"] == drkit_image
    assert metrics["command"] == ["metrics", "--listen", "0.0.0.0:9188"]
    assert drkit["networks"] == [f"{NAME}_network"] and drkit["environment"]["DRKIT_CONFIG"] == str(
        config.resolve()
    )
    volume = docker_engine.docker(
        "volume", "inspect", "-f", "{{.Mountpoint}}", f"{NAME}_postgres_data"
    ).stdout.strip()
    assert f"postgres_data:{volume}" in drkit["volumes"]
    assert f"{project.dir.parent / 'repo'}:{project.dir.parent / 'repo'}" in drkit["volumes"]
    assert any(v.endswith(".env.secrets:ro") for v in drkit["volumes"])
    assert merged["services"]["postgres"]["volumes"].count(f"{project.spool}:{project.spool}") == 1
    prometheus = project.dir / "monitoring" / "prometheus" / "prometheus.yml"
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus.read_text())["scrape_configs"]}
    assert jobs["drkit"]["static_configs"] == [{"targets": ["drkit-metrics:9188"]}] and "prometheus" in jobs
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "config", str(prometheus)], capture_output=True,
                                 text=True, timeout=60, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr

    socket = f"{docker_engine.root}/docker.sock"
    run_service(docker_engine, project, "drkit", socket=socket)
    run_service(docker_engine, project, "drkit-metrics", socket=socket)

    # `schedule run` streams WAL from the unpublished PostgreSQL (pg_receivewal in its container).
    wait_for(lambda: sql(project, "select count(*) from pg_stat_replication") == 1, timeout=180,
             what="the drkit service's WAL stream", retry_on=(OperationError, psycopg.Error))  # fmt: skip
    sql(project, "create table orders (id serial primary key, note text)")
    sql(project, "insert into orders (note) select 'before' from generate_series(1, 300)")
    backup = in_service(docker_engine, "--output", "json", "backup", "postgres")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert '"kind": "base"' in backup.stdout
    sql(project, "insert into orders (note) select 'kept' from generate_series(1, 100)")
    target = sql(project, "select now()")
    sql(project, "select pg_sleep(0.2)")
    sql(project, "insert into orders (note) select 'lost' from generate_series(1, 50)")
    segment = sql(project, "select pg_walfile_name(pg_current_wal_lsn())")
    sql(project, "select pg_switch_wal()")
    wal = project.dir.parent / "repo" / NAME / "postgres" / "wal"
    wait_for(lambda: any(p.name.startswith(segment) for p in wal.rglob("*.zst")), timeout=180,
             what=f"{segment} in the repository, pushed by the drkit service")  # fmt: skip

    # Prometheus's target, from another container on the project network.
    url = "http://drkit-metrics:9188/metrics"
    scrape = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=60).read().decode())"

    def scraped() -> str | None:
        python = ("--entrypoint", "/opt/drkit/bin/python", drkit_image, "-c", scrape)
        got = docker_engine.docker(
            "run", "--rm", "--network", f"{NAME}_network", *python, timeout=180, check=False
        )
        return got.stdout if got.returncode == 0 else None

    body = wait_for(scraped, timeout=180, what="drkit-metrics:9188 to answer", interval=2, max_interval=5)
    assert "drkit_backups{" in body and 'service="postgres"' in body

    # A restore, as an operator runs it: the scheduler stopped, then the service's image
    # in a one-off container (`docker compose run --rm drkit restore ...`).
    docker_engine.docker("stop", f"{NAME}_drkit", timeout=180)
    when = target.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    restore = ["--yes", "restore", "postgres", "--in-place", "--target-time", when]
    restored = run_service(docker_engine, project, "drkit", once=True, socket=socket, command=restore)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    wait_for(lambda: sql(project, "select count(*) from orders where note = 'kept'") == 100, timeout=120,
             what="PostgreSQL back at the target", retry_on=(OperationError, psycopg.Error))  # fmt: skip
    assert sql(project, "select count(*) from orders where note = 'lost'") == 0
    assert sql(project, "select count(*) from orders where note = 'before'") == 300
