"""Redis backups and restores against real redis-server processes: the shared sandbox's
Redis for the operator's path (the CLI), private ones (redis_part's own config, in a /tmp
directory) for the tests that corrupt files, switch AOF or take many backups."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from drkit.adapters.repository.codec import sha256
from drkit.config.loader import load_stack
from drkit.domain.backup import Manifest, StoredFile
from drkit.domain.errors import IntegrityError
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import Retention, Service, Stack
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, manifest_key
from drkit.engines.core.retention import delete_backup
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.ops.prune import prune
from drkit.engines.redis import backup as redis_backup
from drkit.engines.redis import restore as redis_restore
from drkit.engines.stack.start import start_services, stop_services
from drkit.infra.clock import SystemClock
from drkit.infra.ownership import chown_tree
from drkit.runtimes.factory import runtime_for
from drkit.sandbox import redis_part
from drkit.sandbox.parts import PartContext
from drkit.sandbox.postgres import default_os_user
from drkit.sandbox.seed import SeedSize
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.redis_helpers import dump_all

pytestmark = pytest.mark.integration


@dataclass
class PrivateRedis:
    dir: Path
    ctx: PartContext

    @property
    def config_path(self) -> Path:
        return self.dir / "stack.yaml"

    @property
    def stack(self) -> Stack:
        return load_stack(self.config_path)

    @property
    def service(self) -> Service:
        return self.stack.services["redis"]

    @property
    def url(self) -> str:
        return self.service.url or ""

    @property
    def data_dir(self) -> Path:
        return Path(self.service.runtime.data_dir or "")

    def workspace(self) -> Workspace:
        return open_workspace(self.stack)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def pid(self) -> int | None:
        return runtime_for(self.service, self.stack.state_dir).pid()  # type: ignore[attr-defined,no-any-return]


def make_private_redis(*, appendonly: bool = True) -> PrivateRedis:
    directory = Path(tempfile.mkdtemp(prefix="drkit-redis-", dir="/tmp"))
    os.chmod(directory, 0o755)  # the service's OS user must traverse it
    os_user = default_os_user()
    ctx = PartContext(directory, os_user, "redistest", seed=SeedSize(users=40, channels=5))
    entry = redis_part.prepare(ctx)
    if not appendonly:
        conf = Path(entry.state["conf"])
        conf.write_text(conf.read_text().replace("appendonly yes", "appendonly no"))
    config = {
        "version": 1,
        "stack": "redistest",
        "state_dir": str(directory / "state"),
        "repositories": {"local": {"type": "fs", "path": str(directory / "repo")}},
        "services": {"redis": entry.config},
    }
    (directory / "stack.yaml").write_text(yaml.safe_dump(config))
    chown_tree(directory, os_user)
    handle = PrivateRedis(directory, ctx)
    stack = handle.stack
    report = start_services(stack, [], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    assert report.ok, report.failures
    redis_part.seed(ctx, stack)
    return handle


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    handle = make_private_redis()
    yield handle
    stack = handle.stack
    stop_services(stack, [], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    shutil.rmtree(handle.dir, ignore_errors=True)


@pytest.fixture
def rdb_only_redis() -> Iterator[PrivateRedis]:
    handle = make_private_redis(appendonly=False)
    yield handle
    stack = handle.stack
    stop_services(stack, [], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    shutil.rmtree(handle.dir, ignore_errors=True)


def damage(url: str, before: dict[str, tuple[str, Any, bool]]) -> None:
    """What an incident does to the data: keys deleted, changed, added, a TTL lost."""
    c = redis.Redis.from_url(url)
    sessions = sorted(k for k in before if k.startswith("session:"))
    caches = sorted(k for k in before if k.startswith("cache:channel:"))
    c.delete(*sessions[:5])
    c.persist(sessions[5])
    c.set(caches[0], "stale")
    c.set("intruder", "1")
    c.spop("presence")
    c.xadd("events:messages", {"type": "message.deleted"})
    c.close()
    assert dump_all(url) != before


def test_backup_then_damage_then_restore_gives_back_every_key(sandbox: SandboxHandle) -> None:
    url = sandbox.box.address("redis")
    before = dump_all(url)
    assert {"presence", "events:messages"} <= set(before)
    assert any(k.startswith("session:") and v[2] for k, v in before.items())
    assert any(k.startswith("ratelimit:api:") for k in before)

    made = run_drkit("--output", "json", "backup", "redis", config=sandbox.config_path)
    assert made.code == 0, made.stderr
    m = made.json()[0]
    assert m["kind"] == "rdb"
    assert m["details"]["aof"] is True
    assert m["details"]["keys"] == len(before)
    names = [f["name"] for f in m["files"]]
    assert "dump.rdb.00000.zst" in names
    assert any(n.startswith("appendonlydir/") and ".incr.aof." in n for n in names)
    assert any(n.startswith("appendonlydir/") and n.endswith(".manifest.00000.zst") for n in names)

    damage(url, before)
    restored = run_drkit("--yes", "--output", "json", "restore", "redis", config=sandbox.config_path)
    assert restored.code == 0, restored.stderr + restored.stdout
    result = restored.json()
    assert result["backup_id"] == m["backup_id"]
    assert {c["name"]: c["status"] for c in result["checks"]} == {"files": "ok", "keys": "ok", "sample": "ok"}
    assert dump_all(url) == before

    data_dir = Path(sandbox.box.state["services"]["redis"]["data_dir"])
    aside = sorted(data_dir.glob("drkit-before-restore-*"))
    assert aside, "the files the restore replaced must be kept"
    assert (aside[-1] / "dump.rdb").is_file()
    assert (aside[-1] / "appendonlydir").is_dir()


def test_an_rdb_only_backup_restores_into_a_server_that_now_runs_with_aof(
    rdb_only_redis: PrivateRedis,
) -> None:
    """FIELD-NOTES: with appendonly yes Redis loads the AOF, not dump.rdb. A backup taken
    without AOF restored as dump.rdb alone would give an empty server; drkit makes the RDB
    the AOF's base file too."""
    box = rdb_only_redis
    before = dump_all(box.url)
    made = redis_backup.backup(box.workspace(), box.service)
    assert made.manifest.details["aof"] is False
    assert [f.name for f in made.manifest.files] == ["dump.rdb.00000.zst"]

    conf = Path(box.dir / "redis" / "redis.conf")  # AOF turned on since, live and for restarts
    conf.write_text(conf.read_text().replace("appendonly no", "appendonly yes"))
    c = box.client()
    c.config_set("appendonly", "yes")
    damage(box.url, before)

    result = redis_restore.restore(box.workspace(), box.service, RestoreOptions())
    assert [(x.name, x.status.value) for x in result.checks] == [
        ("files", "ok"),
        ("keys", "ok"),
        ("sample", "ok"),
    ]
    assert "also as the AOF's base" in result.detail
    assert dump_all(box.url) == before
    assert box.client().info("persistence")["aof_enabled"] == 1
    listing = (box.data_dir / "appendonlydir" / "appendonly.aof.manifest").read_text()
    assert "appendonly.aof.1.base.rdb seq 1 type b" in listing


