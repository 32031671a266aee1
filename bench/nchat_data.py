"""Grow a sandbox's nchat database to a chosen size with realistic chat rows.

The sandbox seeds a small nchat dataset (`drkit.sandbox.seed`); this adds users, channels,
messages, attachments and refresh tokens until `pg_database_size` reaches the target. Message
text is built from the sandbox's own word list (`WORDS`) plus the things real chat holds
(mentions, ticket and PR numbers, links, commit hashes, durations, versions), so it compresses
like text, not like zero-filled pgbench rows.

Rows are generated in Python and sent with COPY; the server parses and indexes them on the other
core while Python builds the next block. Foreign keys are valid by construction, so the load
runs with `session_replication_role = replica` (no per-row RI trigger). At the end a
`VACUUM (FREEZE, ANALYZE)` and a `CHECKPOINT` settle the pages (hint bits, visibility map), so no
later read, such as a backup's row count, rewrites them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from drkit.sandbox.seed import WORDS

Log = Callable[[str], None]

# Extra vocabulary in the same register as WORDS, so the text is not 100 words on repeat.
_EXTRA = (
    "ok yes no maybe agreed done merged shipped reverted flaky test staging prod cluster "
    "replica primary failover postgres redis queue worker cron alert pager incident ticket "
    "customer invoice billing refund signup onboarding email template webhook token session "
    "cache timeout retry error warning metric graph spike memory disk cpu upgrade patch "
    "hotfix branch review approve comment question answer docs wiki roadmap sprint demo "
    "friday weekend holiday tomorrow yesterday today morning evening sorry great awesome "
    "weird strange broken fixed works again soon later now please thanks cheers"
)
EXTRA_WORDS = tuple(_EXTRA.split())
VOCABULARY = tuple(WORDS) + tuple(EXTRA_WORDS)
ENDINGS = (".", ".", ".", "!", "?", "", " :)", " :+1:")
DAY = 86400


@dataclass(frozen=True)
class BuildReport:
    target_bytes: int
    start_bytes: int
    final_bytes: int
    users_added: int
    channels_added: int
    messages_added: int
    attachments_added: int
    seconds: float

    @property
    def within(self) -> float:
        """Final size relative to the target (1.0 = on target)."""
        return self.final_bytes / self.target_bytes


class _Text:
    """Chat-like messages: mostly short, some long, with mentions, links, numbers."""

    def __init__(self, rng: random.Random, handles: list[str]) -> None:
        self.rng = rng
        self.handles = handles

    def entity(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            return "@" + rng.choice(self.handles)
        if kind < 0.5:
            return f"#{rng.randrange(100, 20000)}"
        if kind < 0.62:
            return f"https://git.nchat.example/app/pull/{rng.randrange(1, 99999)}"
        if kind < 0.74:
            return f"{rng.getrandbits(28):07x}"
        if kind < 0.86:
            return f"{rng.randrange(1, 3000)}ms"
        if kind < 0.94:
            return f"v{rng.randrange(0, 5)}.{rng.randrange(0, 30)}.{rng.randrange(0, 20)}"
        return f"NCHAT-{rng.randrange(1, 9999)}"

    def message(self) -> str:
        rng = self.rng
        n = max(2, min(160, int(rng.lognormvariate(2.75, 0.75))))
        words = rng.choices(VOCABULARY, k=n)
        for _ in range(int(rng.random() * 2.6)):  # 0, 1 or 2 entities
            words[int(rng.random() * n)] = self.entity()
        text = " ".join(words)
        return text[0].upper() + text[1:] + rng.choice(ENDINGS)


def _size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch))


def _add_people(
    conn: psycopg.Connection[Any], rng: random.Random, users: int, channels: int, tag: str
) -> tuple[list[str], list[str], list[str]]:
    """New users (auth.users + nchat_users), channels, refresh tokens. Returns the ids of every
    nchat user and channel (old and new) and the new users' handles."""
    now = time.time()
    user_rows: list[tuple[str, str, str, str, str]] = []
    for i in range(users):
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        handle = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}{i}"
        created = _ts(now - rng.uniform(30, 900) * DAY)
        pw = f"$2b$10${rng.getrandbits(300):075x}"[:60]
        user_rows.append((uid, f"{handle}.{tag}@nchat.example", handle, pw, created))
    with conn.cursor() as cur:
        with cur.copy(
            "copy auth.users (id, email, display_name, password_hash, created_at) from stdin"
        ) as copy:
            for row in user_rows:
                copy.write_row(row)
        with cur.copy(
            "copy nchat_users (id, email, display_name, avatar_url, status, created_at) from stdin"
        ) as copy:
            for uid, email, handle, _pw, created in user_rows:
                avatar = f"https://cdn.nchat.example/avatars/{uid}.png" if rng.random() < 0.6 else None
                status = rng.choice(("online", "offline", "offline", "away", "busy"))
                copy.write_row((uid, email, handle, avatar, status, created))
        all_users = [str(r[0]) for r in cur.execute("select id from nchat_users").fetchall()]
        with cur.copy("copy nchat_channels (id, name, topic, is_private, created_by) from stdin") as copy:
            for i in range(channels):
                cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                topic = " ".join(rng.choices(VOCABULARY, k=rng.randrange(3, 12)))
                copy.write_row(
                    (
                        cid,
                        f"{rng.choice(WORDS)}-{tag}-{i}",
                        topic,
                        rng.random() < 0.2,
                        rng.choice(all_users),
                    )
                )
        all_channels = [str(r[0]) for r in cur.execute("select id from nchat_channels").fetchall()]
        cur.execute(
            "insert into auth.refresh_tokens (user_id, expires_at, created_at) "
            "select u.id, now() + (g || ' days')::interval, now() - (g || ' hours')::interval "
            "from auth.users u cross join generate_series(1, 3) g "
            "where u.email like %s",
            (f"%.{tag}@nchat.example",),
        )
    return all_users, all_channels, [r[2] for r in user_rows]


