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


def write_recovery_settings(data_dir: Path, settings: dict[str, str], *, comment: str) -> None:
    """Append settings (later lines win in postgresql.auto.conf) and create recovery.signal.
    Neither file is followed if it is a symlink (the directory may belong to the database's
    OS user while drkit runs as root)."""
    if "\n" in comment or "\r" in comment:
        raise UsageError("the comment of recovery settings must be one line")
    lines = [f"\n# {comment}\n"] + [f"{k} = {quote(v)}\n" for k, v in settings.items()]
    nofollow = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(data_dir / "postgresql.auto.conf", nofollow | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as conf:
        conf.writelines(lines)
    os.close(os.open(data_dir / "recovery.signal", nofollow, 0o600))
    stale = data_dir / "recovery.conf"
    if stale.exists():
        stale.rename(data_dir / "recovery.conf.disabled-by-drkit")


def restore_command(drkit_argv: list[str], config: str, service: str) -> str:
    """restore_command that runs `drkit wal-fetch %f %p` (through /bin/sh: every word quoted)."""
    return pg_shell_command([*drkit_argv, "--config", config, "wal-fetch", "--service", service], "%f", "%p")
