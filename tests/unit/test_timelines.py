"""Timeline history files, the path recovery follows across switches, and commit times read
from pg_waldump output: pure code, no server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drkit.adapters.postgres.recovery_conf import target_timeline_setting
from drkit.adapters.postgres.waldump import parse_commit_times
from drkit.domain.wal import (
    Lsn,
    Segment,
    TimelineSpan,
    TimelineSwitch,
    on_path,
    parse_history,
    segment_on_path,
    timeline_path,
)
from drkit.engines.postgres.wal.archive import check_path

# What PostgreSQL 15 writes into 00000003.history after two PITRs.
HISTORY_3 = (
    "1\t0/4000100\tbefore 2026-11-30 05:12:01.123456+00\n\n2\t0/7000000\tno recovery target specified\n"
)
PATH_3 = timeline_path(3, parse_history(HISTORY_3))


def seg(number: int, timeline: int = 1) -> str:
    return Segment(timeline, number).name


def test_history_lines_give_each_parent_and_its_switch_point() -> None:
    assert parse_history(HISTORY_3) == [
        TimelineSwitch(1, Lsn.parse("0/4000100")),
        TimelineSwitch(2, Lsn.parse("0/7000000")),
    ]
    assert parse_history("# comment\n\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "1\n",  # no switch point
        "x\t0/1000000\treason\n",  # parent is not a number
        "1\tnot-an-lsn\treason\n",
        "2\t0/5000000\tr\n1\t0/6000000\tr\n",  # parents must rise
        "1\t0/5000000\tr\n2\t0/4000000\tr\n",  # switch points must not go back
    ],
)
def test_damaged_history_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_history(text)


def test_a_history_naming_a_parent_not_older_than_the_timeline_is_refused() -> None:
    with pytest.raises(ValueError, match="not older"):
        timeline_path(2, parse_history("2\t0/4000000\tr\n"))


def test_the_path_runs_each_parent_up_to_its_switch_point() -> None:
    assert (
        TimelineSpan(1, None, Lsn.parse("0/4000100")),
        TimelineSpan(2, Lsn.parse("0/4000100"), Lsn.parse("0/7000000")),
        TimelineSpan(3, Lsn.parse("0/7000000"), None),
    ) == PATH_3
    assert timeline_path(1, []) == (TimelineSpan(1, None, None),)


def test_segments_come_from_the_newest_timeline_begun_by_then() -> None:
    assert [segment_on_path(PATH_3, n).name for n in (3, 4, 5, 6, 7, 8)] == [
        seg(3, 1),
        seg(4, 2),  # the switch segment: timeline 2's copy holds timeline 1's WAL up to the switch
        seg(5, 2),
        seg(6, 2),
        seg(7, 3),  # a switch on a segment boundary: timeline 2 needs nothing of segment 7
        seg(8, 3),
    ]


def test_a_backup_is_on_a_path_only_if_the_path_leaves_its_timeline_after_it_ends() -> None:
    assert on_path(PATH_3, 1, Lsn.parse("0/2000028"), Lsn.parse("0/2000100"))
    assert not on_path(PATH_3, 1, Lsn.parse("0/5000028"), Lsn.parse("0/5000100"))  # after the fork
    assert on_path(PATH_3, 2, Lsn.parse("0/5000028"), Lsn.parse("0/5000100"))
    assert not on_path(PATH_3, 4, Lsn.parse("0/9000028"), Lsn.parse("0/9000100"))


def names(*pairs: tuple[int, int]) -> set[str]:
    return {seg(n, t) for t, n in pairs}


FULL_3 = names((1, 2), (1, 3), (2, 4), (2, 5), (2, 6), (3, 7), (3, 8))


def test_the_chain_follows_the_switches() -> None:
    report = check_path(FULL_3 | names((1, 4), (1, 5)), PATH_3, Segment(1, 2))
    assert report.last is not None and report.last.name == seg(8, 3)
    assert report.missing is None


def test_a_hole_on_a_timeline_already_left_is_always_a_hole() -> None:
    report = check_path(FULL_3 - {seg(6, 2)} - names((3, 7), (3, 8)), PATH_3, Segment(1, 2))
    assert report.missing is not None and report.missing.name == seg(6, 2)


def test_the_end_of_the_newest_timeline_is_not_a_hole() -> None:
    report = check_path(FULL_3 - {seg(8, 3)}, PATH_3, Segment(1, 2))
    assert report.missing is None
    assert report.last is not None and report.last.name == seg(7, 3)


def test_until_stops_the_walk_and_a_partial_ends_it() -> None:
    report = check_path(FULL_3, PATH_3, Segment(1, 2), until=5)
    assert report.last is not None and report.last.name == seg(5, 2)
    partial = FULL_3 - {seg(8, 3)} | {seg(8, 3) + ".partial"}
    report = check_path(partial, PATH_3, Segment(1, 2))
    assert report.partial_tail and report.last is not None and report.last.name == seg(8, 3)


def test_recovery_is_told_the_planned_timeline_by_number() -> None:
    assert target_timeline_setting(2) == {"recovery_target_timeline": "2"}
    assert target_timeline_setting(None) == {"recovery_target_timeline": "latest"}


HEAD = "rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/02000068, prev 0/02000028"
WALDUMP = "\n".join(
    [
        f"{HEAD}, desc: ABORT 2026-11-30 04:48:23.660052 UTC",
        f"{HEAD}, desc: COMMIT 2026-11-30 04:48:21.393861 UTC; inval msgs: snapshot 2396",
        f"{HEAD}, desc: COMMIT_PREPARED 731: 2026-11-30 04:49:00 UTC",
        f"{HEAD}, desc: ASSIGNMENT xtop 740: subxacts: 741",
    ]
)


def test_commit_and_abort_times_are_read_from_waldump_output() -> None:
    assert parse_commit_times(WALDUMP) == [
        datetime(2026, 11, 30, 4, 48, 23, 660052, tzinfo=UTC),
        datetime(2026, 11, 30, 4, 48, 21, 393861, tzinfo=UTC),
        datetime(2026, 11, 30, 4, 49, 0, tzinfo=UTC),
    ]
