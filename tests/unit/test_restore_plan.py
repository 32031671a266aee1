"""plan_restore decides before anything is touched: which base backup, which WAL, and
whether the target can be reached at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
from drkit.domain.errors import NotFoundError, UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import Lsn, Segment, TimelineSpan
from drkit.engines.postgres.plan import ArchiveView, plan_restore

T0 = datetime(2026, 2, 9, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=10)


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def seg_name(number: int, timeline: int = 1) -> str:
    return Segment(timeline, number).name


def base(backup_id: str, finished: datetime, start_lsn: str, stop_lsn: str) -> Manifest:
    return Manifest(
        backup_id=backup_id,
        stack="demo",
        service="postgres",
        kind=BackupKind.BASE,
        started_at=finished - timedelta(minutes=10),
        finished_at=finished,
        files=(),
        tool_versions={},
        postgres=PostgresInfo(
            start_lsn=start_lsn,
            stop_lsn=stop_lsn,
            timeline=1,
            wal_segment_size=16 * 1024 * 1024,
            server_version=150000,
            system_identifier="7300000000000000001",
        ),
    )


# Backup A lives in segment 2 and finished at 1:30; backup B in segment 5, finished at 4:30.
# Segment n was archived at n o'clock; the archive holds segments 1..8.
A = base("20260209T012000Z-base", hours(1.5), "0/2000028", "0/2000100")
B = base("20260209T042000Z-base", hours(4.5), "0/5000028", "0/5000100")
LOGICAL = Manifest(
    backup_id="20260209T050000Z-logical",
    stack="demo",
    service="postgres",
    kind=BackupKind.LOGICAL,
    started_at=hours(5),
    finished_at=hours(5.1),
    files=(),
    tool_versions={},
)


def view(
    names: set[str],
    commits: dict[str, datetime],
    paths: dict[int, tuple[TimelineSpan, ...]] | None = None,
) -> ArchiveView:
    """An archive view whose segment times are what the WAL records (the last commit)."""

    def last_commit(segment: Segment) -> datetime | None:
        return commits.get(segment.name)

    return ArchiveView(frozenset(names), paths or {}, last_commit)


def archive(numbers: range | list[int], *, partial: int | None = None) -> ArchiveView:
    """Segment n records commits up to n o'clock."""
    commits = {seg_name(n): hours(n) for n in numbers}
    names = set(commits)
    if partial is not None:
        names.add(seg_name(partial) + ".partial")
        commits[seg_name(partial)] = hours(partial)
    names.add("00000001.history")  # not a segment: never confuses the plan
    return view(names, commits)


FULL = archive(range(1, 9))


def at(h: float) -> RecoveryTarget:
    return RecoveryTarget(TargetKind.TIME, time=hours(h))


def lsn(text: str) -> RecoveryTarget:
    return RecoveryTarget(TargetKind.LSN, lsn=Lsn.parse(text))


def test_picks_the_newest_backup_finished_before_the_target_time() -> None:
    plan = plan_restore([B, A, LOGICAL], FULL, at(3), NOW)
    assert plan.backup is A
    assert plan.first_segment == seg_name(2)
    # Recovery stops before the first commit after 3:00; segment 4 records it (3:00 < c <= 4:00).
    assert plan.last_segment == seg_name(4)
    assert not plan.uses_partial
    assert plan_restore([B, A, LOGICAL], FULL, at(2.5), NOW).last_segment == seg_name(3)


def test_a_target_after_the_newer_backup_uses_it() -> None:
    plan = plan_restore([A, B], FULL, at(5.5), NOW)
    assert plan.backup is B
    assert plan.first_segment == seg_name(5)
    assert plan.last_segment == seg_name(6)


def test_latest_uses_the_newest_backup_and_all_the_wal() -> None:
    plan = plan_restore([A, B, LOGICAL], FULL, RecoveryTarget(), NOW)
    assert plan.backup is B
    assert plan.last_segment == seg_name(8)


