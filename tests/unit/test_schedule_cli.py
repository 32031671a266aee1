"""`schedule:` in stack.yaml, its defaults, and `drkit schedule list | install` as an operator
sees them (a separate process, exit codes and output)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.engines.ops.schedule_jobs import job_args, jobs_of, on_calendar
from tests.conftest import run_drkit

BASE = """\
version: 1
stack: demo
repositories:
  local:
    type: fs
    path: ./repo
{more_repos}services:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 dbname=app
  redis:
    kind: redis
    url: redis://127.0.0.1:6379/0
"""
OFFSITE = "  offsite:\n    type: fs\n    path: ./offsite\n"

SCHEDULE = """\
schedule:
  nightly:
    cron: "0 2 * * *"
    job: backup
    type: base
    services: [postgres]
  sets:
    cron: "30 1 1 * *"
    job: backup
    type: all-set
  copy:
    cron: "15 4 * * 1-5"
    job: sync
    to: offsite
  odd:
    cron: "0 2 1 * 1"
    job: verify
    deep: false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("schedule", ["", "schedule:\n", "schedule: null\n"])
def test_default_jobs_when_the_schedule_is_absent_or_empty(tmp_path: Path, schedule: str) -> None:
    stack = load_stack(write(tmp_path, BASE.format(more_repos="") + schedule))
    jobs = {j.name: j for j in jobs_of(stack)}
    assert set(jobs) == {
        *("backup", "backup-full", "logical-daily", "logical-weekly", "prune", "verify", "drill"),
        *("status", "digest"),
    }
    # nightly, every service as one stack-wide set (what the weekly `drill --rotation` restores):
    # PostgreSQL's part a full base backup weekly, an incremental one on the other days
    assert (jobs["backup"].cron, job_args(jobs["backup"])) == (
        "0 2 * * 1-6",
        ["backup", "--all", "--type", "incremental"],
    )
    assert (jobs["backup-full"].cron, job_args(jobs["backup-full"])) == ("0 2 * * 0", ["backup", "--all"])
    assert job_args(jobs["logical-daily"]) == ["backup", "postgres", "--type", "logical"]
    assert jobs["logical-weekly"].cron == "0 3 * * 0"
    assert job_args(jobs["verify"]) == ["verify", "--latest", "--deep"]
    assert job_args(jobs["drill"]) == ["drill", "--rotation"]
    assert (jobs["status"].cron, job_args(jobs["status"])) == ("*/5 * * * *", ["status", "--notify"])
    assert job_args(jobs["prune"]) == ["prune"]
    # off-site sync only once a non-primary repository exists
    with_offsite = load_stack(write(tmp_path, BASE.format(more_repos=OFFSITE) + schedule))
    assert [job_args(j) for j in jobs_of(with_offsite) if j.job == "sync"] == [["sync"]]


def test_a_configured_schedule_replaces_the_defaults(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, BASE.format(more_repos=OFFSITE) + SCHEDULE))
    jobs = {j.name: j for j in jobs_of(stack)}
    assert list(jobs) == ["nightly", "sets", "copy", "odd"]
    assert job_args(jobs["nightly"]) == ["backup", "postgres", "--type", "base"]
    assert job_args(jobs["sets"]) == ["backup", "--all"]
    assert job_args(jobs["copy"]) == ["sync", "--to", "offsite"]
    assert job_args(jobs["odd"]) == ["verify", "--latest"]


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("61 2 * * *", "bad cron expression '61 2 * * *'"),
        ("0 2 * *", "five fields"),
        ("every day", "bad cron expression"),
        ("0 0 2 * * *", "five fields"),
    ],
)
def test_a_bad_cron_expression_names_the_job_and_exits_2(tmp_path: Path, cron: str, words: str) -> None:
    text = BASE.format(more_repos="") + f'schedule:\n  nightly-base:\n    cron: "{cron}"\n    job: backup\n'
    path = write(tmp_path, text)
    result = run_drkit("schedule", "list", config=path)
    assert result.code == 2, result.stderr
    assert f"{path}:" in result.stderr
    assert "schedule.nightly-base.cron:" in result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_job_naming_an_unknown_repository_or_service_is_refused(tmp_path: Path) -> None:
    for body, words in [
        ("    job: sync\n    to: elsewhere\n", "repository 'elsewhere'"),
        ("    job: backup\n    services: [mysql]\n", "unknown service 'mysql'"),
    ]:
        path = write(tmp_path, BASE.format(more_repos="") + 'schedule:\n  j:\n    cron: "0 2 * * *"\n' + body)
        result = run_drkit("schedule", "list", config=path)
        assert result.code == 2 and ": schedule.j." in result.stderr and words in result.stderr


def test_cron_to_on_calendar() -> None:
    assert on_calendar("0 2 * * *") == "*-*-* 02:00:00"
    assert on_calendar("0 3 * * 0") == "Sun *-*-* 03:00:00"
    assert on_calendar("*/5 * * * *") == "*-*-* *:0/5:00"
    assert on_calendar("15 4 * * 1-5") == "Mon..Fri *-*-* 04:15:00"
    assert on_calendar("30 1 1 * *") == "*-*-1 01:30:00"
    assert on_calendar("0 6 * * 6,7") == "Sat,Sun *-*-* 06:00:00"
    # cron ORs a restricted day-of-month with a restricted weekday; systemd would AND them
    assert on_calendar("0 2 1 * 1") is None
    assert on_calendar("0 0 * jan *") is None


