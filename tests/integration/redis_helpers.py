"""Redis state as tests compare it, written apart from drkit's own digests."""

from __future__ import annotations

from typing import Any

import redis


def dump_all(url: str) -> dict[str, tuple[str, Any, bool]]:
    """Every key: its type, its value (order-independent where Redis's is) and whether it
    has a TTL. Written apart from drkit's own digests, so the two check each other."""
    c = redis.Redis.from_url(url)
    out: dict[str, tuple[str, Any, bool]] = {}
    for key in c.scan_iter(count=1000):
        kind = c.type(key).decode()
        value: Any
        if kind == "string":
            value = c.get(key)
        elif kind == "hash":
            value = sorted(c.hgetall(key).items())
        elif kind == "set":
            value = sorted(c.smembers(key))
        elif kind == "list":
            value = c.lrange(key, 0, -1)
        elif kind == "zset":
            value = c.zrange(key, 0, -1, withscores=True)
        else:
            groups = [(g["name"], g["last-delivered-id"]) for g in c.xinfo_groups(key)]
            value = ([(i, sorted(f.items())) for i, f in c.xrange(key)], groups)
        out[key.decode()] = (kind, value, c.pttl(key) > 0)
    c.close()
    return out