def test_latest_with_a_partial_tail() -> None:
    plan = plan_restore([A, B], archive(range(1, 8), partial=8), RecoveryTarget(), NOW)
    assert plan.last_segment == seg_name(8)
    assert plan.uses_partial


def test_refuses_a_target_in_the_future() -> None:
    with pytest.raises(UnreachableTargetError, match="is in the future"):
        plan_restore([A, B], FULL, at(11), NOW)


def test_refuses_a_target_before_the_oldest_backup() -> None:
    with pytest.raises(UnreachableTargetError, match="before the end of the oldest usable") as exc:
        plan_restore([A, B], FULL, at(1), NOW)
    assert A.backup_id in exc.value.message


def test_refuses_a_target_after_the_end_of_the_archive_with_a_hint() -> None:
    with pytest.raises(UnreachableTargetError, match="after the end of the WAL archive") as exc:
        plan_restore([A, B], FULL, at(9), NOW)
    assert hours(8).isoformat() in exc.value.message  # when the last segment was archived
    assert exc.value.hint is not None
    # drkit does it (with --yes): the operator is not sent to psql
    assert "with --yes drkit closes the primary's current WAL segment" in exc.value.hint
    assert "pg_switch_wal" not in exc.value.hint


def test_refuses_a_gap_and_names_the_missing_segment() -> None:
    gappy = archive([1, 2, 4, 5, 6, 7, 8])
    with pytest.raises(UnreachableTargetError) as exc:
        plan_restore([A, B], gappy, at(3.5), NOW)
    assert f"WAL segment {seg_name(3)} is missing" in exc.value.message
    assert A.backup_id in exc.value.message
    assert exc.value.hint is not None


def test_a_gap_before_the_chosen_backup_does_not_matter() -> None:
    plan = plan_restore([A, B], archive([1, 2, 4, 5, 6, 7, 8]), RecoveryTarget(), NOW)
    assert plan.backup is B
    assert plan.last_segment == seg_name(8)


def test_latest_refuses_a_gap_after_the_backup() -> None:
    with pytest.raises(UnreachableTargetError, match=f"WAL segment {seg_name(6)} is missing"):
        plan_restore([A, B], archive([1, 2, 3, 4, 5, 7, 8]), RecoveryTarget(), NOW)


def test_refuses_a_backup_whose_own_wal_is_not_archived() -> None:
    with pytest.raises(UnreachableTargetError, match="cannot be made consistent") as exc:
        plan_restore([A, B], archive([1, 2, 3, 4]), RecoveryTarget(), NOW)
    assert seg_name(5) in exc.value.message


def test_lsn_target_picks_the_backup_that_ends_before_it() -> None:
    plan = plan_restore([A, B], FULL, lsn("0/3000010"), NOW)
    assert plan.backup is A
    assert plan.last_segment == seg_name(3)
    plan = plan_restore([A, B], FULL, lsn("0/7000000"), NOW)
    assert plan.backup is B
    assert plan.last_segment == seg_name(7)


def test_lsn_target_before_the_oldest_backup() -> None:
    with pytest.raises(UnreachableTargetError, match="target LSN 0/1000000 is before"):
        plan_restore([A, B], FULL, lsn("0/1000000"), NOW)


def test_lsn_target_beyond_the_archive_names_the_first_missing_segment() -> None:
    with pytest.raises(UnreachableTargetError, match=f"WAL segment {seg_name(9)} is missing"):
        plan_restore([A, B], FULL, lsn("0/A000000"), NOW)


def test_explicit_backup_id() -> None:
    plan = plan_restore([A, B], FULL, RecoveryTarget(), NOW, backup_id=A.backup_id)
    assert plan.backup is A
    assert plan.first_segment == seg_name(2)
    assert plan.last_segment == seg_name(8)


