"""PostgreSQL's incremental file format (17+), which drkit's own delta backups below 17 also use.

An incremental backup holds, for a relation file that changed only in part,
`INCREMENTAL.<name>` instead of `<name>`: a header (magic 0xd3ae1f0d, the number of blocks
held, the truncation length in blocks, the block numbers; all little-endian uint32), padded
to a whole block when it holds blocks, then the blocks. Applied on top of the same file as the
parent backup restores it: the file is cut to `truncate` blocks (if longer), extended with
zeros to hold every block it must, and the held blocks are written over
(src/bin/pg_combinebackup/reconstruct.c does the same across a whole chain at once).

The backup_label of an incremental backup names its parent (`INCREMENTAL FROM LSN`); a data
directory whose label still has those lines is refused by the server, so the restored label
drops them, as pg_combinebackup's does.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAGIC = 0xD3AE1F0D
PREFIX = "INCREMENTAL."
RELSEG_BLOCKS = 131072  # a relation segment holds at most 1 GiB of 8 KiB blocks
_FIXED = struct.Struct("<III")
_FROM_LINE = re.compile(rb"^INCREMENTAL FROM (LSN|TLI): .*(?:\n|$)", re.MULTILINE)
_FROM_LSN = re.compile(rb"^INCREMENTAL FROM LSN: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)\s*$", re.MULTILINE)


class IncrementalFormatError(ValueError):
    """An incremental file's header that cannot be right."""


@dataclass(frozen=True)
class IncrementalHeader:
    blocks: tuple[int, ...]  # block numbers held, in the order their contents follow
    truncate: int  # the parent's file is cut to this many blocks before the blocks are written
    block_size: int

    @property
    def length(self) -> int:
        """Bytes before the first block's contents."""
        raw = _FIXED.size + 4 * len(self.blocks)
        if self.blocks and raw % self.block_size:
            raw += self.block_size - raw % self.block_size
        return raw

    @property
    def file_blocks(self) -> int:
        """The length of the file it describes, in blocks."""
        return max(self.truncate, max(self.blocks, default=-1) + 1)

    def member_size(self) -> int:
        return self.length + len(self.blocks) * self.block_size

    def encode(self) -> bytes:
        raw = _FIXED.pack(MAGIC, len(self.blocks), self.truncate)
        raw += struct.pack(f"<{len(self.blocks)}I", *self.blocks)
        return raw.ljust(self.length, b"\0")


def needed_header_bytes(first: bytes) -> int:
    """How many bytes the header occupies, from at least its first 8."""
    magic, count = (int(v) for v in struct.unpack_from("<II", first))
    if magic != MAGIC:
        raise IncrementalFormatError(f"bad magic number 0x{magic:x}")
    if count > RELSEG_BLOCKS:
        raise IncrementalFormatError(f"{count} blocks, more than a relation segment holds")
    return _FIXED.size + 4 * count


def parse_header(raw: bytes, *, block_size: int, member_size: int) -> IncrementalHeader:
    """The header at the start of `raw` (at least needed_header_bytes long); checked against
    the member's size, so that no block lies outside it."""
    magic, count, truncate = _FIXED.unpack_from(raw)
    if magic != MAGIC:
        raise IncrementalFormatError(f"bad magic number 0x{magic:x}")
    if count > RELSEG_BLOCKS or truncate > RELSEG_BLOCKS:
        raise IncrementalFormatError(f"{count} blocks, truncation at {truncate}: beyond a relation segment")
    blocks = struct.unpack_from(f"<{count}I", raw, _FIXED.size)
    if any(b >= RELSEG_BLOCKS for b in blocks) or len(set(blocks)) != count:
        raise IncrementalFormatError("block numbers beyond a relation segment, or repeated")
    header = IncrementalHeader(tuple(blocks), truncate, block_size)
    if header.member_size() != member_size:
        raise IncrementalFormatError(
            f"{member_size} bytes, but its header describes {header.member_size()} ({count} blocks)"
        )
    return header


def plain_label(label: bytes) -> bytes:
    """The backup_label a restored data directory gets: the parent's lines dropped."""
    return _FROM_LINE.sub(b"", label)


def incremental_from(label: bytes) -> str | None:
    """The LSN an incremental backup's label says its parent started at (None: a full one)."""
    found = _FROM_LSN.search(label)
    return found.group(1).decode() if found else None
