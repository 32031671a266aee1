"""`drkit check` on a real server: passes when archiving works, names a failing archiver."""

from __future__ import annotations

from pathlib import Path

from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle


def test_check_passes_on_a_healthy_sandbox(sandbox: SandboxHandle) -> None:
    result = run_drkit("--output", "json", "check", config=sandbox.config_path)
    assert result.code == 0, result.stdout
    names = {r["name"]: r["status"] for r in result.json()["results"]}
    assert names["postgres: wal_level"] == "ok"
    assert names["postgres: archiver"] == "ok"
    assert names["postgres: replication"] == "ok"
    assert names["repository"] == "ok"


def test_check_exits_3_when_archiving_fails(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    box.psql("alter system set archive_command = 'false'")
    box.psql("select pg_reload_conf()")
    box.psql("create table churn as select g from generate_series(1, 1000) g")
    box.psql("select pg_switch_wal()")
    wait_for(
        lambda: box.psql("select failed_count > 0 from pg_stat_archiver"),
        timeout=60,
        what="the archiver to fail",
    )
    result = run_drkit("--output", "json", "check", config=box.config_path)
    assert result.code == 3
    by_name = {r["name"]: r for r in result.json()["results"]}
    assert by_name["postgres: archiver"]["status"] == "failed"
    assert "archiving is failing" in by_name["postgres: archiver"]["detail"]
    assert by_name["postgres: archive_command"]["status"] == "failed"


def test_check_names_the_pg_hba_line_when_replication_is_refused(private_sandbox: SandboxHandle) -> None:
    """Like nself's postgres image: ordinary connections allowed, replication only from inside."""
    box = private_sandbox
    hba = Path(box.psql("show hba_file"))
    hba.write_text(
        "".join(line + "\n" for line in hba.read_text().splitlines() if " replication " not in line)
    )
    box.psql("select pg_reload_conf()")
    result = run_drkit("--output", "json", "check", config=box.config_path)
    assert result.code == 3, result.stdout
    by_name = {r["name"]: r for r in result.json()["results"]}
    assert by_name["postgres: connect"]["status"] == "ok"
    replication = by_name["postgres: replication"]
    assert replication["status"] == "failed"
    assert "127.0.0.1/32 scram-sha-256`" in replication["detail"]
    assert replication["detail"].startswith("the server refuses replication connections from drkit")
    assert "pg_reload_conf()" in replication["detail"]
