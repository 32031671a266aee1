"""Seed an nchat-like dataset: users, channels, messages of realistic text, attachments."""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

from drkit.adapters.postgres.client import connect

_TEXT = """
the deploy went out at noon and the dashboards look fine but latency on the search
endpoint is up again can someone check the index rebuild job before standup tomorrow
thanks I pushed a fix for the login redirect loop please review when you have a minute
meeting moved to three we need the migration plan for the attachments bucket and a
rollback story if the new storage class misbehaves lunch anyone the coffee machine on
floor two is broken again release notes are drafted in the shared doc customers asked
about export to csv and dark mode on mobile the on call rotation starts monday backup
drill passed restore took eleven minutes which is inside our target
"""
WORDS = tuple(_TEXT.split())


@dataclass(frozen=True)
class SeedSize:
    users: int = 200
    channels: int = 20
    messages: int = 5000
    attachments: int = 300


def sentence(rng: random.Random, low: int = 4, high: int = 40) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))
    return text[0].upper() + text[1:] + rng.choice(".!?")


def create_schema(dsn: str) -> None:
    sql = resources.files("drkit.sandbox").joinpath("schema.sql").read_text()
    with connect(dsn) as conn:
        conn.execute(sql)


def seed(dsn: str, size: SeedSize = SeedSize(), *, rng_seed: int = 7) -> None:
    """Fill the schema; deterministic for a given seed. Timestamps lie in the past."""
    rng = random.Random(rng_seed)
    now = datetime.now(UTC)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(size.users)]
    channels = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(size.channels)]
    with connect(dsn, autocommit=False) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                "copy auth.users (id, email, display_name, password_hash, created_at) from stdin"
            ) as copy:
                for i, uid in enumerate(users):
                    created = now - timedelta(days=rng.randint(30, 400))
                    pw = hashlib.sha256(f"pw{i}".encode()).hexdigest()
                    copy.write_row((uid, f"user{i}@nchat.example", f"User {i}", pw, created))
            cur.execute(
                "insert into nchat_users (id, email, display_name, created_at) "
                "select id, email, display_name, created_at from auth.users"
            )
            with cur.copy("copy nchat_channels (id, name, topic, created_by) from stdin") as copy:
                for i, cid in enumerate(channels):
                    copy.write_row((cid, f"channel-{i}", sentence(rng, 3, 10), rng.choice(users)))
            with cur.copy(
                "copy nchat_messages (channel_id, user_id, content, created_at) from stdin"
            ) as copy:
                for _ in range(size.messages):
                    user = None if rng.random() < 0.02 else rng.choice(users)
                    created = now - timedelta(seconds=rng.randint(60, 90 * 86400))
                    copy.write_row((rng.choice(channels), user, sentence(rng), created))
            cur.execute(
                "insert into nchat_attachments (message_id, bucket, object_key, sha256, "
                "size_bytes, content_type) "
                "select id, 'nchat-uploads', 'attachments/' || id || '.txt', "
                "encode(sha256(convert_to(content, 'UTF8')), 'hex'), "
                "octet_length(content), 'text/plain' "
                "from nchat_messages order by id limit %s",
                (size.attachments,),
            )
        conn.commit()
        conn.execute("analyze")
