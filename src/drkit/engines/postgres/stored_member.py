"""Read one file of a stored base backup without restoring the rest: the tar index says where
its bytes lie in the stream, and only the parts that hold them are fetched (each checked
against its SHA-256) and decoded. How an incremental backup gets its parent's
backup_manifest."""

from __future__ import annotations

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.tar_restore import get_checked, read_index

LIMIT = 256 << 20


def read_member(
    repo: Repository, codec: Codec, directory: str, m: Manifest, name: str, *, limit: int = LIMIT
) -> bytes:
    """The contents of the file `name` in backup `m` (stored under `directory`)."""
    members = read_index(repo, codec, directory, m, TAR_INDEX + codec.suffix)
    member = next((x for x in members if x.name == name and x.type == "file"), None)
    if member is None:
        raise IntegrityError(f"backup {m.backup_id} holds no {name}")
    if member.size > limit:
        raise IntegrityError(f"{name} of {m.backup_id} is {member.size} bytes, more than {limit}")
    end = member.offset + member.size
    out = bytearray()
    lo = 0
    for part in (f for f in m.files if f.name.startswith("base.")):
        hi = lo + part.raw_size
        if hi > member.offset and lo < end:
            raw = codec.decode(get_checked(repo, directory, part, what="backup file"), name=part.name)
            out += raw[max(lo, member.offset) - lo : min(hi, end) - lo]
        lo = hi
    if len(out) != member.size:
        raise IntegrityError(f"the parts of {m.backup_id} end before {name} does")
    return bytes(out)
