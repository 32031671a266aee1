"""README's "Using drkit" block, run top to bottom on a fresh sandbox, line by line, as an
operator would type it (issue 18, item 11): every line exits 0.

Each line runs in `bash` as written, with `drkit` on PATH being this venv's `python -m drkit`
and the environment a line exports kept for the next ones. Only what a reader would change
is changed, each in a table below with its reason: paths (SUBSTITUTED), placeholders filled
with real values taken from earlier output (PLACEHOLDERS), the incident or setting a line
needs, given to the sandbox just before it (PREPARED), and the confirmation a line asks on a
terminal (ANSWERED). A line no table knows runs unchanged; SKIPPED is empty: every line runs.
`schedule run` never ends: it is stopped with SIGTERM once it said it started.

Measured on the shared 2-core machine: 27 lines in 274 s (the test: 278 s) at load 2.5, and
349 s (368 s) at load 5; `drill --all` took 177 s and 206 s of it. That line is also the test
of the drill rotation (check_drills: every drill passed with its measures and report, the RPO
of data-loss, the live stack untouched), which test_drills.py once repeated on its own
sandbox."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.postgres.client import connect
from drkit.config.loader import load_stack
from drkit.domain.stack import RuntimeSpec
from drkit.engines.core.journals import list_journals
from drkit.engines.core.workspace import open_workspace
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.sandbox import stack as sandbox_stack

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"

# Lines that do not run, with the reason. Empty: every line of the block runs.
SKIPPED: dict[str, str] = {}

# README text -> (what it becomes, why). Paths: the sandbox and the restore target live in the
# test's own directory (under /tmp, where the database user can reach them).
SUBSTITUTED: dict[str, tuple[str, str]] = {
    "/tmp/sb": ("{work}/sb", "the sandbox in the test's own directory"),
    "/srv/pg-restored": ("{work}/pg-restored", "a restore target in the test's own directory"),
    '"2026-11-25 14:30:00Z"': ('"{T}"', "a time in this sandbox's recovery window: T, before the incident"),
    "'c1'": ("'{channel}'", "the channel whose messages the incident deleted (sandbox ids are uuids)"),
}

# Placeholders (a shell word of its own) -> why and where the value comes from.
PLACEHOLDERS: dict[str, str] = {
    "T": "the moment taken just before the incident (PREPARED), so a commit follows it",
    "ID": "the newest set of `drkit backups list -o json` (the one `backup --all` just wrote)",
    "RUN_ID": "the newest drill of `drkit drills list -o json`",
}

# Lines that ask before they change live data: answered `y` on a terminal, as an operator
# would (stdin is a pseudo-terminal for them; every other line has no terminal, so an
# unexpected question fails its line).
ANSWERED: dict[str, str] = {
    "drkit recover data-loss": "asks before it copies rows back into the live database",
    "drkit restore postgres --table": "asks before it brings a table back into the live database",
}


@dataclass
class Run:
    work: Path
    env: dict[str, str]
    values: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    standby: RuntimeSpec | None = None

    @property
    def sandbox(self) -> Path:
        return self.work / "sb"

    @property
    def config(self) -> Path:
        return self.sandbox / "stack.yaml"

    @property
    def dsn(self) -> str:
        return str(load_stack(self.config).services["postgres"].dsn)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        with connect(self.dsn) as conn:
            cur = conn.execute(statement, params)
            row = cur.fetchone() if cur.description is not None else None
            return row[0] if row else None

    def drkit_json(self, *args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "drkit", "--config", str(self.config), "--output", "json", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


# --- what a line needs, given to the sandbox just before it -------------------------------


def incident(run: Run) -> str:
    """T, then a mistaken delete of a channel's messages (those without attachments, which
    reference them), committed after T: the target-time lines go back to T; the incremental
    backup that follows ends with a WAL switch, so the delete's commit is archived."""
    run.values["channel"] = str(
        run.sql(
            "select channel_id from nchat_messages m where not exists (select 1 from nchat_attachments a "
            "where a.message_id = m.id) group by 1 order by count(*) desc limit 1"
        )
    )
    channel = run.values["channel"]
    count = "select count(*) from nchat_messages where channel_id = %s"
    run.values["messages_before"] = str(run.sql(count, (channel,)))
    # T has whole seconds, strictly after what the line before did (its backups end within
    # the second it ended in) and strictly before the delete
    t = next_second(datetime.now(UTC))
    run.values["T"] = t.strftime("%Y-%m-%d %H:%M:%SZ")
    next_second(t)
    run.sql(
        "delete from nchat_messages m where channel_id = %s and not exists "
        "(select 1 from nchat_attachments a where a.message_id = m.id)",
        (channel,),
    )
    deleted = int(run.values["messages_before"]) - int(run.sql(count, (channel,)))
    assert deleted > 0
    return f"T = {run.values['T']}, then {deleted} messages of channel {run.values['channel']} deleted"


