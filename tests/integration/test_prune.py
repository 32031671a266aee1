"""Retention for real: `drkit prune` killed mid-way and run again; a simulated month of daily
base backups on a sandbox PostgreSQL with an injected clock, pruned, then every kept base
backup restored to its end and PITR into the promised window."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drkit.adapters.postgres.client import connect
from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind
from drkit.domain.errors import RepositoryError
from drkit.domain.stack import Retention
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.workspace import open_workspace
from drkit.engines.objects import backup as objects_backup
from drkit.engines.objects.verify import verify_objects
from drkit.engines.ops.prune import prune
from drkit.engines.ops.retention_policy import segment_number
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.stack.backup import backup_service
from drkit.engines.stack.verify import verify_backup
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived
from tests.integration.s3_fixtures import S3Server
from tests.integration.test_objects import _FailsAtCommit, objects_stack
from tests.prune_fakes import STACK, make_stack, month, wal_numbers, workspace

pytestmark = pytest.mark.integration


def _config(root: Path) -> Path:
    """A stack.yaml for the made-up repository of tests/prune_fakes.py (no server needed)."""
    config = {
        "version": 1,
        "stack": STACK,
        "state_dir": str(root / "state"),
        "repositories": {"main": {"type": "fs", "path": str(root / "repo")}},
        "services": {
            "postgres": {
                "kind": "postgres",
                "dsn": "host=127.0.0.1 dbname=none",
                "backup": {
                    "retention": {"keep_last": 2, "keep_daily": 7, "keep_weekly": 3, "keep_monthly": 2},
                    "wal_retention": "10d",
                },
            }
        },
    }
    path = root / "stack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_prune_killed_after_its_first_delete_then_run_again_ends_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # setting up 800 tiny files, in this process only
    killed, twin = tmp_path / "killed", tmp_path / "twin"
    for root in (killed, twin):
        root.mkdir()
        stack = make_stack(root, Retention(2, 7, 3, 2), timedelta(days=10))
        month(workspace(stack, datetime.now(UTC)))
    config, twin_config = _config(killed), _config(twin)

    dry = run_drkit("--output", "json", "prune", "--dry-run", config=config)
    assert dry.code == 0, dry.stderr
    planned = dry.json()["services"][0]
    doomed = [d["name"] for d in planned["drop"]]
    assert len(doomed) == 31 and planned["wal_drop"][0]["rule"] == "wal_retention"
    assert all(d["rule"] == "unkept" for d in planned["drop"])

    holds = tmp_path / "holds"
    holds.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drkit", "--config", str(config), "prune"],
        env={**os.environ, "DRKIT_TEST_HOLD": f"prune-deleting:{holds}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for((holds / "prune-deleting.reached").exists, timeout=60, what="prune's first delete")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    ws = workspace(make_stack(killed, Retention(), timedelta(days=10)), datetime.now(UTC))
    listing = list_backups(ws.repo, STACK, "postgres")
    assert listing.incomplete == (doomed[0],)  # its manifest went first: no longer a backup
    assert doomed[1] in {m.backup_id for m in listing.complete}  # nothing else went yet

    again = run_drkit("prune", config=config)
    assert again.code == 0, again.stderr
    assert f"removed incomplete backup {doomed[0]}" in again.stdout
    uninterrupted = run_drkit("prune", config=twin_config)
    assert uninterrupted.code == 0, uninterrupted.stderr
    assert _tree(killed / "repo") == _tree(twin / "repo")
    assert wal_numbers(ws) >= set(range(390, 400))
    final = run_drkit("--output", "json", "prune", "--dry-run", config=config)
    assert final.json()["services"][0]["drop"] == [] and final.json()["services"][0]["wal_drop"] == []


class SimClock:
    """Simulated days: `now()` is the day set, plus the real time elapsed since it was set."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        self._at, self._since = at, time.monotonic()

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._since)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


DAY0 = datetime(2026, 1, 20, 2, 0, tzinfo=UTC)  # a Tuesday; day 29 is Wednesday 18 February
MONTH_POLICY = {"keep_last": 1, "keep_daily": 3, "keep_weekly": 2, "keep_monthly": 2}
# keep_last 1: day 29; daily 3: 27, 28, 29; weekly 2: 29 (week of Mon 16 Feb), 26 (Sun 15 Feb);
# monthly 2: 29 (February), 11 (31 January); PITR window (4 days before 18 Feb 12:00): from day 25;
# verified: day 5.
KEPT_DAYS = [5, 11, 25, 26, 27, 28, 29]


