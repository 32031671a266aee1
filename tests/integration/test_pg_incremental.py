"""Incremental base backups on a real PostgreSQL of each major (PostgreSQL 17+: its own,
through pg_basebackup --incremental; below 17: drkit's block delta): a chain restores to the
newest backup and to a time inside it with exactly the rows committed then; a damaged link
fails verify naming it and no restore goes past it; the chain extracts to the very files
pg_combinebackup makes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived
from tests.integration.pg_versions import across_majors, majors


def native() -> list[Any]:
    """PostgreSQL 17+ majors of the run: its own incremental backups, pg_combinebackup."""
    return [pytest.param({"pg_major": m}, id=f"pg{m}") for m in majors() if m >= 17]


BACKUPS = Path("repo") / "sandbox" / "postgres" / "backups"


def backup(box: SandboxHandle, kind: str = "incremental") -> dict[str, Any]:
    result = run_drkit("--output", "json", "backup", "postgres", "--type", kind, config=box.config_path)
    assert result.code == 0, result.stderr
    return dict(result.json()[0])


def add_rows(box: SandboxHandle, first: int, last: int) -> None:
    """Rows first..last of chain_probe, and a change to 2 % of the messages (a day's work)."""
    box.psql("insert into chain_probe select g from generate_series(%s::int, %s::int) g", (first, last))
    box.psql("update nchat_messages set content = content || '.' where id %% 50 = %s::int", (first % 50,))


def restore(box: SandboxHandle, name: str, *args: str) -> tuple[dict[str, Any], Path]:
    dest = restore_dir(box.dir, name, box.box.os_user)
    result = run_drkit(
        "--output",
        "json",
        "restore",
        "postgres",
        *args,
        "--to",
        str(dest),
        "--keep-running",
        config=box.config_path,
    )
    assert result.code == 0, result.stdout + result.stderr
    return json.loads(result.stdout[result.stdout.index("{") :]), dest


def probe_rows(port: int) -> list[int]:
    with connect(query_dsn(port)) as conn:
        return [r[0] for r in conn.execute("select id from chain_probe order by id")]


def week(box: SandboxHandle) -> tuple[list[dict[str, Any]], str]:
    """A full backup, then three incrementals, rows 1..40 committed between them; the time
    after rows 1..20 (inside the chain, after its second link); every segment archived."""
    box.psql("create table chain_probe (id int primary key)")
    made = [backup(box, "base")]
    add_rows(box, 1, 10)
    made.append(backup(box))
    add_rows(box, 11, 20)
    target = box.psql("select clock_timestamp()::text")
    box.psql("select pg_sleep(0.05)")  # the next commit is strictly later than the target
    add_rows(box, 21, 30)
    made.append(backup(box))
    add_rows(box, 31, 40)
    made.append(backup(box))
    switch_and_wait_archived(box.dsn)
    return made, target


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_a_chain_restores_exactly_to_its_end_and_to_a_time_inside_it(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    made, target = week(box)
    full, *incrementals = made
    method = "native" if box.major >= 17 else "delta"
    assert full["postgres"].get("parent") is None
    for parent, child in zip(made, incrementals, strict=False):
        assert child["postgres"]["incremental"] == method
        assert child["postgres"]["parent"] == parent["backup_id"]
    chain = [m["backup_id"] for m in made]
    assert incrementals[-1]["postgres"]["chain"] == chain[:-1]
    stored = [sum(f["size"] for f in m["files"]) for m in made]
    assert all(s < stored[0] / 2 for s in stored[1:]), stored  # each holds what changed, not all

    listed = run_drkit("--output", "json", "backups", "list", config=box.config_path).json()
    assert [b["postgres"].get("parent") for b in listed["backups"]] == [None, *chain[:-1]]
    assert listed["broken_chains"] == []

    out, dest = restore(box, "latest", "--backup", chain[-1])
    try:
        assert out["backup_id"] == chain[-1]
        assert probe_rows(out["port"]) == list(range(1, 41))
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)

    out, dest = restore(box, "inside", "--target-time", target)
    try:
        assert out["backup_id"] == chain[1]  # the newest link that ends before the target
        assert probe_rows(out["port"]) == list(range(1, 21))
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("private_sandbox", across_majors(), indirect=True)
def test_a_damaged_middle_link_fails_verify_naming_it_and_no_restore_goes_past_it(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    made, _target = week(box)
    chain = [m["backup_id"] for m in made]
    middle = box.dir / BACKUPS / chain[2]
    part = next(middle.glob("base.00000.tar.zst"))
    original = part.read_bytes()
    flip_byte(part)

    verified = run_drkit("--output", "json", "verify", chain[-1], config=box.config_path)
    assert verified.code == 3, verified.stdout + verified.stderr
    failed = {r["name"]: r["detail"] for r in verified.json()["results"] if r["status"] == "failed"}
    assert list(failed) == ["chain"] and chain[2] in failed["chain"]

    dest = restore_dir(box.dir, "past", box.box.os_user)
    refused = run_drkit(
        "restore", "postgres", "--backup", chain[-1], "--to", str(dest), config=box.config_path
    )
    assert refused.code == 1
    assert f"stopped at {chain[2]}" in refused.stderr, refused.stderr
    assert chain[1] in refused.stderr  # the hint: the link before it

    # A middle link whose manifest is unreadable: refused before anything is touched, and a
    # restore to the newest point goes from the link before it and replays the WAL instead.
    part.write_bytes(original)
    (middle / "manifest.json").write_text("{ damaged")
    dest = restore_dir(box.dir, "refused", box.box.os_user)
    refused = run_drkit(
        "restore", "postgres", "--backup", chain[-1], "--to", str(dest), config=box.config_path
    )
    assert refused.code == 1 and f"chain is broken at {chain[2]}" in refused.stderr, refused.stderr
    assert not dest.exists()
    listed = run_drkit("--output", "json", "backups", "list", config=box.config_path).json()
    assert {b["backup_id"]: b["link"] for b in listed["broken_chains"]} == {chain[3]: chain[2]}
    out, dest = restore(box, "around")
    try:
        assert out["backup_id"] == chain[1]
        assert probe_rows(out["port"]) == list(range(1, 41))
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)


def extract_by_hand(directory: Path, into: Path) -> None:
    into.mkdir()
    parts = sorted(str(p) for p in directory.glob("base.*.tar.zst"))
    subprocess.run(f"cat {' '.join(parts)} | zstd -dq | tar -x -C {into}", shell=True, check=True)


@pytest.mark.parametrize("private_sandbox", native(), indirect=True)
def test_the_restored_chain_holds_the_files_pg_combinebackup_makes(private_sandbox: SandboxHandle) -> None:
    """pg_combinebackup (PostgreSQL's own tool) on the backups extracted by hand, and drkit's
    extraction of the same chain: every data file the same, byte for byte."""
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.chain_restore import extract_chain

    box = private_sandbox
    made, _target = week(box)
    work = box.dir / "combine"
    work.mkdir()
    inputs = []
    for m in made:
        extract_by_hand(box.dir / BACKUPS / m["backup_id"], work / m["backup_id"])
        inputs.append(str(work / m["backup_id"]))
    theirs = work / "pg_combinebackup"
    subprocess.run([f"{box.bin_dir}/pg_combinebackup", "-o", str(theirs), *inputs], check=True)

    ws = open_workspace(box.stack)
    chain = tuple(find_backup(ws.repo, "sandbox", ["postgres"], m["backup_id"]) for m in made)
    ours = work / "drkit"
    extract_chain(ws.repo, ws.codec, "sandbox", "postgres", chain, ours, parallel=2)
    files = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
    mine = sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
    assert [str(p) for p in mine] == [str(p) for p in files if p.name != "backup_manifest"]
    differ = [str(p) for p in mine if (ours / p).read_bytes() != (theirs / p).read_bytes()]
    assert differ == []


@pytest.mark.parametrize("private_sandbox", native(), indirect=True)
def test_an_incremental_that_cannot_be_taken_is_a_full_backup_saying_why(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    first = backup(box)
    assert first["postgres"].get("parent") is None
    assert "no earlier base backup" in first["details"]["full_because"]
    box.psql("alter system set summarize_wal = off")
    box.psql("select pg_reload_conf()")
    second = backup(box)
    assert second["postgres"].get("parent") is None
    assert "summarize_wal is off" in second["details"]["full_because"]
    checked = run_drkit("--output", "json", "check", config=box.config_path)
    rows = [r for r in checked.json()["results"] if r["name"] == "postgres: incremental backups"]
    assert rows and rows[0]["status"] == "warning" and "summarize_wal = off" in rows[0]["detail"]


@pytest.mark.parametrize("private_sandbox", [{"encrypt": True}], ids=["zstd+age"], indirect=True)
def test_an_encrypted_chain_restores(private_sandbox: SandboxHandle) -> None:
    """Every part age-encrypted: the parent's records and manifest read through the identity."""
    box = private_sandbox
    box.psql("create table chain_probe (id int primary key)")
    backup(box, "base")
    add_rows(box, 1, 10)
    backup(box)
    add_rows(box, 11, 20)
    last = backup(box)
    assert last["encrypted"] and len(last["postgres"]["chain"]) == 2
    switch_and_wait_archived(box.dsn)
    out, dest = restore(box, "encrypted", "--backup", last["backup_id"])
    try:
        assert probe_rows(out["port"]) == list(range(1, 21))
    finally:
        stop_restored(dest, box.box.os_user, box.bin_dir)


def test_a_set_whose_postgres_part_is_incremental_restores_to_its_moment(
    private_sandbox: SandboxHandle,
) -> None:
    """The default schedule's weekday job, `backup --all --type incremental`: the set's
    PostgreSQL backup is an incremental on the week's full one, and `restore --set` brings
    the stack back to the set's moment through that chain."""
    box = private_sandbox
    config = yaml.safe_load(box.config_path.read_text())
    config["sets"] = {**config.get("sets", {}), "base_max_age": "1s"}  # no reuse of the full one
    box.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    box.psql("create table chain_probe (id int primary key)")
    full = run_drkit("--output", "json", "backup", "--all", config=box.config_path)
    assert full.code == 0, full.stderr
    add_rows(box, 1, 10)
    taken = run_drkit("--output", "json", "backup", "--all", "--type", "incremental", config=box.config_path)
    assert taken.code == 0, taken.stderr
    made = taken.json()
    incremental = made["backups"]["postgres"]
    shown = run_drkit("--output", "json", "backups", "show", incremental, config=box.config_path)
    assert shown.code == 0, shown.stderr
    assert shown.json()["postgres"]["parent"] == full.json()["backups"]["postgres"]
    add_rows(box, 11, 20)  # after the set's moment

    restored = run_drkit(
        "--output", "json", "restore", "--set", made["set_id"], "--yes", config=box.config_path
    )
    assert restored.code == 0, restored.stdout + restored.stderr
    with connect(box.dsn) as conn:
        rows = [r[0] for r in conn.execute("select id from chain_probe order by id")]
    assert rows == list(range(1, 11))


def test_a_drill_copies_the_whole_chain_of_a_sets_incremental_part(private_sandbox: SandboxHandle) -> None:
    """A nightly set's PostgreSQL part is incremental on weekdays (or the incremental `backup
    --all` reuses): an isolated drill copied only that backup, and every drill failed with
    "chain is broken at ...: it is missing from the repository" (README's block, run top to
    bottom: `backup --type incremental`, then `backup --all`, then `drill --all`)."""
    from drkit.engines.core.layout import backup_dir
    from drkit.engines.core.set_refs import find_set
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.drills.isolate import needed_keys

    box = private_sandbox
    full = backup(box, "base")
    incremental = backup(box)
    assert incremental["postgres"]["parent"] == full["backup_id"]
    made = run_drkit("--output", "json", "backup", "--all", config=box.config_path)
    assert made.code == 0, made.stderr
    assert made.json()["backups"]["postgres"] == incremental["backup_id"]  # reused: younger than 12h
    ws = open_workspace(box.stack)
    keys = needed_keys(ws, find_set(ws, None))
    for link in (full, incremental):
        manifest = backup_dir(ws.stack.name, "postgres", link["backup_id"]) + "/manifest.json"
        assert manifest in keys, link["backup_id"]