def next_second(after: datetime) -> datetime:
    """Wait until the clock is in a later whole second than `after`; return that second."""
    floor = after.replace(microsecond=0)
    wait_for(lambda: datetime.now(UTC).replace(microsecond=0) > floor, timeout=5, what="the next second")
    return datetime.now(UTC).replace(microsecond=0)


def drop_attachments(run: Run) -> str:
    run.values["attachments"] = str(run.sql("select count(*) from nchat_attachments"))
    run.sql("drop table nchat_attachments")
    return f"table nchat_attachments ({run.values['attachments']} rows) dropped"


def add_offsite(run: Run) -> str:
    doc = yaml.safe_load(run.config.read_text())
    doc["repositories"]["offsite"] = {"type": "fs", "path": str(run.work / "offsite")}
    run.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return "repository `offsite` (fs) added to stack.yaml"


def add_standby(run: Run) -> str:
    doc = yaml.safe_load(run.config.read_text())
    pg = doc["services"]["postgres"]
    port = free_port()
    runtime = {
        **pg["runtime"],
        "data_dir": str(run.sandbox / "standby1" / "data"),
        "port": port,
        "log_file": str(run.sandbox / "logs" / "standby1.log"),
    }
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=nchat"
    pg["replication"] = {"standbys": {"standby1": {"dsn": dsn, "runtime": runtime}}}
    run.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    run.standby = RuntimeSpec(
        type="local",
        data_dir=runtime["data_dir"],
        bin_dir=runtime.get("bin_dir"),
        port=port,
        os_user=runtime.get("os_user"),
        log_file=runtime["log_file"],
    )
    return f"a replication: block naming standby1 (local, port {port}) added to stack.yaml"


def live_timelines(run: Run) -> list[str]:
    wal = run.sandbox / "repo" / "sandbox" / "postgres" / "wal"
    return sorted(p.name for p in wal.iterdir()) if wal.exists() else []


def before_drills(run: Run) -> str:
    """What the drills must leave as it was: the live data and the live archive's timelines."""
    run.values["drill_messages"] = str(run.sql("select count(*) from nchat_messages"))
    run.values["drill_timelines"] = " ".join(live_timelines(run))
    run.values["drills_after"] = datetime.now(UTC).isoformat()
    return f"{run.values['drill_messages']} messages, timelines {run.values['drill_timelines']} noted"


def stop_standby(run: Run) -> str:
    if run.standby is None:
        return "no standby"
    LocalPostgres(run.standby).stop()
    return "the standby the test added stopped (sandbox down knows only the sandbox's services)"


# command (the line without its comment, from its start) -> (what is done before it, why)
PREPARED: dict[str, tuple[Callable[[Run], str], str]] = {
    "drkit backup --type incremental": (incident, "the data-loss incident the target-time lines undo"),
    "drkit restore postgres --table": (drop_attachments, "the dropped table this line brings back"),
    "drkit drill --all": (before_drills, "the live stack as it was, which the drills must not touch"),
    "drkit sync --to offsite": (add_offsite, "a second repository, named offsite"),
    "drkit replica init standby1": (add_standby, "a replication: block naming standby1"),
    "drkit sandbox down": (stop_standby, "the standby added above, stopped first"),
}


def newest_set(run: Run) -> str:
    sets = run.drkit_json("backups", "list")["sets"]
    return str(max(sets, key=lambda s: s["created_at"])["set_id"])


def newest_drill(run: Run) -> str:
    runs = [r for r in run.drkit_json("drills", "list")["runs"] if r["kind"] == "drill"]
    return str(max(runs, key=lambda r: r["started_at"])["run_id"])


VALUES: dict[str, Callable[[Run], str]] = {
    "T": lambda run: run.values["T"],
    "ID": newest_set,
    "RUN_ID": newest_drill,
}


# --- reading and running the block ------------------------------------------------------


def block_lines() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Using drkit\n") :]
    match = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert match, "no ```sh block under ## Using drkit"
    return [line for line in match.group(1).splitlines() if line.strip()]


