"""A day of chat: about 2 % of the database written, as nchat writes it.

Two mixes of the day's bytes (`--mix`):
- `chat` (the default): 90 % new messages (appended, created today, by the users and in the
  channels that write most; one in twenty with an attachment), 7 % edits and 3 % deletions.
  People edit what they just wrote: 95 % of the edits fall among the newest 1 % of the
  messages, the rest anywhere; 80 % of the deletions among the newest 10 %, the rest
  anywhere (moderation, accounts removed).
- `spread`: 75 % new messages, 20 % edits, 5 % deletions, four in five of both among the
  newest 10 % and the rest anywhere: old rows rewritten every day, the hard case for any
  incremental backup (each old row rewritten touches its heap page and a leaf of each index).

The night ends as a maintained database's does: `VACUUM (ANALYZE)` and a checkpoint, so the
backups that follow read settled pages and no autovacuum runs during them.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from bench.nchat_data import VOCABULARY, _Text


@dataclass(frozen=True)
class Mix:
    new: float  # shares of the day's bytes; the rest are deletions
    edits: float
    edit_recent: float  # the newest share of the messages that most edits fall on
    edit_recent_p: float  # how many of the edits fall there
    delete_recent: float
    delete_recent_p: float


MIXES = {
    "chat": Mix(0.90, 0.07, 0.01, 0.95, 0.10, 0.80),
    "spread": Mix(0.75, 0.20, 0.10, 0.80, 0.10, 0.80),
}


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


def _pick(rng: random.Random, lo: int, hi: int, n: int, newest: float, p: float) -> list[int]:
    """n message ids: a share p among the newest share of them, the others anywhere."""
    recent = max(lo, hi - int((hi - lo) * newest))
    return [rng.randint(recent, hi) if rng.random() < p else rng.randint(lo, hi) for _ in range(n)]


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


def one_day(dsn: str, day: int, *, fraction: float = 0.02, mix: str = "chat", seed: int = 19) -> Day:
    """Write one day's changes, then vacuum and checkpoint."""
    m = MIXES[mix]
    started = time.monotonic()
    rng = random.Random(f"{seed}-{day}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        size = _one(conn, "select pg_database_size(current_database())")
        rows = max(1, _one(conn, "select count(*) from nchat_messages"))
        per_row = max(1, size // rows)  # bytes a message costs, indexes and attachments included
        target = int(size * fraction)
        added = int(target * m.new / per_row)
        edited = int(target * m.edits / per_row)
        deleted = max(1, int(target * (1 - m.new - m.edits) / per_row))
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
        ids = sorted(set(_pick(rng, lo, new_hi, edited, m.edit_recent, m.edit_recent_p)))
        words = " ".join(rng.choices(VOCABULARY, k=3))
        conn.execute(
            "update nchat_messages set content = content || %s, edited = true where id = any(%s)",
            (f" (edit: {words})", ids),
        )
        gone = sorted(set(_pick(rng, lo, new_hi, deleted, m.delete_recent, m.delete_recent_p)))
        conn.execute("delete from nchat_messages where id = any(%s)", (gone,))
        conn.execute("vacuum (analyze)")
        conn.execute("checkpoint")
        after = _one(conn, "select pg_database_size(current_database())")
    return Day(day, after, target, new_hi - hi, len(ids), len(gone), time.monotonic() - started)
