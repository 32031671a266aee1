"""How much a failover loses, from evidence, never assumed (pure: the inputs are gathered by
the failover's steps).

Before the promotion, the candidate's **lag**: how far what it received is behind the old
primary's last known position, in bytes and in seconds of commits. After it, the **RPO**: an
upper bound of the commits the new primary lacks. Each says which evidence it rests on:

- the old primary's own WAL, read on this host (pg_waldump): exact, it names every commit
  after what the candidate received;
- the old primary's shutdown checkpoint (its control file after a clean fence): exact when
  the candidate received everything before it;
- positions seen while confirming the loss (the old primary answering a probe, a standby's
  WAL receiver reporting the primary's last WAL end with the primary's clock): a lower
  bound of how far the primary had gone;
- the fence: a verified fence bounds the loss by the time between the newest commit kept and
  the moment the old primary was seen stopped.

Nothing known: the lag is unknown (a standby that stopped receiving is not "0 s behind") and
the RPO is not bounded (None), and the journal says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drkit.adapters.postgres.wal_tail import WalTail
from drkit.domain.wal import Lsn

DECODED = "the old primary's WAL, read on this host (pg_waldump)"
MIN_LOSS = 0.001  # a lost commit never rounds down to an RPO of 0


@dataclass(frozen=True)
class Position:
    """The old primary's WAL position as last known: where, when (its clock or ours), how."""

    lsn: int
    at: datetime | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "lsn": str(Lsn(self.lsn)),
            "at": self.at.isoformat() if self.at else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class Candidate:
    """The candidate standby before its promotion."""

    received: int | None  # what it will have once promoted: max(received, replayed)
    replayed: int | None
    last_commit: datetime | None  # the newest commit it replayed
    receiving: bool  # its WAL receiver streams from the primary
    latency: float | None = None  # what it receives left the primary this long before (s)


@dataclass(frozen=True)
class Lag:
    bytes: int | None
    seconds: float | None  # None: unknown
    source: str
    commits: int | None = None  # commits it lacks, when read from the old primary's WAL

    def sentence(self) -> str:
        if self.seconds is None:
            return f"lag unknown ({self.source})"
        size = "" if self.bytes is None else f"{self.bytes} bytes, "
        count = "" if self.commits is None else f"{self.commits} commit(s), "
        return f"{size}{count}{seconds(self.seconds)} behind ({self.source})"


def lag(candidate: Candidate, positions: list[Position], tail: WalTail | None) -> Lag:
    """How far the candidate is behind the old primary's last known position."""
    received = candidate.received
    if tail is not None and received is not None:
        lost = tail.commits_after(received)
        kept = [c.at for c in tail.commits if c.end <= received]
        newest_kept = max([*kept, *([candidate.last_commit] if candidate.last_commit else [])], default=None)
        missing = max(0, tail.end - received)
        if not lost:
            return Lag(missing, 0.0, f"{DECODED}: no commit after what it received", 0)
        if newest_kept is None:
            return Lag(
                missing, None, f"{DECODED}: {len(lost)} commit(s) it lacks, none it has to measure from"
            )
        seconds = max(MIN_LOSS, (max(c.at for c in lost) - newest_kept).total_seconds())
        return Lag(missing, seconds, DECODED, len(lost))
    if received is None or not positions:
        why = "no WAL received" if received is None else "no source of the primary's position"
        if not candidate.receiving:
            why += "; its WAL receiver is not streaming (fed from the archive at most)"
        return Lag(None, None, why)
    best = max(positions, key=lambda p: (p.lsn, p.at.timestamp() if p.at else 0.0))
    behind = best.lsn - received
    if behind > 0:
        if best.at is None or candidate.last_commit is None:
            return Lag(behind, None, f"{behind} bytes behind {best.source}; no time to measure from")
        seconds = max(MIN_LOSS, (best.at - candidate.last_commit).total_seconds())
        return Lag(behind, seconds, f"behind {best.source} at {_when(best.at)} ({Lsn(best.lsn)})")
    had = f"it had all of {best.source} ({Lsn(best.lsn)}, {_when(best.at)})"
    if candidate.latency is not None:  # and whatever left the primary after what it received
        return Lag(0, candidate.latency, f"{had}; what it receives left the primary that long before")
    if not candidate.receiving:
        return Lag(0, None, f"{had}; since then its WAL receiver stopped: what came after is unknown")
    return Lag(0, 0.0, had)


