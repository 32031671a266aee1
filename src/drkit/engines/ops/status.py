"""`drkit status`: per service, how much could be lost right now and what proves recovery works.

For each service: the newest complete backup; the newest recoverable point and its age against
the RPO target; for PostgreSQL the WAL archive's (or stream's) state and lag; the last verify
(as recorded by `drkit verify` on this host) and the last drill's verdict and measured RTO/RPO.

The newest recoverable point of PostgreSQL is, in order of preference:
- now, when the server reports that every WAL byte it wrote is archived (archive mode: the
  segment holding the current WAL position is the last archived one; stream mode: the
  receiver's slot has flushed up to the current position), so an idle database is not "old";
- otherwise the time the newest WAL file reached the repository (the repository entry's
  modification time: an approximation, a segment holds changes up to its switch, which came a
  little earlier) or the receiver's spool `.partial` file's last flush on this host;
- and never older than the end of its newest base backup.
Other services: their newest backup's end.

A backup whose times this host's clock cannot believe (finished more than a few minutes in
the future, or times that disagree with its id: core/choose.py) is never the newest: the
status leaves it out of the recoverable point and names it as a problem (red, exit 3),
since no restore would choose it and the clock of whatever took it needs looking at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drkit.domain.backup import Manifest
from drkit.domain.errors import DrkitError
from drkit.domain.journal import Journal, RunKind, Verdict
from drkit.domain.stack import DATA_IN_DEPENDENCIES, Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import Unproven, newest, order, unproven_backups
from drkit.engines.core.journals import list_journals
from drkit.engines.core.registry import has_engine
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.pg_capture import ArchiveState, capture_state
from drkit.infra.atomic import write_atomic

# HOOK(copies): a callable that answers, for a service, a JSON-able mapping such as
# {"copies": 3, "repositories": 2, "offsite": 1, "rule_321": true}; build_status stores it as
# ServiceStatus.copies and `drkit status` shows it. `copies_probe` wires engines/ops/copies.py
# (3-2-1 copy counts) in; the 3-2-1 rule informs, it does not make a status red.
CopiesProbe = Callable[[Workspace, Service], Mapping[str, Any]]


def copies_probe(ws: Workspace) -> CopiesProbe:
    """The copies of each service's newest backup across the stack's repositories, counted
    once (every repository is listed); a repository that cannot be read is reported."""
    from drkit.engines.ops.copies import copies

    try:
        found = {c.service: c for c in copies(ws)}
    except (OSError, DrkitError) as exc:
        error = str(exc)
        return lambda _ws, _service: {"error": error}

    def probe(_ws: Workspace, service: Service) -> Mapping[str, Any]:
        c = found.get(service.name)
        if c is None or c.backup_id is None:
            return {"copies": 1, "repositories": 0, "offsite": 0, "rule_321": False}
        return {
            "copies": c.copies,
            "repositories": len(c.repositories),
            "offsite": len(c.offsite),
            "rule_321": c.rule_321,
        }

    return probe


@dataclass(frozen=True)
class VerifyRecord:
    backup_id: str
    ok: bool
    deep: bool
    at: datetime
    seconds: float


@dataclass(frozen=True)
class DrillRecord:
    run_id: str
    scenario: str
    verdict: str
    at: datetime
    passed: bool
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_target: float | None = None
    rpo_target: float | None = None


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    kind: str
    backups: tuple[Manifest, ...] = field(default=(), repr=False)  # complete, oldest first
    recoverable_at: datetime | None = None
    recoverable_source: str = ""
    recoverable_age_seconds: float | None = None
    rpo_target_seconds: float | None = None
    rto_target_seconds: float | None = None
    archive: ArchiveState | None = None
    verify: VerifyRecord | None = None
    drill: DrillRecord | None = None
    copies: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()
    rpo_applies: bool = True  # False: drkit keeps nothing of this service (stateless)
    unproven: tuple[Unproven, ...] = ()  # backups whose times cannot be believed (future-dated)

    @property
    def believed(self) -> tuple[Manifest, ...]:
        doubted = {u.backup_id for u in self.unproven}
        return tuple(m for m in self.backups if m.backup_id not in doubted)

    rpo_from: str | None = None  # the target is inherited from this service (its data is there)

    @property
    def last_backup(self) -> Manifest | None:
        """The newest complete backup whose times are believed (the one a restore takes)."""
        return max(self.believed, key=order, default=None)

    @property
    def red(self) -> bool:
        """The newest recoverable point is older than the RPO target, or WAL capture fails."""
        return bool(self.problems)


@dataclass(frozen=True)
class StatusReport:
    stack: str
    at: datetime
    services: tuple[ServiceStatus, ...]

    @property
    def red(self) -> tuple[ServiceStatus, ...]:
        return tuple(s for s in self.services if s.red)


# Kinds whose data lives in the services they depend on (PostgreSQL): Hasura keeps its
# metadata in hdb_catalog, hasura-auth its users; a stateless service has nothing of its own.
# (domain/stack.py: they inherit that PostgreSQL's rpo too.)

Point = tuple[datetime | None, str]


def build_status(
    ws: Workspace,
    *,
    services: list[str] | None = None,
    copies: CopiesProbe | None = None,
    probe_server: bool = True,
) -> StatusReport:
    """The status of every service (or those named). `copies`: see HOOK(copies) above."""
    ctx = _Context(ws, ws.clock.now(), list_journals(ws)[0], copies, probe_server)
    chosen = services or sorted(ws.stack.services)
    return StatusReport(ws.stack.name, ctx.now, tuple(ctx.status_of(n) for n in chosen))


@dataclass
class _Context:
    ws: Workspace
    now: datetime
    journals: list[Journal]
    copies: CopiesProbe | None
    probe_server: bool
    done: dict[str, ServiceStatus] = field(default_factory=dict)
    visiting: set[str] = field(default_factory=set)

    def status_of(self, name: str) -> ServiceStatus:
        if name not in self.done:
            self.visiting.add(name)
            self.done[name] = self._build(self.ws.stack.services[name])
            self.visiting.discard(name)
        return self.done[name]

    def _inherited(self, service: Service) -> Point | None:
        """The recoverable point of the services holding this one's data (the oldest of them);
        None when this service keeps its own data or depends on nothing that has any."""
        if service.kind == "postgres" or (
            service.kind not in DATA_IN_DEPENDENCIES and has_engine(service.kind)
        ):
            return None
        deps = [self.status_of(d) for d in service.depends_on if d not in self.visiting]
        deps = [d for d in deps if d.rpo_applies]
        if not deps:
            return None
        oldest = min(deps, key=lambda d: d.recoverable_at.timestamp() if d.recoverable_at else float("-inf"))
        return oldest.recoverable_at, f"its data lives in {oldest.service}: {oldest.recoverable_source}"

    def _build(self, service: Service) -> ServiceStatus:
        ws, now = self.ws, self.now
        backups = list_backups(ws.repo, ws.stack.name, service.name).complete
        doubted = tuple(unproven_backups(backups, now))
        last = newest(backups, now)
        point: Point = (last.finished_at, "newest backup") if last else (None, "")
        archive: ArchiveState | None = None
        if service.kind == "postgres":
            archive, wal_point, wal_source = capture_state(ws, service, now, probe_server=self.probe_server)
            point = _newer(point, (wal_point, wal_source))
        inherited = self._inherited(service)
        if inherited is not None:
            point = _newer(point, inherited)
        applies = service.kind == "postgres" or has_engine(service.kind) or inherited is not None
        at, source = point
        age = (now - at).total_seconds() if at is not None else None
        rpo = service.rpo_seconds
        return ServiceStatus(
            service=service.name,
            kind=service.kind,
            backups=backups,
            recoverable_at=at,
            recoverable_source=source if applies else "nothing drkit backs up",
            recoverable_age_seconds=age,
            rpo_target_seconds=rpo,
            rto_target_seconds=service.rto.total_seconds() if service.rto is not None else None,
            archive=archive,
            verify=read_verify(ws, service.name),
            drill=last_drill(self.journals, service.name),
            copies=_copies(ws, service, self.copies),
            problems=tuple(_problems(service, age, rpo if applies else None, archive, doubted)),
            rpo_applies=applies,
            unproven=doubted,
            rpo_from=service.rpo_from,
        )


def _newer(a: Point, b: Point) -> Point:
    if b[0] is not None and (a[0] is None or b[0] >= a[0]):
        return b
    return a


def _problems(
    service: Service,
    age: float | None,
    rpo: float | None,
    archive: ArchiveState | None,
    doubted: tuple[Unproven, ...] = (),
) -> list[str]:
    out = [
        f"{service.name}: backup {u.describe()}; no restore chooses it (check the clocks)" for u in doubted
    ]
    if archive is not None and archive.failing:
        out.append(f"{service.name}: WAL {archive.mode} is failing: {archive.detail}")
    if rpo is not None:
        if age is None:
            out.append(f"{service.name}: nothing recoverable (no backup), RPO target {rpo:.0f}s")
        elif age > rpo:
            out.append(
                f"{service.name}: newest recoverable point is {age:.0f}s old, more than the RPO target "
                f"{rpo:.0f}s"
            )
    return out


def _copies(ws: Workspace, service: Service, probe: CopiesProbe | None) -> Mapping[str, Any] | None:
    if probe is None:
        return None
    try:
        return dict(probe(ws, service))
    except (OSError, DrkitError) as exc:
        return {"error": str(exc)}


# --- verify results: recorded by `drkit verify` on this host ------------------------------


def _verify_path(ws: Workspace, service: str) -> Path:
    return ws.state_dir / "verify-results" / f"{service}.json"


def record_verify(ws: Workspace, report: VerifyReport) -> str | None:
    """Keep the outcome of the newest verify of a service (status and metrics report it);
    why it could not be kept, if so (that does not change the verify's own outcome)."""
    data = {
        "backup_id": report.backup_id,
        "ok": report.ok,
        "deep": report.deep,
        "at": ws.clock.now().isoformat(),
        "seconds": report.seconds,
    }
    path = _verify_path(ws, report.service)
    try:
        write_atomic(path, json.dumps(data).encode(), mode=0o600)
    except OSError as exc:
        return f"could not record the verify result in {path}: {exc.strerror or exc}"
    return None


def read_verify(ws: Workspace, service: str) -> VerifyRecord | None:
    path = _verify_path(ws, service)
    try:
        data = json.loads(path.read_text())
        return VerifyRecord(
            backup_id=str(data["backup_id"]),
            ok=bool(data["ok"]),
            deep=bool(data.get("deep", False)),
            at=datetime.fromisoformat(str(data["at"])),
            seconds=float(data.get("seconds", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- drills: from the journals ---------------------------------------------------------------


def last_drill(journals: list[Journal], service: str) -> DrillRecord | None:
    """The newest finished drill that measured `service` or ran a step on it."""
    for journal in sorted(journals, key=lambda j: j.started_at, reverse=True):
        if journal.kind is not RunKind.DRILL or journal.verdict is Verdict.RUNNING:
            continue
        measure = next((m for m in journal.measures if m.service == service), None)
        if measure is None and not any(s.service == service for s in journal.steps):
            continue
        return DrillRecord(
            run_id=journal.run_id,
            scenario=journal.scenario,
            verdict=journal.verdict.value,
            at=journal.finished_at or journal.started_at,
            passed=journal.verdict is Verdict.PASSED,
            rto_seconds=measure.rto_seconds if measure else None,
            rpo_seconds=measure.rpo_seconds if measure else None,
            rto_target=measure.rto_target if measure else None,
            rpo_target=measure.rpo_target if measure else None,
        )
    return None
