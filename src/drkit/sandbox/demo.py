"""`drkit demo`: a whole drill on the sandbox, measured step by step.

Sandbox up, check, base and logical backups, an accidental mass deletion, point-in-time
recovery to just before it into a new directory, proof that the deleted rows are back,
a deep verify of the backup; every step timed into a journal, RTO and RPO computed from it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.adapters.postgres.client import connect, make_dsn, scalar
from drkit.config.loader import load_stack
from drkit.domain.checks import any_critical_failure
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.engines.core.workspace import open_workspace
from drkit.engines.postgres.backup import base_backup, logical_backup
from drkit.engines.postgres.restore import RestoreRequest, restore
from drkit.engines.stack.check import run_checks
from drkit.engines.stack.verify import verify_backup
from drkit.infra.ownership import chown_tree
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.sandbox import stack as sandbox_stack


@dataclass
class Step:
    name: str
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    detail: str = ""

    @property
    def seconds(self) -> float:
        end = self.finished_at or self.started_at
        return (end - self.started_at).total_seconds()


@dataclass
class DemoJournal:
    run_id: str
    sandbox_dir: str
    steps: list[Step] = field(default_factory=list)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_target_seconds: float | None = None
    rpo_target_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, default=str, indent=2).encode()


def _now() -> datetime:
    return datetime.now(UTC)


def run_demo(
    directory: Path | None = None,
    *,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> DemoJournal:
    root = directory or Path(tempfile.mkdtemp(prefix="drkit-demo-", dir="/tmp"))
    if directory is None:
        root.rmdir()
    journal = DemoJournal(run_id=_now().strftime("%Y%m%dT%H%M%SZ-demo"), sandbox_dir=str(root))
    state: dict[str, Any] = {}

    def step(name: str, action: Callable[[], str]) -> bool:
        current = Step(name, _now())
        journal.steps.append(current)
        say(f"-> {name} ...")
        try:
            current.detail = action()
            current.ok = True
        except DrkitError as exc:
            current.detail = exc.message
        except AssertionError as exc:
            current.detail = str(exc)
        current.finished_at = _now()
        mark = "ok" if current.ok else "FAILED"
        say(f"   {mark} in {current.seconds:.1f}s: {current.detail}")
        return current.ok

    try:
        _drill(root, journal, state, step)
    finally:
        if state.get("box") is not None:
            _finish(state, journal, root, keep)
    return journal


class _DemoSteps:
    """The demo's steps; each returns a one-line detail or raises."""

    def __init__(self, root: Path, journal: DemoJournal, state: dict[str, Any]) -> None:
        self.root, self.journal, self.state = root, journal, state

    def up(self) -> str:
        box = sandbox_stack.up(self.root)
        self.state["box"] = box
        stack = load_stack(box.config_path)
        self.state["ws"] = open_workspace(stack)
        self.state["svc"] = stack.services["postgres"]
        self.state["dsn"] = make_dsn(box.dsn)
        rows = scalar(box.dsn, "select count(*) from nchat_messages")
        return f"PostgreSQL on {box.dsn}, {rows} messages seeded; config {box.config_path}"

    def check(self) -> str:
        results = run_checks(self.state["ws"])
        if any_critical_failure(results):
            raise OperationError("; ".join(f"{r.name}: {r.detail}" for r in results if r.failed_critically))
        return f"{len(results)} checks passed"

    def base(self) -> str:
        r = base_backup(self.state["ws"], self.state["svc"])
        self.state["base"] = r.manifest
        return (
            f"{r.manifest.backup_id}: {r.manifest.raw_bytes >> 20} MiB -> {r.manifest.stored_bytes >> 20} MiB"
        )

    def logical(self) -> str:
        r = logical_backup(self.state["ws"], self.state["svc"])
        return f"{r.manifest.backup_id}: {len(r.manifest.files)} files"

    def accident(self) -> str:
        dsn = self.state["dsn"]
        with connect(dsn) as conn:
            conn.execute(
                "insert into nchat_messages (channel_id, content) select id, "
                "'standup moved to 10:00' from nchat_channels limit 1"
            )
            before = conn.execute("select count(*), clock_timestamp() from nchat_messages").fetchone()
            if before is None:
                raise OperationError("counting nchat_messages returned nothing")
            self.state["good_count"], self.state["target"] = int(before[0]), before[1]
            conn.execute("select pg_sleep(0.2)")
            gone = conn.execute(
                "delete from nchat_messages where channel_id = "
                "(select id from nchat_channels order by name limit 1)"
            ).rowcount
            self.state["accident_at"] = _now()
            conn.execute("select pg_switch_wal()")
        return f"deleted {gone} messages of one channel at {self.state['accident_at']:%H:%M:%S.%f}"

    def wait_archived(self) -> str:
        from drkit.infra.wait import wait_for

        def archived() -> bool:
            return bool(
                scalar(
                    self.state["dsn"],
                    "select last_archived_time > %s from pg_stat_archiver",
                    (self.state["accident_at"],),
                )
            )

        wait_for(
            archived,
            timeout=120,
            what="the WAL holding the accident to be archived",
            retry_on=(OperationError,),
        )
        return "the WAL up to the accident is in the archive"

    def pitr(self) -> str:
        box = self.state["box"]
        parent = self.root / "restores"
        parent.mkdir(exist_ok=True)
        chown_tree(parent, box.os_user)
        target = RecoveryTarget(TargetKind.TIME, time=self.state["target"])
        request = RestoreRequest(target=target, to=parent / "pitr", keep_running=True)
        started = _now()
        out = restore(
            self.state["ws"], self.state["svc"], request, drkit_argv=[sys.executable, "-m", "drkit"]
        )
        self.state["restored"] = (parent / "pitr", out.port)
        count = scalar(
            make_dsn(box.dsn, host="127.0.0.1", port=out.port),
            "select count(*) from nchat_messages",
        )
        if count != self.state["good_count"]:
            raise OperationError(f"restored {count} messages, expected {self.state['good_count']}")
        self.journal.rto_seconds = (_now() - started).total_seconds()
        if out.reached_time is not None:
            self.journal.rpo_seconds = max((self.state["target"] - out.reached_time).total_seconds(), 0.0)
        svc = self.state["svc"]
        self.journal.rto_target_seconds = svc.rto.total_seconds() if svc.rto else None
        self.journal.rpo_target_seconds = svc.rpo.total_seconds() if svc.rpo else None
        return (
            f"all {count} messages back (target {target.describe()}), "
            f"reached {out.reached_lsn}; restored copy on port {out.port}"
        )

    def deep(self) -> str:
        report = verify_backup(
            self.state["ws"],
            self.state["svc"],
            self.state["base"],
            deep=True,
            drkit_argv=[sys.executable, "-m", "drkit"],
        )
        if not report.ok:
            raise OperationError(
                "; ".join(f"{r.name}: {r.detail}" for r in report.results if r.failed_critically)
            )
        return f"{len(report.results)} checks passed, restored and compared in {report.seconds:.1f}s"


