"""`drkit status` and `drkit metrics` from a repository's manifests and journals, with an
injected clock: the newest recoverable point against the RPO, the last verify and drill, and
the exposition parsed back with prometheus_client's parser."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.checks import CheckResult, Status
from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepRecord, StepStatus, Verdict
from drkit.engines.core.layout import journal_key, manifest_key
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import open_workspace
from drkit.engines.ops.metrics import METRICS, exposition
from drkit.engines.ops.status import build_status, record_verify
from drkit.infra.clock import SystemClock
from tests.conftest import run_drkit

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

STACK = """\
version: 1
stack: demo
repositories:
  local:
    type: fs
    path: ./repo
services:
  cache:
    kind: redis
    url: redis://127.0.0.1:1/0
    rpo: 15m
    rto: 10m
  search:
    kind: meilisearch
    url: http://127.0.0.1:1
    rpo: 1h
"""


class Clock(SystemClock):
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def manifest(service: str, kind: BackupKind, finished: datetime, seconds: float, size: int) -> Manifest:
    return Manifest(
        backup_id=f"{finished:%Y%m%dT%H%M%S}Z-{kind.value}",
        stack="demo",
        service=service,
        kind=kind,
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        files=(StoredFile("data.zst", size, "0" * 64),),
        tool_versions={},
    )


def drill(service: str, verdict: Verdict, finished: datetime, rto: float) -> Journal:
    return Journal(
        run_id=f"{finished:%Y%m%dT%H%M%S}Z-drill-cache-loss",
        kind=RunKind.DRILL,
        scenario="cache-loss",
        stack="demo",
        started_at=finished - timedelta(minutes=2),
        finished_at=finished,
        steps=(StepRecord("restore", "restore", service=service, status=StepStatus.SUCCEEDED),),
        measures=(ServiceMeasure(service, rto_seconds=rto, rpo_seconds=4.0, rto_target=600, rpo_target=900),),
        verdict=verdict,
    )


def workspace(tmp_path: Path, now: datetime = NOW, base: datetime = NOW):  # type: ignore[no-untyped-def]
    """Backups of `cache` 3h and 10min before `base`, of `search` 2h before; clock at `now`."""
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    ws = open_workspace(load_stack(path), clock=Clock(now))
    for m in (
        manifest("cache", BackupKind.RDB, base - timedelta(hours=3), 2.0, 100),
        manifest("cache", BackupKind.RDB, base - timedelta(minutes=10), 3.5, 1234),
        manifest("search", BackupKind.DUMP, base - timedelta(hours=2), 7.0, 999),
    ):
        ws.repo.put(manifest_key("demo", m.service, m.backup_id), m.to_json())
    ws.repo.put("demo/cache/backups/20261130T115900Z-rdb/data.zst", b"x")  # incomplete: not counted
    old = drill("cache", Verdict.PASSED, NOW - timedelta(days=30), 20.0)
    new = drill("cache", Verdict.MISSED_TARGET, NOW - timedelta(days=1), 700.0)
    for j in (old, new):
        ws.repo.put(journal_key("demo", j.run_id), j.to_json())
    return ws, path


def test_status_from_manifests_journals_and_the_verify_record(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    record_verify(ws, VerifyReport("20261130T115000Z-rdb", "cache", True, (), 1.5))
    report = build_status(ws)
    cache, search = report.services
    assert cache.recoverable_age_seconds == 600 and cache.rpo_target_seconds == 900
    assert not cache.red
    assert cache.verify is not None and cache.verify.ok and cache.verify.backup_id == "20261130T115000Z-rdb"
    assert (
        cache.drill is not None and cache.drill.verdict == "missed-target" and cache.drill.rto_seconds == 700
    )
    assert search.red and "7200s old, more than the RPO target 3600s" in search.problems[0]
    assert search.drill is None and search.verify is None
    assert [s.service for s in report.red] == ["search"]


def test_the_rpo_turns_red_as_time_passes(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path, NOW + timedelta(minutes=4, seconds=59))
    assert not build_status(ws, services=["cache"]).red
    ws, _ = workspace(tmp_path, NOW + timedelta(minutes=5, seconds=1))
    assert build_status(ws, services=["cache"]).red


def test_metrics_parse_back_to_the_manifests(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    failed = CheckResult("sha256 of data.zst", Status.FAILED, "differs")
    record_verify(ws, VerifyReport("x", "cache", False, (failed,), 1.5))
    text = exposition(lambda: build_status(ws)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    newest = NOW - timedelta(minutes=10)
    assert (
        value("drkit_backup_last_success_timestamp_seconds", service="cache", type="rdb")
        == newest.timestamp()
    )
    assert value("drkit_backup_last_duration_seconds", service="cache", type="rdb") == 3.5
    assert value("drkit_backup_last_size_bytes", service="cache", type="rdb") == 1234
    assert value("drkit_backups", service="cache", type="rdb") == 2
    assert value("drkit_recoverable_point_age_seconds", service="cache") == 600
    assert value("drkit_rpo_target_seconds", service="search") == 3600
    assert value("drkit_verify_last_success", service="cache") == 0
    assert value("drkit_drill_last_success", service="cache") == 0
    assert value("drkit_drill_rto_seconds", service="cache") == 700
    assert value("drkit_status_red", service="search") == 1
    assert value("drkit_status_red", service="cache") == 0
    assert ("drkit_verify_last_success", (("service", "search"),)) not in samples  # unknown: absent


def test_status_command_exits_3_when_red_and_prints_json(tmp_path: Path) -> None:
    real_now = datetime.now(UTC)
    _, path = workspace(tmp_path, real_now, base=real_now)
    result = run_drkit("--output", "json", "status", config=path)
    assert result.code == 3, result.stderr
    data = result.json()
    assert data["red"] is True
    assert {s["service"]: s["red"] for s in data["services"]} == {"cache": False, "search": True}
    # engines/ops/copies.py wired in: the live data and the one repository; 3-2-1 not met
    expected = {"copies": 2, "repositories": 1, "offsite": 0, "rule_321": False}
    assert data["services"][0]["copies"] == expected
    ok = run_drkit("status", "cache", config=path)
    assert ok.code == 0, ok.stdout + ok.stderr
    assert "cache" in ok.stdout
    # in words, not the JSON's keys ("copies 2, repositories 1, offsite 0, rule_321 False")
    assert "2 copies, 1 repositories, 0" in ok.stdout and "off-site: 3-2-1 not met" in ok.stdout, ok.stdout


def test_contrib_uses_only_metrics_drkit_exports() -> None:
    exported = set(METRICS)
    dashboard = (ROOT / "contrib/grafana/drkit-dashboard.json").read_text()
    json.loads(dashboard)
    rules = (ROOT / "contrib/prometheus/drkit-alerts.yml").read_text()
    for text in (dashboard, rules):
        used = set(re.findall(r"\bdrkit_[a-z0-9_]+", text)) - {"drkit_"}
        assert used and used <= exported, used - exported


def test_metrics_listen_serves_the_exposition(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import urllib.request

    from drkit.infra.wait import wait_for

    _, path = workspace(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "drkit", "--config", str(path), "metrics", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())

        text = wait_for(scrape, timeout=30, what="drkit metrics to serve", retry_on=(OSError,))
        names = {fam.name for fam in text_string_to_metric_families(text)}
        assert {"drkit_backup_last_size_bytes", "drkit_status_red"} <= names
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_digest_lists_what_completed_in_the_day(tmp_path: Path) -> None:
    from drkit.domain.stack import Severity
    from drkit.engines.ops.notify import digest

    ws, _ = workspace(tmp_path)
    message = digest(ws, until=NOW - timedelta(minutes=1))
    lines = message.body.splitlines()
    assert len(lines) == 4  # 3 backups and the drill of yesterday; not the one of 30 days ago
    assert sum("backup" in line for line in lines) == 3
    assert (
        "drill 20261129T120000Z-drill-cache-loss (cache-loss): missed-target; cache RTO 11m40s" in lines[-1]
    )
    assert message.severity is Severity.WARNING  # a drill missed its target


def test_digest_sums_up_a_service_backed_up_every_few_minutes(tmp_path: Path) -> None:
    """A 15-minute rpo means a backup every 10 minutes: the digest says so once, not 144 lines."""
    from drkit.engines.ops.notify import digest

    ws, _ = workspace(tmp_path)
    for n in range(1, 145):
        m = manifest("cache", BackupKind.RDB, NOW - timedelta(minutes=10 * n, seconds=30), 1.0, 10)
        ws.repo.put(manifest_key("demo", m.service, m.backup_id), m.to_json())
    lines = digest(ws, until=NOW).body.splitlines()
    cache = [line for line in lines if "of cache" in line]
    assert len(cache) == 1
    assert cache[0].startswith("145 rdb backups of cache (")  # 143 + 2; the 144th is 24h00m30s old
    assert "the newest: backup 20261130T115000Z-rdb of cache" in cache[0]
    assert sum("of search" in line for line in lines) == 1


STATEFUL_AND_NOT = """\
version: 1
stack: demo
repositories:
  local:
    type: fs
    path: ./repo
