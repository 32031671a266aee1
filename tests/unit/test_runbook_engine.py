"""The runbook executor: steps run in order with their checks; each is journaled before and
after it runs; a resumed run never repeats a completed step and re-checks an interrupted one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.journal import Journal, RunKind, StepStatus, Verdict
from drkit.domain.stack import RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.core import journals
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult
from drkit.engines.runbooks.run import execute, new_journal


def workspace(tmp_path: Path) -> Workspace:
    services = {"postgres": Service(name="postgres", kind="postgres", runtime=RuntimeSpec(type="local"))}
    repo = RepositorySpec(name="local", type="fs", path=str(tmp_path / "repo"))
    stack = Stack(
        name="s",
        services=services,
        repositories={"local": repo},
        primary_repository="local",
        state_dir=str(tmp_path / "state"),
    )
    return Workspace(stack=stack, repo=FsRepository(tmp_path / "repo"), codec=Codec())


class World:
    """A directory standing in for a data directory; steps act on it for real."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.aside = root / "data.aside"
        self.data.mkdir()
        (self.data / "PG_VERSION").write_text("15\n")
        self.runs: list[str] = []

    def runbook(self, *, fail_restore: bool = False) -> Runbook:
        def move_aside(ctx: StepContext) -> StepResult:
            self.runs.append("move-aside")
            self.data.rename(self.aside)
            return StepResult(f"moved to {self.aside}", {"aside": str(self.aside)})

        def restore(ctx: StepContext) -> StepResult:
            self.runs.append("restore")
            if fail_restore:
                raise OperationError("the archive is unreachable")
            self.data.mkdir(exist_ok=True)
            (self.data / "PG_VERSION").write_text("restored\n")
            return StepResult("restored", {"restored_from": ctx.parameters["aside"]})

        return Runbook(
            "test",
            (
                Step("assess", "look", lambda ctx: StepResult("fine")),
                Step(
                    "move-aside",
                    f"move {self.data} to {self.aside}",
                    move_aside,
                    destructive=True,
                    before=lambda ctx: None if self.data.exists() else f"{self.data} is missing",
                    after=lambda ctx: None if self.aside.exists() and not self.data.exists() else "not moved",
                ),
                Step(
                    "restore",
                    "restore",
                    restore,
                    destructive=True,
                    after=lambda ctx: (
                        None
                        if (self.data / "PG_VERSION").exists()
                        and (self.data / "PG_VERSION").read_text() == "restored\n"
                        else "not restored"
                    ),
                ),
            ),
            parameters={"why": "test", "aside": str(self.aside)},
        )


def test_steps_run_in_order_and_the_journal_says_so(tmp_path: Path) -> None:
    ws, world = workspace(tmp_path), World(tmp_path)
    runbook = world.runbook()
    journal = execute(ws, runbook, new_journal(ws, runbook, RunKind.RECOVERY), say=lambda _m: None)
    assert world.runs == ["move-aside", "restore"]
    assert [s.status for s in journal.steps] == [StepStatus.SUCCEEDED] * 3
    assert journal.verdict is Verdict.RUNNING  # the caller decides the verdict from its measures
    assert journal.finished_at is not None
    saved = journals.load(ws, journal.run_id)
    assert saved.step("restore").facts == {"restored_from": str(world.aside)}
    assert ws.repo.list("s/journals/") == [f"s/journals/{journal.run_id}.json"]


def test_a_failed_critical_step_stops_the_run_and_names_the_cause(tmp_path: Path) -> None:
    ws, world = workspace(tmp_path), World(tmp_path)
    runbook = world.runbook(fail_restore=True)
    journal = execute(ws, runbook, new_journal(ws, runbook, RunKind.RECOVERY), say=lambda _m: None)
    assert journal.verdict is Verdict.FAILED
    assert journal.step("restore").status is StepStatus.FAILED
    assert journal.error == "restore: the archive is unreachable"
    assert world.aside.exists()  # what was moved aside stays


def test_resume_never_repeats_a_completed_destructive_step(tmp_path: Path) -> None:
    ws, world = workspace(tmp_path), World(tmp_path)
    runbook = world.runbook()
    first = execute(
        ws, world.runbook(fail_restore=True), new_journal(ws, runbook, RunKind.RECOVERY), say=print
    )
    world.runs.clear()
    resumed = execute(ws, runbook, journals.load(ws, first.run_id), say=print)
    assert world.runs == ["restore"]
    assert [s.status for s in resumed.steps] == [StepStatus.SUCCEEDED] * 3


