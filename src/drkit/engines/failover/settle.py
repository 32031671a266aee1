"""A switchover that failed still leaves clients on a primary. After the promotion: clients
are repointed to the new primary (if the failure came before its repoint step). Before it:
the old primary, stopped cleanly, is started again (unless the candidate turned primary after
all: then clients go to it), and the candidate gets its restore_command back. Writers paused
are resumed. Each act is recorded in the journal's error; none of them raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from drkit.domain.journal import Journal, StepStatus, Verdict
from drkit.domain.stack import Member
from drkit.engines.core.workspace import Workspace
from drkit.engines.failover import actions
from drkit.engines.failover.cluster import Cluster, probe
from drkit.engines.failover.patroni_switch import current_leader
from drkit.engines.failover.repoint import repoint_all, resume_writers


def settle(ws: Workspace, cluster: Cluster, journal: Journal) -> Journal:
    if journal.verdict is not Verdict.FAILED:
        return journal
    done = {s.name for s in journal.steps if s.status is StepStatus.SUCCEEDED}
    facts: dict[str, Any] = {k: v for s in journal.steps if s.name in done for k, v in s.facts.items()}
    notes: list[str] = []
    if journal.parameters.get("via") == "patroni":
        if "repoint" not in done:
            was = str(journal.parameters.get("from"))
            notes.append(_try("repoint to Patroni's leader", lambda: _to_leader(ws, cluster, was)))
    else:
        old, new = (cluster.member(str(journal.parameters[k])) for k in ("from", "to"))
        notes += _direct(ws, cluster, done, facts, old, new)
    if "pause-writers" in done and "resume-writers" not in done:
        policy = cluster.replication.failover
        notes.append(_try("resume the writers", lambda: resume_writers(ws, policy.repoint, policy.pause)))
    said = "; ".join(n for n in notes if n)
    return replace(journal, error=f"{journal.error}; {said}" if said else journal.error)


def _direct(
    ws: Workspace, cluster: Cluster, done: set[str], facts: dict[str, Any], old: Member, new: Member
) -> list[str]:
    notes = []
    promoted = "promote" in done
    if not promoted and "stop-old-primary" in done:
        seen = probe(cluster, new)
        if seen.up and seen.in_recovery is False:  # pg_promote gave up waiting, yet it happened
            promoted = True
        else:
            notes.append(_try(f"start {old.name} again", lambda: _start(cluster, old)))
    if promoted and "repoint" not in done:
        notes.append(_try(f"repoint clients to {new.name}", lambda: _repoint(ws, cluster, new)))
    if not promoted:
        command = facts.get("restore_command")
        notes.append(_try("restore_command back", lambda: _restoring(cluster, new, command)))
    return notes


def _start(cluster: Cluster, old: Member) -> str:
    cluster.runtime(old).start()
    return f"{old.name} started again: it is still the primary"


def _repoint(ws: Workspace, cluster: Cluster, new: Member) -> str:
    host, port = cluster.host_port(new)
    said = repoint_all(ws, cluster.replication.failover.repoint, new.name, host, port, failover=True)
    return f"clients repointed to the new primary {new.name}: {said}"


def _restoring(cluster: Cluster, member: Member, command: object) -> str:
    if not command:
        return ""
    actions.resume_restoring(cluster, member, str(command))
    return f"{member.name} fetches from the archive again"


def _to_leader(ws: Workspace, cluster: Cluster, old: str) -> str:
    leader = current_leader(cluster)
    if leader is None:
        return "Patroni shows no leader: clients not repointed"
    if leader.name == old:
        return f"Patroni's leader is still {old}: clients stay"
    repoints = cluster.replication.failover.repoint
    said = repoint_all(ws, repoints, leader.name, leader.host, leader.port, failover=True)
    return f"clients repointed to Patroni's leader {leader.name}: {said}"


def _try(what: str, act: Callable[[], str]) -> str:
    try:
        return act()
    except Exception as exc:  # recorded; the operator finishes by hand
        return f"could not {what}: {exc}"
