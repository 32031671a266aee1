"""Run a switchover or failover runbook journaled (engines/runbooks' executor), then add the
measures. Failover: RTO from the primary's loss (the first failed probe, or --since) to a
write committing on the new primary; RPO from the old primary's end of WAL (its control
file, when it was fenced cleanly) against what the new primary had when promoted.
Switchover: RTO is the writers' pause; RPO is zero when the catch-up held."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepStatus, Verdict, verdict_of
from drkit.engines.core.workspace import Workspace
from drkit.engines.failover.cluster import Cluster
from drkit.engines.failover.repoint import resume_writers
from drkit.engines.runbooks.model import Runbook, Say
from drkit.engines.runbooks.run import execute, new_journal, save


def run(ws: Workspace, cluster: Cluster, runbook: Runbook, *, say: Say, on_step: Any = None) -> Journal:
    journal = new_journal(ws, runbook, RunKind.FAILOVER)
    done = execute(ws, runbook, journal, say=say, on_step=on_step)
    if runbook.scenario == "switchover":
        done = _resume_if_paused(ws, cluster, done)
    return finish(ws, cluster, done)


def _resume_if_paused(ws: Workspace, cluster: Cluster, journal: Journal) -> Journal:
    """A switchover that failed after pausing the writers resumes them (recorded)."""
    paused = journal.step("pause-writers").status is StepStatus.SUCCEEDED
    if not paused or journal.step("resume-writers").status is StepStatus.SUCCEEDED:
        return journal
    policy = cluster.replication.failover
    try:
        said = resume_writers(ws, policy.repoint, policy.pause)
    except Exception as exc:  # recorded; the operator must resume them by hand
        said = f"could not resume the writers: {exc}"
    return replace(journal, error=f"{journal.error}; {said}")


def finish(ws: Workspace, cluster: Cluster, journal: Journal) -> Journal:
    facts: dict[str, Any] = {}
    for record in journal.steps:
        if record.status is StepStatus.SUCCEEDED:
            facts.update(record.facts)
    measure = (
        _failover(cluster, journal, facts)
        if journal.scenario == "failover"
        else _switchover(cluster, journal)
    )
    measures = (measure,) if measure else ()
    verdict = journal.verdict if journal.verdict is Verdict.FAILED else verdict_of(measures)
    lost = facts.get("lost_at")
    return save(
        ws,
        replace(
            journal,
            measures=measures,
            verdict=verdict,
            failure_at=datetime.fromisoformat(lost) if lost else journal.failure_at,
            finished_at=journal.finished_at or ws.clock.now(),
        ),
    )


def _targets(cluster: Cluster) -> dict[str, float | None]:
    svc = cluster.service
    return {
        "rto_target": svc.rto.total_seconds() if svc.rto else None,
        "rpo_target": svc.rpo_seconds,
    }


def _failover(cluster: Cluster, journal: Journal, facts: dict[str, Any]) -> ServiceMeasure | None:
    if journal.verdict is Verdict.FAILED or "lost_at" not in facts:
        return None
    lost = datetime.fromisoformat(facts["lost_at"])
    healthy = datetime.fromisoformat(facts.get("healthy_at") or facts["writable_at"])
    final, promoted = facts.get("final_lsn"), facts.get("promoted_lsn")
    rpo: float | None = None
    recovered = None
    if final is not None and promoted is not None:
        missing = max(0, int(final) - int(promoted))
        detail = (
            f"the old primary's WAL ends {missing} bytes past what the new primary received "
            "(its shutdown records included); RPO: from the last transaction replayed to the loss"
        )
        if missing == 0:
            rpo, recovered = 0.0, lost
        elif facts.get("last_replay_epoch"):
            recovered = datetime.fromtimestamp(float(facts["last_replay_epoch"]), UTC)
            rpo = max(0.0, (lost - recovered).total_seconds())
    else:
        detail = str(
            facts.get("rpo_note")
            or "the old primary's last LSN is unknown (not fenced cleanly): RPO not measured"
        )
    return ServiceMeasure(
        service=cluster.service.name,
        rto_seconds=max(0.0, (healthy - lost).total_seconds()),
        rpo_seconds=rpo,
        healthy_at=healthy,
        recovered_to=recovered,
        detail=detail,
        **_targets(cluster),
    )


def _switchover(cluster: Cluster, journal: Journal) -> ServiceMeasure | None:
    pause, resume = journal.step("pause-writers"), journal.step("resume-writers")
    if resume.status is not StepStatus.SUCCEEDED or pause.started_at is None or resume.finished_at is None:
        return None
    return ServiceMeasure(
        service=cluster.service.name,
        rto_seconds=(resume.finished_at - pause.started_at).total_seconds(),
        rpo_seconds=0.0,
        healthy_at=resume.finished_at,
        recovered_to=pause.started_at,
        detail="writers paused for the RTO; the standby replayed the primary's end of WAL",
        **_targets(cluster),
    )