def test_explicit_backup_that_finished_after_the_target_time_is_refused() -> None:
    with pytest.raises(UnreachableTargetError, match=B.backup_id):
        plan_restore([A, B], FULL, at(3), NOW, backup_id=B.backup_id)


def test_unknown_backup_id() -> None:
    with pytest.raises(NotFoundError, match="no base backup nope"):
        plan_restore([A, B], FULL, RecoveryTarget(), NOW, backup_id="nope")


def test_no_base_backup_at_all() -> None:
    with pytest.raises(NotFoundError, match="no base backup") as exc:
        plan_restore([LOGICAL], FULL, RecoveryTarget(), NOW)
    assert exc.value.hint is not None


def test_immediate_needs_only_the_backups_own_wal() -> None:
    plan = plan_restore([A, B], archive([1, 2, 3, 4, 5]), RecoveryTarget(TargetKind.IMMEDIATE), NOW)
    assert plan.backup is B
    assert plan.last_segment == seg_name(5)


# Timelines. A PITR to 3:30 from backup A switched to timeline 2 inside segment 4, at 6:00.
# Timeline 1 ran on to segment 5 before that (the branch the PITR undid); timeline 2 segment n
# records commits up to n+2 o'clock (its copy of segment 4 starts with timeline 1's WAL).
SWITCH = Lsn.parse("0/4000100")
TL2 = (TimelineSpan(1, None, SWITCH), TimelineSpan(2, SWITCH, None))
C = base("20260209T042000Z-base", hours(4.5), "0/5000028", "0/5000100")  # on tl1, after the fork


def branched(*, drop: tuple[str, ...] = ()) -> ArchiveView:
    commits = {seg_name(n): hours(n) for n in range(1, 6)}
    commits |= {seg_name(n, 2): hours(n + 2) for n in range(4, 8)}
    names = set(commits) | {"00000002.history"}
    return view(names - set(drop), commits, {2: TL2})


def test_a_time_on_the_new_timeline_follows_the_switch_without_a_new_backup() -> None:
    plan = plan_restore([A], branched(), at(7.5), NOW)
    assert plan.backup is A and plan.timeline == 2 and plan.crosses_timelines
    assert plan.first_segment == seg_name(2)
    assert plan.last_segment == seg_name(6, 2)  # the first one recording a commit after 7:30


def test_the_switch_segment_is_read_from_the_new_timeline() -> None:
    plan = plan_restore([A], branched(), at(5.5), NOW)
    assert plan.timeline == 2
    assert plan.last_segment == seg_name(4, 2)  # not timeline 1's segment 4 (4:00 < 5:30)


def test_latest_follows_the_newest_timeline_to_its_end() -> None:
    plan = plan_restore([A], branched(), RecoveryTarget(), NOW)
    assert plan.timeline == 2
    assert plan.last_segment == seg_name(7, 2)


def test_an_explicit_timeline_restores_the_old_branch() -> None:
    plan = plan_restore([A], branched(), RecoveryTarget(), NOW, timeline=1)
    assert plan.timeline == 1
    assert plan.last_segment == seg_name(5)


def test_a_backup_taken_on_the_old_branch_after_the_fork_is_not_used_for_the_new_one() -> None:
    plan = plan_restore([A, C], branched(), at(7.5), NOW)
    assert plan.backup is A and plan.timeline == 2
    with pytest.raises(UnreachableTargetError, match="timeline 2 does not descend"):
        plan_restore([A, C], branched(), at(7.5), NOW, backup_id=C.backup_id, timeline=2)


def test_a_gap_on_the_parent_timeline_before_the_switch_is_named() -> None:
    with pytest.raises(UnreachableTargetError, match=f"WAL segment {seg_name(3)} is missing") as exc:
        plan_restore([A], branched(drop=(seg_name(3),)), at(7.5), NOW)
    assert "timeline 2" in exc.value.message


