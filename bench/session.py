"""One run of the benchmark: its sandbox and work directory, the samples of every step, and
what it made (backups in drkit's repository, servers it started) so it can clean up."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import MIB, PG_USER, drkit_command, log
from bench.host import remove
from bench.measure import CommandFailed, run_quiet
from bench.report import Step, human_bytes, summarize
from drkit.sandbox.stack import Sandbox


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

    def stop_server(self, data_dir: Path) -> None:
        run_quiet([self.pg_tool("pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w"], user=PG_USER)
        if data_dir in self.running:
            self.running.remove(data_dir)

    def stop_servers(self) -> None:
        """Stop every server this run started and left running (a step failed)."""
        for data_dir in list(self.running):
            try:
                self.stop_server(data_dir)
            except (CommandFailed, OSError, subprocess.SubprocessError) as exc:
                log(f"could not stop the server in {data_dir}: {exc}")

    def cleanup_backups(self) -> None:
        for directory in self.made_backups:
            (directory / "manifest.json").unlink(missing_ok=True)  # uncommit first
            remove(directory)
