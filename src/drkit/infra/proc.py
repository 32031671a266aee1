"""External programs as typed calls: argument lists, never a shell, always a timeout."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drkit.domain.errors import ToolError


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
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: str | None = None,
    os_user: str | None = None,
) -> Completed:
    """Run a program to completion. Raises ToolError on timeout, or on failure when `check`."""
    argv = tuple(str(a) for a in args)
    full_env = {**os.environ, **env} if env else None
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


def last_line(*texts: str) -> str:
    """The last non-empty line of the first text that has one: the useful part of an error."""
    for text in texts:
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "(no output)"
