"""Give files to the database's OS user when drkit runs as root (PostgreSQL refuses root)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def chown_tree(path: Path, os_user: str | None) -> None:
    """chown -R (without following symlinks; a single file too); a no-op unless we are root
    and a user is set."""
    if not os_user or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(os_user)
    if path.is_symlink() or not path.is_dir():  # a link to a directory: the link only
        os.lchown(path, entry.pw_uid, entry.pw_gid)
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def traversable_by(path: Path, os_user: str | None) -> Path | None:
    """The first ancestor of `path` that `os_user` cannot enter, or None when all can be.
    (os.access answers for us, not for the database's OS user.)"""
    if not os_user or os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(os_user)
    groups = {entry.pw_gid}
    for probe in [path, *path.parents]:
        try:
            st = probe.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == entry.pw_uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return probe
    return None
