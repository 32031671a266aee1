"""The one progress mechanism (issue 18, item 2): engines report steps and amounts through
domain/progress.py; the CLI's Reporter says each step when it starts, amounts against their
estimated total with the time left, and, without a terminal, timestamped lines and a
heartbeat; --quiet and --output json silence it."""

from __future__ import annotations

import io
import re
import threading

from drkit.cli.progress import Mode, Reporter, mode_for
from drkit.domain.progress import SILENT, Unit
from drkit.infra.wait import wait_for

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d "


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_steps_and_meters_are_timestamped_lines_without_a_terminal() -> None:
    out, clock = io.StringIO(), Ticks()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=3600, clock=clock)
    reporter.step("restore postgres from 20261125T020000Z-base")
    advance = reporter.meter("extract 20261125T020000Z-base", total=200 * 2**20)
    clock.now += 10
    advance(100 * 2**20)
    reporter.step("start PostgreSQL and replay WAL to latest")
    reporter.close()
    said = lines(out)
    assert all(re.match(STAMP, line) for line in said), said
    texts = [line.split(" ", 1)[1] for line in said]
    assert texts == [
        "▸ restore postgres from 20261125T020000Z-base",
        "extract 20261125T020000Z-base: started (about 200.0 MiB)",
        "extract 20261125T020000Z-base: 100.0 MiB in 10.0s (10.0 MiB/s)",
        "▸ start PostgreSQL and replay WAL to latest",
    ]


def test_the_heartbeat_says_the_amount_against_the_total_and_the_time_left() -> None:
    out, clock = io.StringIO(), Ticks()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=0.05, clock=clock)
    advance = reporter.meter("backup of postgres", total=400 * 2**20)
    clock.now += 20
    advance(100 * 2**20)  # 5 MiB/s: 300 MiB more take 60 s
    expected = "backup of postgres: 100.0 MiB of about 400.0 MiB (25%), 5.0 MiB/s, about 1m00s left"
    wait_for(lambda: any(line.endswith(expected) for line in lines(out)), timeout=30, what="a heartbeat")
    reporter.close()


def test_the_heartbeat_names_a_long_step_and_how_long_it_runs() -> None:
    out, clock = io.StringIO(), Ticks()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=0.05, clock=clock)
    reporter.step("restore-from-backups: restore the live stack's newest set into the copy")
    clock.now += 95
    expected = (
        "still running: restore-from-backups: restore the live stack's newest set into the copy (1m35s)"
    )
    wait_for(lambda: any(line.endswith(expected) for line in lines(out)), timeout=30, what="a heartbeat")
    reporter.close()
    assert all(re.match(STAMP, line) for line in lines(out))


def test_items_are_counted_not_sized() -> None:
    out, clock = io.StringIO(), Ticks()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=3600, clock=clock)
    advance = reporter.meter("rebuild messages", total=5000, unit=Unit.ITEMS)
    clock.now += 2
    advance(5000)
    reporter.close()
    assert lines(out)[-1].endswith("rebuild messages: 5000 items in 2.0s (2500 items/s)")


def test_meters_take_amounts_from_any_thread() -> None:
    out = io.StringIO()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=3600)
    advance = reporter.meter("copy", total=None)
    workers = [threading.Thread(target=advance, args=(n,)) for n in range(1, 51)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    reporter.close()
    assert "copy: 50 B in" in out.getvalue()


def test_quiet_and_json_say_nothing_and_start_no_thread() -> None:
    assert mode_for(quiet=True, json=False) is Mode.OFF
    assert mode_for(quiet=False, json=True) is Mode.OFF
    out = io.StringIO()
    reporter = Reporter(Mode.OFF, stream=out, heartbeat=0.01)
    reporter.step("anything")
    reporter.meter("work", total=10)(5)
    reporter.close()
    assert out.getvalue() == ""
    assert reporter._thread is None


def test_engines_default_to_silent() -> None:
    SILENT.step("nothing")
    SILENT.meter("nothing", total=1)(1)


def test_wal_replay_is_reported_against_the_planned_wal() -> None:
    from datetime import UTC, datetime

    from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
    from drkit.domain.recovery import RecoveryTarget
    from drkit.engines.postgres.plan import RestorePlan
    from drkit.engines.postgres.replay_meter import replay_meter

    at = datetime(2026, 12, 1, tzinfo=UTC)
    info = PostgresInfo("0/2000028", "0/2000100", 1, 16 * 2**20, 150000, "7")
    backup = Manifest("b", "s", "postgres", BackupKind.BASE, at, at, (), {}, postgres=info)
    plan = RestorePlan(
        backup, RecoveryTarget(), "000000010000000000000002", "000000010000000000000005", False
    )
    out, clock = io.StringIO(), Ticks()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=3600, clock=clock)
    seen = replay_meter(reporter, plan)
    seen(None)
    seen("postgres: startup recovering 000000010000000000000003")
    seen("LSN 0/4000000")  # 32 MiB past the backup's start (0/2000028 ~ 32 MiB)
    clock.now += 4
    reporter.close()
    said = [line.split(" ", 1)[1] for line in lines(out)]
    assert said[0] == "replay WAL: started (about 64.0 MiB)"
    assert said[-1].startswith("replay WAL: 32.0 MiB in 4.0s")


def test_work_refused_before_it_began_adds_no_summary_after_the_error() -> None:
    out = io.StringIO()
    reporter = Reporter(Mode.LOG, stream=out, heartbeat=3600)
    reporter.meter("extract 20261125T020000Z-base", total=100)
    reporter.close()  # the command failed before a byte was written
    assert [line.split(" ", 1)[1] for line in lines(out)] == [
        "extract 20261125T020000Z-base: started (about 100 B)"
    ]
