"""Fail closed, round 2, on real servers: a restore either reaches what it planned or says so,
and leaves nothing behind (issue 16, items 1, 2, 5, 7 and 8).

Each test owns a private sandbox (it crashes, damages or restores over its PostgreSQL).
Faults are injected for real: `pg_ctl stop -m immediate`, a segment removed from the archive
while the restore runs, SIGINT/SIGTERM and kill -9 at a named step (drkit.infra.hold), a
damaged or missing part, a full tmpfs.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.postgres.client import connect
from drkit.domain.checks import Status
from drkit.infra.aside import kept
from drkit.infra.clock import SystemClock
from drkit.infra.hold import ENV
from drkit.infra.proc import run
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import restore_dir, stop_restored, switch_and_wait_archived

pytestmark = pytest.mark.integration

WITH_A_DEPENDENT = {"services": ("postgres", "hasura")}


# --- helpers ---------------------------------------------------------------------------


def data_dir(box: SandboxHandle) -> Path:
    return Path(box.box.state["services"]["postgres"]["data_dir"])


def postmaster_pid(directory: Path) -> int | None:
    try:
        return int((directory / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not a server
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def small_parts(box: SandboxHandle) -> Path:
    """The sandbox's config with 1 MiB backup parts (several parts to damage or lose)."""
    config = yaml.safe_load(box.config_path.read_text())
    config["services"]["postgres"]["backup"].update({"part_size": "1MiB"})
    path = box.dir / "small-parts.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def backup(box: SandboxHandle, config: Path | None = None) -> dict[str, Any]:
    made = run_drkit("--output", "json", "backup", "postgres", config=config or box.config_path, timeout=600)
    assert made.code == 0, made.stderr
    result: dict[str, Any] = json.loads(made.stdout)
    return result[0] if isinstance(result, list) else result


def backup_files(box: SandboxHandle, backup_id: str) -> list[Path]:
    return sorted((box.dir / "repo").glob(f"*/postgres/backups/{backup_id}/*"))


def archived(box: SandboxHandle, name: str) -> list[Path]:
    """The archive's files of one WAL segment (the segment and its .sha256)."""
    return sorted((box.dir / "repo").glob(f"*/postgres/wal/*/{name}.*"))


def archived_segments(box: SandboxHandle) -> list[str]:
    names = {p.name.split(".")[0] for p in (box.dir / "repo").glob("*/postgres/wal/*/*")}
    return sorted(n for n in names if len(n) == 24)


def start_held(
    box: SandboxHandle, step: str, *args: str, config: Path | None = None
) -> subprocess.Popen[str]:
    """Start `drkit ARGS` and return once it holds at `step`."""
    holds = box.dir / "holds"
    holds.mkdir(exist_ok=True)
    for old in holds.iterdir():
        old.unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drkit", "--config", str(config or box.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, ENV: f"{step}:{holds}"},
    )
    reached = holds / f"{step}.reached"
    wait_for(lambda: reached.exists() or proc.poll() is not None, timeout=300, what=f"drkit to reach {step}")
    if not reached.exists():
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"drkit ended (exit {proc.returncode}) before the hold point {step}: {out} {err}")
    return proc


def release(box: SandboxHandle, step: str) -> None:
    (box.dir / "holds" / f"{step}.release").touch()


def one_line(text: str) -> str:
    return " ".join(text.split())


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def pg_ctl(box: SandboxHandle, *args: str) -> None:
    run(
        [str(Path(box.bin_dir) / "pg_ctl"), *args, "-D", str(data_dir(box))],
        timeout=120,
        os_user=box.box.os_user,
    )


# --- item 1: nothing committed is lost in an in-place restore of a stopped server --------


def crash_with_unarchived_rows(box: SandboxHandle) -> None:
    """archive_command fails from here on; 4 rows committed, each followed by a WAL switch,
    then one more in the segment being written; then the server is killed (immediate)."""
    box.psql("create table crash_probe (id int)")
    switch_and_wait_archived(box.dsn)
    with connect(box.dsn) as conn:
        conn.execute("alter system set archive_command = 'false'")
        conn.execute("select pg_reload_conf()")
    box.psql("insert into crash_probe values (1)")
    box.psql("select pg_switch_wal()")
    wait_for(
        lambda: (box.psql("select failed_count from pg_stat_archiver") or 0) > 0,
        timeout=60,
        what="the archiver to fail",
    )
    for i in (2, 3, 4):
        box.psql("insert into crash_probe values (%s)", (i,))
        box.psql("select pg_switch_wal()")
    box.psql("insert into crash_probe values (5)")  # in the segment the server was writing
    pg_ctl(box, "stop", "-m", "immediate")


