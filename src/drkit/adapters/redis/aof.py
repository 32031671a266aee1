"""The Redis 7 multi-part AOF manifest, as pure text handling.

`appenddirname/` holds one BASE file (an RDB, `appendonly.aof.1.base.rdb`, or an old-style
AOF), INCR files (commands appended since that base) and HISTORY files (left over from a
rewrite, deleted asynchronously), listed in `<appendfilename>.manifest`, one file per line:

    file appendonly.aof.1.base.rdb seq 1 type b
    file appendonly.aof.1.incr.aof seq 1 type i
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from drkit.domain.names import is_plain_name

BASE, HISTORY, INCR = "b", "h", "i"


@dataclass(frozen=True)
class AofEntry:
    name: str
    seq: int
    type: str  # b, h or i

    @property
    def needed(self) -> bool:
        """Base and incr files are loaded at start; history files are not."""
        return self.type in (BASE, INCR)


def manifest_name(appendfilename: str) -> str:
    return f"{appendfilename}.manifest"


def parse_manifest(text: str) -> list[AofEntry]:
    """The entries of a manifest; ValueError names the line that is not understood."""
    entries: list[AofEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
            fields = dict(zip(words[::2], words[1::2], strict=True))
            entry = AofEntry(fields["file"], int(fields["seq"]), fields["type"])
        except (ValueError, KeyError) as exc:
            raise ValueError(f"AOF manifest line {number} is not understood: {line!r}") from exc
        if entry.type not in (BASE, HISTORY, INCR) or not is_plain_name(entry.name):
            raise ValueError(f"AOF manifest line {number} is not understood: {line!r}")
        entries.append(entry)
    if sum(1 for e in entries if e.type == BASE) > 1:
        raise ValueError("the AOF manifest lists more than one base file")
    return entries


def rdb_as_base(appendfilename: str) -> tuple[str, str]:
    """The base file name and a manifest that make an RDB the whole AOF (Redis then opens
    a fresh incr file at start). Used to restore an RDB into a server that runs with AOF."""
    base = f"{appendfilename}.1.base.rdb"
    return base, f"file {base} seq 1 type {BASE}\n"
