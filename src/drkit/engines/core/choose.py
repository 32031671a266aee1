"""Which backup a restore uses: one rule for every service, and it says why.

A manifest's times are the clock readings of the host that took the backup. A clock a year
ahead (or a copy from such a host) would make that backup "the newest" for a year, and
every restore would take it. So backups are ordered by what the repository records and
this host can check: the manifest's finish time (covered by the signature when the
repository has a sign_key), then the id (`S-base` < `S-base-2`), and a finish time more
than FUTURE_ALLOWANCE ahead of this host's clock is not believed. Such a backup is never
chosen silently: it is passed over and named (and `drkit status` and `drkit check` report
it, exit 3); `--backup ID` still takes it, saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from drkit.domain.backup import Manifest, backup_id_order
from drkit.domain.errors import NotFoundError

FUTURE_ALLOWANCE = timedelta(minutes=5)  # clocks NTP keeps in step differ by milliseconds


@dataclass(frozen=True)
class Unproven:
    """A backup whose times the repository cannot vouch for, and why."""

    backup_id: str
    reason: str

    def describe(self) -> str:
        return f"{self.backup_id}: {self.reason}"


@dataclass(frozen=True)
class BackupChoice:
    manifest: Manifest
    why: str  # "the newest backup of redis (finished ..., 2 h ago)"
    passed_over: tuple[Unproven, ...] = ()

    def describe(self) -> str:
        """One line for an operator: which backup, why, and what was passed over."""
        line = f"chose {self.manifest.backup_id}: {self.why}"
        if self.passed_over:
            line += "; passed over " + "; ".join(u.describe() for u in self.passed_over)
        return line


def _ago(at: datetime, now: datetime) -> str:
    seconds = (now - at).total_seconds()
    if seconds < 0:
        return f"{_span(-seconds)} ahead of this host's clock"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def unproven(m: Manifest, now: datetime, allowance: timedelta = FUTURE_ALLOWANCE) -> Unproven | None:
    """Why `m`'s times cannot be believed, or None."""
    ahead = m.finished_at - now
    if ahead > allowance:
        return Unproven(
            m.backup_id,
            f"finished {m.finished_at:%Y-%m-%dT%H:%M:%SZ}, {_span(ahead.total_seconds())} ahead of this "
            "host's clock (a clock that was wrong, or a copy from a host whose clock is)",
        )
    return None


def unproven_backups(manifests: Iterable[Manifest], now: datetime) -> list[Unproven]:
    return [u for m in manifests if (u := unproven(m, now)) is not None]


def order(m: Manifest) -> tuple[datetime, tuple[str, int]]:
    return m.finished_at, backup_id_order(m.backup_id)


def newest(manifests: Iterable[Manifest], now: datetime) -> Manifest | None:
    """The newest backup whose times the repository vouches for (None: there is none)."""
    believed = [m for m in manifests if unproven(m, now) is None]
    return max(believed, key=order) if believed else None


def choose_backup(
    manifests: Iterable[Manifest],
    *,
    now: datetime,
    what: str,
    where: str,
    backup_id: str | None = None,
    target_time: datetime | None = None,
    first_after: bool = False,
) -> BackupChoice:
    """The backup a restore uses. `what`: "backup of redis" (for messages); `backup_id`: that
    one; else with `target_time` the newest finished at or before it (`first_after`: the
    first started at or after it, else the newest: an objects backup knows every version up
    to its start); else the newest. Only backups whose times are believed count (above)."""
    found = list(manifests)
    if backup_id is not None:
        return _named(found, backup_id, now, what, where)
    believed = [m for m in found if unproven(m, now) is None]
    passed = tuple(unproven_backups(found, now))
    if first_after and target_time is not None:
        later = [m for m in believed if m.started_at >= target_time]
        if later:
            chosen = min(later, key=lambda m: (m.started_at, backup_id_order(m.backup_id)))
            why = f"the first {what} started at or after {target_time.isoformat()} (it knew every version)"
            return BackupChoice(chosen, why, passed)
    elif target_time is not None:
        believed = [m for m in believed if m.finished_at <= target_time]
    if not believed:
        when = f" at or before {target_time.isoformat()}" if target_time and not first_after else ""
        hint = None
        if passed:
            hint = (
                f"passed over {len(passed)} whose times this host cannot believe ("
                + "; ".join(u.describe() for u in passed)
                + "): check the clocks, or name one with --backup ID"
            )
        raise NotFoundError(f"no {what}{when} in {where}", hint=hint)
    chosen = max(believed, key=order)
    at = f"finished {chosen.finished_at:%Y-%m-%dT%H:%M:%SZ}, {_ago(chosen.finished_at, now)}"
    scope = f" at or before {target_time.isoformat()}" if target_time and not first_after else ""
    return BackupChoice(chosen, f"the newest {what}{scope} ({at})", passed)


def _named(found: list[Manifest], backup_id: str, now: datetime, what: str, where: str) -> BackupChoice:
    for m in found:
        if m.backup_id == backup_id:
            doubt = unproven(m, now)
            why = "named with --backup"
            if doubt is not None:
                why += f", although {doubt.reason}"
            return BackupChoice(m, why)
    kind, _, service = what.partition(" of ")
    named = f"{kind} {backup_id} of {service}" if service else f"{what} {backup_id}"
    raise NotFoundError(f"no {named} in {where}")
