"""Retention, as properties: for any history of backups, sets, WAL and any policy, the plan
keeps every WAL file a kept base backup needs, the newest verified backup, whatever a set
needs, the PITR window, and pruning twice removes nothing more."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drkit.domain.stack import Retention
from drkit.domain.wal import Segment
from drkit.engines.ops.retention_policy import (
    BackupFact,
    Facts,
    Plan,
    Policy,
    SetFact,
    WalSpan,
    decide,
    segment_number,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SIZE = 16 * 1024 * 1024
MINUTES = 150 * 24 * 60  # histories span up to 150 days
SWITCH = 600  # segments from this number on are on timeline 2 (a promotion)


def _timeline(number: int) -> int:
    return 1 if number < SWITCH else 2


def _seg(number: int) -> str:
    return Segment(_timeline(number), number, SIZE).name


@st.composite
def histories(draw: st.DrawFn) -> tuple[Facts, Policy, datetime]:
    n = draw(st.integers(min_value=0, max_value=40))
    minutes = sorted(draw(st.lists(st.integers(0, MINUTES), min_size=n, max_size=n)))
    backups = []
    for i, minute in enumerate(minutes):
        series = draw(st.sampled_from(["base", "base", "logical", "dump:snapshot"]))
        finished = EPOCH + timedelta(minutes=minute)
        span = None
        if series == "base":
            start = minute // 180  # WAL advances with time: a segment per 3 hours
            stop = start + draw(st.integers(0, 3))
            span = WalSpan(_timeline(start), start, stop)
        backup_id = f"{finished:%Y%m%dT%H%M%S}Z-{i:02d}"
        backups.append(BackupFact(backup_id, series, finished, draw(st.booleans()), span))
    sets = []
    for b in draw(st.lists(st.sampled_from(backups), max_size=3)) if backups else []:
        until = b.wal.stop + draw(st.integers(0, 20)) if b.wal else None
        sets.append(SetFact(f"set-{b.backup_id}", b.backup_id, until))
    last = MINUTES // 180 + 30
    present = draw(st.sets(st.integers(0, last), max_size=last))  # WAL with holes
    wal = [_seg(x) for x in present]
    wal += [f"{_seg(x)}.00000028.backup" for x in present if x % 7 == 0]
    wal += ["00000002.history", f"{_seg(last)}.partial"]
    retention = Retention(
        keep_last=draw(st.none() | st.integers(1, 5)),
        keep_daily=draw(st.integers(0, 10)),
        keep_weekly=draw(st.integers(0, 6)),
        keep_monthly=draw(st.integers(0, 4)),
    )
    policy = Policy(retention, timedelta(hours=draw(st.integers(0, 60 * 24))))
    now = EPOCH + timedelta(minutes=(minutes[-1] if minutes else 0) + draw(st.integers(0, 60 * 24 * 60)))
    return Facts("postgres", tuple(backups), tuple(sets), tuple(sorted(wal)), SIZE), policy, now


def _after(facts: Facts, plan: Plan) -> Facts:
    """The facts once the plan is carried out."""
    gone = {d.name for d in plan.drop}
    gone_wal = {d.name for d in plan.wal_drop}
    return replace(
        facts,
        backups=tuple(b for b in facts.backups if b.backup_id not in gone),
        wal=tuple(w for w in facts.wal if w not in gone_wal),
    )


def _numbers(wal: tuple[str, ...]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for name in wal:
        number = segment_number(name, SIZE)
        if number is not None:
            out.setdefault(number, set()).add(name)
    return out


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(histories())
def test_the_plan_partitions_the_backups_and_removes_only_what_exists(
    case: tuple[Facts, Policy, datetime],
) -> None:
    facts, policy, now = case
    plan = decide(facts, policy, now)
    kept, dropped = {d.name for d in plan.keep}, {d.name for d in plan.drop}
    assert not kept & dropped
    assert kept | dropped == {b.backup_id for b in facts.backups}
    assert {d.name for d in plan.wal_drop} <= set(facts.wal)
    assert plan.wal_kept + len(plan.wal_drop) == len(facts.wal)
    assert sum(count for _, _, count in plan.wal_runs()) == len(plan.wal_drop)


@PROPERTY
@given(histories())
def test_every_kept_base_backup_keeps_all_its_wal(case: tuple[Facts, Policy, datetime]) -> None:
    facts, policy, now = case
    plan = decide(facts, policy, now)
    left = _after(facts, plan)
    before, after = _numbers(facts.wal), _numbers(left.wal)
    for b in left.backups:
        if b.wal is not None:
            for number in range(b.wal.start, b.wal.stop + 1):
                assert before.get(number, set()) == after.get(number, set()), (b, number)


@PROPERTY
@given(histories())
def test_the_newest_verified_backup_stays_else_the_newest(case: tuple[Facts, Policy, datetime]) -> None:
    facts, policy, now = case
    kept = {d.name for d in decide(facts, policy, now).keep}
    verified = [b for b in facts.backups if b.verified]
    if verified:
        assert max(verified, key=_age).backup_id in kept
    elif facts.backups:
        assert max(facts.backups, key=_age).backup_id in kept


def _age(b: BackupFact) -> tuple[datetime, str]:
    return (b.finished_at, b.backup_id)  # ids break ties between backups of one second


@PROPERTY
@given(histories())
def test_nothing_a_set_needs_goes(case: tuple[Facts, Policy, datetime]) -> None:
    facts, policy, now = case
    plan = decide(facts, policy, now)
    kept = {d.name for d in plan.keep}
    before, after = _numbers(facts.wal), _numbers(_after(facts, plan).wal)
    by_id = {b.backup_id: b for b in facts.backups}
    for s in facts.sets:
        assert s.backup_id in kept
        span = by_id[s.backup_id].wal
        if span is not None and s.until_segment is not None:
            for number in range(span.start, s.until_segment + 1):
                assert before.get(number, set()) == after.get(number, set())


@PROPERTY
@given(histories())
def test_pitr_anywhere_in_the_window_keeps_a_base_backup_and_all_wal_after_it(
    case: tuple[Facts, Policy, datetime],
) -> None:
    facts, policy, now = case
    assert policy.wal_retention is not None
    plan = decide(facts, policy, now)
    left = _after(facts, plan)
    bases = [b for b in left.backups if b.wal is not None]
    if not any(b.wal is not None for b in facts.backups):
        assert not plan.wal_drop  # nothing to decide from: every WAL file stays
        return
    opens = now - policy.wal_retention
    had_older = any(b.wal is not None and b.finished_at <= opens for b in facts.backups)
    if had_older:  # a base backup from before the window stays...
        candidates = [b for b in bases if b.finished_at <= opens]
    else:  # ...else the oldest base backup there was
        oldest = min((b for b in facts.backups if b.wal is not None), key=_age)
        candidates = [b for b in bases if b.backup_id == oldest.backup_id]
    before, after = _numbers(facts.wal), _numbers(left.wal)

    def replays_to_now(b: BackupFact) -> bool:
        assert b.wal is not None
        return all(after.get(n) == names for n, names in before.items() if n >= b.wal.start)

    assert any(replays_to_now(b) for b in candidates), candidates
    assert "00000002.history" in left.wal


@PROPERTY
@given(histories())
def test_pruning_twice_removes_nothing_more(case: tuple[Facts, Policy, datetime]) -> None:
    facts, policy, now = case
    once = decide(facts, policy, now)
    again = decide(_after(facts, once), policy, now)
    assert again.empty, (again.drop, again.wal_drop[:3])
    assert [d.name for d in again.keep] == [d.name for d in once.keep]


@PROPERTY
@given(histories())
def test_gfs_keeps_the_newest_of_each_recent_period_and_no_more(case: tuple[Facts, Policy, datetime]) -> None:
    facts, policy, now = case
    r = policy.retention
    kept = {d.name: d.rule for d in decide(facts, policy, now).keep}
    for series in {b.series for b in facts.backups}:
        members = sorted((b for b in facts.backups if b.series == series), key=lambda b: b.finished_at)
        days: dict[object, BackupFact] = {}
        for b in members:
            days[b.finished_at.date()] = b  # the last one of each day wins
        for newest in list(days.values())[-r.keep_daily :] if r.keep_daily else []:
            assert newest.backup_id in kept
        gfs = {
            k for k, rule in kept.items() if rule.startswith("keep_") and k in {b.backup_id for b in members}
        }
        assert len(gfs) <= (r.keep_last or 0) + r.keep_daily + r.keep_weekly + r.keep_monthly


def test_a_readable_example_names_the_rules() -> None:
    day = timedelta(days=1)
    backups = tuple(
        BackupFact(
            f"b{i:02d}", "base", EPOCH + i * day, verified=(i == 3), wal=WalSpan(1, 10 * i, 10 * i + 1)
        )
        for i in range(20)
    )
    wal = tuple(Segment(1, n, SIZE).name for n in range(0, 200))
    facts = Facts("postgres", backups, (SetFact("s1", "b01", 15),), wal, SIZE)
    policy = Policy(Retention(keep_last=2, keep_daily=3, keep_weekly=0, keep_monthly=0), timedelta(days=5))
    plan = decide(facts, policy, EPOCH + 19 * day)
    rules = {d.name: d.rule for d in plan.keep}
    assert rules == {
        "b19": "keep_last",
        "b18": "keep_last",
        "b17": "keep_daily",
        "b14": "pitr-window",
        "b03": "verified",
        "b01": "set",
    }
    assert plan.drop[0].name == "b00" and plan.drop[0].rule == "unkept"
    dropped_wal = {d.name for d in plan.wal_drop}
    assert Segment(1, 9, SIZE).name in dropped_wal  # before b01's start, no one needs it
    assert Segment(1, 10, SIZE).name not in dropped_wal  # b01 (a set) starts here
    assert Segment(1, 15, SIZE).name not in dropped_wal  # up to the set's restore point
    assert Segment(1, 16, SIZE).name in dropped_wal
    assert Segment(1, 31, SIZE).name not in dropped_wal  # b03 (verified) ends here
    assert Segment(1, 139, SIZE).name in dropped_wal
    assert plan.wal_from == Segment(1, 140, SIZE).name  # b14 starts the window