def test_an_interrupted_step_whose_after_check_holds_counts_as_done(tmp_path: Path) -> None:
    """Killed after the rename but before the journal said so: the check sees it was done."""
    ws, world = workspace(tmp_path), World(tmp_path)
    runbook = world.runbook()
    journal = new_journal(ws, runbook, RunKind.RECOVERY)
    world.data.rename(world.aside)  # the step's work happened ...
    started = replace(journal.step("move-aside"), status=StepStatus.RUNNING, started_at=ws.clock.now())
    journal = replace(journal.with_step(journal.step("assess")), steps=journal.with_step(started).steps)
    resumed = execute(ws, runbook, journal, say=print)  # ... and the journal still said "running"
    assert world.runs == ["restore"]
    assert resumed.step("move-aside").status is StepStatus.SUCCEEDED


def test_a_step_that_overruns_its_timeout_fails(tmp_path: Path) -> None:
    import threading

    ws = workspace(tmp_path)
    release = threading.Event()

    def hang(ctx: StepContext) -> StepResult:
        release.wait(30)
        return StepResult("late")

    runbook = Runbook("t", (Step("hang", "hangs", hang, timeout=0.2),))
    try:
        journal = execute(ws, runbook, new_journal(ws, runbook, RunKind.RECOVERY), say=print)
    finally:
        release.set()
    assert journal.step("hang").status is StepStatus.FAILED
    assert "did not finish within" in journal.step("hang").detail


def test_a_destructive_step_without_an_after_check_is_refused() -> None:
    with pytest.raises(UsageError, match="needs an `after` check"):
        Step("wipe", "wipe", lambda ctx: StepResult(""), destructive=True)


def test_a_damaged_journal_is_an_integrity_error_not_a_crash(tmp_path: Path) -> None:
    from drkit.domain.errors import IntegrityError

    with pytest.raises(IntegrityError):
        Journal.from_json(b'{"run_id": "x", "kind": "nonsense"}')


def test_a_step_found_complete_on_resume_reports_the_facts_its_killed_run_could_not(tmp_path: Path) -> None:
    """The restore had finished when drkit was killed: on --resume its `settle` hands the
    journal what it reached (from the restore's ledger), so RPO is not measured from the
    backup's end."""
    ws, world = workspace(tmp_path), World(tmp_path)
    base = world.runbook()
    restore = replace(
        base.steps[2], settle=lambda ctx: StepResult("", {"reached_time": "2026-11-30T08:00:00+00:00"})
    )
    runbook = replace(base, steps=(*base.steps[:2], restore))
    journal = new_journal(ws, runbook, RunKind.RECOVERY)
    for name in ("assess", "move-aside"):
        journal = journal.with_step(replace(journal.step(name), status=StepStatus.SUCCEEDED))
    world.data.rename(world.aside)
    world.data.mkdir()
    (world.data / "PG_VERSION").write_text("restored\n")  # the restore's work happened ...
    running = replace(journal.step("restore"), status=StepStatus.RUNNING, started_at=ws.clock.now())
    resumed = execute(ws, runbook, journal.with_step(running), say=print)  # ... not its journal entry
    assert world.runs == []
    assert resumed.step("restore").status is StepStatus.SUCCEEDED
    assert resumed.step("restore").facts == {"reached_time": "2026-11-30T08:00:00+00:00"}


def test_a_resumed_drill_is_measured_from_the_failure_it_injected(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from drkit.engines.runbooks.recover import finish

    ws = workspace(tmp_path)
    failure = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    reached = failure - timedelta(seconds=10)
    runbook = Runbook(
        "db-corruption",
        (Step("restore", "restore", lambda ctx: StepResult("", {"reached_time": reached.isoformat()})),),
        parameters={"scenario": "db-corruption", "service": "postgres"},
    )
    journal = new_journal(ws, runbook, RunKind.DRILL)
    journal = replace(journal, started_at=datetime(2026, 11, 30, 7, 0, tzinfo=UTC), failure_at=failure)
    done = finish(ws, execute(ws, runbook, journal, say=print))
    [pg] = done.measures
    finished = done.step("restore").finished_at
    assert finished is not None
    assert pg.rpo_seconds == 10.0 and pg.recovered_to == reached  # from the failure, not the start
    assert pg.rto_seconds == (finished - failure).total_seconds()
