"""A damaged manifest among good ones: listed as damaged, skipped, and the other backups
still restore and verify (on the real sandbox PostgreSQL)."""

from __future__ import annotations

import json
import shutil

from drkit.adapters.postgres.client import scalar
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived

BAD_ID = "29991231T000000Z-base"  # sorts after every real backup: the "newest"


def test_a_corrupted_manifest_leaves_the_other_backups_listable_and_restorable(
    sandbox: SandboxHandle,
) -> None:
    made = run_drkit("--output", "json", "backup", "postgres", config=sandbox.config_path)
    assert made.code == 0, made.stderr
    good_id = made.json()[0]["backup_id"]
    sandbox.psql("create table if not exists damaged_probe (id int)")
    sandbox.psql("insert into damaged_probe values (7)")
    switch_and_wait_archived(sandbox.dsn)
    bad = sandbox.dir / "repo" / "sandbox" / "postgres" / "backups" / BAD_ID
    bad.mkdir()
    (bad / "manifest.json").write_text('{"backup_id": "' + BAD_ID + '", "kind": "base", "files": [')
    try:
        listed = run_drkit("--output", "json", "backups", "list", config=sandbox.config_path)
        assert listed.code == 0, listed.stderr
        data = listed.json()
        assert good_id in [b["backup_id"] for b in data["backups"]]
        assert [(d["backup_id"], "unreadable" in d["reason"]) for d in data["damaged"]] == [(BAD_ID, True)]
        text = run_drkit("backups", "list", config=sandbox.config_path)
        assert f"damaged (skipped): postgres/{BAD_ID}" in text.stdout

        dest = restore_dir(sandbox.dir, "beside-damaged", sandbox.box.os_user)
        result = run_drkit(
            "--output", "json", "restore", "postgres", "--to", str(dest), "--keep-running",
            config=sandbox.config_path,
        )  # fmt: skip
        assert result.code == 0, result.stderr
        out = json.loads(result.stdout[result.stdout.index("{") :])
        try:
            assert out["backup_id"] == good_id
            assert scalar(query_dsn(out["port"]), "select count(*) from damaged_probe where id = 7") >= 1
        finally:
            stop_restored(dest, sandbox.box.os_user)
            shutil.rmtree(dest, ignore_errors=True)

        verified = run_drkit("verify", good_id, config=sandbox.config_path)
        assert verified.code == 0, verified.stdout + verified.stderr
        refused = run_drkit("verify", BAD_ID, config=sandbox.config_path)
        assert refused.code == 1 and "damaged" in refused.stderr
    finally:
        shutil.rmtree(bad, ignore_errors=True)