def _corrupt_command_start(path: Path) -> None:
    """Replace the `*` that opens a command in the middle of an AOF: a format error that
    redis-check-aof must find (it checks commands' framing, not their values)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"\r\n*", len(data) // 2) + 2
    data[at] = ord("X")
    with open(path, "r+b") as fh:  # in place: the server keeps appending through its own fd
        fh.write(data[: at + 1])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as fh:
        fh.seek(len(data) // 2)
        fh.write(data[len(data) // 2 : len(data) // 2 + 1])


@pytest.mark.parametrize(
    ("name", "corrupt"),
    [("appendonly.aof.1.incr.aof", _corrupt_command_start), ("appendonly.aof.1.base.rdb", _flip_middle_byte)],
)
def test_a_damaged_aof_on_the_server_is_refused_at_backup(
    private_redis: PrivateRedis, name: str, corrupt: Any
) -> None:
    """Stands for bit rot or a bad sector under a running Redis: the server keeps serving
    from memory and appending to its AOF, and would only fail at its next start. A backup
    that copied the file blindly would carry the damage; drkit's check refuses it."""
    box = private_redis
    corrupt(box.data_dir / "appendonlydir" / name)
    failed = run_drkit("backup", "redis", config=box.config_path)
    assert failed.code == 1, failed.stdout
    assert f"appendonlydir/{name} is damaged" in failed.stderr
    assert list_backups(box.workspace().repo, "redistest", "redis").complete == ()
    assert not (box.dir / "repo" / "redistest" / "redis").exists(), "nothing may be stored"
    assert box.client().ping()


