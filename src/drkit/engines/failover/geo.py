"""The automatic part of the geo-failover runbook (engines/runbooks/scenarios/geo_failover):
the failover of the replicated PostgreSQL service, direct or through Patroni."""

from __future__ import annotations

from typing import Any

from drkit.domain.recovery import parse_target_time
from drkit.engines.core.workspace import Workspace
from drkit.engines.failover import failover
from drkit.engines.failover.cluster import cluster_of
from drkit.engines.failover.patroni_switch import build_failover
from drkit.engines.runbooks.model import Runbook
from drkit.engines.runbooks.scenarios import geo_failover


def failover_runbook(ws: Workspace, parameters: dict[str, Any]) -> Runbook:
    cluster = cluster_of(ws, str(parameters["service"]))
    to = parameters.get("to") or None
    since = parse_target_time(str(parameters["since"])) if parameters.get("since") else None
    if cluster.replication.patroni is not None:
        return build_failover(cluster, to, since=since)
    return failover.build(cluster, to, force=False, since=since, clock=ws.clock)


def provide(ws: Workspace) -> None:
    """Give geo-failover its automatic steps for this workspace."""
    geo_failover.provide(lambda parameters: failover_runbook(ws, parameters))