def test_a_missing_switch_segment_of_the_new_timeline_is_named_not_the_old_one() -> None:
    with pytest.raises(UnreachableTargetError, match=f"WAL segment {seg_name(4, 2)} is missing"):
        plan_restore([A], branched(drop=(seg_name(4, 2),)), at(7.5), NOW)


def test_the_old_timelines_switch_segment_is_not_needed() -> None:
    plan = plan_restore([A], branched(drop=(seg_name(4), seg_name(5))), at(7.5), NOW)
    assert plan.last_segment == seg_name(6, 2)


def test_a_time_after_the_last_commit_on_the_new_timeline_is_refused() -> None:
    with pytest.raises(UnreachableTargetError, match="after the end of the WAL archive") as exc:
        plan_restore([A], branched(), at(9.5), NOW)
    assert seg_name(7, 2) in exc.value.message and hours(9).isoformat() in exc.value.message


def test_segment_times_come_from_the_wal_not_from_when_files_were_stored() -> None:
    # A segment with no commit (an idle switch) never ends a time target, whatever its age.
    commits: dict[str, datetime] = {seg_name(n): hours(n) for n in (2, 4)}
    names = {seg_name(n) for n in range(2, 5)}
    plan = plan_restore([A], view(names, commits), at(2.5), NOW)
    assert plan.last_segment == seg_name(4)


def test_a_time_target_reads_few_segments_of_a_long_archive_and_finds_the_first() -> None:
    # 2000 segments after backup A, one commit a minute, every third segment without commits.
    numbers = range(2, 2002)
    commits = {seg_name(n): hours(1.5) + timedelta(minutes=n) for n in numbers if n % 3}
    read: list[str] = []

    def last_commit(segment: Segment) -> datetime | None:
        read.append(segment.name)
        return commits.get(segment.name)

    archive_view = ArchiveView(frozenset(seg_name(n) for n in numbers), {}, last_commit)
    target = at(1.5 + 1234.5 / 60)  # between the commits of segments 1234 and 1235 (no commit in 1236)
    plan = plan_restore([A], archive_view, target, hours(50))
    assert plan.last_segment == seg_name(1235)
    assert len(set(read)) <= 40, len(read)


@pytest.mark.parametrize("idle", [set(), {3, 4, 5}, {6, 7, 8, 9}, set(range(3, 9))])
@pytest.mark.parametrize("minute", [0.5, 2.5, 4.5, 6.5, 8.5])
def test_the_search_agrees_with_reading_every_segment(idle: set[int], minute: float) -> None:
    numbers = range(2, 10)
    commits = {seg_name(n): hours(1.5) + timedelta(minutes=n) for n in numbers if n not in idle}
    archive_view = view({seg_name(n) for n in numbers}, commits)
    when = hours(1.5) + timedelta(minutes=minute)
    linear = [n for n in numbers if seg_name(n) in commits and commits[seg_name(n)] > when]
    if not linear:
        with pytest.raises(UnreachableTargetError, match="after the end of the WAL archive"):
            plan_restore([A], archive_view, RecoveryTarget(TargetKind.TIME, time=when), hours(50))
        return
    plan = plan_restore([A], archive_view, RecoveryTarget(TargetKind.TIME, time=when), hours(50))
    assert plan.last_segment == seg_name(linear[0])


def test_newer_wal_without_its_history_file_is_not_silently_left_behind() -> None:
    commits = {seg_name(n): hours(n) for n in range(1, 6)} | {seg_name(6, 3): hours(7)}
    with pytest.raises(UnreachableTargetError, match="not its history file 00000003.history") as exc:
        plan_restore([A], view(set(commits), commits), RecoveryTarget(), NOW)
    assert exc.value.hint is not None and "wal-push" in exc.value.hint
    plan = plan_restore([A], view(set(commits), commits), RecoveryTarget(), NOW, timeline=1)
    assert plan.last_segment == seg_name(5)
