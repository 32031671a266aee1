"""Fail closed, on a real PostgreSQL: a restore that cannot fetch the WAL stops with an
error instead of promoting a server without the tail, and `kill -9` at any step of an
in-place restore never costs the old data directory.

Each test stops drkit at a named step with the test-only hold point (drkit.infra.hold):
`DRKIT_TEST_HOLD=STEP:DIR` makes drkit write DIR/STEP.reached and wait for DIR/STEP.release.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drkit.infra.hold import ENV
from drkit.infra.wait import wait_for
from drkit.sandbox.postgres import default_bin_dir
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import restore_dir, stop_restored, switch_and_wait_archived
from tests.integration.pg_versions import across_majors

SEGMENT = 16 * 1024 * 1024


def start_held(
    box: SandboxHandle, step: str, holds: Path, *args: str, config: Path | None = None
) -> subprocess.Popen[str]:
    """Start `drkit restore postgres ARGS` and return once it holds at `step`."""
    holds.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drkit",
            "--config",
            str(config or box.config_path),
            "restore",
            "postgres",
            *args,
        ],
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


def controldata_state(data_dir: Path) -> str:
    out = subprocess.run(
        [str(Path(default_bin_dir()) / "pg_controldata"), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    return next(
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith("Database cluster state")
    )


@pytest.fixture
def tmpfs_mounts() -> Iterator[list[Path]]:
    mounted: list[Path] = []
    yield mounted
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], timeout=60, check=False)


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_wal_fetch_into_a_full_pg_wal_stops_the_restore_instead_of_promoting_without_the_tail(
    private_sandbox: SandboxHandle, tmpfs_mounts: list[Path]
) -> None:
    box = private_sandbox
    made = run_drkit("backup", config=box.config_path)
    assert made.code == 0, made.stderr
    box.psql("create table tail_probe (id int, pad text)")
    for i in range(8):  # eight more segments in the archive after the backup: the tail
        box.psql("insert into tail_probe select %s, repeat('x', 500) from generate_series(1, 2000)", (i,))
        switch_and_wait_archived(box.dsn)

    dest = restore_dir(box.dir, "full-disk", box.box.os_user)
    holds = box.dir / "holds"
    proc = start_held(box, "start", holds, "--to", str(dest))
    try:
        # Extracted, configured, not started: put pg_wal on a tmpfs with room for four
        # segments. Recovery keeps each restored segment in pg_wal (until a restartpoint,
        # far away), so the fifth fetch, past the consistent point, meets a full disk.
        pg_wal = dest / "pg_wal"
        kept = dest / "pg_wal.extracted"
        pg_wal.rename(kept)
        pg_wal.mkdir(mode=0o700)
        owner = pwd.getpwnam(box.box.os_user) if box.box.os_user else None
        ids = f",uid={owner.pw_uid},gid={owner.pw_gid}" if owner else ""
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={4 * SEGMENT + 512 * 1024},mode=0700{ids}",
                "tmpfs",
                str(pg_wal),
            ],
            timeout=60,
            check=True,
        )
        tmpfs_mounts.append(pg_wal)
        shutil.copytree(kept, pg_wal, dirs_exist_ok=True)
        shutil.rmtree(kept)
        if owner:
            for path in [pg_wal, *pg_wal.rglob("*")]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        (holds / "start.release").touch()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        stop_restored(dest, box.box.os_user, box.bin_dir)

    assert proc.returncode == 1, out + err
    assert "recovery stopped" in err and "No space left on device" in err, err
    kept = re.search(r"its log is kept at (/\S+?\.log)", err)
    assert kept, err
    log = Path(kept.group(1)).read_text(errors="replace")
    assert "consistent recovery state reached" in log, log  # the failure is in the tail
    assert "No space left on device" in log, log
    # Not "absent": recovery did not end there, choose a new timeline and promote.
    assert "selected new timeline ID" not in log, log
    assert "archive recovery complete" not in log, log
    # It stopped the server it started and removed what it wrote (the directory was empty),
    # all but the test's own tmpfs mount point, which it names.
    assert f"removed what it wrote in {dest}" in err or f"{dest} is left" in err, err
    assert not dest.exists() or [p.name for p in dest.iterdir()] in ([], ["pg_wal"])
    assert not list((dest / "pg_wal").iterdir()) if (dest / "pg_wal").exists() else True


def in_place_config(box: SandboxHandle) -> Path:
    """The sandbox's config with small backup parts, so extraction has several steps."""
    config = yaml.safe_load(box.config_path.read_text())
    config["services"]["postgres"]["backup"].update({"part_size": "1MiB"})
    path = box.dir / "small-parts.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("step", ["move-aside", "extract", "recovery"])
def test_kill_9_at_each_step_of_an_in_place_restore_keeps_the_old_data_and_a_rerun_succeeds(
    private_sandbox: SandboxHandle, step: str
) -> None:
    box = private_sandbox
    config = in_place_config(box)
    made = run_drkit("backup", config=config)
    assert made.code == 0, made.stderr
    box.psql("create table in_place_kill (id int)")
    box.psql("insert into in_place_kill values (7)")  # not archived yet: the restore must switch
    data_dir = Path(box.box.state["services"]["postgres"]["data_dir"])
    marker = "drkit-test-original-data"  # only in the old directory: the backup predates it
    (data_dir / marker).write_text("the data directory before the restore\n")

    proc = start_held(box, step, box.dir / "holds", "--in-place", "--yes", config=config)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    def originals() -> list[Path]:
        candidates = [data_dir, *data_dir.parent.glob(f"{data_dir.name}.drkit-before-restore-*")]
        return [d for d in candidates if (d / marker).exists()]

    assert len(originals()) == 1, list(data_dir.parent.iterdir())
    original = originals()[0]
    if step == "move-aside":
        assert original == data_dir  # not moved yet
    else:
        assert original != data_dir and (data_dir / "PG_VERSION").exists()  # moved aside, intact
    assert (original / "PG_VERSION").is_file() and (original / "global" / "pg_control").is_file()
    assert controldata_state(original) == "shut down"  # stopped cleanly, whole

    again = run_drkit("--output", "json", "restore", "postgres", "--in-place", "--yes", config=config)
    assert again.code == 0, again.stderr
    result = json.loads(again.stdout[again.stdout.index("{") :])
    assert result["moved_aside"]
    assert box.psql("select count(*) from in_place_kill where id = 7") == 1
    assert box.psql("select pg_is_in_recovery()") is False
    # Never deleted: the rerun first undid the killed run (the old data back in place, the
    # half-restored copy gone), then moved the old data aside itself.
    kept = originals()
    assert len(kept) == 1 and kept[0] == Path(result["moved_aside"]), kept
    assert controldata_state(kept[0]) == "shut down"
    if step != "move-aside":
        assert "an interrupted restore was undone first" in " ".join(result["notes"]), result
    leftovers = [p.name for p in data_dir.parent.iterdir() if p.name.startswith(f"{data_dir.name}.")]
    assert leftovers == [kept[0].name], leftovers  # nothing else beside it
