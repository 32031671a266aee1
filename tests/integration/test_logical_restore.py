"""Restores from a logical backup: a dropped table comes back (with its indexes and
constraints) and nothing else changes; a whole dump goes into a new database; nothing
existing is ever overwritten."""

from __future__ import annotations

import pytest

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_versions import across_majors

pytestmark = pytest.mark.integration


def fingerprints(box: SandboxHandle) -> dict[str, str]:
    """Every user table's content hash (and each index's and constraint's name)."""
    out: dict[str, str] = {}
    with connect(box.dsn) as conn:
        tables = conn.execute(
            "select schemaname || '.' || tablename from pg_tables "
            "where schemaname not in ('pg_catalog', 'information_schema') order by 1"
        ).fetchall()
        for (table,) in tables:
            row = conn.execute(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t"
            ).fetchone()
            out[table] = str(row[0]) if row else ""
        for name, kind in conn.execute(
            "select conrelid::regclass::text || ':' || conname, contype::text from pg_constraint "
            "where connamespace::regnamespace::text not in ('pg_catalog', 'information_schema')"
        ).fetchall():
            out[f"constraint {name}"] = kind
        for (name,) in conn.execute(
            "select schemaname || '.' || indexname from pg_indexes where schemaname not in "
            "('pg_catalog', 'information_schema')"
        ).fetchall():
            out[f"index {name}"] = "present"
    return out


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_a_dropped_table_comes_back_and_only_that_table_changes(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("backup", "postgres", "--type", "logical", config=box.config_path).code == 0
    before = fingerprints(box)
    box.psql("drop table nchat_attachments")
    box.psql(
        "update nchat_channels set name = name || ' (renamed after the backup)' "
        "where id = (select id from nchat_channels order by id limit 1)"
    )
    changed = fingerprints(box)

    result = run_drkit(
        "--output",
        "json",
        "restore",
        "postgres",
        "--table",
        "nchat_attachments",
        "--yes",
        config=box.config_path,
    )
    assert result.code == 0, result.stderr
    assert result.json()["rows"] == {
        "public.nchat_attachments": box.psql("select count(*) from nchat_attachments")
    }
    after = fingerprints(box)
    # The table is back, as it was at the backup, with its indexes and constraints ...
    back = {k: v for k, v in before.items() if "nchat_attachments" in k}
    assert back and {k: after.get(k) for k in back} == back
    # ... and every other table is exactly as it was just before the restore (the later
    # change to nchat_channels stays).
    others = {k: v for k, v in changed.items() if "nchat_attachments" not in k}
    assert {k: after[k] for k in others} == others
    assert not box.psql("select count(*) from pg_database where datname like %s", ("drkit_restore_%",))


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_a_whole_dump_goes_into_a_new_database_and_never_over_one(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("backup", "postgres", "--type", "logical", config=box.config_path).code == 0
    messages = box.psql("select count(*) from nchat_messages")
    result = run_drkit("restore", "postgres", "--database", "nchat_copy", config=box.config_path)
    assert result.code == 0, result.stderr
    with connect(box.dsn.replace("dbname=nchat", "dbname=nchat_copy")) as conn:
        row = conn.execute("select count(*) from nchat_messages").fetchone()
    assert row is not None and row[0] == messages
    again = run_drkit("restore", "postgres", "--database", "nchat_copy", config=box.config_path)
    assert again.code == 2
    assert "exists" in again.stderr
    live = run_drkit("restore", "postgres", "--table", "nchat_messages", "--yes", config=box.config_path)
    assert live.code == 2
    assert box.psql("select count(*) from nchat_messages") == messages
