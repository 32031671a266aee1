"""`drkit integrity` on real PostgreSQL: the checks `drkit init --preset nself` ships pass on
clean data, find seeded orphans and future timestamps with their counts, and pg_amcheck
finds an index page corrupted on disk."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg import conninfo

from drkit.adapters.postgres.client import connect, execute
from drkit.config.nchat_checks import nchat_checks
from drkit.sandbox.seed import SeedSize, create_schema, seed
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_versions import across_majors

SECRETS = {"POSTGRES_PASSWORD": "unused-with-trust-auth", "DRKIT_AUTH_CANARY_PASSWORD": "x"}


@pytest.fixture
def nself_project(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A database of this test's own on the shared server, seeded like nchat, and an nself
    project whose .env points at it; yields the stack.yaml `drkit init` wrote and the DSN."""
    params = conninfo.conninfo_to_dict(sandbox.dsn)
    name = f"it_integrity_{secrets.token_hex(4)}"
    admin = conninfo.make_conninfo(sandbox.dsn, dbname="postgres")
    execute(admin, f"create database {name}")
    dsn = conninfo.make_conninfo(sandbox.dsn, dbname=name)
    create_schema(dsn)
    seed(dsn, SeedSize(users=30, channels=4, messages=400, attachments=10))
    project = tmp_path / "nchat"
    project.mkdir()
    (project / ".env.dev").write_text(
        f"PROJECT_NAME=nchat\nPOSTGRES_DB={name}\nPOSTGRES_USER=postgres\n"
        f"POSTGRES_PORT={params['port']}\nPOSTGRES_PASSWORD=dev-only\n"
    )
    written = run_drkit("init", "--preset", "nself", "--project-dir", str(project))
    assert written.code == 0, written.stderr
    try:
        yield project / "stack.yaml", dsn
    finally:
        execute(admin, f"drop database {name} with (force)")


def integrity(config: Path, *checks: str, as_json: bool = False) -> Any:
    output = ["--output", "json"] if as_json else []
    return run_drkit(*output, "integrity", *checks, config=config, env=SECRETS, timeout=120)


def results(output: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in output.json()["results"]}


def test_shipped_checks_pass_on_clean_data(nself_project: tuple[Path, str]) -> None:
    config, _ = nself_project
    outcome = integrity(config, as_json=True)
    assert outcome.code == 0, outcome.stdout
    by_name = results(outcome)
    assert {n: r["status"] for n, r in by_name.items()} == dict.fromkeys(by_name, "ok")
    assert len(by_name) == len(nchat_checks())
    assert by_name["orphaned_messages_by_user"]["value"] == 0
    assert by_name["nchat_users_match_auth_users"]["value"] == 30
    assert by_name["expected_indexes"]["detail"] == "4 of 4 present"


def test_seeded_orphans_and_future_timestamps_are_counted(nself_project: tuple[Path, str]) -> None:
    config, dsn = nself_project
    with connect(dsn) as conn:
        conn.execute("set session_replication_role = replica")  # let orphans past the FKs
        conn.execute(
            "insert into nchat_messages (channel_id, user_id, content) "
            "select (select id from nchat_channels limit 1), gen_random_uuid(), 'orphan' "
            "from generate_series(1, 3)"
        )
        conn.execute(
            "insert into nchat_messages (channel_id, user_id, content) "
            "select gen_random_uuid(), (select id from nchat_users limit 1), 'lost' "
            "from generate_series(1, 2)"
        )
        conn.execute(
            "insert into nchat_messages (channel_id, user_id, content, created_at) "
            "select (select id from nchat_channels limit 1), null, 'from the future', "
            "now() + interval '3 days' from generate_series(1, 4)"
        )
        conn.execute(
            "insert into auth.users (email, display_name, password_hash) "
            "values ('new@nchat.example', 'New', 'x')"
        )
    outcome = integrity(config, as_json=True)
    assert outcome.code == 3
    by_name = results(outcome)
    # the 4 future messages have a NULL user: system messages, not orphans
    assert (
        by_name["orphaned_messages_by_user"]["value"],
        by_name["orphaned_messages_by_user"]["offending"],
    ) == (3, 3)
    assert by_name["orphaned_messages_by_channel"]["offending"] == 2
    assert by_name["future_message_timestamps"]["offending"] == 4
    for name in ("orphaned_messages_by_user", "orphaned_messages_by_channel", "future_message_timestamps"):
        assert by_name[name]["status"] == "failed" and by_name[name]["failed_critically"]
    users = by_name["nchat_users_match_auth_users"]
    assert (users["status"], users["value"], users["offending"]) == ("warning", 30, 1)
    assert by_name["btree_indexes_amcheck"]["status"] == "ok"

    text = integrity(config)
    assert text.code == 3
    assert "orphaned_messages_by_user" in text.stdout and "3 offending" in text.stdout
    assert "3 failed" in text.stdout


def test_only_named_checks_run(nself_project: tuple[Path, str]) -> None:
    config, _ = nself_project
    outcome = integrity(config, "checksum_failures", as_json=True)
    assert outcome.code == 0
    assert list(results(outcome)) == ["checksum_failures"]
    unknown = integrity(config, "no_such_check")
    assert unknown.code == 2 and "unknown check(s) no_such_check" in unknown.stderr


@pytest.mark.parametrize("private_sandbox", across_majors(amcheck=True), indirect=True)
def test_amcheck_finds_a_corrupted_index_page(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    relation = box.psql("select pg_relation_filepath('nchat_messages_pkey')")
    blocks = box.psql("select pg_relation_size('nchat_messages_pkey') / 8192")
    assert blocks >= 2
    doc = yaml.safe_load(box.config_path.read_text())
    doc["checks"] = nchat_checks()
    config = box.dir / "with-checks.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert integrity(config, "btree_indexes_amcheck").code == 0  # clean before

    runtime = box.box.postgres_runtime()
    runtime.stop()
    path = Path(doc["services"]["postgres"]["runtime"]["data_dir"]) / relation
    with open(path, "r+b") as page:  # garbage in the middle of block 1 (a leaf page)
        page.seek(8192 + 2048)
        page.write(b"\xde\xad\xbe\xef" * 64)
    runtime.start()

    outcome = integrity(config, "btree_indexes_amcheck", "checksum_failures", as_json=True)
    assert outcome.code == 3, outcome.stdout
    found = results(outcome)["btree_indexes_amcheck"]
    assert found["status"] == "failed" and found["offending"] >= 1
    assert "nchat.public.nchat_messages_pkey" in found["detail"]
    assert results(outcome)["checksum_failures"]["status"] == "failed"  # data checksums are on
