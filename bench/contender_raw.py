"""The raw tools, as references: (f) pg_basebackup to a plain tar, (g) zstd -1 of that tar and
the one-stream restore by hand, `zstd -d | tar -x`."""

from __future__ import annotations

from pathlib import Path

from bench.host import dir_size, make_dir, remove, settle
from bench.measure import run_measured
from bench.report import Step
from bench.session import Bench


def plain_basebackup(bench: Bench) -> Path:
    dest = bench.work / "plain" / "basebackup"
    make_dir(dest.parent)
    run = run_measured(
        [
            bench.pg_tool("pg_basebackup"),
            "--dbname",
            bench.box.dsn,
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
    bench.add(
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


def zstd_reference(bench: Bench, tar: Path) -> None:
    compressed = tar.with_name("base.tar.zst")
    run = run_measured(["zstd", "-1", "-T2", "-q", "-f", str(tar), "-o", str(compressed)])
    bench.add(
        Step.of(
            "zstd_compress",
            "(g) zstd -1 -T2 of the (f) tar (reference)",
            run,
            bytes=compressed.stat().st_size,
            bytes_what="stored",
        )
    )
    compressed = compressed.rename(bench.work / "plain" / compressed.name)
    remove(tar.parent)  # the plain backup
    settle(bench.box)
    dest = make_dir(bench.restores / "zstd-tar", 0o700, postgres=False)
    pipeline = f"zstd -d -q -c {compressed} | tar -x -f - -C {dest}"
    run = run_measured(["bash", "-o", "pipefail", "-c", pipeline])
    bench.add(
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
