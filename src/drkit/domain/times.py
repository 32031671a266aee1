"""Moments as operators type them (`--target-time`, `--since`): pure, with the clock and the
local zone injected.

Accepted forms (FORMS): an ISO 8601 time with a zone (`2026-02-09T14:30:00Z`,
`2026-02-09 14:30:00+01:00`, `... UTC`, `... Europe/Berlin`); the same without a zone, read in
the local zone (as a log line or `date` shows it); `today 14:30`, `yesterday 14:30` (local);
`now`; a time ago, `-2h`, `-1h30m`, `90s ago`. A local time that does not exist (the hour the
clocks skip) or happens twice (the hour they repeat) is refused, naming the offsets to add.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drkit.domain.durations import parse_duration

FORMS = (
    "2026-02-09T14:30:00Z, 2026-02-09 14:30:00+01:00, 2026-02-09 14:30 Europe/Berlin, "
    "2026-02-09 14:30 (local time), today 14:30, yesterday 14:30, -2h, 90s ago, now"
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True)
class Moment:
    """A parsed moment and how it was read (`local`: the text named no zone)."""

    at: datetime  # aware
    local: bool
    relative: bool = False


def parse_moment(text: str, *, now: datetime, local: tzinfo) -> Moment:
    """ValueError says what is wrong and lists FORMS; `now` is aware, `local` the zone a
    time without one is read in (infra.clock.local_zone())."""
    raw = " ".join(text.strip().split())
    lowered = raw.lower()
    if not raw:
        raise ValueError(f"empty: use one of {FORMS}")
    if lowered == "now":
        return Moment(now, local=False, relative=True)
    if lowered.startswith("-") or lowered.endswith(" ago"):
        return Moment(now - _ago(raw), local=False, relative=True)
    day, _, clock = lowered.partition(" ")
    if day in ("today", "yesterday"):
        return Moment(_day_clock(day, clock, now, local), local=True)
    return _absolute(raw, local)


def _ago(raw: str) -> timedelta:
    amount = raw.removeprefix("-").removesuffix(" ago").removesuffix(" AGO").strip()
    try:
        return parse_duration(amount.replace(" ", ""))
    except ValueError:
        raise ValueError(f"{amount!r} is not a duration: use -2h, -30m, -1h30m or 90s ago") from None


def _day_clock(day: str, clock: str, now: datetime, local: tzinfo) -> datetime:
    match = _CLOCK.match(clock)
    if not match:
        raise ValueError(f"{day} needs a time of day: {day} 14:30 (or {day} 14:30:05)")
    hour, minute, second = (int(g or 0) for g in match.groups())
    date = now.astimezone(local).date() - (timedelta(days=1) if day == "yesterday" else timedelta(0))
    try:
        naive = datetime(date.year, date.month, date.day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"{clock!r} is not a time of day ({exc})") from None
    return _in_zone(naive, local)


def _absolute(raw: str, local: tzinfo) -> Moment:
    body, zone = _split_zone(raw)
    if body.endswith(("Z", "z")):
        body, zone = body[:-1], UTC
    try:
        value = datetime.fromisoformat(body)
    except ValueError as exc:
        detail = str(exc)
        if "out of range" in detail or "must be in" in detail:
            raise ValueError(f"not a date that exists ({detail})") from None
        raise ValueError(f"not a time drkit reads: use one of {FORMS}") from None
    if value.tzinfo is not None:
        if zone is not None:
            raise ValueError("give either an offset or a zone, not both")
        return Moment(value, local=False)
    if zone is not None:
        return Moment(_in_zone(value, zone), local=False)
    return Moment(_in_zone(value, local), local=True)


def _split_zone(raw: str) -> tuple[str, tzinfo | None]:
    """`2026-02-09 14:30 Europe/Berlin` -> (`2026-02-09 14:30`, the zone); `... UTC` too."""
    head, _, last = raw.rpartition(" ")
    if not head:
        return raw, None
    if last.upper() in ("UTC", "GMT"):
        return head, UTC
    if "/" in last:
        try:
            return head, ZoneInfo(last)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{last!r} is not a time zone drkit knows (like Europe/Berlin or UTC)") from None
    return raw, None


def _in_zone(naive: datetime, zone: tzinfo) -> datetime:
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    return _unambiguous(naive, first, second)


def _unambiguous(naive: datetime, first: datetime, second: datetime) -> datetime:
    if first.utcoffset() == second.utcoffset():
        return first
    offsets = " or ".join(_offset(d) for d in (first, second))
    if first.astimezone(UTC) == second.astimezone(UTC) or _wall(first) != naive:
        raise ValueError(
            f"{naive:%Y-%m-%d %H:%M:%S} does not exist in {_zone_name(first)} (the clocks skip it)"
        )
    raise ValueError(
        f"{naive:%Y-%m-%d %H:%M:%S} happens twice in {_zone_name(first)} (the clocks go back): "
        f"add the offset you mean, {offsets}"
    )


def _wall(aware: datetime) -> datetime:
    """The wall-clock time of `aware` in its own zone, round-tripped through UTC."""
    return aware.astimezone(UTC).astimezone(aware.tzinfo).replace(tzinfo=None, fold=0)


def _zone_name(aware: datetime) -> str:
    return str(getattr(aware.tzinfo, "key", None) or aware.tzname() or "the local zone")


def _offset(aware: datetime) -> str:
    text = aware.strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def describe_moment(moment: Moment, local: tzinfo) -> str:
    """`2026-02-09 14:30:00 CET (+01:00) = 2026-02-09 13:30:00 UTC`: as given (a relative
    or UTC time: in the local zone) and in UTC."""
    at = moment.at
    if moment.relative or at.utcoffset() == timedelta(0):
        at = at.astimezone(local)
    utc = at.astimezone(UTC)
    if at.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M:%S} UTC"
    return f"{at:%Y-%m-%d %H:%M:%S} {at.tzname() or ''} ({_offset(at)}) = {utc:%Y-%m-%d %H:%M:%S} UTC"
