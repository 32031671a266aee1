"""A real Redis for the sandbox, configured as the source procedures say: RDB snapshots
(`save 900 1`, `save 300 10`, `save 60 10000`) and AOF (`appendonly yes`, `appendfsync
everysec`), on a free loopback port, run through the local-process runtime (as the
sandbox's OS user when drkit is root). Its data: what nchat keeps in Redis (sessions, a
channel cache, presence, rate-limit counters, an event stream).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from drkit.adapters.redis.client import RedisServer
from drkit.domain.stack import Stack
from drkit.infra.atomic import write_atomic
from drkit.infra.proc import find_tool
from drkit.sandbox.parts import PartContext, ServiceEntry

SESSION_TTL = 7 * 86400  # seconds; long enough that nothing expires during a demo or a test
RATE_WINDOW_TTL = 3600


def redis_conf(port: int, data_dir: str) -> str:
    return "\n".join(
        [
            "# Written by `drkit sandbox up` (as disaster-recovery-procedures.md configures Redis).",
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f'dir "{data_dir}"',
            "dbfilename dump.rdb",
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            "appendonly yes",
            "appendfsync everysec",
            'appendfilename "appendonly.aof"',
            'appenddirname "appendonlydir"',
            "",
        ]
    )


def prepare(ctx: PartContext) -> ServiceEntry:
    port = ctx.port()
    base = ctx.service_dir("redis")
    data_dir = base / "data"
    data_dir.mkdir(exist_ok=True)
    conf = base / "redis.conf"
    write_atomic(conf, redis_conf(port, str(data_dir)).encode())
    runtime: dict[str, object] = {
        "type": "local",
        "command": [find_tool("redis-server"), str(conf)],
        "data_dir": str(data_dir),
        "log_file": str(ctx.logs / "redis.log"),
    }
    if ctx.os_user:
        runtime["os_user"] = ctx.os_user
    url = f"redis://127.0.0.1:{port}/0"
    config = {"kind": "redis", "runtime": runtime, "url": url, "rto": "10m", "rpo": "15m", "priority": "high"}
    return ServiceEntry("redis", config, url, {"port": port, "data_dir": str(data_dir), "conf": str(conf)})


def seed(ctx: PartContext, stack: Stack) -> None:
    """Sessions for nchat's users, a cache entry per channel, presence, rate limits, events."""
    service = next(s for s in stack.services.values() if s.kind == "redis")
    rng = random.Random(11)
    users = _user_ids(stack, rng, ctx.seed.users)
    channels = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(ctx.seed.channels)]
    now = datetime.now(UTC)
    hour = now.strftime("%Y%m%d%H")
    with RedisServer(service.url or "", password=service.password) as server:
        pipe: Any = server.client().pipeline(transaction=False)  # redis-py's typing wants invariant maps
        for user in users[: max(1, len(users) // 2)]:
            key = f"session:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            pipe.hset(key, mapping=_session(rng, user, now))
            pipe.expire(key, SESSION_TTL)
        for channel in channels:
            cached = {
                "channel": str(channel),
                "last_message_at": now.isoformat(),
                "unread": rng.randint(0, 40),
            }
            pipe.set(f"cache:channel:{channel}", json.dumps(cached))
        pipe.sadd("presence", *(str(u) for u in rng.sample(users, max(1, len(users) // 4))))
        for user in rng.sample(users, max(1, len(users) // 3)):
            key = f"ratelimit:api:{user}:{hour}"
            pipe.incrby(key, rng.randint(1, 120))
            pipe.expire(key, RATE_WINDOW_TTL * 24)
        for i in range(200):
            event = {
                "type": rng.choice(["message.created", "message.edited", "reaction.added"]),
                "seq": str(i),
            }
            pipe.xadd("events:messages", {**event, "channel": str(rng.choice(channels))})
        with server.errors("seeding"):
            pipe.execute()
        server.command("XGROUP", "CREATE", "events:messages", "search-indexer", "0")


def _session(rng: random.Random, user: str, now: datetime) -> dict[str, str]:
    return {
        "user_id": user,
        "created_at": now.isoformat(),
        "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "user_agent": rng.choice(["nchat-web/2.3", "nchat-ios/5.1", "nchat-android/5.0"]),
    }


def _user_ids(stack: Stack, rng: random.Random, count: int) -> list[str]:
    """nchat's user ids from PostgreSQL when the sandbox has it, else made-up ones."""
    postgres = stack.services_of_kind("postgres")
    if postgres and postgres[0].dsn:
        from drkit.adapters.postgres.client import connect

        with connect(postgres[0].dsn) as conn:
            rows = conn.execute("select id from auth.users order by id limit %s", (count,)).fetchall()
        if rows:
            return [str(r[0]) for r in rows]
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(max(1, count))]
