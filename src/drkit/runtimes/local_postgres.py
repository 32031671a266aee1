"""A PostgreSQL server run as a local process with pg_ctl (the sandbox, or a bare host).

PostgreSQL refuses to run as root: when drkit is root, pg_ctl runs as `os_user`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.proc import find_tool, last_line, run
from drkit.infra.wait import wait_for
from drkit.runtimes.port import Fenced


class LocalPostgres:
    def __init__(self, spec: RuntimeSpec, *, data_dir: str | None = None, options: str = "") -> None:
        """`options`: extra server options for this start (`-c name=value ...`), e.g. to keep
        a restored server away from clients until it is checked."""
        directory = data_dir or spec.data_dir
        if not directory:
            raise UsageError("a local postgres runtime needs runtime.data_dir")
        self.data_dir = Path(directory)
        self.spec = spec
        self.port = spec.port
        self.log_file = spec.log_file or str(self.data_dir.parent / "postgres.log")
        self.pg_ctl = find_tool("pg_ctl", spec.bin_dir)
        self.extra = options

    @property
    def description(self) -> str:
        return f"local postgres in {self.data_dir}"

    def _options(self) -> str:
        port = f"-p {self.port}" if self.port else ""
        return f"{port} {self.extra}".strip()

    def start(self) -> None:
        if self.is_running():
            return
        args = [
            self.pg_ctl,
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            self.log_file,
            "-w",
            "-t",
            "120",
        ]
        if self._options():
            args += ["-o", self._options()]
        proc = run(self._where(args), timeout=150, check=False, os_user=self._user())
        if proc.returncode != 0:
            raise OperationError(f"PostgreSQL in {self.data_dir} did not start: {self.last_log_line()}")

    def _where(self, args: list[str]) -> list[str]:
        """The start command through runtime.exec_prefix (e.g. `ip netns exec db2`: the
        server listens where it lives), switching user after the prefix."""
        if not self.spec.exec_prefix:
            return args
        user = self.spec.os_user if self.spec.os_user and os.geteuid() == 0 else None
        return [*self.spec.exec_prefix, *(["runuser", "-u", user, "--"] if user else []), *args]

    def _user(self) -> str | None:
        return None if self.spec.exec_prefix else self.spec.os_user

    def stop(self, timeout: float = 60.0) -> None:
        if not self.is_running():
            return
        proc = run(
            [
                self.pg_ctl,
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
            ],
            timeout=timeout + 10,
            check=False,
            os_user=self.spec.os_user,
        )
        if proc.returncode != 0 and self.is_running():
            raise OperationError(f"PostgreSQL in {self.data_dir} did not stop: {last_line(proc.stderr)}")

    def stop_immediate(self) -> None:
        """pg_ctl stop -m immediate: no shutdown checkpoint, no wait for any walsender (the
        next start runs crash recovery)."""
        args = [self.pg_ctl, "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"]
        run(args, timeout=40, check=False, os_user=self.spec.os_user)
        if self.is_running():
            raise OperationError(f"PostgreSQL in {self.data_dir} did not stop (immediate)")

    def fence(self, timeout: float, *, immediate: bool) -> Fenced:
        """A fast stop within `timeout` (its shutdown checkpoint marks where its WAL ends),
        else, or when `immediate`, an immediate one. Nothing restarts a server pg_ctl
        started; the failover marks its data directory standby besides."""
        pid = self.pid()
        how = "stopped (immediate)"
        if not immediate:
            try:
                self.stop(timeout)
                how = "stopped (fast)"
            except OperationError:
                how = f"stopped (immediate, the fast stop took over {timeout:.0f}s)"
        if self.is_running():
            self.stop_immediate()
        gone = pid is None or _gone(pid)
        return Fenced(how if pid is not None else "was not running", "", gone and self.pid() is None)

    def pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first)
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def pause(self) -> None:
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGSTOP)

    def unpause(self) -> None:
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGCONT)

    def last_log_line(self) -> str:
        try:
            lines = Path(self.log_file).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        for line in reversed(lines):
            if any(w in line for w in ("FATAL", "PANIC", "ERROR")):
                return line.strip()
        return lines[-1].strip() if lines else "(empty log)"


def _gone(pid: int, within: float = 10.0) -> bool:
    """The postmaster exited (pg_ctl returns when its pid file is removed, just before it
    exits): waited for a little, a zombie counting as gone."""
    try:
        wait_for(lambda: not _alive(pid), timeout=within, what=f"process {pid} to exit", max_interval=0.05)
    except OperationError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")
