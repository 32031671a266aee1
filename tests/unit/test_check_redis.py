"""What `drkit check` makes of Redis's INFO persistence and its save/appendfsync settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drkit.domain.checks import Status
from drkit.engines.redis.check import persistence_results

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def info(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "aof_enabled": 1,
        "rdb_last_bgsave_status": "ok",
        "aof_last_write_status": "ok",
        "rdb_changes_since_last_save": 12,
        "rdb_last_save_time": int((NOW - timedelta(minutes=3)).timestamp()),
    }
    return base | overrides


def results(
    data: dict[str, Any], *, save: str = "900 1 300 10 60 10000", rpo: int | None = 15
) -> dict[str, Any]:
    out = persistence_results(
        "redis",
        data,
        save=save,
        appendfsync="everysec",
        rpo=timedelta(minutes=rpo) if rpo is not None else None,
        now=NOW,
    )
    return {r.name.removeprefix("redis: "): (r.status, r.detail) for r in out}


def test_the_source_configuration_passes() -> None:
    got = results(info())
    assert {name: status for name, (status, _) in got.items()} == {
        "persistence": Status.OK,
        "last BGSAVE": Status.OK,
        "AOF writes": Status.OK,
        "last save": Status.OK,
    }
    assert "appendfsync everysec" in got["persistence"][1]


def test_nothing_persisted_fails() -> None:
    status, detail = results(info(aof_enabled=0), save="")["persistence"]
    assert status is Status.FAILED and "loses every key" in detail


def test_rdb_only_warns_and_a_stale_save_beyond_the_rpo_warns() -> None:
    old = int((NOW - timedelta(hours=2)).timestamp())
    got = results(info(aof_enabled=0, rdb_last_save_time=old), rpo=15)
    assert got["persistence"][0] is Status.WARNING
    assert got["last save"][0] is Status.WARNING and "2h" in got["last save"][1]
    assert "AOF writes" not in got


def test_a_failed_bgsave_or_aof_write_fails() -> None:
    got = results(info(rdb_last_bgsave_status="err", aof_last_write_status="err"))
    assert got["last BGSAVE"][0] is Status.FAILED and "every backup" in got["last BGSAVE"][1]
    assert got["AOF writes"][0] is Status.FAILED
