"""Recovery settings the PostgreSQL 12+ way: postgresql.auto.conf plus recovery.signal.

(recovery.conf was removed in PostgreSQL 12; a server that finds one refuses to start.)
"""

from __future__ import annotations

from pathlib import Path

from drkit.infra.atomic import write_atomic


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


RECOVERY_KEYS = frozenset(
    {
        "restore_command",
        "recovery_target",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_xid",
        "recovery_target_lsn",
        "recovery_target_inclusive",
        "recovery_target_action",
        "recovery_target_timeline",
    }
)


def write_recovery_settings(data_dir: Path, settings: dict[str, str], *, comment: str) -> None:
    """Set these in postgresql.auto.conf and create recovery.signal. Recovery settings left
    there by an earlier restore (a backup of a restored server carries them) are removed
    first: a stale recovery_target_name would stop this recovery at the old target."""
    auto = data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in (auto.read_text().splitlines(keepends=True) if auto.exists() else [])
        if line.split("=", 1)[0].strip() not in RECOVERY_KEYS | settings.keys()
    ]
    lines = [f"\n# {comment}\n"] + [f"{k} = {quote(v)}\n" for k, v in settings.items()]
    write_atomic(auto, "".join(kept + lines).encode(), mode=0o600)
    (data_dir / "recovery.signal").touch()
    stale = data_dir / "recovery.conf"
    if stale.exists():
        stale.rename(data_dir / "recovery.conf.disabled-by-drkit")


def archive_command(drkit_argv: list[str], config: str, service: str) -> str:
    """archive_command that runs `drkit wal-push %p` into the repository of `config`."""
    parts = [f'"{a}"' for a in drkit_argv]
    return " ".join([*parts, "--config", f'"{config}"', "wal-push", "--service", service, '"%p"'])


def target_timeline_setting(timeline: int | None) -> dict[str, str]:
    """recovery_target_timeline: the planned timeline by number, so recovery follows the
    branch the plan checked (with 'latest', a newer branch archived meanwhile, or one that
    does not descend from the backup, would be taken or refused instead); 'latest' when
    no timeline was planned."""
    return {"recovery_target_timeline": str(timeline) if timeline is not None else "latest"}


def restore_command(drkit_argv: list[str], config: str, service: str) -> str:
    """restore_command that runs `drkit wal-fetch %f %p` (through /bin/sh, so quote paths)."""
    parts = [f'"{a}"' for a in drkit_argv]
    return " ".join([*parts, "--config", f'"{config}"', "wal-fetch", "--service", service, '"%f"', '"%p"'])