def _tamper(ws: Workspace, m: Manifest, path: str, corrupt: Any) -> None:
    """Replace one stored file by a damaged copy, re-encoded, with the manifest's hashes
    fixed: only redis-check-rdb/aof can tell."""
    directory = backup_dir(m.stack, m.service, m.backup_id)
    record = next(r for r in m.details["files"] if r["path"] == path)
    (part,) = record["parts"]
    raw = ws.codec.decode(ws.repo.get(f"{directory}/{part}"), name=part)
    scratch = Path(tempfile.mkdtemp(dir="/tmp")) / "file"
    scratch.write_bytes(raw)
    corrupt(scratch)
    damaged = scratch.read_bytes()
    shutil.rmtree(scratch.parent)
    assert damaged != raw and len(damaged) == len(raw)
    stored = ws.codec.encode(damaged)
    ws.repo.put(f"{directory}/{part}", stored)
    files = tuple(
        StoredFile(part, len(stored), sha256(stored), len(damaged)) if f.name == part else f for f in m.files
    )
    record["sha256"] = sha256(damaged)
    fixed = dataclasses.replace(m, files=files, details=json.loads(json.dumps(m.details)))
    ws.repo.put(manifest_key(m.stack, m.service, m.backup_id), fixed.to_json())


@pytest.mark.parametrize(
    ("path", "corrupt"),
    [("dump.rdb", _flip_middle_byte), ("appendonlydir/appendonly.aof.1.incr.aof", _corrupt_command_start)],
)
def test_a_damaged_file_in_the_repository_is_refused_before_the_server_is_touched(
    private_redis: PrivateRedis, path: str, corrupt: Any
) -> None:
    box = private_redis
    ws = box.workspace()
    m = redis_backup.backup(ws, box.service).manifest
    _tamper(ws, m, path, corrupt)
    box.client().set("written-after-the-backup", "1")
    pid = box.pid()

    with pytest.raises(IntegrityError) as refused:
        redis_restore.restore(box.workspace(), box.service, RestoreOptions())
    assert f"{path} is damaged" in refused.value.message
    assert "was not touched" in refused.value.message
    assert box.pid() == pid
    assert box.client().get("written-after-the-backup") == b"1"
    assert not list(box.data_dir.glob("drkit-*")), "nothing may be moved aside"