def _copy_messages(
    conn: psycopg.Connection[Any],
    rng: random.Random,
    text: _Text,
    users: list[str],
    channels: list[str],
    rows: int,
) -> tuple[int, int]:
    """COPY `rows` messages; return the id range (lo, hi] they got."""
    row = conn.execute("select coalesce(max(id), 0) from nchat_messages").fetchone()
    lo = int(row[0]) if row else 0
    now = time.time()
    # A few channels are busy, most are quiet; a few users write most messages.
    channel_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(channels))]
    user_weights = [1.0 / (i + 1) ** 0.6 for i in range(len(users))]
    block = 20_000
    with (
        conn.cursor() as cur,
        cur.copy("copy nchat_messages (channel_id, user_id, content, edited, created_at) from stdin") as copy,
    ):
        done = 0
        while done < rows:
            n = min(block, rows - done)
            chans = rng.choices(channels, channel_weights, k=n)
            authors = rng.choices(users, user_weights, k=n)
            lines = []
            for i in range(n):
                author = r"\N" if rng.random() < 0.02 else authors[i]
                edited = "t" if rng.random() < 0.04 else "f"
                created = _ts(now - rng.random() * 365 * DAY)
                lines.append(f"{chans[i]}\t{author}\t{text.message()}\t{edited}\t{created}\n")
            copy.write("".join(lines))
            done += n
    row = conn.execute("select coalesce(max(id), 0) from nchat_messages").fetchone()
    hi = int(row[0]) if row else lo
    return lo, hi


def _add_attachments(conn: psycopg.Connection[Any], lo: int, hi: int) -> int:
    """About one message in twenty carries a file (its bytes live in the object store)."""
    cur = conn.execute(
        "insert into nchat_attachments "
        "(message_id, bucket, object_key, sha256, size_bytes, content_type, created_at) "
        "select id, 'nchat-uploads', "
        "'attachments/' || channel_id || '/' || id || '-' || left(md5(content), 10), "
        "encode(sha256(convert_to(content || id, 'UTF8')), 'hex'), "
        "1024 + (hashint8(id) & 8388607), "
        "(array['image/png','image/jpeg','application/pdf','text/plain'])[1 + (id %% 4)::int], "
        "created_at "
        "from nchat_messages where id > %s and id <= %s and hashint8(id) %% 20 = 0",
        (lo, hi),
    )
    return cur.rowcount


def grow(
    dsn: str,
    target_bytes: int,
    *,
    seed: int = 11,
    log: Log = print,
    max_batch_rows: int = 400_000,
) -> BuildReport:
    """Add nchat rows until the database holds about `target_bytes` (within a few percent)."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("set synchronous_commit = off")
        conn.execute("set maintenance_work_mem = '256MB'")
        start = size = _size(conn)
        users_added = channels_added = messages = attachments = 0
        if size < target_bytes * 0.97:
            row = conn.execute("select count(*) from nchat_messages").fetchone()
            rng = random.Random(f"{seed}-{row[0] if row else 0}")
            tag = f"b{rng.getrandbits(24):06x}"
            scale = max(1.0, target_bytes / 2**30)
            users_added, channels_added = int(4000 * scale), int(150 * scale)
            users, channels, handles = _add_people(conn, rng, users_added, channels_added, tag)
            text = _Text(rng, handles)
            per_row = 380.0  # bytes per message incl. indexes and attachments; measured below
            while size < target_bytes * 0.99:
                rows = int(min(max_batch_rows, max(10_000, (target_bytes - size) / per_row)))
                lo, hi = _copy_messages(conn, rng, text, users, channels, rows)
                attachments += _add_attachments(conn, lo, hi)
                messages += rows
                new_size = _size(conn)
                if new_size > size:
                    per_row = (new_size - start) / messages
                size = new_size
                log(
                    f"  {messages:,} messages, database {size / 2**20:,.0f} MiB "
                    f"of {target_bytes / 2**20:,.0f} MiB"
                )
        log("  vacuum (freeze, analyze) and checkpoint")
        conn.execute("set session_replication_role = origin")
        conn.execute("vacuum (freeze, analyze)")
        conn.execute("checkpoint")
        final = _size(conn)
    return BuildReport(
        target_bytes=target_bytes,
        start_bytes=start,
        final_bytes=final,
        users_added=users_added,
        channels_added=channels_added,
        messages_added=messages,
        attachments_added=attachments,
        seconds=time.monotonic() - started,
    )
