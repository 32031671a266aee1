"""Notifications through apprise URLs (email, Slack, PagerDuty, webhooks...): failures at once,
a daily digest of what succeeded, routed by severity and by time (business hours to the team's
chat, after hours to the pager, critical to both, in the configuration's time zone), and never
a secret in a message.

Every message passes `mask` before it leaves: the stack's own secrets (passwords, keys, the
notification URLs themselves) are replaced by ***, and so is anything shaped like a credential
(`scheme://user:password@host`, `password=...`, `token=...`), whatever produced the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from drkit.domain.backup import Manifest
from drkit.domain.journal import Journal, RunKind, Verdict
from drkit.domain.stack import NotifyTarget, Severity, Stack
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.journals import list_journals
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.status import StatusReport

_URL_CREDENTIAL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|secret|secret_key|token|api_key|apikey|access_key)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&,;]+)"
)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: Severity


@dataclass(frozen=True)
class Delivery:
    target: str  # the target's URL, masked
    sent: bool
    skipped: bool = False  # not for this target now: below its min_severity, or outside its hours
    why: str = ""  # why it was skipped


def stack_secrets(stack: Stack) -> list[str]:
    """Every secret value the configuration holds (to be masked wherever it appears)."""
    found: list[str | None] = []
    for s in stack.services.values():
        found += [s.password, s.access_key, s.secret_key]
    for r in stack.repositories.values():
        found += [r.access_key, r.secret_key]
    if stack.encryption is not None:
        found.append(stack.encryption.identity)
    found += [t.url for t in stack.notifications]
    return [f for f in found if f and len(f) >= 3]


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without secrets: known values, URL credentials and key=value credentials."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_CREDENTIAL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}***", text)


def describe_target(target: NotifyTarget) -> str:
    """A target as messages name it: its scheme and host, never its tokens."""
    scheme, _, rest = target.url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..." if rest else "(an apprise URL)"


def route(stack: Stack, target: NotifyTarget, severity: Severity, now: datetime) -> str | None:
    """None when `target` takes a message of `severity` at `now`; else why it does not: below
    its min_severity, or outside its hours (business hours in `notifications.time_zone`). A
    critical message ignores the hours (unless the target's critical_any_time is off)."""
    if severity.rank < target.min_severity.rank:
        return f"below its min_severity ({target.min_severity.value})"
    if target.hours == "always" or (severity is Severity.CRITICAL and target.critical_any_time):
        return None
    local = now.astimezone(ZoneInfo(stack.notify_time_zone))
    business = stack.business_hours.contains(local)
    when = f"{local:%a %H:%M} {stack.notify_time_zone}"
    if target.hours == "business" and not business:
        return f"outside business hours ({when}); it takes business hours only"
    if target.hours == "after" and business:
        return f"in business hours ({when}); it takes after hours only"
    return None


def send(
    stack: Stack, message: Message, *, timeout: float = 30, now: datetime | None = None
) -> list[Delivery]:
    """Send `message` to every target `route` says takes it now; one Delivery per target."""
    import apprise

    secrets = stack_secrets(stack)
    title, body = mask(message.title, secrets), mask(message.body, secrets)
    now = now or datetime.now(UTC)
    out = []
    for target in stack.notifications:
        name = describe_target(target)
        why = route(stack, target, message.severity, now)
        if why is not None:
            out.append(Delivery(name, sent=False, skipped=True, why=why))
            continue
        sender = apprise.Apprise()
        if not sender.add(target.url):
            out.append(Delivery(name, sent=False))
            continue
        ok = sender.notify(
            body=body, title=title, notify_type=_NOTIFY_TYPE[message.severity], timeout=timeout
        )
        out.append(Delivery(name, sent=bool(ok)))
    return out


_NOTIFY_TYPE = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "failure"}