def test_install_dry_run_shows_the_service_the_timers_and_the_crontab(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.format(more_repos=OFFSITE) + SCHEDULE)
    units = tmp_path / "units"
    svc = run_drkit("schedule", "install", "--dry-run", "--dir", str(units), config=path)
    assert svc.code == 0, svc.stderr
    assert f"# {units}/drkit-demo-schedule.service" in svc.stdout
    exec_line = f"ExecStart={sys.executable} -m drkit --config {path} schedule run --grace 90"
    assert exec_line in svc.stdout
    assert "KillSignal=SIGTERM" in svc.stdout and "TimeoutStopSec=120" in svc.stdout
    assert "WantedBy=multi-user.target" in svc.stdout
    assert not units.exists()  # dry run: nothing written

    timers = run_drkit("schedule", "install", "--timers", "--dry-run", "--dir", str(units), config=path)
    assert timers.code == 0, timers.stderr
    on_cal = [ln for ln in timers.stdout.splitlines() if ln.startswith("OnCalendar=")]
    assert on_cal == [
        "OnCalendar=*-*-* 02:00:00 UTC",
        "OnCalendar=*-*-1 01:30:00 UTC",
        "OnCalendar=Mon..Fri *-*-* 04:15:00 UTC",
    ]
    assert f"ExecStart={sys.executable} -m drkit --config {path} sync --to offsite" in timers.stdout
    assert "Persistent=true" in timers.stdout
    assert "no timer for odd (0 2 1 * 1)" in timers.stderr

    cron = run_drkit("schedule", "install", "--crontab", config=path)
    assert cron.code == 0, cron.stderr
    lines = [ln for ln in cron.stdout.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    drkit = f"{sys.executable} -m drkit --config {path}"
    assert lines[1] == f"0 2 * * * {drkit} backup postgres --type base  # drkit nightly"
    assert lines[4].startswith("0 2 1 * 1 ") and lines[4].endswith("verify --latest  # drkit odd")


def test_install_writes_the_unit_files(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.format(more_repos="") + SCHEDULE.split("  copy:", maxsplit=1)[0])
    units = tmp_path / "units"
    result = run_drkit("schedule", "install", "--timers", "--dir", str(units), config=path)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in units.iterdir()) == [
        "drkit-demo-nightly.service",
        "drkit-demo-nightly.timer",
        "drkit-demo-sets.service",
        "drkit-demo-sets.timer",
    ]
    assert "systemctl enable --now drkit-demo-nightly.timer drkit-demo-sets.timer" in result.stdout
    both = run_drkit("schedule", "install", "--timers", "--crontab", config=path)
    assert both.code == 2


def test_list_shows_next_and_last_run_as_json(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.format(more_repos="") + SCHEDULE.split("  copy:", maxsplit=1)[0])
    state = tmp_path / ".drkit" / "schedule.json"
    state.parent.mkdir()
    state.write_text(
        '{"version": 1, "jobs": {"nightly": {"considered": "2026-11-29T02:00:00+00:00", "last": '
        '{"scheduled": "2026-11-29T02:00:00+00:00", "started": "2026-11-29T02:00:01+00:00", '
        '"finished": "2026-11-29T02:03:00+00:00", "result": "failed", "exit_code": 1, '
        '"detail": "exit 1: no space"}, "skipped": 0, "missed": 0}}}'
    )
    result = run_drkit("schedule", "list", "-o", "json", config=path)
    assert result.code == 0, result.stderr
    rows = {r["job"]: r for r in result.json()["jobs"]}
    assert rows["nightly"]["last"] == "2026-11-29T02:00:01+00:00"
    assert (rows["nightly"]["result"], rows["nightly"]["detail"]) == ("failed", "exit 1: no space")
    assert rows["nightly"]["next"].endswith("T02:00:00+00:00")
    assert rows["sets"]["last"] is None and rows["sets"]["next"].split("T")[0].endswith("-01")
    text = run_drkit("schedule", "list", config=path)
    assert text.code == 0 and "nightly" in text.stdout and "failed" in text.stdout


def test_schedule_run_says_when_it_starts_what_comes_next_and_how_to_stop(tmp_path: Path) -> None:
    """A long-running `schedule run` printed nothing until a job's time came: an operator could
    not tell a scheduler that started from one that hung."""
    from datetime import UTC, datetime

    from drkit.cli.schedule_cmds import _started_line

    stack = load_stack(write(tmp_path, BASE.format(more_repos="")))
    line = _started_line(stack, datetime(2026, 11, 2, 1, 55, 30, tzinfo=UTC), once=False)  # a Monday
    assert line == (
        f"started: {len(jobs_of(stack))} job(s) of demo (the defaults), next: backup, logical-daily, "
        "status at 2026-11-02 02:00 UTC; SIGTERM or Ctrl-C stops it"
    )
    own = load_stack(write(tmp_path, BASE.format(more_repos=OFFSITE) + SCHEDULE))
    line = _started_line(own, datetime(2026, 11, 2, 1, 55, tzinfo=UTC), once=False)
    assert line.startswith(
        "started: 4 job(s) of demo (stack.yaml's schedule), next: nightly, odd at 2026-11-02 02:00 UTC"
    )
