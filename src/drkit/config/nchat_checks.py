"""The nchat application's data checks and smoke checks, as `init --preset nself` writes
them and the sandbox's stack.yaml carries them: the source's checks, corrected (a NULL
user_id is a system message, not an orphan; no foreign key links nchat_users to
auth.users), the built-in checks, and one smoke check per service that can answer one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Primary keys nchat and hasura-auth always have; add your own indexes to the list.
NCHAT_INDEXES = (
    "public.nchat_users_pkey",
    "public.nchat_channels_pkey",
    "public.nchat_messages_pkey",
    "auth.users_pkey",
)


def nchat_checks() -> list[dict[str, Any]]:
    """The source's data checks, corrected, plus the built-ins."""
    return [
        {
            "name": "orphaned_messages_by_user",
            # NULL user_id is a system message (ON DELETE SET NULL), not an orphan.
            "query": "select count(*) from nchat_messages m where m.user_id is not null "
            "and not exists (select 1 from nchat_users u where u.id = m.user_id)",
            "expect": {"equals": 0},
            "severity": "critical",
        },
        {
            "name": "orphaned_messages_by_channel",
            "query": "select count(*) from nchat_messages m "
            "where not exists (select 1 from nchat_channels c where c.id = m.channel_id)",
            "expect": {"equals": 0},
            "severity": "critical",
        },
        {
            "name": "future_message_timestamps",
            "query": "select count(*) from nchat_messages where created_at > now() + interval '1 day'",
            "expect": {"equals": 0},
            "severity": "critical",
        },
        {
            "name": "nchat_users_match_auth_users",
            "query": "select count(*) from nchat_users",
            "expect": {"equals_query": "select count(*) from auth.users", "tolerance": 0},
            "severity": "warning",
        },
        {"name": "btree_indexes_amcheck", "builtin": "pg_amcheck", "severity": "critical"},
        {"name": "checksum_failures", "builtin": "checksum_failures", "severity": "critical"},
        {
            "name": "expected_indexes",
            "builtin": f"expected_indexes({', '.join(NCHAT_INDEXES)})",
            "severity": "critical",
        },
        {"name": "invalid_indexes", "builtin": "invalid_indexes", "severity": "warning"},
        {
            "name": "unvalidated_constraints",
            "builtin": "unvalidated_constraints",
            "severity": "warning",
        },
        {
            "name": "unindexed_foreign_keys",
            "builtin": "unindexed_foreign_keys",
            "severity": "warning",
        },
    ]


def nchat_smoke(services: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """After a recovery, does the stack do its job? One check per service present."""
    smoke: list[dict[str, Any]] = []
    for name, service in services.items():
        kind = service.get("kind")
        if kind == "hasura":
            query = "{ nchat_channels(limit: 1) { id name } }"
            smoke.append(
                {
                    "name": "channels readable through Hasura",
                    "service": name,
                    "probe": {"type": "graphql", "target": query},
                }
            )
        elif kind == "auth" and service.get("health", {}).get("type") == "auth":
            smoke.append({"name": "auth canary signs in", "service": name, "probe": dict(service["health"])})
        elif kind == "meilisearch" and service.get("url"):
            url = str(service["url"]).rstrip("/")
            smoke.append(
                {
                    "name": "search answers",
                    "service": name,
                    "probe": {"type": "http", "target": f"{url}/health"},
                }
            )
        elif kind == "redis":
            smoke.append({"name": "redis answers", "service": name, "probe": {"type": "redis"}})
        elif kind == "s3":
            smoke.append({"name": "object store answers", "service": name, "probe": {"type": "s3"}})
    return smoke
