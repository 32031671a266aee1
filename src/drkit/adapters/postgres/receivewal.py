"""pg_receivewal: stream WAL from outside the server through a replication slot."""

from __future__ import annotations

from pathlib import Path

from drkit.adapters.postgres.client import ToolLogin


def create_slot_args(login: ToolLogin, bin_dir: str | None, slot: str) -> list[str]:
    return [
        login.tool("pg_receivewal", bin_dir),
        "--dbname",
        login.dsn,
        "--slot",
        slot,
        "--create-slot",
        "--if-not-exists",
        "--no-password",
    ]


def receivewal_args(login: ToolLogin, bin_dir: str | None, slot: str, directory: Path) -> list[str]:
    # --synchronous: flush each write at once and report it, so the RPO is ~0.
    # --no-loop: we supervise restarts ourselves (to push what it wrote before restarting).
    return [
        login.tool("pg_receivewal", bin_dir),
        "--dbname",
        login.dsn,
        "--slot",
        slot,
        "--directory",
        str(directory),
        "--synchronous",
        "--no-loop",
        "--no-password",
    ]
