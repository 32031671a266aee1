"""`drkit prune` on a filesystem repository with a made-up history (tests/prune_fakes.py):
exactly the plan goes, a dry run changes nothing, the lock, sets and verify markers count."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from drkit.domain.backup import BackupKind
from drkit.domain.errors import LockedError, RepositoryError
from drkit.domain.stack import Retention
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, lock_name, verified_key
from drkit.engines.core.set_refs import list_sets, set_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.prune import describe, prune
from drkit.engines.ops.set_retention import describe_sets, prune_sets
from drkit.infra import locks
from tests.prune_fakes import STACK, T0, add_base, add_set, make_stack, month, wal_numbers, workspace

POLICY = Retention(keep_last=2, keep_daily=7, keep_weekly=3, keep_monthly=2)
NOW = T0 + timedelta(days=39, hours=3)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of tiny WAL files: durability is not what these tests are about."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return workspace(make_stack(tmp_path, POLICY, timedelta(days=10)), NOW)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _days(ws: Workspace, kind: BackupKind = BackupKind.BASE) -> list[int]:
    done = list_backups(ws.repo, STACK, "postgres").complete
    return sorted((m.finished_at - T0).days for m in done if m.kind is kind)


def test_prune_removes_exactly_what_the_policy_does_not_keep(ws: Workspace) -> None:
    month(ws)
    service = ws.stack.services["postgres"]
    result = prune(ws, service, dry_run=False)
    # keep_last 2: days 39, 38; daily 7: 33..39; weekly 3: 39 (Mon 9 Feb), 38, 31;
    # monthly 2: 39, 30 (31 Jan); the PITR window (10 days) starts from day 29.
    assert _days(ws) == [29, 30, 31, 33, 34, 35, 36, 37, 38, 39]
    rules = {d.name[:8]: d.rule for d in result.plan.keep}
    assert rules["20260130"] == "pitr-window" and rules["20260131"] == "keep_monthly"
    # Logical dumps are their own series: all six are the newest of their day (keep_daily 7).
    assert _days(ws, BackupKind.LOGICAL) == [3, 10, 17, 24, 31, 38]
    assert wal_numbers(ws) == set(range(290, 400))  # from day 29's start segment on
    assert not prune(ws, service, dry_run=False).plan.drop  # stable: nothing more goes
    wal_dir = Path(str(ws.repo.location)) / STACK / "postgres" / "wal"
    sidecars = {p.name.removesuffix(".sha256") for p in wal_dir.rglob("*.sha256")}
    assert sidecars == {p.name.removesuffix(".zst") for p in wal_dir.rglob("*.zst")}


def test_a_dry_run_names_each_rule_and_changes_nothing(ws: Workspace) -> None:
    month(ws)
    root = Path(str(ws.repo.location))
    before = _files(root)
    result = prune(ws, ws.stack.services["postgres"], dry_run=True)
    assert _files(root) == before
    text = "\n".join(describe(result))
    assert "would remove 30 backup(s), 290 WAL file(s)" in text
    assert "would remove 20260101T020000Z-base: unkept: no rule keeps it (keep_last 2, keep_daily 7" in text
    assert "keep 20260130T020000Z-base: pitr-window" in text
    assert "would remove WAL 000000010000000000000000 .. 000000010000000100000021 (290 files)" in text


def test_the_newest_verified_backup_and_a_set_s_backup_stay(ws: Workspace) -> None:
    ids = month(ws)
    ws.repo.put(verified_key(STACK, "postgres", ids[5]), b'{"verified_at": "x", "deep": true}')
    add_set(ws, ids[12], 12, until=130)
    result = prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert {5, 12} <= set(_days(ws))
    rules = {d.name: d.rule for d in result.plan.keep}
    assert rules[ids[5]] == "verified" and rules[ids[12]] == "set"
    assert set(range(50, 52)) | set(range(120, 131)) <= wal_numbers(ws)
    assert 52 not in wal_numbers(ws) and 131 not in wal_numbers(ws)


def test_prune_is_refused_while_the_service_is_busy_and_changes_nothing(ws: Workspace) -> None:
    month(ws, days=3)
    root = Path(str(ws.repo.location))
    before = _files(root)
    with (
        locks.exclusive(ws.lock_dir, lock_name("postgres"), "backup"),
        pytest.raises(LockedError, match="backup \\(pid"),
    ):
        prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert _files(root) == before


def test_an_unreadable_set_stops_the_prune_before_anything_goes(ws: Workspace) -> None:
    month(ws)
    ws.repo.put(set_key(STACK, "broken-set"), b"{not json")
    root = Path(str(ws.repo.location))
    before = _files(root)
    with pytest.raises(RepositoryError, match="unreadable"):
        prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert _files(root) == before


def test_leftovers_of_a_killed_run_go_through_clean_incomplete(ws: Workspace) -> None:
    month(ws, days=3)
    leftover = backup_dir(STACK, "postgres", "20260101T030000Z-base")
    ws.repo.put(f"{leftover}/base.00000.tar.zst", b"half")  # no manifest, no lease
    result = prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert result.incomplete == ("20260101T030000Z-base",)
    assert not list_backups(ws.repo, STACK, "postgres").incomplete


def test_a_hash_sidecar_left_without_its_segment_goes_with_its_range(ws: Workspace) -> None:
    month(ws)
    root = Path(str(ws.repo.location))
    segment = next(root.rglob("000000010000000000000003.zst"))
    os.unlink(segment)  # a prune or push killed between the segment and its sidecar
    prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert not list(root.rglob("000000010000000000000003.sha256"))


def test_without_base_backups_only_the_backup_rules_apply(tmp_path: Path) -> None:
    stack = make_stack(
        tmp_path, Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), timedelta(0)
    )
    ws = workspace(stack, NOW)
    for day in range(3):
        add_base(ws, day, 0, 0, kind=BackupKind.LOGICAL)
    plan = prune(ws, stack.services["postgres"], dry_run=False).plan
    assert [d.rule for d in plan.keep] == ["keep_last"] and len(plan.drop) == 2


def test_stack_yaml_retention_reaches_the_service(tmp_path: Path) -> None:
    from drkit.config.loader import load_stack

    path = tmp_path / "stack.yaml"
    path.write_text(
        "version: 1\nstack: s\nrepositories: {r: {type: fs, path: ./repo}}\nservices:\n"
        "  pg:\n    kind: postgres\n    dsn: host=x\n"
        "    backup: {retention: {keep_last: 3, keep_monthly: 6}, wal_retention: 2d}\n"
        "  cache: {kind: redis, url: 'redis://x'}\n"
    )
    stack = load_stack(path)
    assert stack.services["pg"].retention == Retention(
        keep_last=3, keep_daily=30, keep_weekly=12, keep_monthly=6
    )
    assert stack.services["cache"].retention == Retention()
    assert stack.services["pg"].postgres is not None
    assert stack.services["pg"].postgres.wal_retention == timedelta(days=2)


def test_redis_and_meilisearch_keep_their_old_keep_last_unless_one_is_configured(tmp_path: Path) -> None:
    """Their backups no longer remove older ones: prune's keep_last stands for the old default
    (7 and 5); a configured keep_last wins; other kinds get no keep_last; GFS applies to all."""
    from drkit.config.loader import load_stack
    from drkit.engines.ops.prune import policy_of

    path = tmp_path / "stack.yaml"
    path.write_text(
        "version: 1\nstack: s\nrepositories: {r: {type: fs, path: ./repo}}\nservices:\n"
        "  cache: {kind: redis, url: 'redis://x'}\n"
        "  search: {kind: meilisearch, url: 'http://x'}\n"
        "  sessions: {kind: redis, url: 'redis://y', backup: {retention: {keep_last: 2, keep_weekly: 4}}}\n"
        "  pg: {kind: postgres, dsn: host=x}\n"
    )
    services = load_stack(path).services
    assert policy_of(services["cache"]).retention == Retention(keep_last=7)
    assert policy_of(services["search"]).retention == Retention(keep_last=5)
    assert policy_of(services["sessions"]).retention == Retention(keep_last=2, keep_weekly=4)
    assert policy_of(services["pg"]).retention == Retention()


def test_prune_names_an_unknown_repository_or_service(tmp_path: Path) -> None:
    from tests.conftest import run_drkit

    path = tmp_path / "stack.yaml"
    path.write_text(
        "version: 1\nstack: s\nrepositories: {r: {type: fs, path: ./repo}}\n"
        "services: {pg: {kind: postgres, dsn: host=x}}\n"
    )
    bad_repo = run_drkit("prune", "--repo", "offsite", "--dry-run", config=path)
    assert bad_repo.code == 2 and "no repository 'offsite'" in bad_repo.stderr
    bad_service = run_drkit("prune", "redis", config=path)
    assert bad_service.code == 2 and "no service 'redis'" in bad_service.stderr
    ok = run_drkit("--output", "json", "prune", "--repo", "r", "--dry-run", config=path)
    assert ok.code == 0, ok.stderr
    assert ok.json() == {
        "sets": {"dry_run": True, "keep": [], "drop": [], "leftovers": []},
        "services": [
            {
                "service": "pg",
                "dry_run": True,
                "keep": [],
                "drop": [],
                "wal_drop": [],
                "wal_kept": 0,
                "wal_from": None,
                "incomplete": [],
                "objects": None,
                "refused": [],
                "force_skipped": [],
                "leftovers": [],
            }
        ],
        "refused": [],
    }


def test_sets_have_their_own_retention_and_stop_pinning_what_they_named(tmp_path: Path) -> None:
    """`backup --all` writes a set every day; kept forever, sets would keep every backup. The
    sets' retention (here the same rules as the service's) drops old sets first, then the
    service's prune removes what no kept set names. A dry run plans exactly the real run."""
    stack = replace(make_stack(tmp_path, POLICY, timedelta(days=10)), set_retention=POLICY)
    ws = workspace(stack, NOW)
    ids = month(ws)
    set_ids = [add_set(ws, ids[day], day, until=10 * day + 1) for day in range(40)]
    service = ws.stack.services["postgres"]
    root = Path(str(ws.repo.location))
    before = _files(root)

    planned_sets = prune_sets(ws, dry_run=True)
    planned = prune(ws, service, dry_run=True, unkept_sets=planned_sets.dropped)
    assert _files(root) == before
    # keep_last 2: 39, 38; keep_daily 7: 33..39; keep_weekly 3: 39, 38, 31; keep_monthly 2: 39, 30
    kept_days = [30, 31, 33, 34, 35, 36, 37, 38, 39]
    assert sorted(set_ids.index(d.name) for d in planned_sets.keep) == kept_days
    assert [d.name for d in planned_sets.drop] == [set_ids[d] for d in range(40) if d not in kept_days]
    assert "would remove 31 set(s); keeping 9" in describe_sets(planned_sets)[0]

    done_sets = prune_sets(ws, dry_run=False)
    done = prune(ws, service, dry_run=False)
    assert done_sets.drop == planned_sets.drop and done.plan.drop == planned.plan.drop
    assert sorted(s.set_id for s in list_sets(ws)) == [set_ids[d] for d in kept_days]
    assert _days(ws) == [29, 30, 31, 33, 34, 35, 36, 37, 38, 39]  # as without sets: none pins more


