"""Pinned backups (`drkit backups keep ID [--until T]`, like `barman keep`): a backup kept
whatever retention says, until a given time or until the pin is released. Incident evidence
(the emergency dump a db-corruption recovery takes) is pinned the same way.

A pin is `keep.json` beside the backup's manifest (what, why, since when, until when).
Retention reads it as one more rule (engines/ops/retention_policy.py: `pinned`); a PostgreSQL
base backup's pin keeps the WAL it needs to be consistent, as any kept base backup's. A pin
file that cannot be read keeps the backup (it fails safe: kept too long, never lost).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from drkit.domain.backup import Manifest
from drkit.engines.core.layout import keep_key
from drkit.engines.core.workspace import Workspace


@dataclass(frozen=True)
class Pin:
    backup_id: str
    service: str
    reason: str
    at: datetime  # when it was pinned
    until: datetime | None = None  # None: until released

    def holds(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = f" until {self.until:%Y-%m-%d %H:%M} UTC" if self.until else " (until released)"
        return f"{self.reason}{until}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "backup_id": self.backup_id,
            "service": self.service,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }


def pin(ws: Workspace, manifest: Manifest, *, reason: str, until: datetime | None = None) -> Pin:
    """Pin a backup (replacing an earlier pin of it)."""
    made = Pin(manifest.backup_id, manifest.service, reason or "pinned", ws.clock.now(), until)
    ws.repo.put(
        keep_key(ws.stack.name, manifest.service, manifest.backup_id),
        (json.dumps(made.to_dict(), indent=2) + "\n").encode(),
        overwrite=True,
    )
    return made


def release(ws: Workspace, manifest: Manifest) -> Pin | None:
    """Remove a backup's pin; the pin that was there (None: there was none)."""
    found = read_pin(ws, manifest.service, manifest.backup_id)
    if found is not None:
        ws.repo.delete(keep_key(ws.stack.name, manifest.service, manifest.backup_id))
    return found


def read_pin(ws: Workspace, service: str, backup_id: str) -> Pin | None:
    key = keep_key(ws.stack.name, service, backup_id)
    try:
        raw = ws.repo.get(key)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        until = data.get("until")
        return Pin(
            backup_id,
            service,
            str(data.get("reason") or "pinned"),
            datetime.fromisoformat(str(data["at"])),
            datetime.fromisoformat(str(until)) if until else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return Pin(
            backup_id,
            service,
            f"pin file {key} is unreadable: kept until it is fixed or released",
            datetime.min.replace(tzinfo=UTC),
        )


def pins_of(ws: Workspace, service: str, backup_ids: list[str]) -> dict[str, Pin]:
    """The pins among these backups of `service`."""
    out = {}
    for backup_id in backup_ids:
        found = read_pin(ws, service, backup_id)
        if found is not None:
            out[backup_id] = found
    return out