def failure_message(report: StatusReport, stack: Stack | None = None) -> Message | None:
    """What is red, as one critical message (None when nothing is), with the stack's
    escalation path and contacts when it has them."""
    red = report.red
    if not red:
        return None
    lines = [problem for svc in red for problem in svc.problems]
    title = f"drkit {report.stack}: RPO at risk for {', '.join(s.service for s in red)}"
    body = "\n".join(lines) + f"\n(status at {report.at:%Y-%m-%d %H:%M:%S} UTC)"
    if stack is not None and (stack.contacts or stack.escalation):
        body += "\n\n" + "\n".join(escalation_lines(stack))
    return Message(title, body, Severity.CRITICAL)


def escalation_lines(stack: Stack) -> list[str]:
    """The escalation path and the emergency contacts, as `recover`, a red `status` and its
    notification show them (empty when stack.yaml has neither)."""
    lines = []
    if stack.escalation:
        lines.append("escalation:")
        lines += [f"  {n}. {step}" for n, step in enumerate(stack.escalation, 1)]
    if stack.contacts:
        lines.append("emergency contacts:")
        lines += [f"  - {c.line()}" for c in stack.contacts]
    return lines


def test_message(stack: Stack, severity: Severity, at: datetime) -> Message:
    return Message(
        f"drkit {stack.name}: test notification",
        f"A test message from `drkit notify test` at {at:%Y-%m-%d %H:%M:%S} UTC ({severity.value}).",
        severity,
    )


def digest(ws: Workspace, *, until: datetime, period: timedelta = timedelta(days=1)) -> Message:
    """The daily digest: the backups that completed and the drills and recoveries that ran in
    the period before `until` (the scheduler calls this; `drkit notify digest` too)."""
    since = until - period
    lines: list[str] = []
    for name in sorted(ws.stack.services):
        done = [
            m for m in list_backups(ws.repo, ws.stack.name, name).complete if since < m.finished_at <= until
        ]
        for kind in sorted({m.kind for m in done}):
            lines += _backup_lines(name, [m for m in done if m.kind is kind])
    journals, _damaged = list_journals(ws)
    lines += [_journal_line(j) for j in journals if j.finished_at and since < j.finished_at <= until]
    failed = any(_journal_failed(j) for j in journals if j.finished_at and since < j.finished_at <= until)
    body = "\n".join(lines) if lines else "nothing completed in this period: no backup, no drill"
    severity = Severity.WARNING if failed or not lines else Severity.INFO
    title = f"drkit {ws.stack.name}: daily digest to {until:%Y-%m-%d %H:%M} UTC ({len(lines)} item(s))"
    return Message(title, body, severity)


FREQUENT = 3  # more backups of one kind in the period than this: one summary line


def _backup_lines(service: str, done: list[Manifest]) -> list[str]:
    """One line per backup; a service backed up every few minutes (a short rpo) gets one
    line for the lot, not a hundred."""

    def line(m: Manifest) -> str:
        return (
            f"backup {m.backup_id} of {service} ({m.kind.value}): {m.stored_bytes} bytes stored in "
            f"{(m.finished_at - m.started_at).total_seconds():.0f}s"
        )

    if len(done) <= FREQUENT:
        return [line(m) for m in done]
    newest = max(done, key=lambda m: (m.finished_at, m.backup_id))
    total = sum(m.stored_bytes for m in done)
    summary = f"{len(done)} {newest.kind.value} backups of {service} ({total} bytes stored)"
    return [f"{summary}; the newest: {line(newest)}"]


def _journal_failed(j: Journal) -> bool:
    return j.verdict in (Verdict.FAILED, Verdict.MISSED_TARGET)


def _journal_line(j: Journal) -> str:
    what = "drill" if j.kind is RunKind.DRILL else "recovery"
    measures = ", ".join(
        f"{m.service} RTO {m.rto_seconds:.1f}s"
        + (f" RPO {m.rpo_seconds:.1f}s" if m.rpo_seconds is not None else "")
        for m in j.measures
        if m.rto_seconds is not None
    )
    return f"{what} {j.run_id} ({j.scenario}): {j.verdict.value}" + (f"; {measures}" if measures else "")


def job_failed_message(stack: Stack, job: str, error: str) -> Message:
    """A failure to send at once (a backup, verify, sync or drill that failed)."""
    return Message(f"drkit {stack.name}: {job} failed", error, Severity.CRITICAL)
