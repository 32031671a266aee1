"""A sample of keys with a digest of each value, to compare a restored server with the one
that was backed up.

Digests are type-aware (a hash's fields sorted, a set's members sorted, a list in order, a
stream's entries and consumer groups), not DUMP payloads: DUMP writes a hash-table set or
hash in table order, which depends on the process's random hash seed, so the same data gives
different bytes in another process. Collections larger than MAX_ELEMENTS are compared by
type and size only. Keys that are not UTF-8 are left out of the sample (the manifest is JSON).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from drkit.adapters.redis.client import Keyspace, RedisServer

SAMPLE_SIZE = 100
SCAN_LIMIT = 100_000
SCAN_COUNT = 1000
MAX_ELEMENTS = 10_000
MAX_STRING = 16 * 1024 * 1024
SIZE_COMMANDS = {
    "string": "STRLEN",
    "hash": "HLEN",
    "list": "LLEN",
    "set": "SCARD",
    "zset": "ZCARD",
    "stream": "XLEN",
}
VALUE_COMMANDS: dict[str, tuple[str, ...]] = {
    "string": ("GET",),
    "hash": ("HGETALL",),
    "list": ("LRANGE", "0", "-1"),
    "set": ("SMEMBERS",),
    "zset": ("ZRANGE", "0", "-1", "WITHSCORES"),
    "stream": ("XRANGE", "-", "+"),
}


@dataclass(frozen=True)
class KeyDigest:
    db: int
    key: str
    type: str
    sha256: str
    expire_at_ms: int | None = None  # absolute expiry (PEXPIRETIME), None without a TTL

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "key": self.key,
            "type": self.type,
            "sha256": self.sha256,
            "expire_at_ms": self.expire_at_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyDigest:
        expire = data.get("expire_at_ms")
        return cls(
            db=int(data["db"]),
            key=str(data["key"]),
            type=str(data["type"]),
            sha256=str(data["sha256"]),
            expire_at_ms=int(expire) if expire is not None else None,
        )


def choose_sample(
    server: RedisServer, keyspace: Keyspace, *, size: int = SAMPLE_SIZE, scan_limit: int = SCAN_LIMIT
) -> dict[int, list[bytes]]:
    """Per database, the `size` keys with the smallest SHA-256 of their name among the first
    `scan_limit` names SCAN returns: the same keys for the same data, whatever the table order
    (exactly so when a database holds at most `scan_limit` keys)."""
    chosen: dict[int, list[bytes]] = {}
    for db in sorted(d for d, n in keyspace.keys.items() if n):
        names = _scan(server, db, scan_limit)
        chosen[db] = sorted(names, key=lambda k: hashlib.sha256(k).digest())[:size]
    return chosen


def _scan(server: RedisServer, db: int, limit: int) -> set[bytes]:
    names: set[bytes] = set()
    cursor = 0
    with server.errors(f"SCAN db {db}"):
        while True:
            cursor, batch = server.client(db).scan(cursor, count=SCAN_COUNT)
            for name in batch:
                if isinstance(name, bytes) and _is_utf8(name):
                    names.add(name)
            if cursor == 0 or len(names) >= limit:
                return names


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode()
    except UnicodeDecodeError:
        return False
    return True


def digest_keys(server: RedisServer, db: int, keys: list[bytes]) -> list[KeyDigest]:
    """Digest each key that exists (three pipelined round trips: type and expiry, size, value)."""
    if not keys:
        return []
    client: Any = server.client(db)  # pipelines' execute_command is untyped in redis-py
    with server.errors(f"sample of db {db}"):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("TYPE", key)
            pipe.execute_command("PEXPIRETIME", key)
        meta = pipe.execute()
        types = [_text(t) for t in meta[0::2]]
        expires = [int(e) for e in meta[1::2]]
        present = [(k, t, e) for k, t, e in zip(keys, types, expires, strict=True) if t != "none"]
        sizes = _pipelined(client, [_size_command(k, t) for k, t, _ in present])
        wanted = [_value_command(k, t, s) for (k, t, _), s in zip(present, sizes, strict=True)]
        values = _pipelined(client, wanted)
        groups = _pipelined(
            client, [("XINFO", "GROUPS", k) if t == "stream" else None for k, t, _ in present]
        )
    out: list[KeyDigest] = []
    for (key, kind, expire), size, value, group in zip(present, sizes, values, groups, strict=True):
        digest = value_digest(kind, value, size, group) if value is not None else size_digest(kind, size)
        out.append(KeyDigest(db, key.decode(), kind, digest, expire if expire >= 0 else None))
    return out


def _pipelined(client: Any, commands: Sequence[tuple[Any, ...] | None]) -> list[Any]:
    """Run the commands that are not None in one round trip; None answers for the others."""
    pipe = client.pipeline(transaction=False)
    for cmd in commands:
        if cmd is not None:
            pipe.execute_command(*cmd)
    answers = iter(pipe.execute() if any(c is not None for c in commands) else [])
    return [next(answers) if cmd is not None else None for cmd in commands]


def _size_command(key: bytes, kind: str) -> tuple[Any, ...] | None:
    command = SIZE_COMMANDS.get(kind)
    return (command, key) if command else None


def _value_command(key: bytes, kind: str, size: Any) -> tuple[Any, ...]:
    limit = MAX_STRING if kind == "string" else MAX_ELEMENTS
    command = VALUE_COMMANDS.get(kind)
    if command is None:
        return ("DUMP", key)  # module types: their serialised form is all there is
    if size is not None and int(size) > limit:
        return ("TYPE", key)  # too big to fetch: compared by size (the answer is ignored)
    return (command[0], key, *command[1:])


def value_digest(kind: str, value: Any, size: Any, groups: Any) -> str:
    if kind in VALUE_COMMANDS and size is not None:
        limit = MAX_STRING if kind == "string" else MAX_ELEMENTS
        if int(size) > limit:
            return size_digest(kind, size)
    h = hashlib.sha256()
    _feed(h, kind.encode())
    for item in canonical(kind, value):
        _feed(h, item)
    for item in _groups(groups):
        _feed(h, item)
    return h.hexdigest()


def size_digest(kind: str, size: Any) -> str:
    h = hashlib.sha256()
    _feed(h, kind.encode())
    _feed(h, f"size-only:{size}".encode())
    return h.hexdigest()


def canonical(kind: str, value: Any) -> Iterable[bytes]:
    """The value as an ordered sequence of byte strings, independent of table order."""
    if isinstance(value, bytes):  # a string, or a module type's DUMP payload
        return [_bytes(value)]
    if kind == "hash":
        pairs = value.items() if isinstance(value, dict) else zip(value[0::2], value[1::2], strict=True)
        return [b for k, v in sorted((_bytes(k), _bytes(v)) for k, v in pairs) for b in (k, v)]
    if kind == "set":
        return sorted(_bytes(m) for m in value)
    if kind == "zset":
        pairs = (
            value
            if value and isinstance(value[0], list | tuple)
            else zip(value[0::2], value[1::2], strict=True)
        )
        return [b for m, s in pairs for b in (_bytes(m), repr(float(s)).encode())]
    if kind == "stream":
        out: list[bytes] = []
        for entry_id, fields in value:
            out.append(_bytes(entry_id))
            items = (
                fields.items() if isinstance(fields, dict) else zip(fields[0::2], fields[1::2], strict=True)
            )
            out.extend(b for k, v in items for b in (_bytes(k), _bytes(v)))
        return out
    return [_bytes(v) for v in value]


def _groups(groups: Any) -> list[bytes]:
    """A stream's consumer groups: name, last delivered id, pending count."""
    rows = []
    for group in groups or []:
        g = {_text(k): v for k, v in group.items()} if isinstance(group, dict) else {}
        rows.append((_bytes(g.get("name")), _bytes(g.get("last-delivered-id")), _bytes(g.get("pending"))))
    return [item for row in sorted(rows) for item in row]


def _feed(h: Any, item: bytes) -> None:
    h.update(len(item).to_bytes(8, "big"))
    h.update(item)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
