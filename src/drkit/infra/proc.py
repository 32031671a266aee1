"""External programs as typed calls: argument lists, never a shell, always a timeout.

`run` runs a short command to completion; `stream_tool` hands a long tool's stdout to a
consumer (pg_dump, pg_basebackup); `Child` is a started tool with the tail of its stderr
kept, for tools that run until told to stop (pg_receivewal).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from drkit.domain.errors import ToolError

T = TypeVar("T")
STDERR_KEEP = 64 * 1024  # the last bytes of a tool's stderr kept for its error message
# An environment value of None removes that variable from what the child inherits.
Env = Mapping[str, str | None]


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def find_tool(name: str, bin_dir: str | None = None) -> str:
    """Absolute path of an executable, preferring `bin_dir`; a clear error when missing."""
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    where = f" in {bin_dir} or" if bin_dir else ""
    raise ToolError(f"{name} not found{where} on PATH", hint="install it, or set the bin_dir")


@dataclass(frozen=True)
class RunAs:
    """Popen's user/group/extra_groups: run a child as `os_user` when we are root
    (PostgreSQL refuses to run as root). All None when there is nothing to switch."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def run_as(os_user: str | None) -> RunAs:
    if not os_user or os.geteuid() != 0:
        return RunAs()
    entry = pwd.getpwnam(os_user)
    return RunAs(entry.pw_uid, entry.pw_gid, [])


def run(
    args: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    env: Env | None = None,
    input_text: str | None = None,
    cwd: str | None = None,
    os_user: str | None = None,
) -> Completed:
    """Run a program to completion. Raises ToolError on timeout, or on failure when `check`."""
    argv = tuple(str(a) for a in args)
    full_env = child_env(env)
    who = run_as(os_user)
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",  # tools may echo damaged bytes verbatim
            timeout=timeout,
            env=full_env,
            input=input_text,
            cwd=cwd,
            check=False,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{os.path.basename(argv[0])} timed out after {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise ToolError(f"{argv[0]} not found") from exc
    result = Completed(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise ToolError(f"{os.path.basename(argv[0])} failed: {last_line(proc.stderr, proc.stdout)}")
    return result


def child_env(env: Env | None) -> dict[str, str] | None:
    """Our environment with `env` applied (None values removed); None when nothing changes."""
    if not env:
        return None
    merged = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for key in (k for k, v in env.items() if v is None):
        merged.pop(key, None)
    return merged


@contextmanager
def secret_file(data: bytes, *, prefix: str = "drkit-secret-") -> Iterator[str]:
    """A 0600 file holding `data` in a private 0700 directory, for handing a secret to a
    child without putting it on its command line; both are removed when the `with` ends."""
    directory = tempfile.mkdtemp(prefix=prefix)  # 0700, a new name: nobody else's file
    try:
        fd, path = tempfile.mkstemp(dir=directory)  # 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def last_line(*texts: str) -> str:
    """The last non-empty line of the first text that has one: the useful part of an error."""
    for text in texts:
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "(no output)"


class StderrTail:
    """Reads a child's stderr in a thread (so the tool never blocks on a full pipe) and keeps
    its last `keep` bytes: enough for the error message, bounded however much it writes."""

    def __init__(self, fd: int, keep: int = STDERR_KEEP) -> None:
        self._fd = fd
        self._keep = keep
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="stderr-tail", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                with self._lock:
                    self._buf += chunk
                    del self._buf[: max(0, len(self._buf) - self._keep)]
        finally:
            os.close(self._fd)

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        with self._lock:
            return bytes(self._buf).decode(errors="replace")


class Child:
    """A started tool: an argument list, no shell, stdin closed, the tail of its stderr kept.
    With `own_group` it leads a process group of its own, and `kill` ends all it started."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Env | None = None,
        stdout: int = subprocess.DEVNULL,
        own_group: bool = False,
        keep: int = STDERR_KEEP,
    ) -> None:
        self.args = tuple(str(a) for a in args)
        self.tool = os.path.basename(self.args[0])
        self.own_group = own_group
        err_read, err_write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=err_write,
                env=child_env(env),
                process_group=0 if own_group else None,
            )
        except OSError as exc:
            os.close(err_read)
            raise ToolError(f"cannot start {self.tool}: {exc.strerror or exc}") from exc
        finally:
            os.close(err_write)
        self.stderr = StderrTail(err_read, keep)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the tool (its whole group when it leads one); nothing once it was reaped."""
        if self.proc.returncode is not None:
            return
        try:
            if self.own_group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        except ProcessLookupError:
            pass

    def stop(self, sig: int = signal.SIGINT, grace: float = 30.0) -> int:
        """Ask the tool to stop with `sig`, kill it after `grace` seconds; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait()
        self.stderr.join()
        return self.proc.returncode

    def last_error(self) -> str:
        return last_line(self.stderr.text())

    def failure(self, code: int) -> ToolError:
        """The one-line error for exit code `code` (a negative code: killed by that signal)."""
        if code < 0:
            return ToolError(f"{self.tool} was killed by signal {-code}: {self.last_error()}")
        return ToolError(f"{self.tool} failed: {self.last_error()}")


def stream_tool(
    args: Sequence[str],
    consume: Callable[[Callable[[int], bytes]], T],
    *,
    timeout: float,
    env: Env | None = None,
    keep: int = STDERR_KEEP,
    explain: Callable[[str], str] | None = None,
) -> T:
    """Run a tool whose stdout is the product: `consume(read)` reads it to the end and its
    result is returned. The tool and its process group are killed on timeout or when
    `consume` fails; a failed tool is one ToolError naming it and its last stderr line,
    plus what `explain` finds in its stderr (e.g. the files whose pages failed a checksum)."""
    out_read, out_write = os.pipe()
    try:
        child = Child(args, env=env, stdout=out_write, own_group=True, keep=keep)
    except BaseException:
        os.close(out_read)
        raise
    finally:
        os.close(out_write)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        child.kill()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        with open(out_read, "rb") as stdout:
            result = consume(stdout.read)
        code = child.proc.wait()
    except BaseException as exc:
        child.kill()
        child.proc.wait()
        if expired.is_set():
            raise _timed_out(child, timeout) from exc
        raise
    finally:
        timer.cancel()
        child.stderr.join()
    if code != 0:
        if expired.is_set():
            raise _timed_out(child, timeout)
        failure = child.failure(code)
        extra = explain(child.stderr.text()) if explain is not None else ""
        raise ToolError(failure.message + extra) if extra else failure
    return result


def _timed_out(child: Child, timeout: float) -> ToolError:
    return ToolError(f"{child.tool} timed out after {timeout:.0f}s and was killed: {child.last_error()}")
