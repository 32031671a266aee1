"""Give files to the database's OS user when drkit runs as root (PostgreSQL refuses root)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def chown_tree(path: Path, os_user: str | None) -> None:
    """chown -R (without following symlinks); a no-op unless we are root and a user is set."""
    if not os_user or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(os_user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
