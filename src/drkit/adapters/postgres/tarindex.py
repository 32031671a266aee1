"""Index a tar stream as it passes: each member's name, type, mode, size and data offset.

The index lets a restore write any slice of the stream straight to the right file at the
right offset, so independently compressed parts of one tar stream restore in parallel,
while `cat parts | zstd -d | tar -x` still works by hand.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import asdict, dataclass

BLOCK = 512


@dataclass(frozen=True)
class Member:
    name: str
    type: str  # "file", "dir", "symlink"; or "hardlink", "chardev", "blockdev", "fifo", "other"
    mode: int
    size: int
    offset: int  # offset of the member's data in the uncompressed stream
    linkname: str = ""


class TarIndexer:
    """Feed it the stream in chunks of any size; it records every member."""

    def __init__(self, capture: frozenset[str] = frozenset()) -> None:
        self.capture = capture
        self.captured: dict[str, bytearray] = {}
        self._capturing: list[Member] = []
        self.members: list[Member] = []
        self.position = 0  # bytes of the stream consumed so far
        self._next_header = 0  # stream offset of the next header block
        self._header = bytearray()
        self._ended = False

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        start = self.position
        end = start + len(view)
        self._capture(view, start, end)
        while not self._ended:
            # Where the next header byte to read lies (a header may straddle two chunks).
            header_at = self._next_header + len(self._header)
            if header_at >= end:
                break
            rel = header_at - start
            self._header += view[rel : rel + BLOCK - len(self._header)]
            if len(self._header) < BLOCK:
                break
            header = bytes(self._header)
            self._header.clear()
            self._parse(header, self._next_header + BLOCK)
            self._capture(view, start, end)
        self.position = end

    def _capture(self, view: memoryview, start: int, end: int) -> None:
        """Copy the data of wanted members (backup_label, backup_manifest) as it passes."""
        for member in list(self._capturing):
            buf = self.captured[member.name]
            have = member.offset + len(buf)
            stop = min(member.offset + member.size, end)
            if have < stop and have >= start:
                buf += view[have - start : stop - start]
            if len(buf) >= member.size:
                self._capturing.remove(member)

    def _parse(self, header: bytes, data_offset: int) -> None:
        if header == bytes(BLOCK):
            self._ended = True  # end-of-archive marker
            return
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ValueError(f"corrupt tar header at offset {data_offset - BLOCK}: {exc}") from exc
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE):
            raise ValueError(f"unsupported tar extension header for {info.name!r}")
        kind = member_kind(info)
        size = info.size if kind == "file" else 0
        member = Member(info.name.rstrip("/"), kind, info.mode, size, data_offset, info.linkname)
        self.members.append(member)
        if member.name in self.capture:
            self.captured[member.name] = bytearray()
            self._capturing.append(member)
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        self._next_header = data_offset + padded

    def to_json(self) -> bytes:
        return members_to_json(self.members)


def member_kind(info: tarfile.TarInfo) -> str:
    """What a restore would have to create. Only "file" and "dir" are ever restored; the
    others are recorded as what they are so that a restore can refuse them by name."""
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr():
        return "chardev"
    if info.isblk():
        return "blockdev"
    if info.isfifo():
        return "fifo"
    return "other"


def members_to_json(members: list[Member] | tuple[Member, ...]) -> bytes:
    return json.dumps([asdict(m) for m in members], separators=(",", ":")).encode()


def members_from_json(raw: bytes) -> list[Member]:
    """Members as stored; ValueError when the index is not a list of well-formed members."""
    try:
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError("not a list")
        members = [Member(**m) for m in items]
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a tar index: {exc}") from exc
    for m in members:
        ints = (m.mode, m.size, m.offset)
        if not (isinstance(m.name, str) and isinstance(m.type, str) and isinstance(m.linkname, str)):
            raise ValueError(f"malformed member {m.name!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise ValueError(f"malformed member {m.name!r}")
    return members
