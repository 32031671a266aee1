"""Faults: encryption keys, a backup killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drkit.adapters.postgres.client import scalar
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored
from tests.integration.pg_versions import across_majors


@pytest.mark.parametrize("private_sandbox", across_majors(encrypt=True), indirect=True)
def test_encrypted_backup_restores_with_the_identity_and_fails_clearly_without(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, made.stderr
    manifest = made.json()[0]
    assert manifest["encrypted"] is True
    assert all(f["name"].endswith(".zst.age") for f in manifest["files"])
    wal = list((box.dir / "repo" / "sandbox" / "postgres" / "wal").rglob("*"))
    assert any(p.name.endswith(".zst.age") for p in wal)
    assert not any(p.name.endswith(".zst") for p in wal if p.is_file())

    dest = restore_dir(box.dir, "with-key", box.box.os_user)
    ok = run_drkit(
        "--output", "json", "restore", "postgres", "--to", str(dest), "--keep-running", config=box.config_path
    )
    assert ok.code == 0, ok.stderr
    port = int(ok.stdout.split('"port": ')[1].split("\n")[0].strip(", "))
    try:
        assert scalar(query_dsn(port), "select count(*) from nchat_messages") == 1000
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)

    config = yaml.safe_load(box.config_path.read_text())
    del config["encryption"]["identity"]
    keyless = box.dir / "keyless.yaml"
    keyless.write_text(yaml.safe_dump(config))
    target = restore_dir(box.dir, "without-key", box.box.os_user)
    failed = run_drkit("restore", "postgres", "--to", str(target), config=keyless)
    assert failed.code == 1
    assert "encrypted and no age identity is configured" in failed.stderr
    assert not target.exists()

    wrong = box.dir / "wrong-key.txt"
    import pyrage

    wrong.write_text(str(pyrage.x25519.Identity.generate()) + "\n")
    config["encryption"]["identity"] = f"file:{wrong}"
    keyless.write_text(yaml.safe_dump(config))
    bad = run_drkit("verify", "--latest", "--deep", config=keyless)
    assert bad.code == 3
    assert "wrong age identity" in bad.stdout


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_kill_9_midway_leaves_no_complete_backup_and_the_next_one_succeeds(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    config = yaml.safe_load(box.config_path.read_text())
    # Throttle pg_basebackup and use small parts so the kill lands between parts.
    config["services"]["postgres"]["backup"].update({"max_rate": "2M", "part_size": "1MiB"})
    slow = box.dir / "slow.yaml"
    slow.write_text(yaml.safe_dump(config))
    backups = box.dir / "repo" / "sandbox" / "postgres" / "backups"

    proc = subprocess.Popen(
        [sys.executable, "-m", "drkit", "--config", str(slow), "backup"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def parts_written() -> bool:
        return any(p.name.startswith("base.") for p in backups.rglob("*"))

    wait_for(parts_written, timeout=60, what="the first part to be stored")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    listed = run_drkit("--output", "json", "backups", "list", config=box.config_path)
    assert listed.code == 0
    assert listed.json()["backups"] == []
    assert len(listed.json()["incomplete"]) == 1
    partial_id = listed.json()["incomplete"][0].split("/")[1]
    assert not (backups / partial_id / "manifest.json").exists()

    again = run_drkit("backup", config=box.config_path)
    assert again.code == 0, again.stderr
    assert f"removed incomplete backup {partial_id}" in again.stdout
    after = run_drkit("--output", "json", "backups", "list", config=box.config_path).json()
    assert len(after["backups"]) == 1 and after["incomplete"] == []
    assert not Path(backups / partial_id).exists()
