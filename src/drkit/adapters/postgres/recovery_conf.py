"""Recovery settings the PostgreSQL 12+ way: postgresql.auto.conf plus recovery.signal.

(recovery.conf was removed in PostgreSQL 12; a server that finds one refuses to start.)
"""

from __future__ import annotations

from pathlib import Path


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_recovery_settings(data_dir: Path, settings: dict[str, str], *, comment: str) -> None:
    """Append settings (later lines win in postgresql.auto.conf) and create recovery.signal."""
    lines = [f"\n# {comment}\n"] + [f"{k} = {quote(v)}\n" for k, v in settings.items()]
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.writelines(lines)
    (data_dir / "recovery.signal").touch()
    stale = data_dir / "recovery.conf"
    if stale.exists():
        stale.rename(data_dir / "recovery.conf.disabled-by-drkit")


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