def test_in_place_restore_of_a_crashed_server_gives_back_every_committed_row(
    private_sandbox: SandboxHandle,
) -> None:
    """Before: exit 0, "restored to latest", 0 of the rows; the WAL sat in the moved-aside pg_wal."""
    box = private_sandbox
    backup(box)
    crash_with_unarchived_rows(box)
    ready = list((data_dir(box) / "pg_wal" / "archive_status").glob("*.ready"))
    assert ready, "the test needs WAL the archive lacks"

    done = run_drkit("--output", "json", "restore", "postgres", "--in-place", "--yes", config=box.config_path)
    assert done.code == 0, done.stderr
    assert box.psql("select count(*) from crash_probe") == 5
    assert box.psql("select pg_is_in_recovery()") is False
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert any("saved into the archive" in n for n in result["notes"]), result


def test_wal_the_archive_cannot_take_is_named_and_nothing_is_moved(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    backup(box)
    crash_with_unarchived_rows(box)
    marker = data_dir(box) / "drkit-test-original"
    marker.write_text("the crashed cluster's own directory\n")
    first_ready = sorted((data_dir(box) / "pg_wal" / "archive_status").glob("*.ready"))[0].name.split(".")[0]
    # Another cluster's hash under that name: the archive refuses this segment.
    sidecar = next((box.dir / "repo").glob("*/postgres/wal/00000001")) / f"{first_ready}.sha256"
    sidecar.write_text("0" * 64)

    refused = run_drkit("restore", "postgres", "--in-place", "--yes", config=box.config_path)
    said = one_line(refused.stderr)
    assert refused.code == 1, refused.stdout + refused.stderr
    assert first_ready in said and "wal-push" in said and "nothing was moved" in said, said
    assert "unexpected" not in said
    assert marker.exists() and (data_dir(box) / "PG_VERSION").exists()  # untouched, in place
    assert kept(data_dir(box)) == []


# --- item 2: a restore checks that it reached its plan ----------------------------------


@pytest.mark.parametrize("where", ["to", "in-place"])
def test_a_segment_removed_during_a_restore_to_latest_fails_naming_the_gap(
    private_sandbox: SandboxHandle, where: str
) -> None:
    """Before: exit 0 with the transactions after the gap missing."""
    box = private_sandbox
    backup(box)
    box.psql("create table gap_probe (id int)")
    for i in range(40):
        box.psql("insert into gap_probe values (%s)", (i,))
        switch_and_wait_archived(box.dsn)
    segments = archived_segments(box)
    gone = segments[-12]  # about 30 after the backup's: past the prefetch window (16)

    dest = restore_dir(box.dir, "gap", box.box.os_user)
    args = ["--to", str(dest)] if where == "to" else ["--in-place", "--yes"]
    proc = start_held(box, "start", "restore", "postgres", *args)
    try:
        files = archived(box, gone)
        assert files, gone
        for f in files:
            f.unlink()
        release(box, "start")
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    said = one_line(err)
    assert proc.returncode == 1, out + err
    assert "short of its plan" in said and gone in said and "not in the archive any more" in said, said
    assert "unexpected" not in said
    if where == "to":
        assert not dest.exists() or not any(dest.iterdir())
        assert "removed what it wrote" in said
    else:  # the old data is back in place, running, all 40 rows there
        assert "back at" in said and "PostgreSQL runs again" in said, said
        assert box.psql("select count(*) from gap_probe") == 40
        assert box.psql("select pg_is_in_recovery()") is False
        assert kept(data_dir(box)) == []


# --- item 5: a failing or interrupted restore stops what it started ----------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_restore_to_stops_the_server_and_removes_what_it_wrote(
    private_sandbox: SandboxHandle, signum: signal.Signals
) -> None:
    """Before: a promoted postmaster left running, the directory left, nothing printed."""
    box = private_sandbox
    backup(box)
    dest = restore_dir(box.dir, "interrupted", box.box.os_user)
    proc = start_held(box, "recovery", "restore", "postgres", "--to", str(dest))
    pid = postmaster_pid(dest)
    try:
        assert pid is not None and alive(pid)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
        wait_for(lambda: not alive(pid), timeout=30, what=f"postmaster {pid} gone")
        assert not dest.exists() or not any(dest.iterdir())
        said = one_line(err)
        assert proc.returncode == 1, out + err
        assert f"interrupted by {signum.name}" in said and f"stopped the restored server (pid {pid})" in said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if dest.exists() and postmaster_pid(dest):
            stop_restored(dest, box.box.os_user, box.bin_dir)


