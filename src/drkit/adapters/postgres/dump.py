"""Logical dumps: pg_dump -Fc (uncompressed: drkit compresses with zstd) and globals."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable

from drkit.domain.backup import StoredFile
from drkit.domain.errors import ToolError
from drkit.infra.parts import split_into_parts
from drkit.infra.proc import find_tool, last_line


def dump_args(dsn: str, bin_dir: str | None) -> list[str]:
    return [
        find_tool("pg_dump", bin_dir),
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--dbname",
        dsn,
    ]


def globals_args(dsn: str, bin_dir: str | None) -> list[str]:
    return [find_tool("pg_dumpall", bin_dir), "--globals-only", "--no-password", "--dbname", dsn]


def run_dump(
    args: list[str],
    sink: Callable[[int, bytes], StoredFile],
    *,
    part_size: int,
    parallel: int,
    observe: Callable[[bytes], None] | None = None,
    timeout: float = 6 * 3600,
) -> tuple[list[StoredFile], int]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(stderr.read()), daemon=True)
    reader.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        parts, total = split_into_parts(
            proc.stdout.read, sink, part_size=part_size, parallel=parallel, observe=observe
        )
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        timer.cancel()
        reader.join(timeout=10)
    if code != 0:
        tool = args[0].rsplit("/", 1)[-1]
        raise ToolError(f"{tool} failed: {last_line(b''.join(err).decode(errors='replace'))}")
    return parts, total
