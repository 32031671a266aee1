"""`drkit metrics`: the status in the Prometheus exposition format (prometheus_client).

Every scrape recomputes the status (the repository listing, the journals, one query to each
PostgreSQL server), so a metric is never older than the scrape. Names carry their unit
(`_seconds`, `_bytes`, `_timestamp_seconds`); booleans are 0/1 gauges. A metric whose value is
unknown (no verify recorded, no drill run) is left out rather than exported as 0, so an alert
on `== 0` only fires on a real failure. A service drkit backs up that has no backup at all is
known, and exported so: `drkit_backups{type=<its main backup type>} 0` (an alert on backups
that never worked needs a series to fire on; a missing one is silent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from drkit.domain.backup import BackupKind, Manifest
from drkit.engines.core.choose import order
from drkit.engines.ops.status import ServiceStatus, StatusReport

METRICS: dict[str, tuple[str, list[str]]] = {
    "drkit_backup_last_success_timestamp_seconds": (
        "When the newest complete backup of this service and type finished (Unix time).",
        ["service", "type"],
    ),
    "drkit_backup_last_duration_seconds": ("How long the newest complete backup took.", ["service", "type"]),
    "drkit_backup_last_size_bytes": ("Stored size of the newest complete backup.", ["service", "type"]),
    "drkit_backups": ("Complete backups in the repository.", ["service", "type"]),
    "drkit_recoverable_point_timestamp_seconds": (
        "The newest moment this service can be recovered to (Unix time).",
        ["service"],
    ),
    "drkit_recoverable_point_age_seconds": ("Age of the newest recoverable point.", ["service"]),
    "drkit_rpo_target_seconds": ("The service's RPO target.", ["service"]),
    "drkit_rto_target_seconds": ("The service's RTO target.", ["service"]),
    "drkit_wal_lag_seconds": (
        "WAL capture lag: 0 when every WAL byte written is captured, else the newest captured WAL's age.",
        ["service", "mode"],
    ),
    "drkit_wal_archive_failing": ("1 when WAL archiving (or the stream receiver) is failing.", ["service"]),
    "drkit_wal_archive_failures": ("Failed archive attempts (pg_stat_archiver.failed_count).", ["service"]),
    "drkit_wal_last_archived_timestamp_seconds": (
        "When PostgreSQL last archived a WAL file (pg_stat_archiver.last_archived_time).",
        ["service"],
    ),
    "drkit_verify_last_success": ("1 when the last recorded verify passed, 0 when it failed.", ["service"]),
    "drkit_verify_last_timestamp_seconds": ("When the last recorded verify ran.", ["service"]),
    "drkit_drill_last_success": ("1 when the last drill passed, 0 when it failed or missed.", ["service"]),
    "drkit_drill_last_timestamp_seconds": ("When the last drill finished.", ["service"]),
    "drkit_drill_rto_seconds": ("RTO measured by the last drill.", ["service"]),
    "drkit_drill_rpo_seconds": ("RPO measured by the last drill.", ["service"]),
    "drkit_backup_copies": (
        "Copies of the newest backup, counting the live data (3-2-1: at least 3).",
        ["service"],
    ),
    "drkit_backup_copy_repositories": ("Repositories holding the newest backup.", ["service"]),
    "drkit_backup_offsite_copies": ("Off-site repositories holding the newest backup.", ["service"]),
    "drkit_backup_rule_321_met": ("1 when the newest backup meets the 3-2-1 rule.", ["service"]),
    "drkit_status_red": ("1 when the service's RPO is at risk or its WAL capture fails.", ["service"]),
    "drkit_status_timestamp_seconds": ("When this status was computed.", []),
}


# The backup type each kind drkit backs up takes by default (`drkit backup`).
MAIN_TYPE = {
    "postgres": BackupKind.BASE.value,
    "redis": BackupKind.RDB.value,
    "s3": BackupKind.OBJECTS.value,
    "meilisearch": BackupKind.DUMP.value,
    "hasura": BackupKind.METADATA.value,
}


def families(report: StatusReport) -> list[Metric]:
    """The metric families of one status report."""
    fams = {name: GaugeMetricFamily(name, doc, labels=labels) for name, (doc, labels) in METRICS.items()}
    for svc in report.services:
        _service_metrics(fams, svc)
    fams["drkit_status_timestamp_seconds"].add_metric([], report.at.timestamp())
    return list(fams.values())


def _service_metrics(fams: dict[str, GaugeMetricFamily], svc: ServiceStatus) -> None:
    name = svc.service

    def put(metric: str, value: float | None, *extra: str) -> None:
        if value is not None:
            fams[metric].add_metric([name, *extra], float(value))

    if not svc.backups and svc.kind in MAIN_TYPE:
        put("drkit_backups", 0, MAIN_TYPE[svc.kind])
    for kind, newest, count in _newest_by_kind(svc.believed):
        put("drkit_backup_last_success_timestamp_seconds", newest.finished_at.timestamp(), kind)
        put(
            "drkit_backup_last_duration_seconds",
            (newest.finished_at - newest.started_at).total_seconds(),
            kind,
        )
        put("drkit_backup_last_size_bytes", newest.stored_bytes, kind)
        put("drkit_backups", count, kind)
    if svc.recoverable_at is not None:
        put("drkit_recoverable_point_timestamp_seconds", svc.recoverable_at.timestamp())
    put("drkit_recoverable_point_age_seconds", svc.recoverable_age_seconds)
    put("drkit_rpo_target_seconds", svc.rpo_target_seconds)
    put("drkit_rto_target_seconds", svc.rto_target_seconds)
    if svc.archive is not None:
        a = svc.archive
        put("drkit_wal_lag_seconds", a.lag_seconds, a.mode)
        put("drkit_wal_archive_failing", 1.0 if a.failing else 0.0)
        if a.mode == "archive" and a.caught_up is not None:
            put("drkit_wal_archive_failures", a.failed_count)
            if a.last_archived_at is not None:
                put("drkit_wal_last_archived_timestamp_seconds", a.last_archived_at.timestamp())
    if svc.verify is not None:
        put("drkit_verify_last_success", 1.0 if svc.verify.ok else 0.0)
        put("drkit_verify_last_timestamp_seconds", svc.verify.at.timestamp())
    if svc.drill is not None:
        put("drkit_drill_last_success", 1.0 if svc.drill.passed else 0.0)
        put("drkit_drill_last_timestamp_seconds", svc.drill.at.timestamp())
        put("drkit_drill_rto_seconds", svc.drill.rto_seconds)
        put("drkit_drill_rpo_seconds", svc.drill.rpo_seconds)
    if svc.copies is not None and "error" not in svc.copies:
        put("drkit_backup_copies", svc.copies.get("copies"))
        put("drkit_backup_copy_repositories", svc.copies.get("repositories"))
        put("drkit_backup_offsite_copies", svc.copies.get("offsite"))
        put("drkit_backup_rule_321_met", 1.0 if svc.copies.get("rule_321") else 0.0)
    put("drkit_status_red", 1.0 if svc.red else 0.0)


def _newest_by_kind(backups: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest, int]]:
    by_kind: dict[str, list[Manifest]] = {}
    for m in backups:
        by_kind.setdefault(m.kind.value, []).append(m)
    for kind, ms in sorted(by_kind.items()):
        yield kind, max(ms, key=order), len(ms)


class StatusCollector(Collector):
    """A prometheus_client collector that computes a fresh status on every scrape."""

    def __init__(self, build: Callable[[], StatusReport]) -> None:
        self._build = build

    def collect(self) -> Iterator[Metric]:
        yield from families(self._build())


def registry_for(build: Callable[[], StatusReport]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(build))
    return registry


def exposition(build: Callable[[], StatusReport]) -> bytes:
    """One scrape's worth, as `--once` prints it."""
    from prometheus_client import generate_latest

    return generate_latest(registry_for(build))