class JumpingClock(SystemClock):
    """Real time for stamps; each wait step jumps 100 s, so a stall shows at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += 100.0
        super().sleep(0.02)


def test_a_stalled_deep_verify_leaves_no_postmaster_running(
    private_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scratch server is made to pause at its target (recovery_target_action = pause), so
    the wait sees no progress. Before: the server kept running while its directory was deleted."""
    from drkit.engines.core.catalog import list_backups
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.verify import verify_deep

    box = private_sandbox
    backup(box)
    stack = box.stack
    ws = open_workspace(stack, clock=JumpingClock())
    service = stack.services["postgres"]
    manifest = list_backups(ws.repo, stack.name, "postgres").complete[-1]
    holds = box.dir / "verify-holds"
    holds.mkdir()
    monkeypatch.setenv(ENV, f"start:{holds}")
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(verify_deep(ws, service, manifest, [sys.executable, "-m", "drkit"]))
    )
    worker.start()
    try:
        wait_for((holds / "start.reached").exists, timeout=300, what="the scratch restore to start")
        [auto] = (ws.state_dir / "verify").glob("*/data/postgresql.auto.conf")
        auto.write_text(
            auto.read_text().replace("recovery_target_action = 'promote'", "recovery_target_action = 'pause'")
        )
        (holds / "start.release").touch()
        pids: list[int] = []
        scratch = auto.parent

        def started() -> bool:
            pid = postmaster_pid(scratch)
            if pid:
                pids.append(pid)
            return bool(pids) or not worker.is_alive()

        wait_for(started, timeout=300, what="the scratch server to start")
    finally:
        worker.join(timeout=600)
    assert not worker.is_alive()
    [results] = outcome
    restore = next(r for r in results if r.name == "restore")
    assert restore.status is Status.FAILED and "no progress" in restore.detail, restore
    assert pids and not alive(pids[0]), f"postmaster {pids} still running"
    assert "stopped the restored server" in restore.detail


