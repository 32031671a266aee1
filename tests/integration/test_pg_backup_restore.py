"""PostgreSQL backups that restore, to any point in time: on a real sandbox PostgreSQL of
each major of the matrix (pg_sandbox, across_majors: see pg_versions.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drkit.adapters.postgres.client import connect, scalar
from drkit.domain.errors import OperationError
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import (
    query_dsn,
    restore_dir,
    stop_restored,
    switch_and_wait_archived,
)
from tests.integration.pg_versions import across_majors, bin_dir_for


def backup(handle: SandboxHandle, *extra: str) -> dict:
    result = run_drkit("--output", "json", "backup", *extra, config=handle.config_path)
    assert result.code == 0, result.stderr
    return result.json()[0]


def restore_json(handle: SandboxHandle, *args: str) -> dict:
    result = run_drkit("--output", "json", "restore", "postgres", *args, config=handle.config_path)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{") :])


def test_pitr_to_a_time_between_two_inserts_keeps_exactly_the_earlier_rows(
    pg_sandbox: SandboxHandle,
) -> None:
    sandbox = pg_sandbox
    sandbox.psql("create table pitr_probe (id int primary key, at timestamptz default now())")
    backup(sandbox)
    sandbox.psql("insert into pitr_probe (id) values (1)")
    target = sandbox.psql("select clock_timestamp()::text")
    sandbox.psql("select pg_sleep(0.05)")  # the second commit is strictly later than target
    sandbox.psql("insert into pitr_probe (id) values (2)")
    switch_and_wait_archived(sandbox.dsn)

    dest = restore_dir(sandbox.dir, "pitr", sandbox.box.os_user)
    out = restore_json(sandbox, "--target-time", target, "--to", str(dest), "--keep-running")
    try:
        with connect(query_dsn(out["port"])) as conn:
            ids = [r[0] for r in conn.execute("select id from pitr_probe order by id")]
        restored_version = scalar(query_dsn(out["port"]), "show server_version_num")
        assert ids == [1]
        assert out["reached_time"] is not None and out["reached_time"] <= target.replace(" ", "T")
        assert int(restored_version) // 10000 == sandbox.major
    finally:
        stop_restored(dest, sandbox.box.os_user, sandbox.bin_dir)


def test_verify_deep_passes_and_a_changed_byte_in_any_file_fails_naming_it(
    pg_sandbox: SandboxHandle,
) -> None:
    sandbox = pg_sandbox
    made = backup(sandbox)
    assert made["postgres"]["server_version"] // 10000 == sandbox.major
    ok = run_drkit("verify", made["backup_id"], "--deep", config=sandbox.config_path)
    assert ok.code == 0, ok.stdout + ok.stderr
    assert "row counts" in ok.stdout

    directory = sandbox.dir / "repo" / "sandbox" / "postgres" / "backups" / made["backup_id"]
    for stored in made["files"]:
        path = directory / stored["name"]
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            bad = run_drkit("--output", "json", "verify", made["backup_id"], config=sandbox.config_path)
            assert bad.code == 3, bad.stderr
            failed = [r for r in bad.json()["results"] if r["status"] == "failed"]
            assert [r["name"] for r in failed] == [f"file {stored['name']}"]
        finally:
            path.write_bytes(original)


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_restore_refuses_when_a_needed_wal_segment_is_gone(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    backup(box)
    for i in range(3):
        box.psql(f"create table gap_{i} as select g from generate_series(1, 1000) g")
        switch_and_wait_archived(box.dsn)
    target = box.psql("select now()::text")
    box.psql("create table after_target (x int)")
    last = switch_and_wait_archived(box.dsn)

    wal_dir = box.dir / "repo" / "sandbox" / "postgres" / "wal" / "00000001"
    segments = sorted(
        p for p in wal_dir.iterdir() if p.name.endswith(".zst") and len(p.name) == 28 and p.name[:24] <= last
    )
    victim = segments[-2]
    victim.unlink()
    dest = restore_dir(box.dir, "gap", box.box.os_user)
    result = run_drkit(
        "restore", "postgres", "--target-time", target, "--to", str(dest), config=box.config_path
    )
    assert result.code == 1
    assert victim.name[:24] in result.stderr
    assert "missing" in result.stderr
    assert not dest.exists(), "nothing may be touched when the target is unreachable"


@pytest.mark.parametrize("private_sandbox", across_majors(wal_mode="stream"), indirect=True)
def test_restore_to_latest_with_streamed_wal_loses_no_committed_transaction(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    backup(box)
    box.psql("create table stream_probe (id int primary key)")
    for i in range(50):
        box.psql("insert into stream_probe values (%s)", (i,))
    committed = box.psql("select pg_current_wal_lsn()::text")

    def flushed() -> bool:
        return bool(
            box.psql(
                "select flush_lsn >= %s::pg_lsn from pg_stat_replication "
                "where application_name = 'pg_receivewal'",
                (committed,),
            )
        )

    from drkit.infra.wait import wait_for

    wait_for(flushed, timeout=30, what="pg_receivewal to flush the last commit", retry_on=(OperationError,))
    box.box.postgres_runtime().stop()  # the primary is gone

    dest = restore_dir(box.dir, "latest", box.box.os_user)
    out = restore_json(box, "--to", str(dest), "--keep-running")
    try:
        count = scalar(query_dsn(out["port"]), "select count(*) from stream_probe")
        assert count == 50
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_in_place_restore_keeps_the_old_data_directory_beside_the_new(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    backup(box)
    box.psql("create table in_place_probe (id int)")
    box.psql("insert into in_place_probe values (42)")  # not yet archived: drkit must switch

    refused = run_drkit("restore", "postgres", "--in-place", config=box.config_path)
    assert refused.code == 2 and "--yes" in refused.stderr

    out = restore_json(box, "--in-place", "--yes")
    data_dir = Path(box.box.state["services"]["postgres"]["data_dir"])
    aside = Path(out["moved_aside"])
    assert aside.parent == data_dir.parent and aside.name.startswith("data.drkit-before-restore-")
    assert (aside / "PG_VERSION").is_file() and (data_dir / "PG_VERSION").is_file()
    assert box.psql("select count(*) from in_place_probe where id = 42") == 1
    assert box.psql("select pg_is_in_recovery()") is False


def test_a_backup_is_not_restored_with_another_majors_server(pg_sandbox: SandboxHandle) -> None:
    """Before: the whole backup was written, then PostgreSQL refused to start it."""
    made = backup(pg_sandbox)
    config = yaml.safe_load(pg_sandbox.config_path.read_text())
    other = 18 if pg_sandbox.major != 18 else 15
    config["services"]["postgres"]["runtime"]["bin_dir"] = bin_dir_for(other)
    mismatched = pg_sandbox.dir / f"bin-{other}.yaml"
    mismatched.write_text(yaml.safe_dump(config))

    dest = restore_dir(pg_sandbox.dir, f"as-{other}", pg_sandbox.box.os_user)
    result = run_drkit(
        "restore", "postgres", "--backup", made["backup_id"], "--to", str(dest), config=mismatched
    )
    assert result.code == 2, result.stderr
    assert f"backup is of PostgreSQL {pg_sandbox.major}" in result.stderr
    assert f"is PostgreSQL {other}" in result.stderr
    assert not dest.exists()
