"""`drkit check` for a replicated service drkit runs itself (not Patroni): one primary (two
answering as primary is a split brain: failed), and on every member that answers, what a
switchover or a failover will need: pg_rewind's prerequisites (a former primary rejoins by
pg_rewind) and a wal_sender_timeout that fits the failover window."""

from __future__ import annotations

from drkit.adapters.postgres.client import rows
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Member
from drkit.engines.failover.cluster import Cluster, probe
from drkit.engines.postgres.check import check_rewind, check_sender_timeout

SETTINGS_SQL = """
select current_setting('data_checksums'), current_setting('wal_log_hints'),
       (select setting::float / 1000 from pg_settings where name = 'wal_sender_timeout')
"""


def replication_checks(cluster: Cluster) -> list[CheckResult]:
    name = f"replication:{cluster.service.name}"
    seen = {
        m.name: probe(cluster, m, cluster.replication.failover.probe_timeout)
        for m in cluster.replication.members
    }
    primaries = sorted(n for n, p in seen.items() if p.up and p.in_recovery is False)
    out = [primaries_check(name, primaries, [n for n, p in seen.items() if not p.up])]
    window = cluster.replication.failover.window
    for member in cluster.replication.members:
        if seen[member.name].up:
            out += _member_checks(cluster, member, window)
    return out


def primaries_check(name: str, primaries: list[str], down: list[str]) -> CheckResult:
    gone = f"; down: {', '.join(down)}" if down else ""
    if len(primaries) > 1:
        return CheckResult(
            name,
            Status.FAILED,
            f"split brain: {', '.join(primaries)} all answer as primary (fence all but one, then "
            f"`drkit replica rejoin` the others){gone}",
        )
    if not primaries:
        return CheckResult(name, Status.FAILED, f"no member answers as primary{gone}")
    return CheckResult(name, Status.OK if not down else Status.WARNING, f"primary {primaries[0]}{gone}")


def _member_checks(cluster: Cluster, member: Member, window: float) -> list[CheckResult]:
    try:
        found = rows(cluster.dsn(member), SETTINGS_SQL)
    except DrkitError as exc:
        return [CheckResult(f"{member.name}: settings", Status.WARNING, exc.message, critical=False)]
    checksums, hints, timeout = found[0] if found else ("off", "off", 0.0)
    return [
        check_rewind(member.name, checksums == "on", hints == "on"),
        check_sender_timeout(member.name, float(timeout or 0), window),
    ]