def recover(box: SandboxHandle, *args: str, hold: str | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "drkit", "--config", str(box.config_path), "--output", "json", "--yes"]
    env = dict(os.environ)
    if hold is not None:
        env[ENV] = f"{hold}:{box.dir}"
    return subprocess.Popen(
        [*argv, "recover", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_at(box: SandboxHandle, hold: str, *args: str) -> None:
    marker = box.dir / f"{hold}.reached"
    marker.unlink(missing_ok=True)
    proc = recover(box, *args, hold=hold)
    try:
        wait_for(
            lambda: marker.exists() or proc.poll() is not None, timeout=600, what=f"drkit to reach {hold}"
        )
        assert proc.poll() is None, f"drkit ended before {hold}: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)


def raw_size(box: SandboxHandle, backup_id: str) -> int:
    shown = run_drkit("--output", "json", "backups", "show", backup_id, config=box.config_path)
    assert shown.code == 0, shown.stderr
    files = json.loads(shown.stdout)["files"]
    return sum(int(f.get("raw_size") or f["size"]) for f in files if f["name"].startswith("base."))


@pytest.mark.parametrize("hold", ["recovery", "after-restore"])
def test_recover_killed_in_its_restore_then_resumed_leaves_nothing_in_pgdata(
    private_sandbox: SandboxHandle, hold: str
) -> None:
    """kill -9 while the restore replays (its WAL spool in PGDATA), or once it finished before
    the journal caught up. Before: drkit-prefetch/ stayed in PGDATA (every later base backup
    carried it), and the resumed run had no reached point (RPO measured from the backup)."""
    box = private_sandbox
    first = backup(box)["backup_id"]
    box.psql("create table resume_probe (id int)")
    box.psql("insert into resume_probe select generate_series(1, 300)")
    switch_and_wait_archived(box.dsn)

    kill_at(box, hold, "db-corruption")
    done = recover(box, "--resume")
    out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    assert box.psql("select count(*) from resume_probe") == 300
    leftovers = [p.name for p in data_dir(box).iterdir() if p.name.lstrip(".").startswith("drkit")]
    assert leftovers == [], leftovers
    after = backup(box)["backup_id"]
    assert abs(raw_size(box, after) - raw_size(box, first)) < 8 << 20  # no 16 MiB segment copies

    journal = json.loads(out)
    restore = next(s for s in journal["steps"] if s["name"] == "restore")
    assert restore["facts"].get("reached_lsn") and restore["facts"].get("reached_time"), restore
    pg = next(m for m in journal["measures"] if m["service"] == "postgres")
    assert pg["recovered_to"] == restore["facts"]["reached_time"]
    checked = run_drkit("--output", "json", "check", config=box.config_path)
    results = {r["name"]: r for r in json.loads(checked.stdout)["results"]}
    assert results["postgres: PGDATA"]["status"] == "ok", results["postgres: PGDATA"]


# --- item 7: moving aside, once, and never into a broken live path -----------------------


@pytest.mark.parametrize("private_sandbox", [WITH_A_DEPENDENT], indirect=True)
def test_two_failed_in_place_restores_in_a_row_leave_the_old_data_running(
    private_sandbox: SandboxHandle,
) -> None:
    """Before: the first left PostgreSQL (and Hasura, which depends on it) down; the second
    ended in `unexpected OSError: [Errno 39] Directory not empty: 'data' -> 'data.failed-restore'`."""
    box = private_sandbox
    config = small_parts(box)
    made = backup(box, config)
    box.psql("create table twice_probe (id int)")
    box.psql("insert into twice_probe values (1)")
    parts = [p for p in backup_files(box, made["backup_id"]) if p.name.startswith("base.")]
    assert len(parts) >= 3, parts
    flip_a_byte(parts[len(parts) // 2])  # same size: found as it streams, after the stop

    for attempt in (1, 2):
        failed = run_drkit("restore", "postgres", "--in-place", "--yes", config=config, timeout=600)
        said = one_line(failed.stderr)
        assert failed.code == 1, f"attempt {attempt}: {failed.stdout} {failed.stderr}"
        assert "unexpected" not in said, said
        assert box.psql("select count(*) from twice_probe") == 1  # the old data, running
        assert box.psql("select pg_is_in_recovery()") is False
        assert "SHA-256" in said and "back at" in said and "PostgreSQL runs again" in said, said
        assert "hasura (which depend on postgres) were started again, healthy" in said, said
        health = run_drkit("health", config=box.config_path)
        assert health.code == 0, health.stdout + health.stderr
    assert kept(data_dir(box)) == []
    assert [p.name for p in data_dir(box).parent.iterdir() if p.name.startswith("data.")] == []


def test_a_rerun_after_a_killed_restore_never_collides_on_a_name(private_sandbox: SandboxHandle) -> None:
    """The names the rerun would take in the next two minutes are taken already (as by a
    killed run in the same second, or a clock gone back). Before: `unexpected OSError:
    [Errno 39] Directory not empty` once PostgreSQL had been stopped."""
    box = private_sandbox
    config = small_parts(box)
    backup(box, config)
    box.psql("create table rerun_probe (id int)")
    box.psql("insert into rerun_probe values (7)")
    marker = data_dir(box) / "drkit-test-original"
    marker.write_text("the data directory before the restore\n")
    proc = start_held(box, "extract", "restore", "postgres", "--in-place", "--yes", config=config)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)

    now = datetime.now(UTC)
    taken = []
    for second in range(150):
        stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        for name in (f"data.before-restore-{stamp}", f"data.drkit-before-restore-{stamp}"):
            path = data_dir(box).parent / name
            if path.exists():  # the killed run's own aside (same second): the rerun undoes it
                continue
            path.mkdir()
            (path / "PG_VERSION").write_text("an earlier run's\n")
            taken.append(path)
    again = run_drkit(
        "--output", "json", "restore", "postgres", "--in-place", "--yes", config=config, timeout=600
    )
    assert again.code == 0, again.stderr
    result = json.loads(again.stdout[again.stdout.index("{") :])
    assert box.psql("select count(*) from rerun_probe where id = 7") == 1
    assert box.psql("select pg_is_in_recovery()") is False
    moved = Path(result["moved_aside"])
    assert moved not in taken and (moved / "drkit-test-original").exists()
    assert all((p / "PG_VERSION").read_text() == "an earlier run's\n" for p in taken)  # none reused


# --- item 8: check everything first, then stop production --------------------------------


@pytest.mark.parametrize("private_sandbox", [WITH_A_DEPENDENT], indirect=True)
@pytest.mark.parametrize("lost", ["part", "tar index"])
def test_a_missing_file_is_refused_before_postgres_or_its_dependents_stop(
    private_sandbox: SandboxHandle, lost: str
) -> None:
    """Before: PostgreSQL and Hasura stopped, the data moved aside, then the part was found
    missing; the old data went back but PostgreSQL stayed down."""
    box = private_sandbox
    config = small_parts(box)
    made = backup(box, config)
    files = backup_files(box, made["backup_id"])
    victim = (
        [p for p in files if p.name.startswith("base.")][1]
        if lost == "part"
        else next(p for p in files if p.name.startswith("tarindex"))
    )
    victim.unlink()
    pid = postmaster_pid(data_dir(box))
    hasura = run_drkit("--output", "json", "health", config=box.config_path)

    refused = run_drkit("restore", "postgres", "--in-place", "--yes", config=config)
    assert postmaster_pid(data_dir(box)) == pid and pid is not None and alive(pid)  # never stopped
    said = one_line(refused.stderr)
    assert refused.code == 1, refused.stdout + refused.stderr
    assert victim.name in said and "refused before anything was stopped" in said, said
    assert "stopped" not in refused.stdout  # no dependent was stopped either
    health = run_drkit("--output", "json", "health", config=box.config_path)
    assert health.code == 0 and hasura.code == 0, health.stdout
    assert kept(data_dir(box)) == []


@pytest.fixture
def tmpfs(private_sandbox: SandboxHandle) -> Iterator[Path]:
    """A 24 MiB tmpfs the database user can enter (far smaller than the restore)."""
    point = private_sandbox.dir / "small-disk"
    point.mkdir()
    os_user = private_sandbox.box.os_user
    ids = ""
    if os_user:
        entry = pwd.getpwnam(os_user)
        ids = f",uid={entry.pw_uid},gid={entry.pw_gid}"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=24m,mode=0755{ids}", "tmpfs", str(point)],
        check=True,
        timeout=60,
    )
    yield point
    subprocess.run(["umount", "-l", str(point)], timeout=60, check=False)


def test_a_full_disk_during_restore_to_names_the_path_and_leaves_nothing(
    private_sandbox: SandboxHandle, tmpfs: Path
) -> None:
    """Before: `unexpected OSError: [Errno 28] No space left on device`, the files left."""
    box = private_sandbox
    backup(box)
    dest = tmpfs / "restored"
    failed = run_drkit("restore", "postgres", "--to", str(dest), config=box.config_path, timeout=600)
    said = one_line(failed.stderr)
    assert failed.code == 1, failed.stdout + failed.stderr
    assert "no space left on the device" in said and str(dest) in said, said
    assert "unexpected" not in said
    assert not dest.exists() and list(tmpfs.iterdir()) == []


def test_a_flipped_byte_in_a_part_fails_restore_to_and_removes_what_it_wrote(
    private_sandbox: SandboxHandle,
) -> None:
    """Before: the error, and 1,338 entries left in the target."""
    box = private_sandbox
    config = small_parts(box)
    made = backup(box, config)
    parts = [p for p in backup_files(box, made["backup_id"]) if p.name.startswith("base.")]
    flip_a_byte(parts[-1])
    dest = restore_dir(box.dir, "flipped", box.box.os_user)
    failed = run_drkit("restore", "postgres", "--to", str(dest), config=config, timeout=600)
    assert not dest.exists(), f"{len(list(dest.rglob('*')))} entries left in {dest}"
    said = one_line(failed.stderr)
    assert failed.code == 1 and "SHA-256" in said and f"removed what it wrote in {dest}" in said, said


# --- check: what restores kept, and nothing foreign in PGDATA -----------------------------


def test_check_lists_the_kept_data_and_flags_foreign_files_in_pgdata(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    backup(box)
    done = run_drkit("--output", "json", "restore", "postgres", "--in-place", "--yes", config=box.config_path)
    assert done.code == 0, done.stderr
    moved = json.loads(done.stdout[done.stdout.index("{") :])["moved_aside"]

    checked = run_drkit("--output", "json", "check", config=box.config_path)
    assert checked.code == 0, checked.stdout
    listed = json.loads(checked.stdout)["moved_aside"]
    assert [k["path"] for k in listed] == [moved], listed
    assert listed[0]["bytes"] > 1 << 20 and listed[0]["remove"] == f"rm -rf -- {moved}"
    text = run_drkit("check", config=box.config_path)
    assert "old data kept" in text.stdout and moved in one_line(text.stdout)

    spool = data_dir(box) / "drkit-prefetch"  # what a killed restore used to leave
    spool.mkdir()
    (spool / "000000010000000000000003").write_bytes(b"\0" * 1024)  # root's, 0600
    (spool / "000000010000000000000003").chmod(0o600)
    flagged = run_drkit("--output", "json", "check", config=box.config_path)
    results = {r["name"]: r for r in json.loads(flagged.stdout)["results"]}
    if os.geteuid() == 0 and box.box.os_user:
        assert flagged.code == 3, flagged.stdout
        assert results["postgres: PGDATA"]["status"] == "failed"
    assert str(spool) in results["postgres: PGDATA"]["detail"]
