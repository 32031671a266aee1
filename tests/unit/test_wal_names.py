"""WAL positions and segment names: the arithmetic every restore decision rests on."""

from __future__ import annotations

import pytest

from drkit.domain.wal import (
    Lsn,
    Segment,
    TimelineSwitch,
    is_wal_file_name,
    parse_history,
    timeline_of,
)
from drkit.engines.postgres.wal.archive import check_chain

MIB = 1024 * 1024


# --- Lsn ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/2000028", 0x2000028),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1),
    ],
)
def test_lsn_parse_and_format_round_trip(text: str, value: int) -> None:
    lsn = Lsn.parse(text)
    assert lsn.value == value
    assert str(lsn) == text
    assert Lsn.parse(str(lsn)) == lsn


def test_lsn_parse_accepts_lower_case_and_surrounding_space_and_formats_upper() -> None:
    assert str(Lsn.parse("  16/b374d848\n")) == "16/B374D848"


def test_lsns_order_by_position_not_by_text() -> None:
    assert Lsn.parse("9/FFFFFFFF") < Lsn.parse("A/0") < Lsn.parse("10/0")


@pytest.mark.parametrize("text", ["", "16B374D848", "x/1", "1/zz", "/", "1/2/3"])
def test_lsn_parse_rejects_garbage_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="expected the form 16/B374D848"):
        Lsn.parse(text)


@pytest.mark.parametrize("text", ["1/100000000", "-1/0", "123456789/0"])
def test_lsn_parse_rejects_components_wider_than_32_bits(text: str) -> None:
    with pytest.raises(ValueError):
        Lsn.parse(text)


# --- Segment -----------------------------------------------------------------------------


def test_segment_name_and_parse_16mib_across_the_ff_boundary() -> None:
    last_of_log = Segment.parse("0000000100000000000000FF")
    assert last_of_log.number == 0xFF
    assert last_of_log.start == Lsn.parse("0/FF000000")
    first_of_next = last_of_log.next()
    assert first_of_next.name == "000000010000000100000000"
    assert first_of_next.start == Lsn.parse("1/0")
    assert Segment.parse(first_of_next.name) == first_of_next
    assert first_of_next.next().name == "000000010000000100000001"


def test_segment_name_and_parse_64mib_wraps_after_3f_not_ff() -> None:
    size = 64 * MIB
    last_of_log = Segment.parse("00000001000000000000003F", size)
    assert last_of_log.number == 0x3F
    assert last_of_log.start == Lsn.parse("0/FC000000")
    following = last_of_log.next()
    assert following.name == "000000010000000100000000"
    assert following.start == Lsn.parse("1/0")
    assert Segment.parse(following.name, size) == following
    # The same name means a different position for another segment size.
    assert Segment.parse(following.name, 16 * MIB).number == 0x100


@pytest.mark.parametrize("size", [1 * MIB, 16 * MIB, 64 * MIB, 1024 * MIB])
def test_every_segment_name_round_trips_through_a_log_boundary(size: int) -> None:
    per_log = 0x100000000 // size
    segment = Segment(3, 5 * per_log - 2, size)
    for _ in range(4):
        assert Segment.parse(segment.name, size) == segment
        assert int(segment.name[16:], 16) < per_log
        assert segment.name[:8] == "00000003"
        segment = segment.next()
    assert segment.name == f"00000003{5:08X}{2:08X}"


def test_segment_containing_an_lsn_and_on_another_timeline() -> None:
    seg = Segment.containing(Lsn.parse("16/B374D848"), 1)
    assert seg.name == "0000000100000016000000B3"
    assert seg.on_timeline(2).name == "0000000200000016000000B3"
    seg64 = Segment.containing(Lsn.parse("16/B374D848"), 1, 64 * MIB)
    assert seg64.name == "00000001000000160000002C"  # 0xB374D848 // 64 MiB == 0x2C


@pytest.mark.parametrize(
    "name",
    ["00000001000000000000000", "0000000100000000000000FG", "000000010000000000000001.partial"],
)
def test_segment_parse_rejects_what_is_not_a_segment_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a WAL segment name"):
        Segment.parse(name)


def test_wal_file_name_kinds_and_timeline_of() -> None:
    assert is_wal_file_name("000000020000000000000003")
    assert is_wal_file_name("000000020000000000000003.partial")
    assert is_wal_file_name("00000002.history")
    assert is_wal_file_name("000000010000000000000002.00000028.backup")
    assert not is_wal_file_name("archive_status")
    assert not is_wal_file_name("000000020000000000000003.zst")
    assert timeline_of("0000000A.history") == 10
    assert timeline_of("0000000B0000000000000003.partial") == 11


