"""Failures injected for real, on the drill's copy (or, with --target live --yes, on the
stack itself): bytes written into a relation file of a stopped server, rows deleted,
`kill -9` of every service, Redis flushed, objects deleted. Each returns what it did and
the facts the recovery needs (the target time of a data loss, the channel that lost rows)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.adapters.redis.client import RedisServer
from drkit.adapters.s3.objects import ObjectStore, configured_buckets, endpoint_for
from drkit.domain.errors import OperationError, UsageError
from drkit.engines.core.workspace import Workspace
from drkit.infra.wait import wait_for
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.local_postgres import LocalPostgres

CORRUPT_TABLE = "nchat_messages"
GARBAGE = bytes(range(256)) * 32  # one 8 KiB page of nonsense


@dataclass(frozen=True)
class Injected:
    what: str
    facts: dict[str, Any]  # "failure_at": the moment the failure happened (ISO), for the RTO/RPO


def corrupt_relation(ws: Workspace, service: str | None = None) -> Injected:
    """Stop PostgreSQL, overwrite a page in the middle of a table's file, start it again:
    the data is now damaged (data checksums make reading it fail)."""
    pg = ws.postgres(service)
    with connect(service_dsn(pg)) as conn:
        row = conn.execute("select pg_relation_filepath(%s)", (CORRUPT_TABLE,)).fetchone()
    if not row or not row[0] or not pg.runtime.data_dir:
        raise UsageError(f"no {CORRUPT_TABLE} table (or no data_dir) to corrupt in {pg.name}")
    path = Path(pg.runtime.data_dir) / str(row[0])
    runtime = LocalPostgres(pg.runtime)
    runtime.stop()
    at = ws.clock.now()
    size = path.stat().st_size
    offset = (size // 2) // 8192 * 8192
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(GARBAGE)
        fh.flush()
        os.fsync(fh.fileno())
    runtime.start()
    return Injected(
        f"wrote {len(GARBAGE)} bytes of garbage at offset {offset} of {path}",
        {"corrupted": str(path), "failure_at": at.isoformat()},
    )


def delete_rows(ws: Workspace, service: str | None = None) -> Injected:
    """Delete every message of the busiest channel, after noting the moment before."""
    pg = ws.postgres(service)
    dsn = service_dsn(pg)
    with connect(dsn) as conn:
        row = conn.execute(
            "select channel_id::text, count(*) from nchat_messages group by 1 order by 2 desc limit 1"
        ).fetchone()
        if row is None:
            raise UsageError("no messages to delete in the drill's copy")
        channel, count = str(row[0]), int(row[1])
        before = conn.execute("select clock_timestamp()").fetchone()
        target = before[0] if before else None
        later = "select clock_timestamp() > %s + interval '1 second'"
        wait_for(
            lambda: bool((conn.execute(later, (target,)).fetchone() or (False,))[0]),
            timeout=5,
            what="the server's clock to pass T + 1s",
        )
        conn.execute("delete from nchat_messages where channel_id = %s", (channel,))
        at = ws.clock.now()
        segment = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
    _wait_archived(dsn, str(segment[0]) if segment else "")
    return Injected(
        f"deleted the {count} messages of channel {channel}",
        {
            "target_time": target.isoformat() if target else None,
            "failure_at": at.isoformat(),
            # The messages, then what ON DELETE CASCADE took with them.
            "copy_back": [
                f"nchat_messages where channel_id = '{channel}'",
                "nchat_attachments where message_id in "
                f"(select id from nchat_messages where channel_id = '{channel}')",
            ],
        },
    )


def kill_everything(ws: Workspace, service: str | None = None) -> Injected:
    """kill -9 every service the local runtime runs (a power cut, as far as they can tell)."""
    killed = []
    at = ws.clock.now()
    for name, svc in ws.stack.services.items():
        runtime = runtime_for(svc, ws.stack.state_dir)
        pid_of: Callable[[], int | None] | None = getattr(runtime, "pid", None)
        pid = pid_of() if pid_of is not None else None
        if pid is None:
            continue
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(name)
    wait_for(
        lambda: not any(runtime_for(ws.stack.services[n], ws.stack.state_dir).is_running() for n in killed),
        timeout=30,
        what="the killed services to be gone",
    )
    return Injected(
        f"kill -9 of {', '.join(killed) or 'nothing'}", {"killed": killed, "failure_at": at.isoformat()}
    )


def flush_redis(ws: Workspace, service: str | None = None) -> Injected:
    name = service or next((n for n, s in ws.stack.services.items() if s.kind == "redis"), None)
    if name is None or not ws.stack.services[name].url:
        raise UsageError("no Redis service to flush")
    svc = ws.stack.services[name]
    with RedisServer(str(svc.url), password=svc.password) as server:
        before = server.keyspace().total
        server.client().flushall()
    at = ws.clock.now().isoformat()
    return Injected(f"FLUSHALL on {name} ({before} keys gone)", {"service": name, "failure_at": at})


def delete_objects(ws: Workspace, service: str | None = None) -> Injected:
    name = service or next((n for n, s in ws.stack.services.items() if s.kind == "s3"), None)
    if name is None:
        raise UsageError("no object store to delete from")
    svc = ws.stack.services[name]
    store = ObjectStore(endpoint_for(svc))
    gone = 0
    for bucket in configured_buckets(svc) or tuple(store.buckets()):
        for key in store.current(bucket):
            store.delete(bucket, key)
            gone += 1
    at = ws.clock.now().isoformat()
    return Injected(f"deleted {gone} objects from {name}", {"service": name, "failure_at": at})


def _wait_archived(dsn: str, segment: str) -> None:
    with connect(dsn) as conn:

        def archived() -> bool:
            r = conn.execute("select last_archived_wal from pg_stat_archiver").fetchone()
            return bool(r and r[0] and r[0] >= segment)

        wait_for(archived, timeout=120, what=f"WAL segment {segment} to be archived", error=OperationError)


INJECTIONS: dict[str, Callable[[Workspace, str | None], Injected]] = {
    "db-corruption": corrupt_relation,
    "data-loss": delete_rows,
    "full-outage": kill_everything,
    "service-redis": flush_redis,
    "service-s3": delete_objects,
}
