"""What killed writes leave in a repository, and when `drkit prune` removes it (rule
`leftover`): temporary files of a filesystem repository (`.<name>.<random>.tmp`) and
unfinished S3 multipart uploads. Neither is ever listed as a blob (the Repository port), so
nothing reads them; they only take space. One goes once it is older than LEFTOVER_AGE: a
write takes seconds (a 64 MiB+ upload, minutes), so a write still running is never cut
short, whatever the clocks of the hosts writing the repository say within that day.

Links and special files are damage, not leftovers: `drkit verify --repo` reports them and
nothing removes them (an operator looks first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from drkit.adapters.repository.port import Stray
from drkit.engines.core.workspace import Workspace

LEFTOVER_AGE = timedelta(days=1)
RULE = "leftover"


@dataclass(frozen=True)
class Leftover:
    key: str
    detail: str
    age: timedelta

    @property
    def why(self) -> str:
        hours = self.age.total_seconds() / 3600
        return (
            f"{self.detail}, {hours:.0f} h old (older than {LEFTOVER_AGE.total_seconds() / 3600:.0f} h: "
            "no write takes that long)"
        )

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "rule": RULE, "why": self.why}


def stale_leftovers(strays: list[Stray], now: datetime) -> list[tuple[Stray, Leftover]]:
    """The leftovers among `strays` old enough to go (pure)."""
    out = []
    for stray in strays:
        if not stray.kind.leftover or stray.modified is None:
            continue
        age = now - stray.modified
        if age >= LEFTOVER_AGE:
            out.append((stray, Leftover(stray.key, stray.detail, age)))
    return out


def sweep_leftovers(ws: Workspace, prefix: str, *, dry_run: bool) -> tuple[Leftover, ...]:
    """Remove (unless `dry_run`) the stale leftovers under `prefix`; what went (or would)."""
    found = stale_leftovers(ws.repo.strays(prefix), ws.clock.now())
    if not dry_run:
        for stray, _ in found:
            ws.repo.remove_stray(stray)
    return tuple(leftover for _, leftover in found)


def describe_leftovers(leftovers: tuple[Leftover, ...], *, done: bool) -> list[str]:
    verb = "removed" if done else "would remove"
    return [f"  {verb} {item.key}: {RULE}: {item.why}" for item in leftovers]
