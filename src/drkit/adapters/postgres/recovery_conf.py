"""Recovery settings the PostgreSQL 12+ way: postgresql.auto.conf plus recovery.signal.

(recovery.conf was removed in PostgreSQL 12; a server that finds one refuses to start.)

Two layers of quoting meet here. archive_command and restore_command run through /bin/sh
after PostgreSQL replaces %p, %f, %r and %%: every value drkit puts into one is quoted with
shlex.quote and has its `%` doubled (`pg_shell_command`). The setting itself is then a
quoted string in a configuration file, where `'` and `\\` are special (`quote`).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from drkit.domain.errors import UsageError
from drkit.infra.atomic import write_atomic


def quote(value: str) -> str:
    """A configuration-file string: `'` doubled, `\\` escaped; a line break cannot be written."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise UsageError(f"a PostgreSQL setting cannot hold a line break or NUL: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def shell_word(value: str) -> str:
    """One argument of archive_command/restore_command: shell-quoted, `%` doubled (PostgreSQL
    would otherwise read `%p` in a path as a placeholder)."""
    return shlex.quote(value).replace("%", "%%")


def pg_shell_command(argv: list[str], *placeholders: str) -> str:
    """`argv` quoted word by word, then PostgreSQL's placeholders (`%f`, `%p`) as is."""
    for p in placeholders:
        if p not in ("%f", "%p", "%r"):
            raise ValueError(f"not a PostgreSQL placeholder: {p!r}")
    return " ".join([*(shell_word(a) for a in argv), *placeholders])


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
    first: a stale recovery_target_name would stop this recovery at the old target.
    Neither file is followed if it is a symlink (the directory may belong to the database's
    OS user while drkit runs as root); the new postgresql.auto.conf replaces the old by rename."""
    if "\n" in comment or "\r" in comment:
        raise UsageError("the comment of recovery settings must be one line")
    auto = data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in _read_nofollow(auto).splitlines(keepends=True)
        if line.split("=", 1)[0].strip() not in RECOVERY_KEYS | settings.keys()
    ]
    lines = [f"\n# {comment}\n"] + [f"{k} = {quote(v)}\n" for k, v in settings.items()]
    write_atomic(auto, "".join(kept + lines).encode(), mode=0o600)
    nofollow = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(data_dir / "recovery.signal", nofollow, 0o600))
    stale = data_dir / "recovery.conf"
    if stale.exists():
        stale.rename(data_dir / "recovery.conf.disabled-by-drkit")


def archive_command(drkit_argv: list[str], config: str, service: str) -> str:
    """archive_command that runs `drkit wal-push %p` into the repository of `config` (through
    /bin/sh: every word quoted)."""
    return pg_shell_command([*drkit_argv, "--config", config, "wal-push", "--service", service], "%p")


def target_timeline_setting(timeline: int | None) -> dict[str, str]:
    """recovery_target_timeline: the planned timeline by number, so recovery follows the
    branch the plan checked (with 'latest', a newer branch archived meanwhile, or one that
    does not descend from the backup, would be taken or refused instead); 'latest' when
    no timeline was planned."""
    return {"recovery_target_timeline": str(timeline) if timeline is not None else "latest"}


def _read_nofollow(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def restore_command(drkit_argv: list[str], config: str, service: str) -> str:
    """restore_command that runs `drkit wal-fetch %f %p` (through /bin/sh: every word quoted)."""
    return pg_shell_command([*drkit_argv, "--config", config, "wal-fetch", "--service", service], "%f", "%p")
