"""Compare a restored Redis with what its backup recorded: key counts per database and the
sampled keys' digests. Results are collected, never raised.

Keys with a TTL can expire between the backup and the restore (Redis drops expired keys
when it loads a file), so fewer keys is a warning while the shortfall is within the keys
that had a TTL, and a sampled key that is gone is fine when its recorded expiry has passed.
"""

from __future__ import annotations

from drkit.adapters.redis.client import RedisServer
from drkit.adapters.redis.sample import KeyDigest, digest_keys
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status

SHOWN = 5  # mismatching keys reported one by one; the rest are counted


def compare_keys(
    recorded: dict[int, int], expires: dict[int, int], actual: dict[int, int]
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for db in sorted(set(recorded) | set(actual)):
        want, got = recorded.get(db, 0), actual.get(db, 0)
        if got == want:
            continue
        with_ttl = expires.get(db, 0)
        if got < want <= got + with_ttl:
            detail = (
                f"db{db}: {got} keys, the backup recorded {want}; {with_ttl} of those had a TTL "
                "and may have expired since"
            )
            results.append(CheckResult(f"keys db{db}", Status.WARNING, detail))
        else:
            results.append(
                CheckResult(f"keys db{db}", Status.FAILED, f"db{db}: {got} keys, the backup recorded {want}")
            )
    if not results:
        total = sum(recorded.values())
        results.append(
            CheckResult("keys", Status.OK, f"{total} keys in {len(recorded)} database(s), as recorded")
        )
    return results


def compare_sample(expected: list[KeyDigest], actual: list[KeyDigest], now_ms: int) -> list[CheckResult]:
    found = {(d.db, d.key): d for d in actual}
    problems: list[str] = []
    expired = 0
    for want in expected:
        got = found.get((want.db, want.key))
        if got is None:
            if want.expire_at_ms is not None and want.expire_at_ms <= now_ms:
                expired += 1
            else:
                problems.append(f"{want.key!r} (db{want.db}) is missing")
        elif (got.type, got.sha256) != (want.type, want.sha256):
            problems.append(f"{want.key!r} (db{want.db}) differs from the backup")
        elif got.expire_at_ms != want.expire_at_ms:
            problems.append(
                f"{want.key!r} (db{want.db}) has expiry {got.expire_at_ms}, recorded {want.expire_at_ms}"
            )
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        detail = f"{len(problems)} of {len(expected)} sampled keys: " + "; ".join(problems[:SHOWN]) + more
        return [CheckResult("sample", Status.FAILED, detail)]
    note = f" ({expired} expired since the backup, as their TTL said)" if expired else ""
    return [
        CheckResult("sample", Status.OK, f"{len(expected) - expired} sampled keys match the backup{note}")
    ]


def compare_server(server: RedisServer, m: Manifest, now_ms: int) -> list[CheckResult]:
    """A running server (restored, or a throwaway one) against what backup `m` recorded."""
    expected = [KeyDigest.from_dict(d) for d in m.details.get("sample", [])]
    actual: list[KeyDigest] = []
    for db in sorted({d.db for d in expected}):
        actual += digest_keys(server, db, [d.key.encode() for d in expected if d.db == db])
    recorded = {int(k): int(v) for k, v in m.details.get("keys_per_db", {}).items()}
    expires = {int(k): int(v) for k, v in m.details.get("expires_per_db", {}).items()}
    found = server.keyspace().keys
    return [*compare_keys(recorded, expires, found), *compare_sample(expected, actual, now_ms)]
