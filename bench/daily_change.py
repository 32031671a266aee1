"""A day of chat: about 2 % of the database written, as nchat writes it.

Of the day's bytes, three quarters are new messages (appended, created today, by the users
and in the channels that write most; one in twenty with an attachment), one fifth are edits
of existing messages and the rest deletions; edits and deletions fall mostly on recent
messages (four in five among the newest tenth), the others anywhere. The night ends as a
maintained database's does: `VACUUM (ANALYZE)` and a checkpoint, so the backups that follow
read settled pages and no autovacuum runs during them.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from bench.nchat_data import VOCABULARY, _Text

NEW_SHARE, EDIT_SHARE = 0.75, 0.20  # of the day's bytes; the rest are deletions


@dataclass(frozen=True)
class Day:
    day: int
    database_bytes: int
    target_bytes: int  # fraction x the database
    added: int
    edited: int
    deleted: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _pick(rng: random.Random, lo: int, hi: int, n: int) -> list[int]:
    """n message ids: four in five among the newest tenth, the others anywhere."""
    recent = max(lo, hi - (hi - lo) // 10)
    return [rng.randint(recent, hi) if rng.random() < 0.8 else rng.randint(lo, hi) for _ in range(n)]


def _append(conn: psycopg.Connection[Any], rng: random.Random, n: int) -> None:
    users = [str(r[0]) for r in conn.execute("select id from nchat_users order by id limit 2000")]
    channels = [str(r[0]) for r in conn.execute("select id from nchat_channels order by id limit 400")]
    handles = [u[:8] for u in users[:200]]
    text = _Text(rng, handles or ["someone"])
    now = time.time()
    with (
        conn.cursor() as cur,
        cur.copy("copy nchat_messages (channel_id, user_id, content, created_at) from stdin") as copy,
    ):
        lines = []
        for _ in range(n):
            author = rng.choice(users[:400]) if rng.random() < 0.7 else rng.choice(users)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - rng.random() * 86400))
            channel = rng.choice(channels[:40]) if rng.random() < 0.6 else rng.choice(channels)
            lines.append(f"{channel}\t{author}\t{text.message()}\t{stamp}\n")
        copy.write("".join(lines))


def one_day(dsn: str, day: int, *, fraction: float = 0.02, seed: int = 19) -> Day:
    """Write one day's changes, then vacuum and checkpoint."""
    started = time.monotonic()
    rng = random.Random(f"{seed}-{day}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        size = _one(conn, "select pg_database_size(current_database())")
        rows = max(1, _one(conn, "select count(*) from nchat_messages"))
        per_row = max(1, size // rows)  # bytes a message costs, indexes and attachments included
        target = int(size * fraction)
        added = int(target * NEW_SHARE / per_row)
        edited = int(target * EDIT_SHARE / per_row)
        deleted = max(1, int(target * (1 - NEW_SHARE - EDIT_SHARE) / per_row))
        lo, hi = (
            _one(conn, "select min(id) from nchat_messages"),
            _one(conn, "select max(id) from nchat_messages"),
        )
        _append(conn, rng, added)
        new_hi = _one(conn, "select max(id) from nchat_messages")
        conn.execute(
            "insert into nchat_attachments "
            "(message_id, bucket, object_key, sha256, size_bytes, content_type) "
            "select id, 'nchat-uploads', 'attachments/' || id, md5(content) || md5(content), "
            "1024 + (hashint8(id) & 8388607), 'image/png' "
            "from nchat_messages where id > %s and hashint8(id) %% 20 = 0",
            (hi,),
        )
        ids = sorted(set(_pick(rng, lo, hi, edited)))
        words = " ".join(rng.choices(VOCABULARY, k=3))
        conn.execute(
            "update nchat_messages set content = content || %s, edited = true where id = any(%s)",
            (f" (edit: {words})", ids),
        )
        gone = sorted(set(_pick(rng, lo, hi, deleted)))
        conn.execute("delete from nchat_messages where id = any(%s)", (gone,))
        conn.execute("vacuum (analyze)")
        conn.execute("checkpoint")
        after = _one(conn, "select pg_database_size(current_database())")
    return Day(day, after, target, new_hi - hi, len(ids), len(gone), time.monotonic() - started)
