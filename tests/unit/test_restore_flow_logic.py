"""The pure parts of the restore flow (issue 16): which WAL a plan reads (preflight), whether
recovery reached its plan, which pg_wal files are this cluster's own (salvage), the
isolation settings' round trip, signals as an exception, and dependents started again when
what they need runs."""

from __future__ import annotations

import os
import signal
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
from drkit.domain.errors import OperationError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import Lsn, Segment, TimelineSpan
from drkit.engines.postgres.isolation import isolate_in_conf, release_in_conf, restore_in_progress
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.preflight import needed_wal
from drkit.engines.postgres.replay import check_reached
from drkit.engines.postgres.salvage import LONG_HEADER, XLP_LONG_HEADER, _written_segments
from drkit.infra.interrupt import Interrupted, deferred, interruptible

SIZE = 16 * 1024 * 1024
T0 = datetime(2026, 2, 9, tzinfo=UTC)


def manifest(start: str = "0/2000028", stop: str = "0/2000100") -> Manifest:
    return Manifest(
        backup_id="20260209T000000Z-base",
        stack="demo",
        service="postgres",
        kind=BackupKind.BASE,
        started_at=T0,
        finished_at=T0 + timedelta(minutes=1),
        files=(),
        tool_versions={},
        postgres=PostgresInfo(
            start_lsn=start,
            stop_lsn=stop,
            timeline=1,
            wal_segment_size=SIZE,
            server_version=150000,
            system_identifier="7300000000000000001",
        ),
    )


def plan(
    last: str | None,
    *,
    target: RecoveryTarget | None = None,
    partial: bool = False,
    path: tuple[TimelineSpan, ...] = (TimelineSpan(1, None, None),),
) -> RestorePlan:
    return RestorePlan(
        backup=manifest(),
        target=target or RecoveryTarget(),
        first_segment=Segment(1, 2).name,
        last_segment=last,
        uses_partial=partial,
        timeline=path[-1].timeline,
        path=path,
    )


class Archive:
    def __init__(self, held: set[str]) -> None:
        self.held = held

    def locate(self, name: str) -> str | None:
        return name if name in self.held else None


def test_needed_wal_walks_the_timeline_path_and_names_the_partial_tail() -> None:
    switch = Lsn(4 * SIZE + 100)
    path = (TimelineSpan(1, None, switch), TimelineSpan(2, switch, None))
    names = needed_wal(plan(Segment(2, 6).name, partial=True, path=path))
    assert names == [
        "00000002.history",
        Segment(1, 2).name,
        Segment(1, 3).name,
        Segment(2, 4).name,  # the switch segment comes from the new timeline
        Segment(2, 5).name,
        Segment(2, 6).name + ".partial",
    ]


def test_latest_that_stopped_before_the_last_segment_fails_naming_the_gap() -> None:
    chosen = plan(Segment(1, 9).name)
    with pytest.raises(OperationError, match="short of its plan") as raised:
        check_reached(chosen, str(Lsn(6 * SIZE)), Archive(set()))  # type: ignore[arg-type]
    assert (
        Segment(1, 6).name in raised.value.message and "not in the archive any more" in raised.value.message
    )
    with pytest.raises(OperationError, match="in the archive now"):
        check_reached(chosen, str(Lsn(6 * SIZE + 40)), Archive({Segment(1, 7).name}))  # type: ignore[arg-type]


def test_latest_that_replayed_into_the_last_segment_passes() -> None:
    check_reached(plan(Segment(1, 9).name), str(Lsn(9 * SIZE + 24)), Archive(set()))  # type: ignore[arg-type]
    check_reached(plan(Segment(1, 9).name), str(Lsn(10 * SIZE)), Archive(set()))  # type: ignore[arg-type]


