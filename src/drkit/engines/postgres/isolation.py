"""A restored server is kept away from clients until drkit has checked that it reached its
plan; only then is it started for them.

While it recovers, the server runs with `cluster_name = drkit-restore` (recorded in its
postmaster.opts and process titles, so a later run knows it for a restore that did not
finish), where clients do not look for it (a local server: on a free port, its addresses
and socket directory as configured, so drkit reaches it the way its DSN says and the same
pg_hba.conf rules apply; in a container: no TCP at all, only the container's own socket
that drkit's psql uses) and with an archive_command that fails, so nothing it writes
reaches the archive before it is accepted (it keeps its `.ready` files and archives them
once started for real).
Accepted, it is stopped and started again with its own settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from drkit.infra.atomic import write_atomic

MARK = "drkit-restore"
BEGIN = "# drkit: until the restore is checked (removed then)"
END = "# drkit: end"
DISABLED = "#drkit-isolated# "
CONTAINER_SETTINGS = {"cluster_name": MARK, "listen_addresses": "", "archive_command": "false"}


def local_options() -> str:
    """pg_ctl -o options for a local server's isolated start (with -p of a free port)."""
    return f"-c cluster_name={MARK} -c archive_command=false"


def restore_in_progress(data_dir: Path) -> bool:
    """A data directory drkit was restoring and had not finished: still recovering, or
    (last) started isolated."""
    if (data_dir / "recovery.signal").exists():
        return True
    if f"cluster_name={MARK}" in _read(data_dir / "postmaster.opts"):
        return True
    return BEGIN in _read(data_dir / "postgresql.auto.conf")


def isolate_in_conf(data_dir: Path) -> None:
    """For a server drkit cannot start with options of its own (a container): the same
    settings in postgresql.auto.conf, between markers; the lines they override are kept,
    disabled, and come back with `release_in_conf`."""
    auto = data_dir / "postgresql.auto.conf"
    lines = _read(auto).splitlines(keepends=True)
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        out.append(DISABLED + line if key in CONTAINER_SETTINGS else line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.append(f"{BEGIN}\n")
    out += [f"{k} = '{v}'\n" for k, v in CONTAINER_SETTINGS.items()]
    out.append(f"{END}\n")
    _write_like(auto, "".join(out))


def release_in_conf(data_dir: Path) -> None:
    auto = data_dir / "postgresql.auto.conf"
    out, inside = [], False
    for line in _read(auto).splitlines(keepends=True):
        if line.rstrip("\n") == BEGIN:
            inside = True
        elif line.rstrip("\n") == END and inside:
            inside = False
        elif not inside:
            out.append(line.removeprefix(DISABLED))
    _write_like(auto, "".join(out))


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def _write_like(path: Path, text: str) -> None:
    """Replace `path` by rename, keeping its owner (the container's postgres uid)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    write_atomic(path, text.encode(errors="surrogateescape"), mode=0o600)
    if st is not None and os.geteuid() == 0:
        os.lchown(path, st.st_uid, st.st_gid)
