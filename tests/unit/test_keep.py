"""Pinned backups (`drkit backups keep`): prune never removes one while its pin holds, with
the WAL a pinned base backup needs; an expired or released pin lets retention decide again."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from drkit.domain.backup import BackupKind
from drkit.domain.stack import Retention
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import keep_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.keep import keep_backup, release_backup
from drkit.engines.ops.prune import prune
from tests.conftest import run_drkit
from tests.prune_fakes import STACK, T0, add_base, make_stack, month, wal_numbers, workspace

POLICY = Retention(keep_last=2, keep_daily=7, keep_weekly=3, keep_monthly=2)
NOW = T0 + timedelta(days=39, hours=3)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return workspace(make_stack(tmp_path, POLICY, timedelta(days=10)), NOW)


def ids(ws: Workspace) -> set[str]:
    return {m.backup_id for m in list_backups(ws.repo, STACK, "postgres").complete}


def day(ws: Workspace, n: int, kind: BackupKind = BackupKind.BASE) -> str:
    done = list_backups(ws.repo, STACK, "postgres").complete
    return next(m.backup_id for m in done if m.kind is kind and (m.finished_at - T0).days == n)


def test_a_pinned_backup_survives_prune_with_the_wal_it_needs(ws: Workspace) -> None:
    month(ws)
    old = day(ws, 5)  # no retention rule keeps day 5 (the PITR window starts at day 29)
    _, made = keep_backup(ws, old, reason="evidence of the 5th")
    result = prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert old in ids(ws)
    kept = {d.name: d for d in result.plan.keep}
    assert kept[old].rule == "pinned" and "evidence of the 5th (until released)" in kept[old].why
    assert {50, 51} <= wal_numbers(ws)  # day 5's base spans segments 50..51: still there
    assert made.until is None
    # released: retention decides again, and day 5 goes
    _, was = release_backup(ws, old)
    assert was is not None and not ws.repo.exists(keep_key(STACK, "postgres", old))
    prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert old not in ids(ws)


def test_a_pin_until_a_time_holds_until_then(tmp_path: Path) -> None:
    stack = make_stack(
        tmp_path, Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), timedelta(0)
    )
    early = workspace(stack, T0 + timedelta(days=3))
    for n in range(3):
        add_base(early, n, 10 * n, 10 * n + 1)
    first = day(early, 0)
    keep_backup(early, first, reason="audit", until=T0 + timedelta(days=10))
    prune(early, stack.services["postgres"], dry_run=False)
    assert first in ids(early)
    later = workspace(stack, T0 + timedelta(days=11))  # the pin has expired
    prune(later, stack.services["postgres"], dry_run=False)
    assert first not in ids(later)


def test_an_unreadable_pin_keeps_the_backup(ws: Workspace) -> None:
    month(ws)
    old = day(ws, 5)
    ws.repo.put(keep_key(STACK, "postgres", old), b"{not json", overwrite=True)
    result = prune(ws, ws.stack.services["postgres"], dry_run=False)
    assert old in ids(ws)
    assert "is unreadable" in {d.name: d for d in result.plan.keep}[old].why


STACK_YAML = """\
version: 1
stack: t
repositories:
  main: {{type: fs, path: {repo}}}
services:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 port=1 dbname=app
    backup:
      retention: {{keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0}}
      wal_retention: 0s
"""


def test_backups_keep_from_the_command_line(tmp_path: Path) -> None:
    stack = make_stack(
        tmp_path, Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), timedelta(0)
    )
    ws = workspace(stack, T0 + timedelta(days=3))
    for n in range(3):
        add_base(ws, n, 10 * n, 10 * n + 1)
    first, second = day(ws, 0), day(ws, 1)
    config = tmp_path / "stack.yaml"
    config.write_text(STACK_YAML.format(repo=tmp_path / "repo"))
    pinned = run_drkit("backups", "keep", first, "--reason", "before the migration", config=config)
    assert pinned.code == 0, pinned.stdout + pinned.stderr
    assert f"pinned {first} (postgres): before the migration (until released)" in pinned.stdout
    listed = run_drkit("--output", "json", "backups", "list", config=config).json()["backups"]
    pins = {b["backup_id"]: b["pin"] for b in listed}
    assert pins[first]["reason"] == "before the migration" and pins[second] is None
    table = run_drkit("backups", "list", config=config)
    assert "pinned" in table.stdout and "before the migration" in table.stdout
    assert run_drkit("prune", config=config).code == 0
    assert first in ids(ws) and second not in ids(ws)  # pinned stays, unkept goes
    bad = run_drkit("backups", "keep", first, "--until", "someday", config=config)
    assert bad.code == 2 and "--until 'someday'" in bad.stderr
    unknown = run_drkit("backups", "keep", "20200101T000000Z-base", config=config)
    assert unknown.code == 1 and "no backup 20200101T000000Z-base" in unknown.stderr
    released = run_drkit("backups", "keep", first, "--release", config=config)
    assert released.code == 0 and "released" in released.stdout
    assert run_drkit("prune", config=config).code == 0
    assert first not in ids(ws)
