"""Notifications through apprise URLs (email, Slack, PagerDuty, webhooks...): failures at once,
a daily digest of what succeeded, routed by severity, and never a secret in a message.

Every message passes `mask` before it leaves: the stack's own secrets (passwords, keys, the
notification URLs themselves) are replaced by ***, and so is anything shaped like a credential
(`scheme://user:password@host`, `password=...`, `token=...`), whatever produced the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from drkit.domain.durations import format_duration
from drkit.domain.journal import Journal, RunKind, Verdict
from drkit.domain.sizes import format_size
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
    skipped: bool = False  # below the target's min_severity


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


def send(stack: Stack, message: Message, *, timeout: float = 30) -> list[Delivery]:
    """Send `message` to every target whose min_severity it reaches; one Delivery per target."""
    import apprise

    secrets = stack_secrets(stack)
    title, body = mask(message.title, secrets), mask(message.body, secrets)
    out = []
    for target in stack.notifications:
        name = describe_target(target)
        if message.severity.rank < target.min_severity.rank:
            out.append(Delivery(name, sent=False, skipped=True))
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


def failure_message(report: StatusReport) -> Message | None:
    """What is red, as one critical message (None when nothing is)."""
    red = report.red
    if not red:
        return None
    lines = [problem for svc in red for problem in svc.problems]
    title = f"drkit {report.stack}: RPO at risk for {', '.join(s.service for s in red)}"
    return Message(
        title, "\n".join(lines) + f"\n(status at {report.at:%Y-%m-%d %H:%M:%S} UTC)", Severity.CRITICAL
    )


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
        for m in list_backups(ws.repo, ws.stack.name, name).complete:
            if since < m.finished_at <= until:
                lines.append(
                    f"backup {m.backup_id} of {name} ({m.kind.value}): {format_size(m.stored_bytes)} stored "
                    f"in {format_duration(m.finished_at - m.started_at)}"
                )
    journals, _damaged = list_journals(ws)
    lines += [_journal_line(j) for j in journals if j.finished_at and since < j.finished_at <= until]
    failed = any(_journal_failed(j) for j in journals if j.finished_at and since < j.finished_at <= until)
    body = "\n".join(lines) if lines else "nothing completed in this period: no backup, no drill"
    severity = Severity.WARNING if failed or not lines else Severity.INFO
    title = f"drkit {ws.stack.name}: daily digest to {until:%Y-%m-%d %H:%M} UTC ({len(lines)} item(s))"
    return Message(title, body, severity)


def _journal_failed(j: Journal) -> bool:
    return j.verdict in (Verdict.FAILED, Verdict.MISSED_TARGET)


def _journal_line(j: Journal) -> str:
    what = "drill" if j.kind is RunKind.DRILL else "recovery"
    measures = ", ".join(
        f"{m.service} RTO {format_duration(m.rto_seconds)}"
        + (f" RPO {format_duration(m.rpo_seconds)}" if m.rpo_seconds is not None else "")
        for m in j.measures
        if m.rto_seconds is not None
    )
    return f"{what} {j.run_id} ({j.scenario}): {j.verdict.value}" + (f"; {measures}" if measures else "")


def job_failed_message(stack: Stack, job: str, error: str) -> Message:
    """A failure to send at once (a backup, verify, sync or drill that failed)."""
    return Message(f"drkit {stack.name}: {job} failed", error, Severity.CRITICAL)
