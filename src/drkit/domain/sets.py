"""A stack-wide restore point: every service's backup at one moment, recorded as one set."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class RestoreSet:
    set_id: str
    stack: str
    created_at: datetime  # the set's moment: PostgreSQL's restore point, the objects' cut time
    restore_point: str  # the PostgreSQL named restore point (recovery_target_name)
    restore_point_lsn: str
    backups: dict[str, str]  # service -> backup id (postgres: the base backup to start from)
    finished_at: datetime
    restore_point_timeline: int | None = None  # the timeline whose WAL holds it (None: older sets)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RestoreSet:
        data = json.loads(raw)
        return cls(
            set_id=str(data["set_id"]),
            stack=str(data["stack"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            restore_point=str(data["restore_point"]),
            restore_point_lsn=str(data["restore_point_lsn"]),
            backups={str(k): str(v) for k, v in data["backups"].items()},
            finished_at=datetime.fromisoformat(data["finished_at"]),
            restore_point_timeline=int(data["restore_point_timeline"])
            if data.get("restore_point_timeline") is not None
            else None,
        )


def new_set_id(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-set"