def test_the_newest_set_stays_whatever_the_rules(tmp_path: Path) -> None:
    nothing = Retention(keep_last=None, keep_daily=0, keep_weekly=0, keep_monthly=0)
    stack = replace(make_stack(tmp_path, POLICY, timedelta(days=10)), set_retention=nothing)
    ws = workspace(stack, NOW)
    ids = month(ws, days=3)
    newest = [add_set(ws, ids[day], day, until=10 * day + 1) for day in range(3)][-1]
    plan = prune_sets(ws, dry_run=False)
    assert [d.name for d in plan.keep] == [newest] and plan.keep[0].rule == "newest"
    assert [s.set_id for s in list_sets(ws)] == [newest]


def test_an_unreadable_manifest_stops_the_services_prune_and_names_it(ws: Workspace) -> None:
    """One appended byte: the manifest no longer parses. Its backup's WAL and files are then
    unknown, so nothing of the service goes (backups, WAL, leftovers), and the result names
    it; `force_skip` prunes as if it did not exist."""
    ids = month(ws)
    root = Path(str(ws.repo.location))
    manifest = root / backup_dir(STACK, "postgres", ids[29]) / "manifest.json"
    with open(manifest, "ab") as fh:
        fh.write(b"x")
    leftover = root / f"{STACK}/postgres/wal/00000001/.000000010000000000000001.zst.ab12cd34.tmp"
    leftover.write_bytes(b"torn")
    os.utime(leftover, (0, 0))
    before = _files(root)
    service = ws.stack.services["postgres"]
    for dry_run in (True, False):
        result = prune(ws, service, dry_run=dry_run)
        assert [d.backup_id for d in result.refused] == [ids[29]]
        assert not result.plan.drop and not result.plan.wal_drop and not result.leftovers
        assert _files(root) == before
    lines = describe(result)
    assert lines[0].startswith("postgres: REFUSED, nothing removed: 1 manifest(s) cannot be read")
    assert f"--force-skip {ids[29]}" in lines[-1]

    forced = prune(ws, service, dry_run=False, force_skip=frozenset({ids[29]}))
    assert not forced.refused and [d.backup_id for d in forced.skipped] == [ids[29]]
    assert forced.plan.drop and forced.plan.wal_drop  # the plan went as if it did not exist
    assert [item.key for item in forced.leftovers] == [str(leftover.relative_to(root))]
    assert not leftover.exists() and manifest.exists()  # a damaged backup is never removed


