"""Moments typed on the command line (`--target-time`, `--since`): read as domain/times.py
reads them, in this host's zone when none is given, and said back in that zone and in UTC
(on stderr) so the operator sees which moment drkit will use."""

from __future__ import annotations

from datetime import datetime

from drkit.cli.render import err_console
from drkit.domain.errors import UsageError
from drkit.domain.times import describe_moment, parse_moment
from drkit.infra.clock import SystemClock, local_zone


def operator_time(option: str, text: str, *, say: bool = True) -> datetime:
    """The aware moment `text` names; UsageError naming the option, the value and the forms."""
    zone = local_zone()
    try:
        moment = parse_moment(text, now=SystemClock().now(), local=zone)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None
    if say:
        how = (
            f" (no zone given: read in the local zone, {getattr(zone, 'key', zone)})" if moment.local else ""
        )
        err_console.print(
            f"{option} {text}: {describe_moment(moment, zone)}{how}", markup=False, highlight=False
        )
    return moment.at


def operator_time_iso(option: str, text: str | None, *, say: bool = True) -> str | None:
    """The same, as ISO 8601 with its offset (what engines and journals keep)."""
    return None if text is None else operator_time(option, text, say=say).isoformat()
