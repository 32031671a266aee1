"""Benchmark: drkit base backup, restore and deep verify against pgBackRest and the raw tools.

Everything runs on one PostgreSQL cluster (a drkit sandbox grown to `--size-gb` of nchat-like
data), in rounds; in each round every contender runs once, in this order, from a warm page
cache and a quiet WAL archiver:

  (a) drkit backup           `drkit -c stack.yaml backup postgres`
  (d) pgBackRest backup      `pgbackrest backup --type=full` (zst level 1, process-max 2,
                             start-fast, archive-check off: the cluster archives into drkit)
  (f) pg_basebackup          `pg_basebackup -Ft -X none -c fast -D DIR`, no compression
  (b) drkit restore          the restore engine's extraction step alone (in a process), then
                             `drkit -c stack.yaml restore postgres --to DIR --target-lsn <end of
                             the backup>` (extract, start, replay, promote, stop)
  (e) pgBackRest restore     `pgbackrest restore --pg1-path DIR --type=immediate` (process-max 2),
                             then, timed apart, starting that copy until it is promoted (its WAL
                             is copied into pgBackRest's own archive beforehand, so recovery
                             uses `pgbackrest archive-get`, pgBackRest's real path)
  (g) zstd | tar             `zstd -1 -T2` of the (f) tar, then one stream `zstd -d | tar -x`
  (c) drkit verify           `drkit -c stack.yaml verify --latest --deep`

Each figure: wall seconds (the median over `--repeat` rounds), bytes stored or written, peak
memory and CPU seconds. Peak memory is the largest resident set of any process of the command's
tree (`/usr/bin/time -f %M`; the commands run under GNU time) and the sum over the tree sampled
every 0.2 s; PostgreSQL server processes (which restores start) are left out of both.

Run it as root from the repository root (PostgreSQL and pgBackRest then run as `postgres`):

    .venv/bin/python bench/base_backup.py                      # 1 GiB
    .venv/bin/python bench/base_backup.py --size-gb 0.2 --keep
    .venv/bin/python bench/base_backup.py --reuse /tmp/drkit-bench-XXXX/sandbox --repeat 3

bench/README.md says what the figures mean.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

try:
    from bench.nchat_data import BuildReport, grow
except ImportError:  # run as a script: bench/ itself is on sys.path
    from nchat_data import BuildReport, grow  # type: ignore[no-redef,import-not-found]

from drkit.sandbox.stack import Sandbox, SandboxOptions, down, up


def drkit_command() -> list[str]:
    """How drkit runs here (and how the sandbox's archive_command runs it)."""
    return [sys.executable, "-m", "drkit"]


def sandbox_options() -> SandboxOptions:
    """PostgreSQL alone: the other services of the sandbox play no part here."""
    try:
        return SandboxOptions(services=("postgres",))  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # a drkit whose sandbox is PostgreSQL only
        return SandboxOptions()


GIB = 1 << 30
MIB = 1 << 20
BENCH_DIR = Path(__file__).resolve().parent
PG_USER = "postgres"
STANZA = "bench"
SAMPLE_INTERVAL = 0.2
MEMORY_TARGET = 200 * 10**6  # bytes: "200 MB"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Running a command and measuring it
# --------------------------------------------------------------------------------------------


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


TIME_BIN = "/usr/bin/time"  # GNU time (Debian package `time`)
TIME_MARK = "@@bench-maxrss-kib="


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
        done = threading.Event()
        peak = [0]
        busy_before = machine_busy()
        started_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, **user_kwargs(user)
        )

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss(proc.pid, skip_root=timed))
                done.wait(SAMPLE_INTERVAL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        busy = machine_busy() - busy_before
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    max_rss = usage.ru_maxrss * 1024
    if timed:
        kept = []
        for line in stderr.splitlines():
            if line.startswith(TIME_MARK):
                max_rss = int(line[len(TIME_MARK) :]) * 1024
            elif not line.startswith("Command exited with non-zero status"):
                kept.append(line)
        stderr = "\n".join(kept)
    run = Run(
        argv=[str(a) for a in argv],
        seconds=seconds,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        max_rss=max_rss,
        tree_rss=peak[0],
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        machine_busy_seconds=busy,
        started_at=started_at,
    )
    if check and run.returncode != 0:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
        raise CommandFailed(f"{' '.join(run.argv)} exited with {run.returncode}:\n{tail}")
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


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    key: str
    label: str
    command: str
    seconds: float
    bytes: int | None = None  # stored (backups) or written (restores)
    bytes_what: str = ""
    max_rss: int | None = None
    tree_rss: int | None = None
    cpu_seconds: float | None = None
    machine_busy_seconds: float | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, label: str, run: Run, **kw: Any) -> Step:
        return cls(
            key=key,
            label=label,
            command=" ".join(run.argv),
            seconds=run.seconds,
            max_rss=run.max_rss,
            tree_rss=run.tree_rss,
            cpu_seconds=run.cpu_seconds,
            machine_busy_seconds=run.machine_busy_seconds,
            **kw,
        )


def summarize(samples: list[Step]) -> Step:
    """One figure per step: the median time (the round nearest it gives the details), the
    highest memory of any round."""
    times = [s.seconds for s in samples]
    median = statistics.median(times)
    chosen = min(samples, key=lambda s: abs(s.seconds - median))
    return replace(
        chosen,
        seconds=median,
        max_rss=max((s.max_rss or 0) for s in samples) or None,
        tree_rss=max((s.tree_rss or 0) for s in samples) or None,
        details={**chosen.details, "rounds_s": times, "min_s": min(times), "max_s": max(times)},
    )