def test_an_lsn_target_must_be_reached_and_time_targets_are_postgresqls() -> None:
    lsn = Lsn(5 * SIZE + 1000)
    chosen = plan(Segment(1, 5).name, target=RecoveryTarget(TargetKind.LSN, lsn=lsn))
    with pytest.raises(OperationError, match=f"the target is LSN {lsn}"):
        check_reached(chosen, str(Lsn(lsn.value - 1)), Archive(set()))  # type: ignore[arg-type]
    check_reached(chosen, str(lsn), Archive(set()))  # type: ignore[arg-type]
    timed = plan(Segment(1, 5).name, target=RecoveryTarget(TargetKind.TIME, time=T0))
    check_reached(timed, "0/0", Archive(set()))  # type: ignore[arg-type]


def write_segment(pg_wal: Path, segment: Segment, *, sysid: int, pageaddr: int | None = None) -> None:
    header = LONG_HEADER.pack(
        0xD110, XLP_LONG_HEADER, segment.timeline, segment.start.value if pageaddr is None else pageaddr, 0,
        sysid, SIZE, 8192,
    )  # fmt: skip
    with open(pg_wal / segment.name, "wb") as fh:
        fh.write(header)
        fh.truncate(SIZE)


def test_salvage_takes_only_segments_this_cluster_wrote_at_their_own_position(tmp_path: Path) -> None:
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    for n in (3, 4, 5):
        write_segment(pg_wal, Segment(1, n), sysid=42)
    write_segment(pg_wal, Segment(1, 6), sysid=42, pageaddr=Segment(1, 1).start.value)  # recycled
    write_segment(pg_wal, Segment(1, 7), sysid=99)  # another cluster's
    (pg_wal / Segment(1, 8).name).write_bytes(b"\0" * SIZE)  # preallocated
    found = _written_segments(pg_wal, 42, Segment(1, 4))
    assert [s.number for s in found] == [4, 5]


def test_isolation_settings_come_off_and_give_back_what_they_overrode(tmp_path: Path) -> None:
    auto = tmp_path / "postgresql.auto.conf"
    original = "# Do not edit\nlisten_addresses = '*'\nwork_mem = '8MB'\n"
    auto.write_text(original)
    assert not restore_in_progress(tmp_path)
    isolate_in_conf(tmp_path)
    text = auto.read_text()
    assert "listen_addresses = ''" in text and "archive_command = 'false'" in text
    assert "\nlisten_addresses = '*'" not in text
    assert restore_in_progress(tmp_path)
    release_in_conf(tmp_path)
    assert auto.read_text() == original
    assert not restore_in_progress(tmp_path)
    (tmp_path / "postmaster.opts").write_text('/usr/bin/postgres "-c" "cluster_name=drkit-restore"\n')
    assert restore_in_progress(tmp_path)


def test_sigterm_raises_interrupted_once_and_a_second_is_ignored_during_cleanup() -> None:
    cleaned = []
    with pytest.raises(Interrupted) as raised, interruptible():
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at once, in this thread
        finally:
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)  # ignored: cleanup goes on
                cleaned.append(True)
    assert raised.value.signal_name == "SIGTERM" and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_signals_are_left_alone_outside_the_main_thread() -> None:
    import threading

    seen: list[object] = []

    def work() -> None:
        with interruptible():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [before]


def test_salvage_leaves_another_clusters_data_directory_alone(tmp_path: Path) -> None:
    """A drill's fresh copy (initdb'd anew) holds WAL under the same names as the archive's,
    of another cluster: pushing it would conflict, restoring without it loses nothing."""
    from drkit.engines.postgres.salvage import salvage_wal

    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(struct.pack("=Q", 42) + b"\0" * 100)
    (tmp_path / "pg_wal").mkdir()
    write_segment(tmp_path / "pg_wal", Segment(1, 2), sysid=42)
    found = salvage_wal(None, None, tmp_path, since=None, cluster="7300000000000000001")  # type: ignore[arg-type]
    assert found.pushed == () and found.skipped and "another cluster" in found.skipped
