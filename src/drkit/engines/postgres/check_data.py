"""`drkit check`: nothing foreign in PGDATA. pg_basebackup copies every file of the data
directory (but pgsql_tmp* and a few of PostgreSQL's own): a restore's leftover (the WAL
prefetch spool of a killed run, an old data directory kept inside a container's volume)
makes every later base backup bigger, and a file the database user cannot read (drkit
runs as root) makes every later backup fail with "Permission denied"."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from drkit.domain.checks import CheckResult, Status
from drkit.domain.stack import Service
from drkit.infra.aside import is_aside_name

LOOKED_AT = 2000  # entries under one foreign directory whose owner is read


def data_dir_of(service: Service) -> Path | None:
    spec = service.runtime
    if spec.type == "compose":
        from drkit.engines.postgres.restore_compose import locate

        return locate(service).host_dir
    return Path(spec.data_dir) if spec.data_dir else None


def foreign_entries(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """(drkit's entries in the data directory, entries another user owns), top level and
    inside drkit's. Moved-aside folders named pgsql_tmp.* are left out (base backups skip
    them; `old data kept` lists them)."""
    owner = data_dir.stat().st_uid
    drkits: list[Path] = []
    alien: list[Path] = []
    for entry in sorted(data_dir.iterdir()):
        name = entry.name
        if name.startswith("pgsql_tmp"):
            continue
        mine = name.lstrip(".").startswith("drkit") or is_aside_name(name)
        if mine:
            drkits.append(entry)
        for path in [entry, *(_under(entry) if mine else [])]:
            try:
                if path.lstat().st_uid != owner:
                    alien.append(path)
            except OSError:
                continue
    return drkits, alien


def _under(directory: Path) -> list[Path]:
    out: list[Path] = []
    if not directory.is_dir() or directory.is_symlink():
        return out
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            out.append(Path(dirpath) / name)
            if len(out) >= LOOKED_AT:
                return out
    return out


def check_foreign(service: Service) -> CheckResult:
    name = f"{service.name}: PGDATA"
    data_dir = data_dir_of(service)
    if data_dir is None or not data_dir.is_dir():
        return CheckResult(name, Status.OK, "no data directory on this host to look at")
    drkits, alien = foreign_entries(data_dir)
    if not drkits and not alien:
        return CheckResult(name, Status.OK, f"nothing of drkit's and nothing of another owner in {data_dir}")
    remove = "; ".join(f"rm -rf -- {shlex.quote(str(p))}" for p in drkits)
    if alien:
        shown = ", ".join(str(p) for p in alien[:5]) + (
            f" (+{len(alien) - 5} more)" if len(alien) > 5 else ""
        )
        return CheckResult(
            name,
            Status.FAILED,
            f"files the database user does not own in {data_dir}: {shown}; pg_basebackup cannot read "
            f"them, so base backups fail"
            + (f"; drkit's leftovers there, remove: {remove}" if remove else ""),
        )
    return CheckResult(
        name,
        Status.WARNING,
        f"drkit's leftovers in {data_dir}: every base backup carries them; remove: {remove}",
        critical=False,
    )
