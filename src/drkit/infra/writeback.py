"""Start writing a file's dirty pages to disk without waiting for them (Linux
`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the disk works while the CPU decompresses what
comes next; the one flush that must wait (the restored server's `syncfs` at start) then finds
little left to write. A no-op where the call does not exist."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2


def _loader() -> Callable[[int, int, int], None]:
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return lambda _fd, _offset, _length: None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda _fd, _offset, _length: None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # advisory: a failure changes nothing

    return start


start_writeback = _loader()
