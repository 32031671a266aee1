"""`drkit verify ID` finds any service's backup (Redis, Hasura), by a unique start of its id or
`latest`, and `drkit verify` with no id covers every service's newest backup (issue 18, item 3)."""

from __future__ import annotations

from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle


def backup_id(sandbox: SandboxHandle, service: str) -> str:
    result = run_drkit("--output", "json", "backup", service, config=sandbox.config_path)
    assert result.code == 0, result.stderr
    return str(result.json()[0]["backup_id"])


def test_verify_finds_a_redis_and_a_hasura_backup_by_id_and_by_prefix(sandbox: SandboxHandle) -> None:
    redis = backup_id(sandbox, "redis")
    hasura = backup_id(sandbox, "hasura")
    for ref, service in ((redis, "redis"), (hasura, "hasura")):
        result = run_drkit("--output", "json", "verify", ref, config=sandbox.config_path)
        assert result.code == 0, result.stdout + result.stderr
        body = result.json()
        assert (body["backup_id"], body["service"], body["ok"]) == (ref, service, True)
    # A unique start of an id is enough; a start shared by several ids names them.
    listed = run_drkit("--output", "json", "backups", "list", config=sandbox.config_path).json()["backups"]
    ids = [b["backup_id"] for b in listed]
    prefix = next(
        redis[:n] for n in range(len(redis), 0, -1) if sum(i.startswith(redis[:n]) for i in ids) > 1
    )
    unique = redis[: len(prefix) + 1]
    assert (
        run_drkit("--output", "json", "verify", unique, config=sandbox.config_path).json()["backup_id"]
        == redis
    )
    shared = run_drkit("verify", prefix, config=sandbox.config_path)
    assert shared.code == 2 and "give more of it" in shared.stderr, shared.stderr
    missing = run_drkit("verify", "19990101T000000Z-nope", config=sandbox.config_path)
    assert missing.code == 1 and "no backup '19990101T000000Z-nope'" in missing.stderr


def test_verify_without_an_id_covers_every_services_newest_backup(sandbox: SandboxHandle) -> None:
    newest = {service: backup_id(sandbox, service) for service in ("postgres", "redis", "hasura")}
    result = run_drkit("--output", "json", "verify", config=sandbox.config_path)
    assert result.code == 0, result.stdout + result.stderr
    body = result.json()
    verified = {b["service"]: b["backup_id"] for b in body["backups"]}
    assert body["ok"] is True
    for service, backup in newest.items():
        assert verified[service] == backup
    latest = run_drkit("--output", "json", "verify", "latest", config=sandbox.config_path).json()
    assert latest["ok"] is True and latest["backup_id"] in {b["backup_id"] for b in body["backups"]}
