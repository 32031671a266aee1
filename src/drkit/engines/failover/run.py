"""Run a switchover or failover runbook journaled (engines/runbooks' executor), then add the
measures. Failover: RTO from the primary's loss (the first failed probe, or --since) to a
write committing on the new primary; RPO: the upper bound its measure-loss step found
(engines/failover/loss.py), naming its evidence.
Switchover: RTO is the writers' pause; RPO is zero when the catch-up held. A switchover that
failed is settled (engines/failover/settle.py): clients are left on a primary."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepStatus, Verdict, verdict_of
from drkit.engines.core.workspace import Workspace
from drkit.engines.failover.cluster import Cluster
from drkit.engines.failover.failover import measure_loss
from drkit.engines.failover.settle import settle
from drkit.engines.runbooks.model import Runbook, Say
from drkit.engines.runbooks.run import execute, new_journal, save


def run(ws: Workspace, cluster: Cluster, runbook: Runbook, *, say: Say, on_step: Any = None) -> Journal:
    journal = new_journal(ws, runbook, RunKind.FAILOVER)
    done = execute(ws, runbook, journal, say=say, on_step=on_step)
    if runbook.scenario == "switchover":
        done = settle(ws, cluster, done)
    return finish(ws, cluster, done)


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
    found = facts.get("loss")
    if isinstance(found, dict):
        rpo, kept, detail = found.get("seconds"), found.get("kept_until"), str(found.get("sentence", ""))
    elif facts.get("rpo_note"):  # Patroni fenced and promoted
        rpo, kept, detail = None, None, str(facts["rpo_note"])
    else:  # the measure-loss step failed: what the other steps recorded, without the old WAL
        old = cluster.member(str(journal.parameters["from"]))
        bound = measure_loss(old, facts, read_wal=False)
        rpo, kept, detail = bound.seconds, bound.to_dict()["kept_until"], bound.sentence()
    return ServiceMeasure(
        service=cluster.service.name,
        rto_seconds=max(0.0, (healthy - lost).total_seconds()),
        rpo_seconds=None if rpo is None else float(rpo),
        healthy_at=healthy,
        recovered_to=datetime.fromisoformat(str(kept)) if kept else None,
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