def _marked(handle: SandboxHandle, day: int) -> str:
    handle.psql("insert into retention_probe values (%s)", (day,))
    return str(handle.psql("select pg_current_wal_insert_lsn()::text"))


def _restored_day(handle: SandboxHandle, name: str, backup_id: str, lsn: str) -> int:
    dest = restore_dir(handle.dir, name, handle.box.os_user)
    args = ("--output", "json", "restore", "postgres", "--backup", backup_id, "--target-lsn", lsn)
    result = run_drkit(*args, "--to", str(dest), "--keep-running", config=handle.config_path)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout[result.stdout.index("{") :])
    try:
        with connect(query_dsn(out["port"])) as conn:
            row = conn.execute("select max(day) from retention_probe").fetchone()
            return int(row[0]) if row and row[0] is not None else -1
    finally:
        stop_restored(dest, handle.box.os_user)
        shutil.rmtree(dest, ignore_errors=True)


@pytest.mark.parametrize("private_sandbox", [{}], indirect=True)
@pytest.mark.timeout(1800)  # thirty real base backups and restores: 3-8 minutes on a busy 2-core machine
def test_a_simulated_month_keeps_exactly_the_policy_and_what_it_keeps_restores(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    config = yaml.safe_load(box.config_path.read_text())
    backup = config["services"]["postgres"].setdefault("backup", {})
    backup.update(retention=MONTH_POLICY, wal_retention="4d")
    box.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    clock = SimClock(DAY0)
    ws = open_workspace(load_stack(box.config_path), clock=clock)
    service = ws.stack.services["postgres"]
    box.psql("create table retention_probe (day int)")

    ids, marks = [], {}
    for day in range(30):
        clock.set(DAY0 + timedelta(days=day))
        marks[day] = _marked(box, day)
        ids.append(backup_service(ws, service).manifest.backup_id)
        if day == 5:
            manifest = list_backups(ws.repo, ws.stack.name, "postgres").complete[-1]
            assert verify_backup(ws, service, manifest, deep=False, drkit_argv=[]).ok
    marks[30] = _marked(box, 30)  # after the last backup: the newest point of the window
    switch_and_wait_archived(box.dsn)
    archive = WalArchive(ws.repo, ws.stack.name, "postgres", ws.codec)
    wal_before = archive.names()

    clock.set(DAY0 + timedelta(days=29, hours=10))
    result = prune(ws, service, dry_run=False)
    left = {m.backup_id: m for m in list_backups(ws.repo, ws.stack.name, "postgres").complete}
    assert sorted(left) == [ids[d] for d in KEPT_DAYS], [d.name + " " + d.rule for d in result.plan.keep]
    assert all(m.kind is BackupKind.BASE for m in left.values())

    size = next(iter(left.values())).require_postgres().wal_segment_size
    anchor = left[ids[25]].require_postgres()
    opens = Segment.containing(Lsn.parse(anchor.start_lsn), anchor.timeline, size).number
    spans = [
        (
            Segment.containing(Lsn.parse(m.require_postgres().start_lsn), 1, size).number,
            Segment.containing(Lsn.parse(m.require_postgres().stop_lsn), 1, size).number,
        )
        for m in left.values()
    ]

    def kept(name: str) -> bool:
        n = segment_number(name, size)
        return n is None or n >= opens or any(lo <= n <= hi for lo, hi in spans)

    assert archive.names() == {n for n in wal_before if kept(n)}
    assert len(archive.names()) < len(wal_before)  # the month did leave WAL to remove

    for day in KEPT_DAYS:  # every kept base backup restores to its end
        m = left[ids[day]].require_postgres()
        assert _restored_day(box, f"end-{day}", ids[day], m.stop_lsn) == day
    for day in (26, 28, 30):  # PITR into the window, from the backup it starts from
        assert _restored_day(box, f"pitr-{day}", ids[25], marks[day]) == day


def test_object_versions_no_kept_backup_lists_are_swept_and_what_is_kept_still_verifies(
    s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-prune")
    store.put(bucket, "a", b"a, first", "text/plain", {})  # small: packed
    store.put(bucket, "big", b"1" * (3 * 1024 * 1024), "application/octet-stream", {})  # parts
    ws, service, config = objects_stack(s3_server, tmp_path, bucket)
    doc = yaml.safe_load(config.read_text())
    doc["services"]["objects"]["backup"] = {
        "retention": {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}
    }
    config.write_text(yaml.safe_dump(doc))
    ws = open_workspace(load_stack(config))
    service = ws.stack.services["objects"]
    objects_backup.backup(ws, service)
    objects_dir = f"{ws.stack.name}/{service.name}/objects/{bucket}/"
    first_files = set(ws.repo.list(objects_dir + "packs/")) | set(ws.repo.list(objects_dir + "blobs/"))

    for key, data in (("a", b"a, second"), ("big", b"2" * (3 * 1024 * 1024))):
        [old] = [v for v in store.versions(bucket, key) if v.key == key]
        store.put(bucket, key, data, "text/plain", {})
        store.client.delete_object(Bucket=bucket, Key=key, VersionId=old.version_id)  # expired for good
    objects_backup.backup(ws, service)
    store.put(bucket, "c", b"c, copied by a run that never committed", "text/plain", {})
    with pytest.raises(RepositoryError):
        objects_backup.backup(replace(ws, repo=_FailsAtCommit(ws.repo)), service)

    waiting = prune(ws, service, dry_run=False)  # the first backup goes; its versions wait
    assert waiting.objects is not None and waiting.objects[0].waiting
    assert first_files <= set(ws.repo.list(objects_dir + "packs/")) | set(
        ws.repo.list(objects_dir + "blobs/")
    )
    third = objects_backup.backup(ws, service).manifest
    assert third.details["new_versions"] == 0  # it lists what the interrupted run copied

    dry = prune(ws, service, dry_run=True)
    assert dry.objects is not None
    [planned] = dry.objects
    assert planned.versions == 2 and {objects_dir + f for f in planned.files} == first_files
    result = prune(ws, service, dry_run=False)
    assert [d.name for d in result.plan.keep] == [third.backup_id]
    left = set(ws.repo.list(objects_dir + "packs/")) | set(ws.repo.list(objects_dir + "blobs/"))
    assert left and not left & first_files  # the first backup's versions went, nothing else
    assert [c.status.value for c in verify_objects(ws, service, third)] == ["ok"]
    fourth = objects_backup.backup(ws, service).manifest
    assert fourth.details["new_versions"] == 0  # the catalog still knows every kept version
    again = prune(ws, service, dry_run=False)
    assert again.objects is not None and again.objects[0].versions == 0 and not again.objects[0].files


def test_an_unreadable_objects_manifest_stops_the_sweep_and_its_versions_stay(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The issue's case: one byte appended to the first backup's manifest. Swept, the versions
    only it lists would be gone for good ("removed 1 object version(s)", then `verify` finds
    the file missing once the manifest reads again). Prune refuses, exit 3, naming it."""
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-prune-damaged")
    store.put(bucket, "a", b"a, first", "text/plain", {})
    ws, service, config = objects_stack(s3_server, tmp_path, bucket)
    first = objects_backup.backup(ws, service).manifest
    [old] = store.versions(bucket, "a")
    store.put(bucket, "a", b"a, second", "text/plain", {})
    store.client.delete_object(Bucket=bucket, Key="a", VersionId=old.version_id)  # expired for good
    objects_backup.backup(ws, service)
    objects_dir = tmp_path / "repo" / ws.stack.name / service.name / "objects" / bucket
    stored_before = sorted(p.name for p in objects_dir.rglob("*") if p.is_file())

    manifest = (
        tmp_path / "repo" / ws.stack.name / service.name / "backups" / first.backup_id / "manifest.json"
    )
    good = manifest.read_bytes()
    manifest.write_bytes(good + b"\n}")
    result = run_drkit("prune", config=config)
    assert result.code == 3, result.stdout + result.stderr
    assert "objects: REFUSED, nothing removed" in result.stdout and first.backup_id in result.stdout
    assert "removed 1 object version" not in result.stdout
    assert sorted(p.name for p in objects_dir.rglob("*") if p.is_file()) == stored_before

    manifest.write_bytes(good)  # readable again: everything it lists is still there
    [check] = verify_objects(ws, service, first, deep=True)
    assert check.status.value == "ok", check.detail
