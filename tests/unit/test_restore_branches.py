"""A target on a branch a later PITR abandoned is planned on the timeline that holds it
(engines/postgres/branches.py), or refused as ambiguous until --timeline says which:
never followed along `latest` to fail at the end of the replay."""

from __future__ import annotations

import pytest

from drkit.domain.errors import NotFoundError, UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import Lsn
from drkit.engines.postgres.branches import resolve_timeline
from drkit.engines.postgres.plan import ArchiveView, RestorePlan, TargetPoint, plan_restore
from tests.unit.test_restore_plan import NOW, A, at, branched, lsn, seg_name

# branched(): timeline 1 holds segments 1..5 (commits up to n o'clock); a PITR from backup A
# switched to timeline 2 at 0/4000100, whose segments 4..7 record commits up to n+2 o'clock.


def planned(
    target: RecoveryTarget, point: TargetPoint | None = None, view: ArchiveView | None = None
) -> RestorePlan:
    archive = view or branched()
    timeline = resolve_timeline([A], archive, target, NOW, None, point)
    return plan_restore([A], archive, target, NOW, None, timeline, point)


def named(where: str, timeline: int | None, pinned: int | None = None) -> tuple[RecoveryTarget, TargetPoint]:
    target = RecoveryTarget(TargetKind.NAME, name="before_migration", timeline=pinned)
    return target, TargetPoint(Lsn.parse(where), timeline, "restore point 'before_migration'")


def test_a_restore_point_on_the_abandoned_branch_is_followed_there() -> None:
    plan = planned(*named("0/5000050", timeline=1))
    assert plan.timeline == 1 and plan.last_segment == seg_name(5)
    assert not plan.crosses_timelines


def test_a_restore_point_on_the_shared_history_follows_the_newest_branch() -> None:
    plan = planned(*named("0/3000050", timeline=1))
    assert plan.timeline == 2 and plan.last_segment == seg_name(3)


def test_a_restore_point_on_the_new_branch_is_followed_there() -> None:
    plan = planned(*named("0/6000050", timeline=2))
    assert plan.timeline == 2 and plan.last_segment == seg_name(6, 2)


def test_a_timeline_that_does_not_pass_through_the_restore_point_is_refused() -> None:
    with pytest.raises(UnreachableTargetError, match="does not pass through"):
        planned(*named("0/5000050", timeline=1, pinned=2))


def test_a_name_that_was_not_located_is_refused_by_the_plan() -> None:
    with pytest.raises(NotFoundError, match="not located"):
        plan_restore([A], branched(), RecoveryTarget(TargetKind.NAME, name="nowhere"), NOW)


def test_an_lsn_only_the_abandoned_branch_reached_or_only_the_new_one() -> None:
    old = Lsn.parse("0/5000060")
    new = Lsn.parse("0/6000060")
    assert resolve_timeline([A], branched(drop=(seg_name(5, 2),)), lsn(str(old)), NOW, None, point(old)) == 1
    assert planned(lsn(str(new)), point(new)).timeline == 2


def test_an_lsn_both_branches_reached_is_ambiguous_until_a_timeline_is_given() -> None:
    where = Lsn.parse("0/5000060")
    with pytest.raises(UnreachableTargetError, match="2 branches") as refused:
        planned(lsn(str(where)), point(where))
    assert "--timeline 1 or --timeline 2" in (refused.value.hint or "")
    pinned = RecoveryTarget(TargetKind.LSN, lsn=where, timeline=1)
    assert planned(pinned, point(where)).timeline == 1


def test_a_time_both_branches_recorded_is_ambiguous_and_one_only_one_did_is_not() -> None:
    with pytest.raises(UnreachableTargetError, match="branches of the WAL history"):
        planned(at(4.5))  # 4:30: timeline 1 committed at 5:00, timeline 2 from 6:00 on
    assert planned(at(7.5)).timeline == 2  # timeline 1's WAL ends at 5:00
    assert planned(at(2.5)).timeline == 2  # before the fork: the same history on both
    one = RecoveryTarget(TargetKind.TIME, time=at(4.5).time, timeline=1)
    assert planned(one).last_segment == seg_name(5)


def point(where: Lsn) -> TargetPoint:
    return TargetPoint(where, None, f"target LSN {where}")
