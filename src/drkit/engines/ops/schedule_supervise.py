"""What `drkit schedule run` keeps running besides its jobs: `drkit wal-stream` for each
PostgreSQL service with `wal_mode: stream`, restarted with backoff when it exits, its lag
watched (a warning when the capture lags more than the service's RPO, or when the spool on
this host grows three checks in a row: the receiver is not getting its WAL archived)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from drkit.domain.stack import Service, Severity, WalMode
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.notify import Message
from drkit.engines.ops.schedule import Handle, Notify
from drkit.infra.clock import Clock
from drkit.infra.proc import Child

BACKOFF_MAX = 300.0
STABLE_AFTER = 600.0  # a receiver that ran this long before exiting starts its backoff afresh


@dataclass(frozen=True)
class Lag:
    seconds: float | None  # how far the capture is behind (None: unknown)
    spool_bytes: int  # what waits in the spool on this host


class Supervised:
    """One long-running child, restarted with exponential backoff (1 s doubling to 5 min)."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Handle],
        clock: Clock,
        *,
        report: Callable[[str, str], None],
        notify: Notify,
        lag: Callable[[], Lag] | None = None,
        lag_limit: float = 300.0,
        check_every: float = 60.0,
    ) -> None:
        self.name, self.start, self.clock = name, start, clock
        self.report, self.notify = report, notify
        self.lag, self.lag_limit, self.check_every = lag, lag_limit, check_every
        self.handle: Handle | None = None
        self.started_at = 0.0
        self.restart_at = 0.0
        self.failures = 0
        self.next_lag_check = 0.0
        self.spool_history: list[int] = []
        self.lagging = False
        self.restarts = 0

    def check(self, now: datetime) -> None:
        mono = self.clock.monotonic()
        if self.handle is not None and (code := self.handle.poll()) is not None:
            self._exited(code, mono)
        if self.handle is None and mono >= self.restart_at:
            self.handle = self.start()
            self.started_at = mono
            self.report(self.name, "started" if not self.restarts else f"restarted (#{self.restarts})")
            self.restarts += 1
        if self.lag is not None and mono >= self.next_lag_check:
            self.next_lag_check = mono + self.check_every
            self._watch(self.lag())

    def _exited(self, code: int, mono: float) -> None:
        error = self.handle.error() if self.handle is not None else ""
        self.handle = None
        self.failures = 1 if mono - self.started_at >= STABLE_AFTER else self.failures + 1
        delay = min(2.0 ** (self.failures - 1), BACKOFF_MAX)
        self.restart_at = mono + delay
        text = f"exited with code {code} ({error}); restarting in {delay:.0f}s"
        self.report(self.name, text)
        severity = Severity.CRITICAL if self.failures >= 3 else Severity.WARNING
        self.notify(
            Message(f"{self.name} {'keeps failing' if self.failures >= 3 else 'exited'}", text, severity)
        )

    def _watch(self, lag: Lag) -> None:
        self.spool_history = [*self.spool_history[-3:], lag.spool_bytes]
        growing = len(self.spool_history) == 4 and all(
            a < b for a, b in zip(self.spool_history, self.spool_history[1:], strict=False)
        )
        behind = lag.seconds is not None and lag.seconds > self.lag_limit
        if (growing or behind) and not self.lagging:
            why = (
                f"lag {lag.seconds:.0f}s over {self.lag_limit:.0f}s" if behind else "its spool keeps growing"
            )
            text = f"{why} (spool {lag.spool_bytes} bytes)"
            self.report(self.name, "warning: " + text)
            self.notify(Message(f"{self.name} is falling behind", text, Severity.WARNING))
        self.lagging = growing or behind

    def stop(self, grace: float) -> None:
        if self.handle is not None:
            self.handle.interrupt()
            if _wait(self.handle, grace, self.clock) is None:
                self.handle.kill()
            self.handle = None


def _wait(handle: Handle, grace: float, clock: Clock) -> int | None:
    deadline = clock.monotonic() + grace
    while (code := handle.poll()) is None and clock.monotonic() < deadline:
        clock.sleep(0.2)
    return code


class ChildHandle:
    """A `drkit ...` child process as a scheduler Handle. interrupt() sends SIGINT to the
    drkit process itself (KeyboardInterrupt: its cleanup runs, and it ends its own tools);
    kill() SIGKILLs its whole process group."""

    def __init__(self, argv: Sequence[str], *, stdout: int = subprocess.DEVNULL) -> None:
        self.child = Child(argv, stdout=stdout, own_group=True)

    def poll(self) -> int | None:
        code = self.child.proc.poll()
        if code is not None:
            self.child.stderr.join(timeout=2.0)
        return code

    def interrupt(self) -> None:
        if self.child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signal.SIGINT)

    def kill(self) -> None:
        self.child.kill()
        self.child.proc.wait(timeout=30)

    def error(self) -> str:
        return self.child.last_error()


def stream_supervisors(
    ws: Workspace,
    drkit: Sequence[str],
    *,
    report: Callable[[str, str], None],
    notify: Notify,
    stdout: int = subprocess.DEVNULL,
) -> list[Supervised]:
    """One supervised `drkit wal-stream --service NAME` per PostgreSQL service streaming WAL."""
    out = []
    for svc in ws.stack.services_of_kind("postgres"):
        if svc.postgres is None or svc.postgres.wal_mode is not WalMode.STREAM:
            continue
        argv = [*drkit, "wal-stream", "--service", svc.name]
        out.append(
            Supervised(
                f"wal-stream {svc.name}",
                lambda argv=argv: ChildHandle(argv, stdout=stdout),  # type: ignore[misc]
                ws.clock,
                report=report,
                notify=notify,
                lag=lambda svc=svc: stream_lag(ws, svc),  # type: ignore[misc]
                lag_limit=svc.rpo_seconds if svc.rpo_seconds is not None else 300.0,
            )
        )
    return out


def stream_lag(ws: Workspace, service: Service) -> Lag:
    """How far the stream receiver is behind, and what waits in its spool."""
    from drkit.engines.ops.pg_capture import capture_state
    from drkit.engines.postgres.wal.stream import spool_dir

    try:
        state, _point, _source = capture_state(ws, service, ws.clock.now())
        seconds = state.lag_seconds
    except Exception:  # the server down is the receiver's problem, reported when it exits
        seconds = None
    spool = spool_dir(ws, service)
    size = sum(p.stat().st_size for p in spool.iterdir() if p.is_file()) if spool.is_dir() else 0
    return Lag(seconds, size)