def test_a_failed_read_of_one_manifest_refuses_too(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = month(ws)
    inner_get = ws.repo.get

    def flaky(key: str) -> bytes:
        if key.endswith(f"{ids[12]}/manifest.json"):
            raise RepositoryError("S3 at http://offsite broke off the transfer (reading it)")
        return inner_get(key)

    monkeypatch.setattr(ws.repo, "get", flaky)
    root = Path(str(ws.repo.location))
    before = _files(root)
    result = prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert [d.backup_id for d in result.refused] == [ids[12]]
    assert "broke off the transfer" in result.refused[0].reason
    assert _files(root) == before


def test_force_skip_names_only_damaged_backups(tmp_path: Path) -> None:
    from tests.conftest import run_drkit

    stack = make_stack(tmp_path, POLICY, timedelta(days=10))
    ws = workspace(stack, NOW)
    ids = month(ws, days=3)
    (tmp_path / "repo" / backup_dir(STACK, "postgres", ids[1]) / "manifest.json").write_text("{")
    path = tmp_path / "stack.yaml"
    path.write_text(
        f"version: 1\nstack: {STACK}\nstate_dir: {tmp_path / 'state'}\n"
        f"repositories: {{main: {{type: fs, path: {tmp_path / 'repo'}}}}}\n"
        "services: {postgres: {kind: postgres, dsn: host=x}}\n"
    )
    typo = run_drkit("prune", "--force-skip", ids[0], config=path)
    assert typo.code == 2 and f"--force-skip {ids[0]}: no backup of that id" in typo.stderr
    assert ids[1] in typo.stderr
    refused = run_drkit("prune", config=path)
    assert refused.code == 3, refused.stderr
    assert "postgres: REFUSED, nothing removed" in refused.stdout and ids[1] in refused.stdout
    forced = run_drkit("--output", "json", "prune", "--force-skip", ids[1], config=path)
    assert forced.code == 0, forced.stderr
    assert forced.json()["services"][0]["force_skipped"][0]["backup_id"] == ids[1]