def command_of(line: str) -> str:
    """The line without its trailing `# comment` (a # outside quotes after a space)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def fill(run: Run, command: str) -> tuple[str, list[str]]:
    """The command as it runs, and what was changed in it."""
    changed = []
    for text, (becomes, why) in SUBSTITUTED.items():
        if text in command:
            value = becomes.format(work=run.work, **run.values)
            command = command.replace(text, value)
            changed.append(f"{text} -> {value} ({why})")
    words = command.split(" ")
    for i, word in enumerate(words):
        if word in PLACEHOLDERS:
            words[i] = shlex.quote(VALUES[word](run))  # a time has a space
            changed.append(f"{word} -> {words[i]} ({PLACEHOLDERS[word]})")
    command = " ".join(words)
    unknown = [w for w in re.findall(r"(?<![=\w$])[A-Z][A-Z_]*(?![\w=])", command) if w != "UTC"]
    assert not unknown, f"placeholders the test does not know in {command!r}: {unknown}"
    return command, changed


def wrapper(work: Path) -> Path:
    """`drkit` on PATH: this venv's `python -m drkit`, recording each process id (the
    scheduler is stopped by its id)."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    script = bin_dir / "drkit"
    script.write_text(f'#!/bin/sh\necho $$ >> "{work}/pids"\nexec {sys.executable} -m drkit "$@"\n')
    script.chmod(0o755)
    return bin_dir


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_line(
    run: Run, command: str, *, answer: bool, timeout: float = 900.0, until: str | None = None
) -> Outcome:
    """Run one line in bash; keep the environment it leaves. `until`: a line that never ends,
    stopped with SIGTERM (to the drkit process by its id) once its stdout shows that text."""
    out, err, env_file = run.work / "line.out", run.work / "line.err", run.work / "line.env"
    script = f"{command}\nrc=$?\nenv -0 > {env_file}\nexit $rc\n"
    master = None
    stdin: Any = subprocess.DEVNULL
    if answer:
        master, slave = pty.openpty()
        stdin = slave
    started = time.monotonic()
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=run.work,
            env=run.env,
            stdin=stdin,
            stdout=o,
            stderr=e,
            start_new_session=True,
        )
    if master is not None:
        os.close(stdin)
        os.write(master, b"y\n" * 5)  # read line by line, as typed; left over ones are dropped
    try:
        if until is not None:
            wait_for(lambda: until in out.read_text() or proc.poll() is not None, timeout=120, what=until)
            assert proc.poll() is None, out.read_text() + err.read_text()
            pid = int((run.work / "pids").read_text().split()[-1])
            assert b"schedule\0run" in Path(f"/proc/{pid}/cmdline").read_bytes()
            os.kill(pid, signal.SIGTERM)
        code = proc.wait(timeout=timeout)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test started for the line
            proc.wait()
        raise
    finally:
        if master is not None:
            os.close(master)
    seconds = time.monotonic() - started
    if code == 0:
        run.env = dict(kv.split("=", 1) for kv in env_file.read_text().split("\0") if "=" in kv)
    return Outcome(code, out.read_text(), err.read_text(), seconds)


# --- what some lines must have done (beyond exit 0) ---------------------------------------


def check_outcome(run: Run, command: str, outcome: Outcome) -> None:
    if command.startswith("drkit sandbox up"):
        assert run.config.is_file()
    elif command.startswith("drkit recover data-loss"):
        back = run.sql("select count(*) from nchat_messages where channel_id = %s", (run.values["channel"],))
        assert str(back) == run.values["messages_before"], outcome.stdout
    elif command.startswith("drkit restore postgres --table"):
        assert str(run.sql("select count(*) from nchat_attachments")) == run.values["attachments"]
    elif command.startswith("drkit drill --all"):
        check_drills(run, outcome)
    elif command.startswith("drkit drills list"):
        assert (run.work / "r.html").stat().st_size > 0
    elif command.startswith("drkit schedule list && drkit schedule run"):
        assert "schedule: stopped" in outcome.stdout and "Traceback" not in outcome.stderr, outcome.stdout
    elif command.startswith("drkit sandbox down"):
        status = run.drkit_json("sandbox", "status", "--dir", str(run.sandbox))
        assert not [name for name, svc in status["services"].items() if svc["running"]], status


ROTATION = ["db-corruption", "service-redis", "data-loss", "full-outage"]


