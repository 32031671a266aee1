"""What every module of the base backup benchmark shares: sizes, names, paths and the log line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from drkit.sandbox.stack import SandboxOptions

GIB = 1 << 30
MIB = 1 << 20
BENCH_DIR = Path(__file__).resolve().parent
SCRIPT = BENCH_DIR / "base_backup.py"  # the entry point; it re-invokes itself for the children
PG_USER = "postgres"
STANZA = "bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def drkit_command() -> list[str]:
    """How drkit runs here (and how the sandbox's archive_command runs it)."""
    return [sys.executable, "-m", "drkit"]


def sandbox_options() -> SandboxOptions:
    """PostgreSQL alone: the other services of the sandbox play no part here."""
    try:
        return SandboxOptions(services=("postgres",))  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # a drkit whose sandbox is PostgreSQL only
        return SandboxOptions()
