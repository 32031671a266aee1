"""Running a command and measuring it: wall time, peak memory of its process tree, CPU seconds,
how busy the whole machine was meanwhile; untimed helper commands and their JSON output."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SAMPLE_INTERVAL = 0.2
TIME_BIN = "/usr/bin/time"  # GNU time (Debian package `time`)
TIME_MARK = "@@bench-maxrss-kib="


@dataclass(frozen=True)
class Run:
    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss: int  # bytes: the largest process of the tree (wait4 ru_maxrss)
    tree_rss: int  # bytes: peak of the sampled sum over the tree
    cpu_seconds: float  # user + system of the command and every child it waited for
    machine_busy_seconds: float  # CPU seconds the whole machine spent meanwhile (all processes)
    started_at: float  # time.time() when it started


class CommandFailed(RuntimeError):
    pass


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) for every process."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        lpar, rpar = stat.find("("), stat.rfind(")")
        fields = stat[rpar + 2 :].split()
        if len(fields) > 1:
            table[int(name)] = (int(fields[1]), stat[lpar + 1 : rpar])
    return table


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int, exclude: frozenset[str] = frozenset({"postgres"}), *, skip_root: bool = False) -> int:
    """Resident bytes of `root` and its descendants, not descending into excluded names
    (`skip_root`: not counting `root` itself, a wrapper such as GNU time)."""
    children: dict[int, list[int]] = {}
    table = _proc_table()
    for pid, (ppid, _comm) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid != root and table.get(pid, (0, ""))[1] in exclude:
            continue
        if pid != root or not skip_root:
            total += _rss(pid)
        stack.extend(children.get(pid, ()))
    return total


def machine_busy() -> float:
    """CPU seconds (all CPUs, every process) the machine has been busy since boot."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def background_busy(seconds: float = 3.0) -> float:
    """Fraction of the machine's CPUs busy over `seconds` while we run nothing: anything far
    above zero means other work shares the machine and will blur the figures."""
    before = machine_busy()
    time.sleep(seconds)
    return (machine_busy() - before) / (seconds * (os.cpu_count() or 1))


def user_kwargs(user: str | None) -> dict[str, Any]:
    if not user or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class _TreeSampler:
    """Samples the resident set of a process tree every SAMPLE_INTERVAL in a thread; keeps the peak."""

    def __init__(self, pid: int, *, skip_root: bool) -> None:
        self.pid, self.skip_root, self.peak = pid, skip_root, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid, skip_root=self.skip_root))
            self.done.wait(SAMPLE_INTERVAL)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def _read(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode(errors="replace")


def _without_time_lines(stderr: str, max_rss: int) -> tuple[str, int]:
    """GNU time's lines taken out of a command's stderr; the peak RSS (bytes) it printed."""
    kept = []
    for line in stderr.splitlines():
        if line.startswith(TIME_MARK):
            max_rss = int(line[len(TIME_MARK) :]) * 1024
        elif not line.startswith("Command exited with non-zero status"):
            kept.append(line)
    return "\n".join(kept), max_rss


def _failed(run: Run) -> CommandFailed:
    tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
    return CommandFailed(f"{' '.join(run.argv)} exited with {run.returncode}:\n{tail}")


def run_measured(
    argv: list[str], *, user: str | None = None, cwd: str | Path | None = None, check: bool = True
) -> Run:
    """Run to completion; wall time, exit code, output, peak memory and CPU of its tree.

    The command runs under GNU time when there is one: a process forked from this (large)
    Python process counts this process's resident set until it execs, so wait4's ru_maxrss of
    a direct child overstates small commands; time forks from a small process."""
    timed = os.access(TIME_BIN, os.X_OK)
    full = [TIME_BIN, f"--format={TIME_MARK}%M", *argv] if timed else argv
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy_before = machine_busy()
        started_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, **user_kwargs(user)
        )
        sampler = _TreeSampler(proc.pid, skip_root=timed)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        busy = machine_busy() - busy_before
        peak = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = _read(out), _read(err)
    max_rss = usage.ru_maxrss * 1024
    if timed:
        stderr, max_rss = _without_time_lines(stderr, max_rss)
    run = Run(
        argv=[str(a) for a in argv],
        seconds=seconds,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        max_rss=max_rss,
        tree_rss=peak,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        machine_busy_seconds=busy,
        started_at=started_at,
    )
    if check and run.returncode != 0:
        raise _failed(run)
    return run


def run_quiet(argv: list[str], *, user: str | None = None, timeout: float = 600) -> str:
    """An untimed helper command; its stdout. Raises with its stderr on failure."""
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        **user_kwargs(user),
    )
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()}")
    return str(proc.stdout)


def parse_json_output(text: str) -> Any:
    """The JSON document in a command's stdout (tolerating text printed before it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for match in re.finditer(r"^[\[{]", text, re.MULTILINE):
        try:
            value, _end = json.JSONDecoder().raw_decode(text[match.start() :])
            return value
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON in the output: {text[:300]!r}")
