"""docs/manual-restore.md is true: its shell blocks, run as written with only zstd, age, tar
and the PostgreSQL tools, restore a drkit base backup plus WAL, and a logical dump.

The blocks are read from the document itself (those after `<!-- verified: NAME -->`), so the
page and this test cannot drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import OperationError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.ownership import chown_tree
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from drkit.runtimes.local_postgres import LocalPostgres
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, switch_and_wait_archived

DOC = Path(__file__).resolve().parents[2] / "docs" / "manual-restore.md"
BLOCK = re.compile(r"<!-- verified: ([\w-]+) -->\n```(?:sh|bash)\n(.*?)\n```", re.S)
ROWS_BEFORE_BACKUP = 100
ROWS_AFTER_BACKUP = 23  # only WAL replay brings these back

pytestmark = pytest.mark.integration


def doc_blocks() -> dict[str, str]:
    blocks = dict(BLOCK.findall(DOC.read_text()))
    assert blocks, f"no verified blocks in {DOC}"
    return blocks


def run_block(blocks: dict[str, str], name: str, env: dict[str, str], cwd: Path) -> str:
    """Run one block of the document, as written, in bash with errexit and pipefail."""
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", blocks[name]],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"block {name!r} failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def take_backup(handle: SandboxHandle, kind: str) -> dict[str, Any]:
    result = run_drkit("--output", "json", "backup", "--type", kind, config=handle.config_path)
    assert result.code == 0, result.stderr
    manifest: dict[str, Any] = result.json()[0]
    return manifest


def count(dsn: str, sql: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_every_documented_block_is_verified_here() -> None:
    assert set(doc_blocks()) == {
        "list-backups",
        "check-hashes",
        "extract-plain",
        "extract-age",
        "verify-pgdata",
        "owner",
        "recovery-plain",
        "restore-wal-script",
        "recovery-script",
        "beside",
        "dump-plain",
        "dump-age",
        "apply-chain",
    }


@pytest.mark.parametrize("private_sandbox", [{}, {"encrypt": True}], ids=["zstd", "zstd+age"], indirect=True)
def test_manual_restore_as_documented(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    encrypted = bool(box.box.state.get("age_identity_file"))
    os_user = box.box.os_user
    pg_state = box.box.state["services"]["postgres"]
    blocks = doc_blocks()

    box.psql("create table manual_restore_probe (id int primary key, note text)")
    box.psql(
        "insert into manual_restore_probe select g, 'before' from generate_series(1, %s::int) g",
        (ROWS_BEFORE_BACKUP,),
    )
    base = take_backup(box, "base")
    suffix = ".tar.zst.age" if encrypted else ".tar.zst"
    parts = [f["name"] for f in base["files"] if f["name"].startswith("base.")]
    assert parts == [f"base.{i:05d}{suffix}" for i in range(len(parts))]
    box.psql(
        "insert into manual_restore_probe select g, 'after' from generate_series(%s::int, %s::int) g",
        (ROWS_BEFORE_BACKUP + 1, ROWS_BEFORE_BACKUP + ROWS_AFTER_BACKUP),
    )
    switch_and_wait_archived(box.dsn)
    logical = take_backup(box, "logical")
    messages = count(box.dsn, "select count(*) from nchat_messages")

    work = box.dir / "manual-restore"
    work.mkdir()
    pgdata = work / "data"
    script = work / "drkit-restore-wal"
    port = free_port()
    env = {
        "PATH": f"{pg_state['bin_dir']}:{os.environ['PATH']}",
        "REPO": str(box.dir / "repo"),
        "STACK": "sandbox",
        "SERVICE": "postgres",
        "BACKUP": base["backup_id"],
        "PGDATA": str(pgdata),
        "AGE_KEY": str(box.box.state.get("age_identity_file", "")),
        "RESTORE_WAL": str(script),
        "PORT": str(port),
    }

    listing = run_block(blocks, "list-backups", env, work)
    assert f"{base['backup_id']}\tbase\t" in listing
    assert f"{logical['backup_id']}\tlogical\t" in listing
    checked = run_block(blocks, "check-hashes", env, work)
    assert checked.count(": OK") == len(base["files"])

    run_block(blocks, "extract-age" if encrypted else "extract-plain", env, work)
    assert (pgdata / "PG_VERSION").is_file()
    assert (pgdata / "backup_label").is_file()
    run_block(blocks, "verify-pgdata", env, work)
    if os.geteuid() == 0:
        run_block(blocks, "owner", env, work)

    if encrypted:
        script.write_text(blocks["restore-wal-script"] + "\n")
        script.chmod(0o755)
        run_block(blocks, "recovery-script", env, work)
    else:
        run_block(blocks, "recovery-plain", env, work)
    run_block(blocks, "beside", env, work)
    assert (pgdata / "recovery.signal").exists()
    run_block(blocks, "verify-pgdata", env, work)  # the doc says it still passes now
    chown_tree(work, os_user)  # the database user writes its log next to the data

    server = LocalPostgres(
        RuntimeSpec(
            type="local",
            data_dir=str(pgdata),
            bin_dir=pg_state["bin_dir"],
            port=port,
            os_user=os_user,
            log_file=str(work / "postgres.log"),
        )
    )
    server.start()
    try:
        dsn = query_dsn(port)

        def promoted() -> bool:
            with connect(dsn) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False

        wait_for(
            promoted, timeout=180, what="the manual restore to finish recovery", retry_on=(OperationError,)
        )
        assert count(dsn, "select count(*) from manual_restore_probe") == (
            ROWS_BEFORE_BACKUP + ROWS_AFTER_BACKUP
        )
        assert count(dsn, "select count(*) from manual_restore_probe where note = 'after'") == (
            ROWS_AFTER_BACKUP
        )
        assert count(dsn, "select count(*) from nchat_messages") == messages
        # Quarantined: the copy does not archive into the live repository.
        with connect(dsn) as conn:
            row = conn.execute("show archive_mode").fetchone()
        assert row is not None and row[0] == "off"
        log = (work / "postgres.log").read_text(errors="replace")
        assert "archive recovery complete" in log or "selected new timeline ID" in log
    finally:
        server.stop()

    dump_env = {
        **env,
        "BACKUP": logical["backup_id"],
        "DB": "nchat",
        "TARGET_DB": "nchat_manual",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_state["port"]),
        "PGUSER": "postgres",
    }
    run_block(blocks, "check-hashes", dump_env, work)
    run_block(blocks, "dump-age" if encrypted else "dump-plain", dump_env, work)
    restored = query_dsn(pg_state["port"], "nchat_manual")
    assert count(restored, "select count(*) from manual_restore_probe") == (
        ROWS_BEFORE_BACKUP + ROWS_AFTER_BACKUP
    )
    assert count(restored, "select count(*) from nchat_messages") == messages


def test_the_documented_restore_wal_script_keeps_the_exit_code_contract(tmp_path: Path) -> None:
    """0: written; 1: not in the archive (end of WAL); 126: there but unreadable (abort)."""
    import pyrage

    from drkit.adapters.repository.codec import Codec
    from drkit.adapters.repository.fs import FsRepository
    from drkit.engines.postgres.wal.archive import WalArchive

    script = tmp_path / "drkit-restore-wal"
    script.write_text(doc_blocks()["restore-wal-script"] + "\n")
    script.chmod(0o755)
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"# test key\n{identity}\n")
    repo = FsRepository(tmp_path / "repo")
    plain = WalArchive(repo, "s", "postgres", Codec())
    sealed = WalArchive(repo, "s", "postgres", Codec(recipients=(str(identity.to_public()),)))
    wal_dir = tmp_path / "repo" / "s" / "postgres" / "wal"
    segments = {f"00000001000000000000000{i}": bytes([i]) * 4096 for i in range(1, 5)}
    names = sorted(segments)
    plain.push_bytes(names[0], segments[names[0]])
    sealed.push_bytes(names[1], segments[names[1]])
    plain.push_bytes(names[2] + ".partial", segments[names[2]])
    plain.push_bytes("00000002.history", b"1\t0/3000000\tno recovery target specified\n")
    (wal_dir / "00000001" / f"{names[3]}.zst").write_bytes(b"not zstd")  # damaged

    def fetch(name: str, with_key: bool = True) -> tuple[int, bytes | None]:
        dest = tmp_path / "pg_wal" / "RECOVERYXLOG"
        dest.parent.mkdir(exist_ok=True)
        dest.unlink(missing_ok=True)
        argv = [str(script), str(wal_dir), name, str(dest)] + ([str(key)] if with_key else [])
        proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        leftovers = [p.name for p in dest.parent.iterdir() if p.name != dest.name]
        assert leftovers == []
        return proc.returncode, dest.read_bytes() if dest.exists() else None

    assert fetch(names[0]) == (0, segments[names[0]])
    assert fetch(names[1]) == (0, segments[names[1]])  # decrypted with the key
    assert fetch(names[2]) == (0, segments[names[2]])  # served from the .partial
    assert fetch("00000002.history") == (0, b"1\t0/3000000\tno recovery target specified\n")
    assert fetch("000000010000000000000009")[0] == 1  # not there: the end of the WAL
    assert fetch("00000003.history")[0] == 1
    assert fetch(names[1], with_key=False)[0] == 126  # there, but no key: abort
    assert fetch(names[3])[0] == 126  # there, but damaged: abort


def test_an_incremental_chain_restores_by_hand_as_documented(private_sandbox: SandboxHandle) -> None:
    """Below 17: drkit's delta chain, put together with the documented Python script."""
    box = private_sandbox
    os_user = box.box.os_user
    pg_state = box.box.state["services"]["postgres"]
    blocks = doc_blocks()
    box.psql("create table manual_chain_probe (id int primary key)")
    take_backup(box, "base")
    for first in (1, 11):
        box.psql(
            "insert into manual_chain_probe select generate_series(%s::int, %s::int)", (first, first + 9)
        )
        box.psql("update nchat_messages set content = content || '!' where id %% 7 = %s::int", (first % 7,))
        last = take_backup(box, "incremental")
    assert last["postgres"]["incremental"] == "delta" and len(last["postgres"]["chain"]) == 2
    messages = count(box.dsn, "select count(*) from nchat_messages")
    switch_and_wait_archived(box.dsn)

    work = box.dir / "manual-chain"
    work.mkdir()
    pgdata = work / "data"
    port = free_port()
    env = {
        "PATH": f"{pg_state['bin_dir']}:{os.environ['PATH']}",
        "REPO": str(box.dir / "repo"),
        "STACK": "sandbox",
        "SERVICE": "postgres",
        "BACKUP": last["backup_id"],
        "PGDATA": str(pgdata),
        "PORT": str(port),
    }
    run_block(blocks, "apply-chain", env, work)
    assert "INCREMENTAL" not in (pgdata / "backup_label").read_text()
    assert not list(pgdata.rglob("INCREMENTAL.*"))
    if os.geteuid() == 0:
        run_block(blocks, "owner", env, work)
    run_block(blocks, "recovery-plain", env, work)
    run_block(blocks, "beside", env, work)
    chown_tree(work, os_user)
    server = LocalPostgres(
        RuntimeSpec(
            type="local",
            data_dir=str(pgdata),
            bin_dir=pg_state["bin_dir"],
            port=port,
            os_user=os_user,
            log_file=str(work / "postgres.log"),
        )
    )
    server.start()
    try:
        dsn = query_dsn(port)

        def promoted() -> bool:
            with connect(dsn) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False

        wait_for(promoted, timeout=180, what="the chain to finish recovery", retry_on=(OperationError,))
        assert count(dsn, "select count(*) from manual_chain_probe") == 20
        assert count(dsn, "select count(*) from nchat_messages") == messages
    finally:
        server.stop()