# --- timeline history ----------------------------------------------------------------------


def test_parse_history_reads_each_switch_and_skips_blank_and_comment_lines() -> None:
    text = (
        "1\t0/3000158\tno recovery target specified\n"
        "\n"
        "# written by hand\n"
        "2\t0/5000000\tbefore 2026-02-09 14:30:00+00\n"
    )
    assert parse_history(text) == [
        TimelineSwitch(1, Lsn.parse("0/3000158")),
        TimelineSwitch(2, Lsn.parse("0/5000000")),
    ]


def test_parse_history_of_an_empty_file_is_empty() -> None:
    assert parse_history("") == []


@pytest.mark.parametrize("line", ["1", "1\tnot-an-lsn\treason"])
def test_parse_history_rejects_a_bad_line(line: str) -> None:
    with pytest.raises(ValueError):
        parse_history(line + "\n")


# --- check_chain -----------------------------------------------------------------------------


def names(*numbers: int, timeline: int = 1, size: int = 16 * MIB) -> set[str]:
    return {Segment(timeline, n, size).name for n in numbers}


def seg(number: int, timeline: int = 1, size: int = 16 * MIB) -> Segment:
    return Segment(timeline, number, size)


def test_check_chain_contiguous_run_ends_at_the_last_segment() -> None:
    report = check_chain(names(1, 2, 3, 4), seg(2))
    assert report.first == seg(2)
    assert report.last == seg(4)
    assert report.missing is None
    assert not report.partial_tail


def test_check_chain_hole_names_the_first_missing_segment() -> None:
    report = check_chain(names(1, 2, 5, 6, 8), seg(1))
    assert report.last == seg(2)
    assert report.missing == seg(3)
    assert report.missing.name == "000000010000000000000003"


def test_check_chain_partial_tail_is_the_end_not_a_hole() -> None:
    archived = names(1, 2) | {seg(3).name + ".partial"}
    report = check_chain(archived, seg(1))
    assert report.last == seg(3)
    assert report.partial_tail
    assert report.missing is None


def test_check_chain_until_beyond_the_end_reports_the_first_segment_not_there() -> None:
    report = check_chain(names(1, 2, 3), seg(1), until=seg(6))
    assert report.last == seg(3)
    assert report.missing == seg(4)


def test_check_chain_until_inside_the_run_stops_there() -> None:
    report = check_chain(names(1, 2, 3, 4, 5), seg(2), until=seg(3))
    assert report.last == seg(3)
    assert report.missing is None
    assert not report.partial_tail


def test_check_chain_hole_after_until_does_not_matter() -> None:
    report = check_chain(names(1, 2, 3, 7), seg(1), until=seg(3))
    assert report.missing is None
    assert report.last == seg(3)


def test_check_chain_nothing_archived() -> None:
    report = check_chain(set(), seg(4))
    assert report.last is None
    assert report.missing is None
    assert check_chain(set(), seg(4), until=seg(4)).missing == seg(4)


def test_check_chain_ignores_other_timelines_and_non_segment_files() -> None:
    archived = (
        names(1, 2)
        | names(3, 4, timeline=2)
        | {"00000002.history", "000000010000000000000002.00000028.backup"}
    )
    report = check_chain(archived, seg(1), until=seg(4))
    assert report.last == seg(2)
    assert report.missing == seg(3)


def test_check_chain_crosses_the_log_boundary_16mib() -> None:
    report = check_chain(names(0xFE, 0xFF, 0x100, 0x101), seg(0xFE))
    assert report.last is not None
    assert report.last.name == "000000010000000100000001"
    assert report.missing is None


def test_check_chain_crosses_the_log_boundary_64mib() -> None:
    size = 64 * MIB
    archived = {"00000001000000000000003E", "00000001000000000000003F", "000000010000000100000000"}
    report = check_chain(archived, Segment.parse("00000001000000000000003E", size))
    assert report.last is not None
    assert report.last.name == "000000010000000100000000"
    assert report.missing is None
    # Read with the wrong size, the same names have a hole between 3F and 1/00.
    wrong = check_chain(archived, Segment.parse("00000001000000000000003E", 16 * MIB))
    assert wrong.missing is not None
    assert wrong.missing.name == "000000010000000000000040"
