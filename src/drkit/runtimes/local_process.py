"""A service run as a plain local process: `runtime.command`, a pid file, signals.

Used for the sandbox's stand-ins and for services on a bare host. The process runs in a
session of its own, so stop and pause reach its children too. The pid file records the
process start time as well: a pid reused by another program is never mistaken for ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from drkit.config.secrets import parse_env_text
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.atomic import write_atomic
from drkit.infra.clock import Clock, SystemClock
from drkit.infra.proc import run_as
from drkit.infra.wait import wait_for
from drkit.runtimes.port import Fenced

KILL_GRACE = 10.0


class LocalProcess:
    def __init__(
        self, spec: RuntimeSpec, *, name: str, state_dir: str | Path, clock: Clock | None = None
    ) -> None:
        if not spec.command:
            raise UsageError(f"service {name} runs locally and needs runtime.command")
        self.name = name
        self.spec = spec
        self.pid_file = Path(state_dir) / "run" / f"{name}.pid"
        self.log_file = Path(spec.log_file or Path(state_dir) / "logs" / f"{name}.log")
        self.clock = clock or SystemClock()

    @property
    def description(self) -> str:
        pid = self.pid()
        return f"local process {self.name}" + (f" (pid {pid})" if pid else "")

    def start(self) -> None:
        if self.is_running():
            return
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        who = run_as(self.spec.os_user)
        with open(self.log_file, "ab") as log:
            try:
                proc = subprocess.Popen(
                    list(self.spec.command),
                    cwd=self.spec.data_dir or None,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    user=who.user,
                    group=who.group,
                    extra_groups=who.extra_groups,
                    env=self._environment(),
                )
            except OSError as exc:
                raise OperationError(
                    f"cannot start {self.name}: {self.spec.command[0]}: {exc.strerror}"
                ) from exc
        started = _start_time(proc.pid) or ""
        write_atomic(self.pid_file, f"{proc.pid} {started}\n".encode())

    def _environment(self) -> dict[str, str] | None:
        """This process's environment plus runtime.env_file's variables (how a secret reaches a
        server that takes it from its environment, as graphql-engine does, off its command line)."""
        if not self.spec.env_file:
            return None
        try:
            text = Path(self.spec.env_file).read_text()
        except OSError as exc:
            raise OperationError(f"cannot start {self.name}: {self.spec.env_file}: {exc.strerror}") from exc
        return {**os.environ, **parse_env_text(text)}

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the process group; SIGKILL if it is still there after `timeout`
        (or the service's shorter runtime.stop_timeout)."""
        if self.spec.stop_timeout is not None:
            timeout = min(timeout, self.spec.stop_timeout)
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        _signal_group(pid, signal.SIGTERM)
        _signal_group(pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        try:
            wait_for(
                lambda: not self._alive(pid), timeout=timeout, what=f"{self.name} to exit", clock=self.clock
            )
        except OperationError:
            _signal_group(pid, signal.SIGKILL)
            try:
                wait_for(
                    lambda: not self._alive(pid),
                    timeout=KILL_GRACE,
                    what=f"{self.name} to exit after SIGKILL",
                    clock=self.clock,
                )
            except OperationError as exc:
                raise OperationError(f"{self.name} (pid {pid}) did not exit: {exc}") from exc
        self.pid_file.unlink(missing_ok=True)

    def fence(self, timeout: float, *, immediate: bool) -> Fenced:
        """Stop it (SIGKILL at once when `immediate`); nothing restarts a local process."""
        pid = self.pid()
        if pid is not None and immediate:
            _signal_group(pid, signal.SIGKILL)
        self.stop(0.0 if immediate else timeout)
        how = "was not running" if pid is None else ("killed" if immediate else "stopped")
        return Fenced(how, "", pid is None or not self._alive(pid))

    def pid(self) -> int | None:
        """The recorded pid when that process still runs; None otherwise."""
        try:
            fields = self.pid_file.read_text().split()
            pid = int(fields[0])
        except (OSError, ValueError, IndexError):
            return None
        recorded = fields[1] if len(fields) > 1 else ""
        if recorded and _start_time(pid) not in (None, recorded):
            return None  # the pid now belongs to another process
        return pid if self._alive(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def pause(self) -> None:
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGSTOP)

    def unpause(self) -> None:
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGCONT)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:  # reap it if it is our own child, so it does not linger as a zombie
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _state(pid) != "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise OperationError(f"not allowed to signal process {pid}: {exc.strerror}") from exc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None