services:
  db:
    kind: postgres
    dsn: host=127.0.0.1 port=1 dbname=app
    rpo: 5m
  hasura:
    kind: hasura
    url: http://127.0.0.1:1
    depends_on: [db]
    rpo: 1h
  functions:
    kind: functions
    url: http://127.0.0.1:1
    rpo: 5m
"""


def test_services_keeping_data_elsewhere_inherit_its_point(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(STATEFUL_AND_NOT)
    now = datetime.now(UTC)
    ws = open_workspace(load_stack(path), clock=Clock(now + timedelta(minutes=10)))
    ws.repo.put("demo/db/wal/00000001/000000010000000000000003.zst", b"segment")
    ws.repo.put("demo/db/wal/00000001/000000010000000000000003.sha256", b"not a segment")
    report = build_status(ws, probe_server=False)
    db, functions, hasura = report.services
    assert db.recoverable_at is not None and abs((db.recoverable_at - now).total_seconds()) < 60
    assert "newest WAL file in the repository" in db.recoverable_source
    assert db.red and "more than the RPO target 300s" in db.problems[0]  # 10 minutes, RPO 5m
    assert hasura.recoverable_at == db.recoverable_at and not hasura.red
    assert hasura.recoverable_source.startswith("its data lives in db")
    assert not functions.rpo_applies and not functions.red  # drkit keeps nothing of it


def test_the_copies_hook_is_called_per_service(tmp_path: Path) -> None:
    from drkit.domain.errors import RepositoryError

    ws, _ = workspace(tmp_path)

    def copies(_ws: object, service: object) -> dict[str, object]:
        if getattr(service, "name", "") == "search":
            raise RepositoryError("offsite bucket unreachable")
        return {"copies": 3, "repositories": 2, "rule_321": True}

    cache, search = build_status(ws, copies=copies).services  # type: ignore[arg-type]
    assert cache.copies == {"copies": 3, "repositories": 2, "rule_321": True}
    assert search.copies == {"error": "offsite bucket unreachable"}
    assert build_status(ws).services[0].copies is None


def test_a_backup_from_the_future_turns_status_red_and_is_not_the_newest(tmp_path: Path) -> None:
    """One backup stamped a year ahead (a skewed clock, a copy from another host): the age
    was -31,535,998 s with no alert. It is named, red, and the point is the real newest."""
    ws, path = workspace(tmp_path)
    ahead = manifest("cache", BackupKind.RDB, NOW + timedelta(days=365), 2.0, 100)
    ws.repo.put(manifest_key("demo", "cache", ahead.backup_id), ahead.to_json())
    cache = build_status(ws, services=["cache"]).services[0]
    assert cache.red and cache.recoverable_age_seconds == 600
    assert cache.last_backup is not None and cache.last_backup.backup_id != ahead.backup_id
    assert [u.backup_id for u in cache.unproven] == [ahead.backup_id]
    assert (
        f"cache: backup {ahead.backup_id}: finished 2027-11-30T12:00:00Z, 365.0 d ahead" in cache.problems[0]
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition(lambda: build_status(ws)).decode())
        for s in family.samples
    }
    when = samples[("drkit_backup_last_success_timestamp_seconds", (("service", "cache"), ("type", "rdb")))]
    assert when == (NOW - timedelta(minutes=10)).timestamp()

    real_now = datetime.now(UTC)
    (tmp_path / "cli").mkdir()
    _, path = workspace(tmp_path / "cli", real_now, base=real_now)
    ws_cli = open_workspace(load_stack(path))
    future = manifest("cache", BackupKind.RDB, real_now + timedelta(days=365), 2.0, 100)
    ws_cli.repo.put(manifest_key("demo", "cache", future.backup_id), future.to_json())
    result = run_drkit("status", "cache", config=path)
    assert result.code == 3, result.stdout + result.stderr
    assert future.backup_id in result.stdout
