"""Where drkit's own delta backup (below PostgreSQL 17) reads from: the server's data
directory, on this host. It must be the server's own: the system identifier at the start of
`global/pg_control` must be the one the server reports."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from drkit.adapters.postgres.server import ServerInfo
from drkit.domain.stack import Service


def data_dir_of(service: Service, info: ServerInfo) -> Path:
    return Path(service.runtime.data_dir or info.settings.get("data_directory", ""))


def data_dir_blocker(service: Service, info: ServerInfo) -> str:
    """Why the data directory cannot be read for a delta backup; "" when it can."""
    major = info.version_num // 10000
    if service.runtime.type == "compose":
        return (
            f"PostgreSQL {major} has no incremental backup of its own, and drkit's delta reads the "
            f"data directory, which it does not reach in a container (PostgreSQL 17+ takes "
            f"incremental backups itself)"
        )
    path = data_dir_of(service, info)
    try:
        fd = os.open(path / "global" / "pg_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, 8)
        finally:
            os.close(fd)
    except OSError as exc:
        return (
            f"drkit's delta (PostgreSQL {major}) reads the data directory, and {path} cannot be "
            f"read here ({exc.strerror}): run drkit on the database host, as root or its OS user"
        )
    if len(head) < 8 or str(struct.unpack("<Q", head)[0]) != info.system_identifier:
        return f"{path} is not the data directory of the server drkit backs up (another system identifier)"
    return ""