def check_drills(run: Run, outcome: Outcome) -> None:
    """Every drill of the rotation passed on an isolated copy restored from the live backups,
    with its measures and report; the live stack and its archive were never touched."""
    ws = open_workspace(load_stack(run.config))
    after = datetime.fromisoformat(run.values["drills_after"])
    journals = [
        j.to_dict() for j in list_journals(ws)[0] if j.kind.value == "drill" and j.started_at >= after
    ]
    assert [j["scenario"] for j in journals] == ROTATION, outcome.stdout
    for journal in journals:
        assert journal["verdict"] == "passed", (journal["scenario"], journal["error"])
        assert journal["failure_at"] is not None
        assert journal["steps"][-1]["name"] == "verify-state"
        assert journal["steps"][-1]["status"] == "succeeded"
        assert journal["measures"], journal["scenario"]
        for measure in journal["measures"]:
            assert measure["rto_seconds"] is not None and measure["rto_seconds"] >= 0
            assert measure["rto_met"] in (True, None)
        html = (run.work / "reports" / f"{journal['run_id']}.html").read_text()
        assert "PASSED" in html.upper()
    data_loss = next(j for j in journals if j["scenario"] == "data-loss")
    pg = next(m for m in data_loss["measures"] if m["service"] == "postgres")
    gap = datetime.fromisoformat(data_loss["failure_at"]) - datetime.fromisoformat(
        data_loss["parameters"]["target_time"]
    )
    assert abs(pg["rpo_seconds"] - gap.total_seconds()) < 1.0  # RPO = the failure minus T recovered
    assert str(run.sql("select count(*) from nchat_messages")) == run.values["drill_messages"]
    assert " ".join(live_timelines(run)) == run.values["drill_timelines"]


@pytest.fixture
def work() -> Any:
    # Not pytest's tmp_path: as root that lies under a 0700 directory the database user
    # (which runs archive_command and the restores) cannot traverse.
    directory = Path(tempfile.mkdtemp(prefix="drkit-readme-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    if (directory / "sb" / "stack.yaml").exists():
        for spec in standby_specs(directory / "sb" / "stack.yaml"):
            LocalPostgres(spec).stop()
        sandbox_stack.down(directory / "sb")
    shutil.rmtree(directory, ignore_errors=True)


def standby_specs(config: Path) -> list[RuntimeSpec]:
    replication = load_stack(config).services["postgres"].replication
    return [m.runtime for m in replication.members[1:]] if replication else []


def step(run: Run, command: str) -> None:
    """One line: what it needs first, its placeholders filled, run; it must exit 0."""
    for start, (prepare, why) in PREPARED.items():
        if command.startswith(start):
            run.log.append(f"  before it ({why}): {prepare(run)}")
    filled, changed = fill(run, command)
    asks = [why for start, why in ANSWERED.items() if command.startswith(start)]
    never_ends = "drkit schedule run" in command
    outcome = run_line(run, filled, answer=bool(asks), until="schedule: started" if never_ends else None)
    how = "substituted" if changed else "run"
    run.log.append(f"{how:11} {outcome.seconds:6.1f}s exit {outcome.code}  {filled}")
    run.log += [f"    {c}" for c in changed]
    run.log += [f"    answered y on a terminal ({why})" for why in asks]
    if never_ends:
        run.log.append("    stopped with SIGTERM (by its process id) once it said it started")
    (run.work / "readme-run.log").write_text("\n".join(run.log) + "\n")
    assert outcome.code == 0, f"{filled}\n{outcome.stdout[-3000:]}\n{outcome.stderr[-3000:]}"
    check_outcome(run, command, outcome)


def test_the_readme_block_runs_top_to_bottom_on_a_fresh_sandbox(work: Path) -> None:
    lines = block_lines()
    assert lines[0].startswith("drkit sandbox up --dir") and lines[-1].startswith("drkit sandbox down")
    env = {k: v for k, v in os.environ.items() if k != "DRKIT_CONFIG"}
    env["PATH"] = f"{wrapper(work)}:{env['PATH']}"
    run = Run(work, env)
    began = time.monotonic()
    for line in lines:
        command = command_of(line)
        if command in SKIPPED:
            run.log.append(f"skipped     {command}: {SKIPPED[command]}")
            continue
        step(run, command)
    total = time.monotonic() - began
    print("\n".join([*run.log, f"the block: {len(lines)} lines in {total:.0f}s"]))
