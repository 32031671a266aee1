"""Wait for a restored server to finish recovery, for as long as it makes progress.

A big restore can need far more than the two minutes `pg_ctl start -w` waits: the wait
follows the recovery (the replayed LSN once the server answers, the startup process's title
before that) up to the restore's own limit, and stops early only on a real stall: no
progress for `stall` seconds, reported with the last position reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock


@dataclass(frozen=True)
class RecoveryState:
    promoted: dict[str, Any] | None = None  # what the promoted server reports; None: recovering
    position: str | None = None  # how far recovery got (None: nothing to tell yet)


class RecoveryStopped(Exception):
    """The server exited during recovery: no point waiting any longer."""


def follow_recovery(
    probe: Callable[[], RecoveryState],
    *,
    limit: float,
    stall: float,
    clock: Clock,
    interval: float = 0.1,
    max_interval: float = 1.0,
) -> dict[str, Any]:
    """Call `probe` until it reports a promoted server; raise OperationError after `limit`
    seconds in all, or after `stall` seconds without a new position."""
    started = clock.monotonic()
    moved = started
    position: str | None = None
    delay = interval
    while True:
        state = probe()
        if state.promoted is not None:
            return state.promoted
        now = clock.monotonic()
        if state.position is not None and state.position != position:
            position, moved = state.position, now
        reached = f"; it last reached {position}" if position else "; it reported no position at all"
        if now - moved >= stall:
            raise OperationError(f"recovery made no progress for {now - moved:.0f}s{reached}")
        if now - started >= limit:
            raise OperationError(
                f"recovery did not finish within the restore's limit of {limit:.0f}s{reached}"
            )
        clock.sleep(delay)
        delay = min(delay * 1.5, max_interval)


def startup_activity(postmaster: int | None, proc: Path = Path("/proc")) -> str | None:
    """The title of the server's startup process (`postgres: startup recovering 0000...`),
    which names the WAL file being replayed even before the server takes connections."""
    if postmaster is None:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != postmaster:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if " startup " in f" {title.strip()} ":
            return title.strip()
    return None


def failure_reason(log_file: str) -> str:
    """Why a recovering server exited: its last FATAL or PANIC line, with the line
    restore_command printed before it (wal-fetch says what failed: a full disk, a key)."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 65536))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    fatal = next(
        (i for i in range(len(lines) - 1, -1, -1) if "FATAL" in lines[i] or "PANIC" in lines[i]), None
    )
    if fatal is None:
        return lines[-1].strip() if lines else "(empty log)"
    cause = next(
        (ln.strip() for ln in reversed(lines[max(0, fatal - 5) : fatal]) if ln.startswith("error: ")), None
    )
    return lines[fatal].strip() + (f" ({cause.removeprefix('error: ')})" if cause else "")