def refuse_reason(found: Lag, max_lag: float | None) -> str | None:
    """Why promoting is refused (without --force), or None."""
    if max_lag is None:
        return None
    if found.seconds is None:
        return f"the candidate's lag is unknown ({found.source}), so is what a failover would lose"
    if found.seconds > max_lag:
        return f"the candidate is {found.sentence()}, beyond the {max_lag:.0f}s lag limit"
    return None


@dataclass(frozen=True)
class LossBound:
    seconds: float | None  # None: not bounded
    exact: bool
    source: str
    lost_commits: int | None = None
    missing_bytes: int | None = None
    kept_until: datetime | None = None  # the newest commit the new primary has from the old one
    newest_lost: datetime | None = None

    def sentence(self) -> str:
        if self.seconds is None:
            return f"RPO not bounded: {self.source}"
        kind = "RPO" if self.exact else "RPO at most"
        lost = "" if self.lost_commits is None else f", {self.lost_commits} commit(s) lost"
        size = "" if self.missing_bytes is None else f", {self.missing_bytes} bytes of WAL not received"
        return f"{kind} {seconds(self.seconds)}{lost}{size} (from {self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "exact": self.exact,
            "source": self.source,
            "lost_commits": self.lost_commits,
            "missing_bytes": self.missing_bytes,
            "kept_until": self.kept_until.isoformat() if self.kept_until else None,
            "newest_lost": self.newest_lost.isoformat() if self.newest_lost else None,
            "sentence": self.sentence(),
        }


def bound(
    switchpoint: int,
    kept_until: datetime | None,
    *,
    tail: WalTail | None,
    shutdown_redo: int | None,
    fenced_at: datetime | None,
) -> LossBound:
    """The new primary's loss: everything of the old primary's WAL after `switchpoint` (where
    the new timeline forked: the end of the last record it replayed)."""
    if tail is not None:
        lost = tail.commits_after(switchpoint)
        missing = max(0, tail.end - switchpoint)
        if not lost:
            return LossBound(0.0, True, f"{DECODED}: no commit after the fork", 0, missing, kept_until)
        newest = max(c.at for c in lost)
        if kept_until is None:
            why = f"{DECODED}: {len(lost)} commit(s) lost and no earlier commit kept to measure from"
            return LossBound(None, True, why, len(lost), missing, None, newest)
        seconds = max(MIN_LOSS, (newest - kept_until).total_seconds())
        return LossBound(seconds, True, DECODED, len(lost), missing, kept_until, newest)
    if shutdown_redo is not None and switchpoint >= shutdown_redo:
        return LossBound(0.0, True, "the old primary's shutdown checkpoint: all WAL before it received", 0, 0)
    beyond = max(0, shutdown_redo - switchpoint) if shutdown_redo is not None else None
    if fenced_at is not None and kept_until is not None:
        seconds = max(MIN_LOSS, (fenced_at - kept_until).total_seconds())
        why = f"the fence: the old primary took no commit after it was seen stopped at {_when(fenced_at)}"
        return LossBound(seconds, False, why, None, beyond, kept_until)
    if fenced_at is None:
        return LossBound(
            None, False, "the old primary was not fenced: it may still take commits", None, beyond
        )
    return LossBound(None, False, "the new primary replayed no commit to measure from", None, beyond)


def seconds(value: float) -> str:
    """1.234s under 10 s (a lost commit must not print as 0.0s), 12.3s above."""
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="milliseconds") if at else "an unknown time"