class SteppingClock(SystemClock):
    """Wall time that moves a minute per reading (backup ids and ages), real monotonic time."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


def _ids(ws: Workspace) -> list[str]:
    return [m.backup_id for m in list_backups(ws.repo, "redistest", "redis").complete]


def test_backups_remove_nothing_and_prune_keeps_a_weekly_snapshot_and_a_set_member(
    private_redis: PrivateRedis,
) -> None:
    """A backup removes no other backup (it used to keep only its newest 7, so the snapshot
    GFS keeps for its week was gone before `drkit prune` could keep it): prune alone decides,
    with keep_last 7 by default for Redis, and never removes what a set refers to."""
    box = private_redis
    week1 = dataclasses.replace(box.workspace(), clock=SteppingClock(datetime(2026, 1, 5, 10, tzinfo=UTC)))
    in_set = redis_backup.backup(week1, box.service).manifest.backup_id
    held = RestoreSet("s1", "redistest", week1.clock.now(), "p", "0/0", {"redis": in_set}, week1.clock.now())
    week1.repo.put(set_key("redistest", "s1"), held.to_json())
    week1 = dataclasses.replace(week1, clock=SteppingClock(datetime(2026, 1, 6, 10, tzinfo=UTC)))
    weekly = redis_backup.backup(week1, box.service).manifest.backup_id
    ws = dataclasses.replace(week1, clock=SteppingClock(datetime(2026, 1, 12, 10, tzinfo=UTC)))
    later = [redis_backup.backup(ws, box.service).manifest.backup_id for _ in range(8)]

    assert _ids(ws) == sorted([in_set, weekly, *later]), "a backup removed another"
    last = Manifest.from_json(ws.repo.get(manifest_key("redistest", "redis", later[-1])))
    assert "retention" not in last.details

    # A clock stepped back (NTP, a restored VM) makes the newest backup look oldest: kept anyway.
    skewed = dataclasses.replace(ws, clock=SteppingClock(datetime(2025, 1, 1, tzinfo=UTC)))
    newest = redis_backup.backup(skewed, box.service).manifest.backup_id
    assert newest in _ids(ws)
    delete_backup(ws, "redis", newest)

    gfs = dataclasses.replace(box.service, retention=Retention(keep_daily=0, keep_weekly=2, keep_monthly=0))
    result = prune(ws, gfs, dry_run=False)
    rules = {d.name: d.rule for d in result.plan.keep}
    assert rules == {**{i: "keep_last" for i in later[-7:]}, weekly: "keep_weekly", in_set: "set"}
    assert [d.name for d in result.plan.drop] == [later[0]]
    assert _ids(ws) == sorted([in_set, weekly, *later[-7:]])
    assert not ws.repo.list(backup_dir("redistest", "redis", later[0]) + "/"), "pruned files are gone"


def test_a_backup_under_write_load_is_one_consistent_moment(private_redis: PrivateRedis) -> None:
    """Writes go on during the backup; the RDB, the AOF cut, the key counts and the sample
    are still one moment (writes are paused around the fork), so the restore matches exactly."""
    box = private_redis
    stop = threading.Event()

    def write() -> None:
        c = box.client()
        n = 0
        while not stop.is_set():
            pipe = c.pipeline(transaction=False)
            for _ in range(50):
                n += 1
                pipe.set(f"load:{n}", "x" * 64)
                pipe.incr("load:counter")
            pipe.execute()
        c.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = box.client()
        from drkit.infra.wait import wait_for

        wait_for(lambda: int(seen.get("load:counter") or 0) > 2000, timeout=30, what="writes to flow")
        m = redis_backup.backup(box.workspace(), box.service).manifest
    finally:
        stop.set()
        writer.join(timeout=30)
    result = redis_restore.restore(box.workspace(), box.service, RestoreOptions())
    assert [(x.name, x.status.value) for x in result.checks] == [
        ("files", "ok"),
        ("keys", "ok"),
        ("sample", "ok"),
    ]
    c = box.client()
    assert c.dbsize() == m.details["keys"]
    written = sum(1 for _ in c.scan_iter("load:*", count=1000)) - 1  # load:counter is not one
    assert 0 <= written - int(c.get("load:counter") or 0) <= 1  # SET then INCR: at most one apart


def test_deep_verify_loads_the_backup_into_a_throwaway_server(private_redis: PrivateRedis) -> None:
    from drkit.engines.redis.verify import verify_deep

    box = private_redis
    ws = box.workspace()
    m = redis_backup.backup(ws, box.service).manifest
    pid = box.pid()
    results = verify_deep(ws, box.service, m)
    assert [(r.name, r.status.value) for r in results] == [
        ("files", "ok"),
        ("restore", "ok"),
        ("keys", "ok"),
        ("sample", "ok"),
    ]
    assert box.pid() == pid

    # A manifest that recorded another value: the loaded data must disagree with it.
    details = json.loads(json.dumps(m.details))
    details["sample"][0]["sha256"] = "0" * 64
    results = verify_deep(ws, box.service, dataclasses.replace(m, details=details))
    assert ("sample", "failed") in [(r.name, r.status.value) for r in results]
    assert not list((ws.state_dir / "redis").iterdir()), "the scratch directory is removed"


def test_restore_to_a_directory_and_a_changed_stored_part_is_refused(private_redis: PrivateRedis) -> None:
    box = private_redis
    m = redis_backup.backup(box.workspace(), box.service).manifest
    pid = box.pid()
    dest = box.dir / "restored"
    out = run_drkit("--output", "json", "restore", "redis", "--to", str(dest), config=box.config_path)
    assert out.code == 0, out.stderr
    assert out.json()["checks"][0]["status"] == "ok"
    assert (dest / "dump.rdb").stat().st_size == m.details["files"][0]["size"]
    assert (dest / "appendonlydir" / "appendonly.aof.manifest").is_file()
    assert box.pid() == pid

    part = box.dir / "repo" / "redistest" / "redis" / "backups" / m.backup_id / "dump.rdb.00000.zst"
    _flip_middle_byte(part)
    refused = run_drkit("--yes", "restore", "redis", config=box.config_path)
    assert refused.code == 1
    assert "dump.rdb.00000.zst does not match the manifest's SHA-256" in refused.stderr
    assert "was not touched" in refused.stderr
    assert box.pid() == pid


def test_check_names_a_redis_that_keeps_nothing_and_passes_again_when_fixed(
    private_redis: PrivateRedis,
) -> None:
    good = run_drkit("--output", "json", "check", config=private_redis.config_path)
    statuses = {r["name"]: r["status"] for r in good.json()["results"]}
    assert statuses["redis: persistence"] == "ok" and statuses["redis: last BGSAVE"] == "ok"

    c = redis.Redis.from_url(private_redis.url)
    c.config_set("appendonly", "no")
    c.config_set("save", "")
    bad = run_drkit("--output", "json", "check", config=private_redis.config_path)
    assert bad.code == 3
    failed = {r["name"]: r["detail"] for r in bad.json()["results"] if r["status"] == "failed"}
    assert list(failed) == ["redis: persistence"]
    assert "loses every key" in failed["redis: persistence"]

    c.config_set("appendonly", "yes")
    c.config_set("save", "900 1 300 10 60 10000")
    c.close()
    again = run_drkit("--output", "json", "check", config=private_redis.config_path)
    assert again.code == 0, again.stdout


def _stop(box: PrivateRedis) -> None:
    runtime_for(box.service, box.stack.state_dir).stop(60)
    assert not runtime_for(box.service, box.stack.state_dir).is_running()


def test_with_the_server_down_the_layout_comes_from_its_configuration_not_the_backup(
    rdb_only_redis: PrivateRedis,
) -> None:
    """An RDB-only backup restored while the server is down into a server configured with AOF
    since: the backup recorded `appendonly no`; the configuration says yes, so the RDB goes
    in as the AOF's base too and every key comes back (with the recorded layout: the AOF
    moved aside, Redis starts empty, exit 3)."""
    box = rdb_only_redis
    before = dump_all(box.url)
    made = redis_backup.backup(box.workspace(), box.service)
    assert made.manifest.details["config"]["appendonly"] is False
    conf = Path(box.dir / "redis" / "redis.conf")
    conf.write_text(conf.read_text().replace("appendonly no", "appendonly yes"))
    box.client().config_set("appendonly", "yes")
    damage(box.url, before)
    _stop(box)

    result = run_drkit("--yes", "--output", "json", "restore", "redis", config=box.config_path)
    assert result.code == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert "the configuration" in out["detail"] and "also as the AOF's base" in out["detail"]
    assert dump_all(box.url) == before
    assert box.client().info("persistence")["aof_enabled"] == 1


def test_a_manifest_naming_an_absolute_dbfilename_writes_nothing_outside_the_data_directory(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    box = private_redis
    before = dump_all(box.url)
    ws = box.workspace()
    m = redis_backup.backup(ws, box.service).manifest
    planted = tmp_path / "elsewhere"
    planted.mkdir()
    os.chmod(tmp_path, 0o755)
    evil = planted / "cron-job"
    config = {
        **m.details["config"],
        "dir": str(planted),
        "dbfilename": str(evil),
        "appenddirname": str(planted),
    }
    forged = dataclasses.replace(m, details={**m.details, "config": config})
    key = manifest_key(m.stack, m.service, m.backup_id)
    (Path(str(ws.repo.location)) / key).write_bytes(forged.to_json())
    damage(box.url, before)
    _stop(box)

    result = run_drkit("--yes", "restore", "redis", config=box.config_path)
    assert not evil.exists() and list(planted.iterdir()) == []
    assert result.code == 0, result.stdout + result.stderr
    assert dump_all(box.url) == before
    assert (box.data_dir / "dump.rdb").is_file()


def test_a_future_dated_backup_turns_status_red_and_is_not_chosen_by_restore(
    private_redis: PrivateRedis,
) -> None:
    box = private_redis
    ws = box.workspace()
    c = box.client()
    c.set("marker", "first")
    first = redis_backup.backup(ws, box.service).manifest
    c.set("marker", "second")
    second = redis_backup.backup(ws, box.service).manifest
    year = timedelta(days=365)
    skewed = dataclasses.replace(
        second, started_at=second.started_at + year, finished_at=second.finished_at + year
    )
    key = manifest_key(second.stack, second.service, second.backup_id)
    (Path(str(ws.repo.location)) / key).write_bytes(skewed.to_json())

    status = run_drkit("status", "redis", config=box.config_path)
    assert status.code == 3, status.stdout + status.stderr
    assert second.backup_id in status.stdout and "ahead" in status.stdout
    checked = run_drkit("check", config=box.config_path)
    assert checked.code == 3 and f"{second.backup_id}: finished" in checked.stdout

    c.set("marker", "damaged")
    restored = run_drkit("--yes", "restore", "redis", config=box.config_path)
    assert restored.code == 0, restored.stdout + restored.stderr
    assert (
        f"chose {first.backup_id}" in restored.stdout and f"passed over {second.backup_id}" in restored.stdout
    )
    assert box.client().get("marker") == b"first"


def test_a_planted_link_in_the_repository_is_never_followed_by_restore(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """A stored part replaced by a link to a file with the same bytes (anywhere on the host):
    followed, drkit running as root would read whatever the link names. Refused, named,
    before the server is touched; verify names it too."""
    box = private_redis
    ws = box.workspace()
    m = redis_backup.backup(ws, box.service).manifest
    part = Path(str(ws.repo.location)) / backup_dir(m.stack, m.service, m.backup_id) / "dump.rdb.00000.zst"
    elsewhere = tmp_path / "elsewhere.zst"
    shutil.copyfile(part, elsewhere)
    part.unlink()
    os.symlink(elsewhere, part)
    box.client().set("marker", "after the backup")

    result = run_drkit("--yes", "restore", "redis", config=box.config_path)
    assert result.code == 1, result.stdout + result.stderr
    assert "dump.rdb.00000.zst" in result.stderr and "symbolic link" in result.stderr
    assert box.client().get("marker") == b"after the backup"  # the server was not touched
    verified = run_drkit("verify", m.backup_id, "--service", "redis", config=box.config_path)
    assert verified.code == 3 and "symbolic link" in verified.stdout
