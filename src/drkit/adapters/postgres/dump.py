"""Logical dumps: pg_dump -Fc (uncompressed: drkit compresses with zstd) and globals."""

from __future__ import annotations

from collections.abc import Callable

from drkit.adapters.postgres.client import ToolLogin
from drkit.domain.backup import StoredFile
from drkit.infra.parts import split_into_parts
from drkit.infra.proc import stream_tool


def dump_args(login: ToolLogin, bin_dir: str | None) -> list[str]:
    return [
        login.tool("pg_dump", bin_dir),
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--dbname",
        login.dsn,
    ]


def globals_args(login: ToolLogin, bin_dir: str | None) -> list[str]:
    return [login.tool("pg_dumpall", bin_dir), "--globals-only", "--no-password", "--dbname", login.dsn]


def run_dump(
    args: list[str],
    sink: Callable[[int, bytes], StoredFile],
    *,
    login: ToolLogin,
    part_size: int,
    parallel: int,
    observe: Callable[[bytes], None] | None = None,
    timeout: float = 6 * 3600,
) -> tuple[list[StoredFile], int]:
    """Run pg_dump or pg_dumpall; its stdout cut into parts, each handed to `sink` in a worker."""
    return stream_tool(
        args,
        lambda read: split_into_parts(read, sink, part_size=part_size, parallel=parallel, observe=observe),
        timeout=timeout,
        env=login.env,
    )