@dataclass(frozen=True)
class Ratio:
    name: str
    description: str
    value: float | None
    target: float
    higher_is_better: bool
    strict: bool = False  # "<" rather than "<=" (or ">" rather than ">=")

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.higher_is_better:
            return self.value > self.target if self.strict else self.value >= self.target
        return self.value < self.target if self.strict else self.value <= self.target

    @property
    def target_text(self) -> str:
        op = (">" if self.higher_is_better else "<") + ("" if self.strict else "=")
        return f"{op} {self.target:g}"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# --------------------------------------------------------------------------------------------
# Machine and cluster facts, files, the archiver
# --------------------------------------------------------------------------------------------


def machine_info(dsn: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text()
    found = re.search(r"MemTotal:\s+(\d+)", meminfo)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select version()").fetchone()
        settings: dict[str, str] = dict(
            conn.execute(
                "select name, setting || coalesce(unit, '') from pg_settings where name in "
                "('shared_buffers', 'data_checksums', 'wal_segment_size', 'max_wal_size', "
                "'archive_mode', 'archive_command')"
            ).fetchall()
        )

    def tool(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    import zstandard

    from drkit import __version__

    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        os_name = ""
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_bytes": int(found.group(1)) * 1024 if found else None,
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": str(row[0]) if row else "unknown",
        "postgresql_settings": settings,
        "pgbackrest": tool(["pgbackrest", "version"]),
        "zstd_cli": tool(["zstd", "--version"]),
        "python_zstandard": zstandard.__version__,
        "drkit": __version__,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def chown_postgres(path: Path) -> None:
    entry = pwd.getpwnam(PG_USER)
    if not path.is_dir():
        os.lchown(path, entry.pw_uid, entry.pw_gid)
        return
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def make_dir(path: Path, mode: int = 0o755, *, postgres: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if postgres and os.geteuid() == 0:
        chown_postgres(path)
    return path


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def settle(box: Sandbox, timeout: float = 1800) -> None:
    """Wait until the archiver has nothing left to push, then flush dirty pages to disk: no
    step pays for the previous one's background work."""
    status_dir = Path(box.state["services"]["postgres"]["data_dir"]) / "pg_wal" / "archive_status"
    deadline = time.monotonic() + timeout
    told = False
    while True:
        ready = [p for p in status_dir.iterdir() if p.name.endswith(".ready")]
        if not ready:
            break
        if time.monotonic() > deadline:
            with psycopg.connect(box.dsn, autocommit=True) as conn:
                row = conn.execute(
                    "select failed_count, last_failed_wal, last_archived_wal from pg_stat_archiver"
                ).fetchone()
            raise RuntimeError(
                f"archiving did not catch up in {timeout:.0f}s "
                f"({len(ready)} segments waiting; pg_stat_archiver: {row})"
            )
        if not told and len(ready) > 2:
            log(f"  waiting for the WAL archiver ({len(ready)} segments to push)")
            told = True
        time.sleep(0.5)
    os.sync()


def warm_cache(path: Path) -> int:
    """Read every file once so every contender starts from the same warm page cache."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb", buffering=0) as fh:
                    while chunk := fh.read(MIB):
                        total += len(chunk)
            except OSError:
                continue
    return total


def table_sizes(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_database_size(current_database()), "
            "(select sum(pg_database_size(datname)) from pg_database)"
        ).fetchone()
        rows = conn.execute(
            "select n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), c.reltuples "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind = 'r' and n.nspname in ('public', 'auth') order by 2 desc"
        ).fetchall()
    return {
        "database_bytes": int(row[0]) if row else 0,
        "cluster_bytes": int(row[1]) if row else 0,
        "tables": {str(r[0]): {"bytes": int(r[1]), "rows": int(r[2])} for r in rows},
    }


def wal_segment_size(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select setting::bigint from pg_settings where name = 'wal_segment_size'"
        ).fetchone()
    return int(row[0]) if row else 16 * MIB


def segment_names(first: str, last: str, segment_size: int) -> list[str]:
    """WAL segment file names from `first` to `last` inclusive (one timeline)."""
    per_id = 0x100000000 // segment_size
    tli = first[:8]
    start = int(first[8:16], 16) * per_id + int(first[16:], 16)
    stop = int(last[8:16], 16) * per_id + int(last[16:], 16)
    return [f"{tli}{n // per_id:08X}{n % per_id:08X}" for n in range(start, stop + 1)]


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_promoted(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the restored copy was not promoted in time")


# --------------------------------------------------------------------------------------------
# The restore log: where a restore's time goes
# --------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (\S+) \[\d+\] (.*)$")
EVENTS = {
    "starting PostgreSQL": "server_start",
    "redo starts at": "redo_start",
    "consistent recovery state reached": "consistent",
    "redo done at": "redo_done",
    "archive recovery complete": "recovery_complete",
    "database system is ready to accept connections": "ready",
    "received fast shutdown request": "shutdown_request",
    "database system is shut down": "shut_down",
}


def _epoch(stamp: str, zone: str) -> float:
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    if zone in ("UTC", "GMT", "Etc/UTC"):
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()  # the server's log_timezone is the machine's, as initdb chose


def restore_phases(log_files: list[Path], started_at: float, finished_at: float) -> dict[str, Any]:
    """Phases of a restore from its server log (timestamps to the millisecond)."""
    lines: list[str] = []
    for candidate in log_files:
        try:
            lines = candidate.read_text(errors="replace").splitlines()
            break
        except OSError:
            continue
    seen: dict[str, float] = {}
    fetched = 0
    for line in lines:
        m = LOG_LINE.match(line)
        if not m:
            continue
        at, message = _epoch(m.group(1), m.group(2)), m.group(3)
        if "restored log file" in message:
            fetched += 1
        for needle, name in EVENTS.items():
            if needle in message:
                seen.setdefault(name, at)
                if name == "ready":
                    seen["ready"] = at  # the last one: after promotion
    out: dict[str, Any] = {"log_lines": len(lines), "wal_files_restored": fetched}
    start = seen.get("server_start")
    if start is None:
        return out
    out["before_server_start_s"] = start - started_at  # CLI start, plan, extraction, config
    if "ready" in seen:
        out["server_start_to_promoted_s"] = seen["ready"] - start  # startup, replay, promotion
        out["until_promoted_s"] = seen["ready"] - started_at
        out["after_promoted_s"] = finished_at - seen["ready"]  # noticing it, then the stop
    if "redo_start" in seen and "redo_done" in seen:
        out["redo_s"] = seen["redo_done"] - seen["redo_start"]
    if "shutdown_request" in seen and "shut_down" in seen:
        out["shutdown_s"] = seen["shut_down"] - seen["shutdown_request"]
    return out


# --------------------------------------------------------------------------------------------
# pgBackRest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgBackRest:
    root: Path
    data_dir: str
    port: int
    socket_dir: str

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def argv(self, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args]

    def setup(self) -> None:
        make_dir(self.root)
        for sub in ("repo", "log", "lock", "spool", "wal-in"):
            make_dir(self.root / sub, 0o750)
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.repo}\n"
            "repo1-retention-full=99\n"
            f"log-path={self.root / 'log'}\n"
            f"lock-path={self.root / 'lock'}\n"
            f"spool-path={self.root / 'spool'}\n"
            "log-level-console=warn\n"
            "log-level-file=info\n"
            "compress-type=zst\n"
            "compress-level=1\n"
            "process-max=2\n"
            "start-fast=y\n"
            # The cluster archives into drkit; the WAL a restore needs is copied in apart.
            "archive-check=n\n"
            "\n"
            f"[{STANZA}]\n"
            f"pg1-path={self.data_dir}\n"
            f"pg1-port={self.port}\n"
            f"pg1-socket-path={self.socket_dir}\n"
            f"pg1-user={PG_USER}\n"
        )
        chown_postgres(self.root)
        run_quiet(self.argv("stanza-create"), user=PG_USER)

    def latest(self) -> dict[str, Any]:
        info = parse_json_output(run_quiet(self.argv("--output=json", "info"), user=PG_USER))
        backups = info[0]["backup"]
        if not backups:
            raise RuntimeError("pgBackRest lists no backup")
        return dict(backups[-1])


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    box: Sandbox
    work: Path
    samples: dict[str, list[Step]] = field(default_factory=dict)
    made_backups: list[Path] = field(default_factory=list)
    running: list[Path] = field(default_factory=list)  # data dirs of servers we started
    segment_size: int = 16 * MIB

    @property
    def pg(self) -> dict[str, Any]:
        return dict(self.box.state["services"]["postgres"])

    @property
    def restores(self) -> Path:
        return self.work / "restores"

    def drkit(self, *args: str) -> list[str]:
        return [*drkit_command(), "--config", str(self.box.config_path), "--output", "json", *args]

    def pg_tool(self, name: str) -> str:
        return str(Path(self.pg["bin_dir"]) / name)

    def add(self, step: Step) -> Step:
        self.samples.setdefault(step.key, []).append(step)
        size = f", {human_bytes(step.bytes)} {step.bytes_what}" if step.bytes is not None else ""
        log(f"  {step.label}: {step.seconds:.2f} s{size}, peak RSS {human_bytes(step.max_rss)}")
        return step

    def summary(self) -> dict[str, Step]:
        return {key: summarize(steps) for key, steps in self.samples.items()}

    # (a) ------------------------------------------------------------------------------------
    def drkit_backup(self) -> dict[str, Any]:
        run = run_measured(self.drkit("backup", "postgres"))
        result = parse_json_output(run.stdout)[0]
        directory = (
            Path(self.box.dir)
            / "repo"
            / result["stack"]
            / result["service"]
            / "backups"
            / result["backup_id"]
        )
        self.made_backups.append(directory)
        self.add(
            Step.of(
                "drkit_backup",
                "(a) drkit backup",
                run,
                bytes=dir_size(directory),
                bytes_what="stored",
                notes="pg_basebackup tar stream -> 16 MiB parts, zstd -1 in 2 threads, "
                "SHA-256, fsync; includes waiting for the last WAL segment to be archived "
                "and the row counts",
                details={
                    "backup_id": result["backup_id"],
                    "raw_bytes": sum(int(f["raw_size"]) for f in result["files"]),
                    "files": len(result["files"]),
                    "drkit_reported_seconds": result.get("seconds"),
                    "start_lsn": result["postgres"]["start_lsn"],
                    "stop_lsn": result["postgres"]["stop_lsn"],
                },
            )
        )
        return dict(result)

    # (b) ------------------------------------------------------------------------------------
    def drkit_extract(self, backup_id: str) -> None:
        dest = self.restores / "drkit-extract"
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--internal-extract",
            str(self.box.config_path),
            backup_id,
            str(dest),
        ]
        run = run_measured(argv)
        inner = parse_json_output(run.stdout)
        self.add(
            Step.of(
                "drkit_extract",
                "(b) drkit restore: extraction only",
                run,
                bytes=dir_size(dest),
                bytes_what="written",
                notes="the restore engine's extract step (parts -> files, chown) in a process "
                "of its own; seconds = the whole process",
                details={"extract_seconds_in_process": inner["seconds"]},
            )
        )
        remove(dest)

    def drkit_restore(self, stop_lsn: str) -> None:
        dest = self.restores / "drkit-restore"
        run = run_measured(self.drkit("restore", "postgres", "--to", str(dest), "--target-lsn", stop_lsn))
        outcome = parse_json_output(run.stdout)
        logs = [dest / "log" / "drkit-restore.log", dest.parent / f"{dest.name}.log"]
        phases = restore_phases(logs, run.started_at, run.started_at + run.seconds)
        self.add(
            Step.of(
                "drkit_restore",
                "(b) drkit restore (to end of backup)",
                run,
                bytes=dir_size(dest),
                bytes_what="data dir",
                notes="extract + configure + start + WAL replay + promote + stop",
                details={
                    "phases": phases,
                    "reached_lsn": outcome.get("reached_lsn"),
                    "drkit_reported_seconds": outcome.get("seconds"),
                },
            )
        )
        remove(dest)
        remove(dest.parent / f"{dest.name}.log")

    # (c) ------------------------------------------------------------------------------------
    def drkit_verify(self) -> None:
        run = run_measured(self.drkit("verify", "--latest", "--deep"), check=False)
        report = parse_json_output(run.stdout)
        if run.returncode != 0 or not report.get("ok"):
            raise CommandFailed(f"drkit verify failed ({run.returncode}): {run.stdout[-2000:]}")
        self.add(
            Step.of(
                "drkit_verify_deep",
                "(c) drkit verify --latest --deep",
                run,
                notes="hash every part, check the WAL chain, restore into a throwaway "
                "instance, compare row counts",
                details={"results": report.get("results"), "drkit_reported_seconds": report.get("seconds")},
            )
        )

    # (d) + (e) ------------------------------------------------------------------------------
    def pgbackrest(self) -> PgBackRest:
        data_dir = self.pg["data_dir"]
        pgbr = PgBackRest(
            self.work / "pgbackrest", data_dir, int(self.pg["port"]), str(Path(data_dir).parent)
        )
        pgbr.setup()
        return pgbr

    def pgbackrest_backup(self, pgbr: PgBackRest) -> dict[str, Any]:
        run = run_measured(pgbr.argv("--type=full", "backup"), user=PG_USER, cwd=pgbr.root)
        latest = pgbr.latest()
        label = str(latest["label"])
        self.add(
            Step.of(
                "pgbackrest_backup",
                "(d) pgBackRest backup --type=full",
                run,
                bytes=dir_size(pgbr.repo / "backup" / STANZA / label),
                bytes_what="stored",
                notes="zst level 1, process-max 2, start-fast; archive-check off (it does not "
                "wait for WAL to reach an archive)",
                details={"label": label, "info": latest.get("info"), "archive": latest.get("archive")},
            )
        )
        return latest

    def copy_wal_to_pgbackrest(self, pgbr: PgBackRest, backup: dict[str, Any]) -> int:
        """Untimed: the WAL the pgBackRest backup needs, from drkit's archive into pgBackRest's
        (`pgbackrest archive-push`), so its restore recovers the way pgBackRest does."""
        settle(self.box)  # the backup's last segment is in drkit's archive
        names = segment_names(backup["archive"]["start"], backup["archive"]["stop"], self.segment_size)
        spool = pgbr.root / "wal-in"
        for name in names:
            path = spool / name
            run_quiet(self.drkit("wal-fetch", name, str(path)))
            chown_postgres(path)
            run_quiet(pgbr.argv("archive-push", str(path)), user=PG_USER)
            path.unlink()
        return len(names)

    def pgbackrest_restore(self, pgbr: PgBackRest, label: str) -> None:
        dest = make_dir(self.restores / "pgbackrest-restore", 0o700)
        run = run_measured(
            pgbr.argv(
                f"--pg1-path={dest}",
                f"--set={label}",
                "--process-max=2",
                "--type=immediate",
                "--target-action=promote",
                "--archive-mode=off",
                "restore",
            ),
            user=PG_USER,
            cwd=pgbr.root,
        )
        self.add(
            Step.of(
                "pgbackrest_restore",
                "(e) pgBackRest restore",
                run,
                bytes=dir_size(dest),
                bytes_what="data dir",
                notes="files and recovery settings only: pgBackRest does not start the server",
            )
        )
        auto_conf = (dest / "postgresql.auto.conf").read_text()
        fetch = re.search(r"^restore_command = (.*)$", auto_conf, re.MULTILINE)
        # Start the copy and replay to consistency, as drkit's restore does (timed apart).
        port = free_loopback_port()
        with open(dest / "postgresql.auto.conf", "a") as conf:
            conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
        log_file = self.restores / "pgbackrest-restore.log"
        started = time.perf_counter()
        self.running.append(dest)
        start = run_measured(
            [self.pg_tool("pg_ctl"), "start", "-D", str(dest), "-l", str(log_file), "-w", "-t", "1800"],
            user=PG_USER,
            cwd=self.restores,
        )
        wait_promoted(f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres connect_timeout=10", 1800)
        seconds = time.perf_counter() - started
        phases = restore_phases([log_file], start.started_at, start.started_at + seconds)
        self.add(
            Step(
                key="pgbackrest_start",
                label="(e) pgBackRest copy: start until promoted",
                command=" ".join(start.argv) + " ; wait until pg_is_in_recovery() is false",
                seconds=seconds,
                max_rss=start.max_rss,
                tree_rss=start.tree_rss,
                cpu_seconds=start.cpu_seconds,
                machine_busy_seconds=start.machine_busy_seconds,
                notes="recovery to immediate, promote; restore_command as pgBackRest wrote it",
                details={"phases": phases, "restore_command": fetch.group(1) if fetch else None},
            )
        )
        self.stop_server(dest)
        remove(dest)
        remove(log_file)

    def stop_server(self, data_dir: Path) -> None:
        run_quiet([self.pg_tool("pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w"], user=PG_USER)
        if data_dir in self.running:
            self.running.remove(data_dir)

    # (f) + (g) ------------------------------------------------------------------------------
    def plain_basebackup(self) -> Path:
        dest = self.work / "plain" / "basebackup"
        make_dir(dest.parent)
        run = run_measured(
            [
                self.pg_tool("pg_basebackup"),
                "--dbname",
                self.box.dsn,
                "-D",
                str(dest),
                "-Ft",
                "-X",
                "none",
                "-c",
                "fast",
                "--no-password",
            ]
        )
        self.add(
            Step.of(
                "pg_basebackup_tar",
                "(f) pg_basebackup -Ft -X none (no compression)",
                run,
                bytes=dir_size(dest),
                bytes_what="stored",
                notes="waits for the last WAL segment to be archived, as drkit's does",
            )
        )
        return dest / "base.tar"

    def zstd_reference(self, tar: Path) -> None:
        compressed = tar.with_name("base.tar.zst")
        run = run_measured(["zstd", "-1", "-T2", "-q", "-f", str(tar), "-o", str(compressed)])
        self.add(
            Step.of(
                "zstd_compress",
                "(g) zstd -1 -T2 of the (f) tar (reference)",
                run,
                bytes=compressed.stat().st_size,
                bytes_what="stored",
            )
        )
        compressed = compressed.rename(self.work / "plain" / compressed.name)
        remove(tar.parent)  # the plain backup
        settle(self.box)
        dest = make_dir(self.restores / "zstd-tar", 0o700, postgres=False)
        pipeline = f"zstd -d -q -c {compressed} | tar -x -f - -C {dest}"
        run = run_measured(["bash", "-o", "pipefail", "-c", pipeline])
        self.add(
            Step.of(
                "zstd_tar_extract",
                "(g) zstd -d | tar -x (one stream)",
                run,
                bytes=dir_size(dest),
                bytes_what="data dir",
            )
        )
        remove(dest)
        remove(compressed)

    def cleanup_backups(self) -> None:
        for directory in self.made_backups:
            (directory / "manifest.json").unlink(missing_ok=True)  # uncommit first
            remove(directory)

    # one round ------------------------------------------------------------------------------
    def round(self, pgbr: PgBackRest, *, verify: bool) -> None:
        log("(a) drkit backup")
        settle(self.box)
        backup = self.drkit_backup()
        log("(d) pgBackRest backup")
        settle(self.box)
        pgbr_backup = self.pgbackrest_backup(pgbr)
        self.copy_wal_to_pgbackrest(pgbr, pgbr_backup)
        log("(f) pg_basebackup, plain tar")
        settle(self.box)
        tar = self.plain_basebackup()
        log("(b) drkit restore")
        settle(self.box)
        self.drkit_extract(backup["backup_id"])
        settle(self.box)
        self.drkit_restore(backup["postgres"]["stop_lsn"])
        log("(e) pgBackRest restore")
        settle(self.box)
        self.pgbackrest_restore(pgbr, str(pgbr_backup["label"]))
        log("(g) zstd | tar")
        settle(self.box)
        self.zstd_reference(tar)
        if verify:
            log("(c) drkit verify --latest --deep")
            settle(self.box)
            self.drkit_verify()


# --------------------------------------------------------------------------------------------
# Ratios and the report
# --------------------------------------------------------------------------------------------


def ratios(steps: dict[str, Step]) -> list[Ratio]:
    def sec(key: str) -> float | None:
        return steps[key].seconds if key in steps else None

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    until_promoted = None
    if "drkit_restore" in steps:
        until_promoted = steps["drkit_restore"].details.get("phases", {}).get("until_promoted_s")
    pgbr_full = None
    if "pgbackrest_restore" in steps and "pgbackrest_start" in steps:
        pgbr_full = steps["pgbackrest_restore"].seconds + steps["pgbackrest_start"].seconds
    drkit = [s for k, s in steps.items() if k.startswith("drkit_")]
    drkit_mem = max((s.max_rss or 0) for s in drkit) if drkit else 0
    drkit_tree = max((s.tree_rss or 0) for s in drkit) if drkit else 0
    size_drkit = steps["drkit_backup"].bytes if "drkit_backup" in steps else None
    size_pgbr = steps["pgbackrest_backup"].bytes if "pgbackrest_backup" in steps else None
    return [
        Ratio(
            "backup_speed",
            "pgBackRest backup s / drkit backup s",
            div(sec("pgbackrest_backup"), sec("drkit_backup")),
            2.0,
            True,
        ),
        Ratio(
            "restore_speed",
            "pgBackRest restore s / drkit restore s (whole commands: drkit's also starts, "
            "replays, promotes and stops the server; pgBackRest's only writes files)",
            div(sec("pgbackrest_restore"), sec("drkit_restore")),
            1.5,
            True,
        ),
        Ratio(
            "restore_speed_files",
            "pgBackRest restore s / drkit extraction s (files only: like for like)",
            div(sec("pgbackrest_restore"), sec("drkit_extract")),
            1.5,
            True,
        ),
        Ratio(
            "restore_speed_to_service",
            "(pgBackRest restore + start until promoted) s / drkit restore until promoted s "
            "(a server answering: like for like)",
            div(pgbr_full, until_promoted),
            1.5,
            True,
        ),
        Ratio(
            "stored_size",
            "drkit stored bytes / pgBackRest stored bytes",
            div(size_drkit, size_pgbr),
            1.0,
            False,
        ),
        Ratio(
            "drkit_peak_memory_mb",
            "drkit peak RSS, largest process, any drkit step (MB)",
            drkit_mem / 1e6 if drkit_mem else None,
            MEMORY_TARGET / 1e6,
            False,
            strict=True,
        ),
        Ratio(
            "drkit_peak_tree_memory_mb",
            "drkit peak RSS, its process tree summed, any drkit step (MB)",
            drkit_tree / 1e6 if drkit_tree else None,
            MEMORY_TARGET / 1e6,
            False,
            strict=True,
        ),
    ]


def render(steps: dict[str, Step], rows: list[Ratio], db: dict[str, Any], rounds: int) -> str:
    lines = [
        f"database {human_bytes(db['database_bytes'])} ({db['database_bytes']:,} bytes), "
        f"cluster {human_bytes(db['cluster_bytes'])}; seconds are the median of {rounds} round(s)",
        "",
        f"{'step':<46} {'seconds':>8} {'bytes':>15} {'':<8} {'peak RSS':>10} {'tree RSS':>10} "
        f"{'CPU s':>6} {'busy s':>6}",
    ]
    for s in steps.values():
        size = f"{s.bytes:,}" if s.bytes is not None else "-"
        cpu = f"{s.cpu_seconds:.1f}" if s.cpu_seconds is not None else "-"
        busy = f"{s.machine_busy_seconds:.1f}" if s.machine_busy_seconds is not None else "-"
        lines.append(
            f"{s.label:<46} {s.seconds:>8.2f} {size:>15} {s.bytes_what:<8} "
            f"{human_bytes(s.max_rss):>10} {human_bytes(s.tree_rss):>10} {cpu:>6} {busy:>6}"
        )
        if len(s.details.get("rounds_s", [])) > 1:
            lines.append(f"{'':<4}rounds: {', '.join(f'{t:.2f}' for t in s.details['rounds_s'])}")
        phases = s.details.get("phases")
        if phases and "before_server_start_s" in phases:
            shown = ", ".join(
                f"{k.removesuffix('_s')} {v:.2f}" for k, v in phases.items() if k.endswith("_s")
            )
            lines.append(f"{'':<4}phases (s): {shown}; WAL files restored {phases['wal_files_restored']}")
        inner = s.details.get("extract_seconds_in_process")
        if inner is not None:
            lines.append(f"{'':<4}extraction itself, inside the process: {inner:.2f} s")
    lines += ["", f"{'ratio':<26} {'value':>7} {'target':>7}  {'verdict':<7}  meaning"]
    for r in rows:
        value = f"{r.value:.3f}" if r.value is not None else "-"
        verdict = {True: "met", False: "MISSED", None: "n/a"}[r.met]
        lines.append(f"{r.name:<26} {value:>7} {r.target_text:>7}  {verdict:<7}  {r.description}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Child processes: the extraction alone, and the profiles (where drkit's time goes)
# --------------------------------------------------------------------------------------------


def internal_extract(config: str, backup_id: str, dest: str) -> None:
    """Run the restore engine's extract step alone and time it (for (b))."""
    from drkit.config.loader import load_stack
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.restore import _extract

    ws = open_workspace(load_stack(config))
    service = ws.postgres()
    manifest = find_backup(ws.repo, ws.stack.name, [service.name], backup_id)
    start = time.perf_counter()
    _extract(ws, service, manifest, Path(dest), None)
    print(json.dumps({"seconds": time.perf_counter() - start}))


class _Timers:
    """Wrap functions with timers (summed over threads) for the --profile children."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute, None)
        if original is None:
            return  # drkit changed; profile what is still there
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                with timers.lock:
                    timers.total[name] = timers.total.get(name, 0.0) + spent
                    timers.calls[name] = timers.calls.get(name, 0) + 1

        setattr(owner, attribute, timed)

    def report(self, wall: float, imports: float) -> dict[str, Any]:
        rows = sorted(self.total.items(), key=lambda kv: -kv[1])
        return {
            "wall_s": wall,
            "imports_s": imports,
            "timers": {k: {"seconds": v, "calls": self.calls[k]} for k, v in rows},
        }


def internal_profile_backup(config: str) -> None:
    """A drkit base backup with timers around its parts (threads' times are summed)."""
    started = time.perf_counter()
    from drkit.adapters.postgres import basebackup, tarindex
    from drkit.adapters.repository import codec, fs
    from drkit.config.loader import load_stack
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres import backup as backup_postgres
    from drkit.infra import parts

    imports = time.perf_counter() - started
    timers = _Timers()
    for attribute in ("server_info", "next_xid", "snapshot_counts", "tool_version", "_clean_incomplete"):
        timers.wrap(backup_postgres, attribute, f"engine: {attribute}")
    timers.wrap(backup_postgres, "stream_base_backup", "engine: stream_base_backup (all of it)")
    timers.wrap(codec.Codec, "encode", "worker: zstd compress")
    timers.wrap(backup_postgres, "sha256", "worker: sha256")
    timers.wrap(fs.FsRepository, "put", "worker: repository put (write, fsync, rename)")
    timers.wrap(tarindex.TarIndexer, "feed", "reader: tar index")

    class TimedSemaphore(threading.Semaphore):
        def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
            start = time.perf_counter()
            got = super().acquire(blocking, timeout)
            with timers.lock:
                key = "reader: waiting for a free worker"
                timers.total[key] = timers.total.get(key, 0.0) + time.perf_counter() - start
                timers.calls[key] = timers.calls.get(key, 0) + 1
            return got

    original_split = parts.split_into_parts

    def split(read: Any, *args: Any, **kwargs: Any) -> Any:
        def timed_read(n: int) -> bytes:
            start = time.perf_counter()
            data: bytes = read(n)
            with timers.lock:
                key = "reader: waiting for pg_basebackup's output"
                timers.total[key] = timers.total.get(key, 0.0) + time.perf_counter() - start
                timers.calls[key] = timers.calls.get(key, 0) + 1
            return data

        return original_split(timed_read, *args, **kwargs)

    setattr(parts, "threading", type("T", (), {"Semaphore": TimedSemaphore}))  # noqa: B010
    setattr(basebackup, "split_into_parts", split)  # noqa: B010
    ws = open_workspace(load_stack(config))
    start = time.perf_counter()
    result = backup_postgres.base_backup(ws, ws.postgres())
    report = timers.report(time.perf_counter() - start, imports)
    report["backup_id"] = result.manifest.backup_id
    print(json.dumps(report))


def internal_profile_extract(config: str, backup_id: str, dest: str) -> None:
    """The restore engine's extract step with timers around its parts."""
    started = time.perf_counter()
    from drkit.adapters.repository import codec, fs
    from drkit.config.loader import load_stack
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres import restore as restore_postgres
    from drkit.engines.postgres import tar_restore

    imports = time.perf_counter() - started
    timers = _Timers()
    timers.wrap(tar_restore, "_prepare", "main: create every directory and file")
    timers.wrap(tar_restore, "check_members", "main: check members")
    timers.wrap(restore_postgres, "chown_tree", "main: chown the tree")
    timers.wrap(restore_postgres, "restore_parts", "main: restore_parts (all of it)")
    timers.wrap(fs.FsRepository, "get", "worker: repository get")
    timers.wrap(tar_restore, "sha256", "worker: sha256")
    timers.wrap(codec.Codec, "decode", "worker: zstd decompress")
    timers.wrap(os, "pwrite", "worker: pwrite")
    ws = open_workspace(load_stack(config))
    service = ws.postgres()
    manifest = find_backup(ws.repo, ws.stack.name, [service.name], backup_id)
    start = time.perf_counter()
    restore_postgres._extract(ws, service, manifest, Path(dest), None)
    print(json.dumps(timers.report(time.perf_counter() - start, imports)))


def profile(bench: Bench) -> dict[str, Any]:
    """Untimed extra runs with timers inside drkit: where a backup's and an extraction's time
    goes. Worker times are summed over the threads."""
    me = [sys.executable, str(Path(__file__).resolve())]
    settle(bench.box)
    backup = parse_json_output(
        run_measured([*me, "--internal-profile-backup", str(bench.box.config_path)]).stdout
    )
    bench.made_backups.extend((Path(bench.box.dir) / "repo").glob(f"*/*/backups/{backup['backup_id']}"))
    settle(bench.box)
    dest = bench.restores / "profile-extract"
    argv = [*me, "--internal-profile-extract", str(bench.box.config_path), backup["backup_id"], str(dest)]
    extract = parse_json_output(run_measured(argv).stdout)
    remove(dest)
    return {"backup": backup, "extract": extract}


def render_profile(prof: dict[str, Any]) -> str:
    lines = ["where drkit's time goes (one extra, instrumented run; worker times summed over threads)"]
    for what, data in prof.items():
        lines.append(f"  {what}: {data['wall_s']:.2f} s in the engine")
        for name, t in data["timers"].items():
            lines.append(f"    {name:<52} {t['seconds']:7.2f} s  x{t['calls']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    size_gb: float
    reuse: Path | None
    keep: bool
    json_path: Path
    workdir: Path
    repeat: int
    skip_verify: bool
    profile: bool


def parse_args(argv: list[str] | None) -> Options | tuple[str, list[str]]:
    parser = argparse.ArgumentParser(
        description="Benchmark drkit base backup/restore/verify against pgBackRest, pg_basebackup "
        "and zstd|tar on one sandbox cluster (run as root)."
    )
    parser.add_argument(
        "--size-gb", type=float, default=1.0, help="database size to build, GiB (default 1.0)"
    )
    parser.add_argument(
        "--reuse", type=Path, metavar="DIR", help="use the sandbox in DIR (kept by an earlier --keep)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the sandbox (running) and the work directory"
    )
    parser.add_argument(
        "--json",
        type=Path,
        dest="json_path",
        metavar="PATH",
        help="results file (default bench/results/base_backup-<timestamp>.json)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp"),
        help="parent of the work directory; the postgres user must be able to traverse it",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; every time is the median (default 1)")
    parser.add_argument("--skip-verify", action="store_true", help="leave out (c)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one instrumented backup and extraction: where drkit's time goes",
    )
    parser.add_argument("--internal-extract", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--internal-profile-backup", nargs=1, help=argparse.SUPPRESS)
    parser.add_argument("--internal-profile-extract", nargs=3, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    for internal in ("internal_extract", "internal_profile_backup", "internal_profile_extract"):
        if getattr(ns, internal):
            return internal, list(getattr(ns, internal))
    if ns.repeat < 1:
        parser.error("--repeat must be 1 or more")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Options(
        size_gb=ns.size_gb,
        reuse=ns.reuse.resolve() if ns.reuse else None,
        keep=ns.keep,
        json_path=ns.json_path or BENCH_DIR / "results" / f"base_backup-{stamp}.json",
        workdir=ns.workdir.resolve(),
        repeat=ns.repeat,
        skip_verify=ns.skip_verify,
        profile=ns.profile,
    )


@dataclass
class Prepared:
    sandbox_dir: Path
    box: Sandbox | None = None
    started_here: bool = False  # we started its PostgreSQL: stop it at the end
    build: BuildReport | None = None


def start_sandbox(opts: Options, prepared: Prepared) -> Sandbox:
    directory = prepared.sandbox_dir
    if opts.reuse:
        was_running = Sandbox.load(directory).postgres_runtime().is_running()
        log(f"reusing the sandbox in {directory}")
        prepared.started_here = not was_running
        box = up(directory)
    else:
        log(f"starting a sandbox in {directory}")
        prepared.started_here = True
        box = up(directory, sandbox_options())
    prepared.box = box
    return box


def build_data(opts: Options, box: Sandbox) -> BuildReport | None:
    target = int(opts.size_gb * GIB)
    with psycopg.connect(box.dsn) as conn:
        row = conn.execute("select pg_database_size(current_database())").fetchone()
    size = int(row[0]) if row else 0
    if size < target * 0.9:
        log(f"growing nchat from {human_bytes(size)} to {human_bytes(target)}")
        build = grow(box.dsn, target, log=log)
        log(
            f"built in {build.seconds:.0f} s: {build.messages_added:,} messages, "
            f"database {human_bytes(build.final_bytes)} ({build.within:.1%} of the target)"
        )
        return build
    if size > target * 1.1:
        log(f"warning: the reused database holds {human_bytes(size)}, more than the target")
    return None


def run_all(opts: Options) -> int:
    if os.geteuid() != 0:
        print("run this as root: PostgreSQL and pgBackRest run as the postgres user", file=sys.stderr)
        return 2
    opts.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drkit-bench-", dir=opts.workdir))
    os.chmod(work, 0o755)
    started = datetime.now(UTC)
    prepared = Prepared(opts.reuse or work / "sandbox")
    bench: Bench | None = None
    ok = False
    try:
        box = start_sandbox(opts, prepared)
        prepared.build = build_data(opts, box)
        bench = Bench(box, work)
        make_dir(bench.restores)
        db = table_sizes(box.dsn)
        machine = machine_info(box.dsn)
        bench.segment_size = wal_segment_size(box.dsn)
        log(f"database {human_bytes(db['database_bytes'])}; settling the archive, warming the cache")
        settle(box)
        warm_cache(Path(bench.pg["data_dir"]))
        pgbr = bench.pgbackrest()
        machine["background_busy_before_rounds"] = idle = background_busy()
        if idle > 0.15:
            log(f"warning: {idle:.0%} of the CPUs are busy with other work; the figures will be noisy")
        for n in range(opts.repeat):
            if opts.repeat > 1:
                log(f"round {n + 1} of {opts.repeat}")
            bench.round(pgbr, verify=not opts.skip_verify)
        prof = profile(bench) if opts.profile else None

        steps = bench.summary()
        rows = ratios(steps)
        print()
        print(render(steps, rows, db, opts.repeat))
        if prof:
            print()
            print(render_profile(prof))
        print()
        result = {
            "benchmark": "base_backup",
            "format": 1,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "command": [sys.executable, *sys.argv],
            "rounds": opts.repeat,
            "machine": machine,
            "database": {
                **db,
                "sandbox": str(prepared.sandbox_dir),
                "target_bytes": int(opts.size_gb * GIB),
                "within_10_percent": abs(db["database_bytes"] / (opts.size_gb * GIB) - 1) <= 0.1,
                "reused": opts.reuse is not None,
                "build": asdict(prepared.build) if prepared.build else None,
            },
            "method": {
                "cache": "warm for every step: the data directory is read once before the first "
                "step, each repository right after it is written; caches are never dropped",
                "between_steps": "wait until the WAL archiver has nothing left to push, then sync",
                "compression": "zstd level 1 for drkit and pgBackRest; 2 workers / process-max 2",
                "seconds": "median over the rounds (rounds_s in details)",
                "peak_memory": "max_rss: wait4 ru_maxrss of the command (largest process of its "
                "tree, as /usr/bin/time %M); tree_rss: sampled sum over the tree every "
                f"{SAMPLE_INTERVAL} s; PostgreSQL server processes excluded; highest over rounds",
                "machine_busy_seconds": "CPU seconds the whole machine was busy during the step "
                "(every process, PostgreSQL's included): much more than the step's own CPU "
                "means something else was running",
            },
            "steps": {k: asdict(s) for k, s in steps.items()},
            "ratios": {
                r.name: {
                    "value": r.value,
                    "target": r.target_text,
                    "met": r.met,
                    "description": r.description,
                }
                for r in rows
            },
            "profile": prof,
            "samples": {k: [asdict(s) for s in v] for k, v in bench.samples.items()},
        }
        opts.json_path.parent.mkdir(parents=True, exist_ok=True)
        opts.json_path.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results written to {opts.json_path}")
        ok = True
    finally:
        cleanup(opts, work, prepared, bench)
    return 0 if ok else 1


def cleanup(opts: Options, work: Path, prepared: Prepared, bench: Bench | None) -> None:
    if bench is not None:
        for data_dir in list(bench.running):
            try:
                bench.stop_server(data_dir)
            except (CommandFailed, OSError, subprocess.SubprocessError) as exc:
                log(f"could not stop the server in {data_dir}: {exc}")
    where = prepared.sandbox_dir
    if opts.keep:
        log(f"kept: {work} (sandbox {where}, still running)")
        log(f"  reuse it: {sys.executable} {Path(__file__)} --reuse {where}")
        log(f"  stop it:  {' '.join(drkit_command())} sandbox down --dir {where}")
        return
    if bench is not None and opts.reuse:
        bench.cleanup_backups()  # the reused sandbox keeps its repository as it was
    ours = prepared.started_here or not opts.reuse
    if ours and (where / "sandbox.json").exists():
        try:
            down(where)
        except Exception as exc:  # cleanup goes on
            log(f"sandbox down failed: {exc}")
    remove(work)
    log("cleaned up")


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if isinstance(parsed, tuple):
        name, args = parsed
        internals: dict[str, Callable[..., None]] = {
            "internal_extract": internal_extract,
            "internal_profile_backup": internal_profile_backup,
            "internal_profile_extract": internal_profile_extract,
        }
        internals[name](*args)
        return 0
    return run_all(parsed)


if __name__ == "__main__":
    sys.exit(main())
