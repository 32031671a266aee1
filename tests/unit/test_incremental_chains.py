"""Chains of incremental backups: which links a backup needs, which chains are broken and
where, and retention that never removes a backup a kept incremental is built on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
from drkit.domain.stack import Retention
from drkit.engines.core.chains import BrokenChainError, Catalog, broken_chains, chain_of, needed_by
from drkit.engines.ops.retention_policy import BackupFact, Facts, Policy, decide

EPOCH = datetime(2026, 1, 4, 2, 0, tzinfo=UTC)  # a Sunday


def backup(day: int, parent: Manifest | None = None, *, system: str = "7001") -> Manifest:
    started = EPOCH + timedelta(days=day)
    kind = "incr" if parent else "base"
    pg = PostgresInfo(
        start_lsn=f"0/{(day + 1) * 0x1000000 + 0x28:X}",
        stop_lsn=f"0/{(day + 1) * 0x1000000 + 0x100:X}",
        timeline=1,
        wal_segment_size=16 << 20,
        server_version=180006,
        system_identifier=system,
    )
    if parent is not None:
        chain = (*parent.require_postgres().chain, parent.backup_id)
        pg = replace(pg, incremental="native", parent=parent.backup_id, chain=chain)
    return Manifest(
        backup_id=f"{started:%Y%m%dT%H%M%S}Z-{kind}",
        stack="demo",
        service="postgres",
        kind=BackupKind.BASE,
        started_at=started,
        finished_at=started + timedelta(minutes=5),
        files=(),
        tool_versions={},
        postgres=pg,
    )


def week() -> list[Manifest]:
    """A full backup on Sunday, an incremental every other day, each on the previous one."""
    out = [backup(0)]
    for day in range(1, 7):
        out.append(backup(day, out[-1]))
    return out


def test_an_incremental_needs_every_link_down_to_its_full_backup() -> None:
    chain = week()
    catalog = Catalog.of(chain)
    assert chain_of(chain[-1], catalog) == tuple(chain)
    assert chain_of(chain[0], catalog) == (chain[0],)
    assert needed_by(chain[3].backup_id, catalog) == [m.backup_id for m in chain[4:]]
    assert broken_chains(catalog) == {}


def test_a_missing_or_damaged_middle_link_breaks_every_later_link_naming_it() -> None:
    chain = week()
    middle = chain[3]
    gone = Catalog.of([m for m in chain if m is not middle])
    broken = broken_chains(gone)
    assert sorted(broken) == [m.backup_id for m in chain[4:]]
    assert all(e.link == middle.backup_id for e in broken.values())
    assert "missing from the repository" in broken[chain[-1].backup_id].message

    damaged = Catalog.of(
        [m for m in chain if m is not middle], [(middle.backup_id, "manifest is unreadable")]
    )
    with pytest.raises(BrokenChainError, match=f"broken at {middle.backup_id}: damaged"):
        chain_of(chain[-1], damaged)
    assert chain_of(chain[2], damaged) == tuple(chain[:3])  # the links before it still restore


def test_a_parent_of_another_cluster_or_ending_after_its_child_is_not_its_parent() -> None:
    full = backup(0)
    other = replace(full, postgres=replace(full.require_postgres(), system_identifier="9999"))
    child = backup(1, full)
    with pytest.raises(BrokenChainError, match="another cluster"):
        chain_of(child, Catalog.of([other, child]))
    late = replace(full, postgres=replace(full.require_postgres(), stop_lsn="1/0"))
    with pytest.raises(BrokenChainError, match="ends after"):
        chain_of(child, Catalog.of([late, child]))


def test_an_incremental_manifest_round_trips_and_a_full_one_is_unchanged() -> None:
    chain = week()
    again = Manifest.from_json(chain[2].to_json())
    assert again.require_postgres().chain == chain[2].require_postgres().chain
    assert again.parent_id == chain[1].backup_id
    assert "parent" not in chain[0].to_dict()["postgres"]  # full manifests as before


def fact(m: Manifest) -> BackupFact:
    return BackupFact(m.backup_id, "base", m.finished_at, False, None, parent=m.parent_id)


def test_prune_keeps_every_backup_a_kept_incremental_is_built_on() -> None:
    """keep_last 1: the newest incremental stays, and so does its whole chain; an older
    full backup no chain needs goes."""
    old = backup(-7)
    chain = week()
    facts = Facts("postgres", tuple(fact(m) for m in [old, *chain]))
    policy = Policy(Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0))
    plan = decide(facts, policy, EPOCH + timedelta(days=8))
    kept = {d.name: d.rule for d in plan.keep}
    assert set(kept) == {m.backup_id for m in chain}
    assert kept[chain[-1].backup_id] == "keep_last"
    assert all(kept[m.backup_id] == "chain" for m in chain[:-1])
    assert [d.name for d in plan.drop] == [old.backup_id]


@st.composite
def chains(draw: st.DrawFn) -> list[Manifest]:
    out: list[Manifest] = []
    for day in range(draw(st.integers(1, 25))):
        parent = draw(st.sampled_from([None, *out])) if out else None
        if parent is not None and parent.finished_at > EPOCH + timedelta(days=day):
            parent = None
        out.append(backup(day, parent))
    return out


@settings(max_examples=60, deadline=None)
@given(chains(), st.integers(0, 4), st.integers(0, 4), st.integers(0, 30))
def test_no_plan_drops_a_backup_that_a_kept_backup_is_built_on(
    history: list[Manifest], last: int, daily: int, now_day: int
) -> None:
    facts = Facts("postgres", tuple(fact(m) for m in history))
    policy = Policy(Retention(keep_last=last, keep_daily=daily, keep_weekly=0, keep_monthly=0))
    plan = decide(facts, policy, EPOCH + timedelta(days=now_day + 30))
    kept = {d.name for d in plan.keep}
    by_id = {m.backup_id: m for m in history}
    for backup_id in kept:
        parent = by_id[backup_id].parent_id
        assert parent is None or parent in kept