def _drill(
    root: Path, journal: DemoJournal, state: dict[str, Any], step: Callable[[str, Callable[[], str]], bool]
) -> None:
    steps = _DemoSteps(root, journal, state)
    for name, action in (
        ("sandbox up", steps.up),
        ("check", steps.check),
        ("base backup", steps.base),
        ("logical backup", steps.logical),
        ("accidental deletion", steps.accident),
        ("archive the WAL", steps.wait_archived),
        ("point-in-time recovery", steps.pitr),
        ("verify --deep", steps.deep),
    ):
        if not step(name, action):
            return


def _finish(state: dict[str, Any], journal: DemoJournal, root: Path, keep: bool) -> None:
    box = state["box"]
    restored = state.get("restored")
    if restored is not None:
        from drkit.domain.stack import RuntimeSpec

        pg = box.state["services"]["postgres"]
        LocalPostgres(
            RuntimeSpec(type="local", data_dir=str(restored[0]), bin_dir=pg["bin_dir"], os_user=box.os_user)
        ).stop()
    ws = state.get("ws")
    if ws is not None:
        ws.repo.put(f"{ws.stack.name}/journals/{journal.run_id}.json", journal.to_json())
    if not keep:
        sandbox_stack.down(root)
        shutil.rmtree(root, ignore_errors=True)
