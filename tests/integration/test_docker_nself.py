"""drkit on an nself-shaped project, through a real Docker engine (its own dockerd).

PostgreSQL publishes no port (nself's prod default): it is on the project's bridge network
only, and drkit reaches it there with the `stack.yaml` the preset wrote unchanged
(`host=shop_postgres`: drkit dials the address docker gives). It allows replication only
through its unix socket inside the container, as nself's does: base backups, dumps and WAL
streaming must run in the container (`docker exec`). The in-place restore goes into the
container's named volume.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
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
from tests.conftest import CliResult, run_drkit
from tests.integration.docker_engine import DockerEngine
from tests.integration.docker_project import PASSWORD, Project, create_containers, write_project


@pytest.fixture(scope="module")
def project(docker_engine: DockerEngine) -> Iterator[Project]:
    root = Path(tempfile.mkdtemp(prefix="drkit-nself-", dir="/tmp")) / "shop"
    try:
        proj = write_project(root, "shop", docker_engine.image)
        proj.docker_host = docker_engine.host
        create_containers(docker_engine, proj)
        wait_for(lambda: sql(proj, "select 1") == 1, timeout=120, what="PostgreSQL in its container",
                 retry_on=(OperationError, psycopg.Error))  # fmt: skip
        yield proj
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def sql(project: Project, query: str) -> Any:
    with connect(project.dsn) as conn:
        cur = conn.execute(query)  # type: ignore[arg-type]
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


def drkit(project: Project, *args: str, timeout: float = 300) -> CliResult:
    # drkit's host side reads WAL (pg_waldump) for time targets: the server's major version.
    path = f"/usr/lib/postgresql/15/bin:{os.environ['PATH']}"
    env = {"DOCKER_HOST": project.docker_host, "PATH": path}
    return run_drkit("--debug", *args, config=project.dir / "stack.yaml", timeout=timeout, env=env)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}\n{result.stdout}\n{result.stderr}"
    return result


def test_nself_project_backup_pitr_and_restore_through_docker(
    docker_engine: DockerEngine, project: Project
) -> None:
    env = {"DOCKER_HOST": docker_engine.host}
    # The premise: replication from outside the container is refused.
    outside = subprocess.run(
        ["pg_basebackup", "-d", f"host={project.pg_address} port=5432 user=postgres",
         "-D", "-", "-Ft", "-X", "none"],
        capture_output=True, timeout=60, check=False, env={**os.environ, "PGPASSWORD": PASSWORD},
    )  # fmt: skip
    assert outside.returncode != 0 and b"replication" in outside.stderr

    ok(run_drkit("init", "--preset", "nself", "--project-dir", str(project.dir), env=env))
    config = project.dir / "stack.yaml"
    doc = yaml.safe_load(config.read_text())
    assert {"postgres", "redis"} <= set(doc["services"])
    # nginx is always on in nself; this project has no nginx container (no image for it here).
    doc["services"] = {k: v for k, v in doc["services"].items() if k in ("postgres", "redis")}
    assert doc["services"]["postgres"]["runtime"]["container"] == "shop_postgres"
    # The preset's PostgreSQL entry as written: the container's name, its volume, no port.
    pg = doc["services"]["postgres"]
    assert pg["dsn"] == "host=shop_postgres port=5432 user=postgres dbname=shop"
    assert pg["runtime"]["volume"] == "shop_postgres_data" and "port" not in pg["runtime"]
    assert doc["state_dir"] == str((project.dir / ".drkit").resolve())
    assert doc["services"]["redis"]["runtime"]["volume"] == "shop_redis_data"
    # Where the repository goes is the operator's choice (the preset suggests /var/backups).
    doc["repositories"]["local"]["path"] = str(project.dir.parent / "repo")
    doc["checks"] = [
        {"name": "orders_present", "service": "postgres", "query": "select count(*) from orders",
         "expect": {"at_least": 500}},
    ]  # fmt: skip
    doc.pop("smoke", None)
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    sql(project, "create table orders (id serial primary key, note text)")
    sql(project, "insert into orders (note) select 'before' from generate_series(1, 500)")
    streamer = subprocess.Popen(
        [sys.executable, "-m", "drkit", "--config", str(config), "wal-stream"],
        env={**env, **os.environ, "DOCKER_HOST": docker_engine.host},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: sql(project, "select count(*) from pg_stat_replication") == 1, timeout=60,
                 what="pg_receivewal connected", retry_on=(OperationError, psycopg.Error))  # fmt: skip
        redis_client(project).set("cart:1", "before")
        backup = drkit(project, "--output", "json", "backup", "--all", timeout=600)
        set_id = ok(backup).json()["set_id"]
        redis_client(project).set("cart:1", "after")
        logical = ok(drkit(project, "--output", "json", "backup", "postgres", "--type", "logical")).json()
        names = [f["name"] for f in logical[0]["files"]]
        assert any(n.startswith("shop.dump") for n in names) and any(
            n.startswith("globals.sql") for n in names
        )
        check = drkit(project, "--output", "json", "check")
        assert check.code == 0, check.stdout + check.stderr
        results = {c["name"]: c for c in check.json()["results"]}
        assert results["postgres: connect"]["status"] == "ok"  # SQL from the host, no port published
        assert results["postgres: wal spool"]["status"] == "ok"  # the override mounts the spool
        assert "in shop_postgres" in results["postgres: pg_basebackup"]["detail"]  # the container's own
        sql(project, "insert into orders (note) select 'kept' from generate_series(1, 100)")
        target = sql(project, "select now()")
        sql(project, "select pg_sleep(0.2)")
        sql(project, "insert into orders (note) select 'lost' from generate_series(1, 50)")
        sql(project, "select pg_switch_wal()")
        lsn = sql(project, "select pg_current_wal_lsn()::text")
        wait_for(
            lambda: sql(project, f"select flush_lsn >= '{lsn}' from pg_stat_replication") is True,
            timeout=60, what="the receiver to flush", retry_on=(OperationError, psycopg.Error),
        )  # fmt: skip
    finally:
        streamer.send_signal(signal.SIGTERM)
        out = streamer.communicate(timeout=120)[0]
    assert streamer.returncode == 0, out
    # Stopping drkit's stream stops pg_receivewal inside the container too (killing `docker
    # exec` alone leaves it running, holding the slot).
    wait_for(lambda: sql(project, "select count(*) from pg_stat_replication") == 0, timeout=30,
             what="pg_receivewal gone from the container")  # fmt: skip
    when = target.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    restored = drkit(
        project, "--yes", "restore", "postgres", "--in-place", "--target-time", when, timeout=900
    )
    ok(restored)
    assert sql(project, "select count(*) from orders where note = 'kept'") == 100
    assert sql(project, "select count(*) from orders where note = 'lost'") == 0
    volume = docker_engine.docker(
        "volume", "inspect", "-f", "{{.Mountpoint}}", "shop_postgres_data"
    ).stdout.strip()
    # The volume is PGDATA itself: the old contents go aside under a name base backups skip.
    asides = [p for p in Path(volume).iterdir() if p.name.startswith("pgsql_tmp.drkit-before-restore-")]
    assert len(asides) == 1 and (asides[0] / "PG_VERSION").is_file()
    assert (Path(volume) / "PG_VERSION").stat().st_uid == (asides[0] / "PG_VERSION").stat().st_uid

    # The whole stack back to the set: PostgreSQL in place (to the set's point), Redis's volume.
    ok(drkit(project, "--yes", "restore", "--set", set_id, timeout=900))
    assert sql(project, "select count(*) from orders where note = 'kept'") == 0
    assert sql(project, "select count(*) from orders") == 500
    assert redis_client(project).get("cart:1") == b"before"
    redis_volume = docker_engine.docker(
        "volume", "inspect", "-f", "{{.Mountpoint}}", "shop_redis_data"
    ).stdout
    assert any(p.name.startswith("drkit-before-restore-") for p in Path(redis_volume.strip()).iterdir())

    # stop in reverse order, start in order, each through the engine
    ok(drkit(project, "stop"))
    assert running(docker_engine, "shop_postgres") is False and running(docker_engine, "shop_redis") is False
    ok(drkit(project, "start", timeout=300))
    assert running(docker_engine, "shop_postgres") and running(docker_engine, "shop_redis")
    assert ok(drkit(project, "integrity")).code == 0

    # A restore that fails midway (a damaged part, found as it streams, after the stop) puts
    # the volume's old contents back, removes what it wrote and starts the container again.
    base = next(b for b in backups(project) if b["kind"] == "base")
    part = next(project.dir.parent.joinpath("repo").rglob(f"{base['backup_id']}/base.*"))
    part.write_bytes(b"damaged" + part.read_bytes()[7:])
    failed = drkit(project, "--yes", "restore", "postgres", "--in-place", "--backup", base["backup_id"])
    assert failed.code == 1 and "SHA-256" in failed.stderr + failed.stdout
    assert "unexpected" not in failed.stderr and "back in" in failed.stderr, failed.stderr
    entries = {p.name for p in Path(volume).iterdir()}
    assert "PG_VERSION" in entries and not any("failed-restore" in n for n in entries)
    kept_names = [n for n in entries if n.startswith("pgsql_tmp.drkit-before-restore-")]
    assert len(kept_names) == 2  # PITR and the set's
    assert running(docker_engine, "shop_postgres")  # started again by drkit
    wait_for(lambda: sql(project, "select count(*) from orders") == 500, timeout=120,
             what="the old data back", retry_on=(OperationError, psycopg.Error))  # fmt: skip
    # What the restores kept is listed by check, with its size and how to remove it.
    result = drkit(project, "--output", "json", "check").json()
    checked = {c["name"]: c for c in result["results"]}
    kept = checked["postgres: old data kept"]
    assert kept["status"] == "warning" and all(name in kept["detail"] for name in kept_names)
    listed = [k for k in result["moved_aside"] if k["service"] == "postgres"]
    assert sorted(Path(k["path"]).name for k in listed) == sorted(kept_names)
    assert all(k["bytes"] > 0 and k["remove"].startswith("rm -rf -- ") for k in listed)
    assert checked["postgres: PGDATA"]["status"] == "ok"  # base backups skip pgsql_tmp*


def backups(project: Project) -> list[dict[str, Any]]:
    listing: list[dict[str, Any]] = ok(drkit(project, "--output", "json", "backups", "list")).json()[
        "backups"
    ]
    return listing


def running(engine: DockerEngine, container: str) -> bool:
    return engine.docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() == "true"


def redis_client(project: Project) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=project.redis_port)
