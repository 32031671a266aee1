"""wal-fetch knows the archive it reads, and with a sign_key replays only signed WAL: run as
PostgreSQL runs it (its OS user, in its data directory), against a real cluster's archive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drkit.adapters.repository.codec import Codec, sha256
from drkit.infra.ownership import chown_tree
from tests.conftest import CliResult, run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived
from tests.integration.s3_fixtures import S3Server


def as_database_user(box: SandboxHandle, cwd: Path, *args: str) -> CliResult:
    """`drkit ARGS` as restore_command runs: the database's OS user, in a data directory."""
    argv = [sys.executable, "-m", "drkit", *args]
    if box.box.os_user and os.geteuid() == 0:
        argv = ["runuser", "-u", box.box.os_user, "--", *argv]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def data_dir(box: SandboxHandle) -> Path:
    return Path(box.stack.services["postgres"].runtime.data_dir or "")


def archived_segment(box: SandboxHandle) -> str:
    wal = box.dir / "repo" / "sandbox" / "postgres" / "wal" / "00000001"
    return sorted(p.name.removesuffix(".zst") for p in wal.glob("0*.zst") if "partial" not in p.name)[-1]


def config_with_repository(box: SandboxHandle, path: Path) -> Path:
    config = yaml.safe_load(box.config_path.read_text())
    config["repositories"]["local"]["path"] = str(path)
    out = path.parent / f"stack-{path.name}.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    chown_tree(out, box.box.os_user)
    return out


@pytest.fixture
def elsewhere(sandbox: SandboxHandle) -> Iterator[Path]:
    """A directory the database user can reach, for configs and another cluster."""
    path = Path(tempfile.mkdtemp(prefix="drkit-it-wal-trust-", dir="/tmp"))
    chown_tree(path, sandbox.box.os_user)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_wal_fetch_refuses_a_missing_empty_or_foreign_archive(
    sandbox: SandboxHandle, elsewhere: Path
) -> None:
    box = sandbox
    switch_and_wait_archived(box.dsn)
    name = archived_segment(box)
    config = str(box.config_path)
    ours = as_database_user(box, data_dir(box), "--config", config, "wal-fetch", name, str(elsewhere / "a"))
    assert ours.code == 0, ours.stderr

    other = elsewhere / "other-cluster"
    initdb = Path(box.bin_dir) / "initdb"
    argv = [str(initdb), "-D", str(other), "--no-sync"]
    if box.box.os_user and os.geteuid() == 0:
        argv = ["runuser", "-u", box.box.os_user, "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    foreign = as_database_user(box, other, "--config", config, "wal-fetch", name, str(elsewhere / "b"))
    assert foreign.code == 126, foreign.stdout + foreign.stderr
    assert "another cluster's archive" in foreign.stderr and len(foreign.stderr.splitlines()) == 1

    (elsewhere / "mnt").mkdir()
    chown_tree(elsewhere / "mnt", box.box.os_user)
    for repo in (elsewhere / "not-there", elsewhere / "mnt"):  # missing; an empty mount point
        cfg = str(config_with_repository(box, repo))
        result = as_database_user(
            box, data_dir(box), "--config", cfg, "wal-fetch", name, str(elsewhere / "c")
        )
        assert result.code == 126, result.stdout + result.stderr
        assert "missing or empty" in result.stderr
    assert not (elsewhere / "b").exists() and not (elsewhere / "c").exists()

    checked = run_drkit("--output", "json", "check", config=box.config_path)
    identity = [r for r in json.loads(checked.stdout)["results"] if "WAL archive identity" in r["name"]]
    assert identity and identity[0]["status"] == "ok", identity


SIGN_KEY = "c0ffee0123456789abcdef0123456789abcdef0123456789"


def test_a_signed_archive_restores_and_a_forged_segment_stops_recovery(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    key = box.dir / "sign.key"
    key.write_text(SIGN_KEY + "\n")
    chown_tree(key, box.box.os_user)
    config = yaml.safe_load(box.config_path.read_text())
    original = box.config_path.read_text()
    config["repositories"]["local"]["sign_key"] = f"file:{key}"
    box.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        switch_and_wait_archived(box.dsn)  # from here on, every segment is pushed signed
        made = run_drkit("--output", "json", "backup", config=box.config_path)
        assert made.code == 0, made.stderr
        box.psql("create table signed_probe (id int primary key)")
        box.psql("insert into signed_probe select generate_series(1, 100)")
        last = switch_and_wait_archived(box.dsn)
        tli = box.dir / "repo" / "sandbox" / "postgres" / "wal" / "00000001"
        assert (tli / f"{last}.sha256").read_text().splitlines()[1].startswith("hmac-sha256:")

        good = restore_dir(box.dir, "signed-ok", box.box.os_user)
        out = run_drkit(
            "--output",
            "json",
            "restore",
            "postgres",
            "--to",
            str(good),
            "--keep-running",
            config=box.config_path,
        )
        assert out.code == 0, out.stdout + out.stderr
        port = json.loads(out.stdout[out.stdout.index("{") :])["port"]
        try:
            from drkit.adapters.postgres.client import connect

            with connect(query_dsn(port)) as conn:
                assert conn.execute("select count(*) from signed_probe").fetchone() == (100,)
        finally:
            stop_restored(good, box.box.os_user, box.bin_dir)

        # An intruder with write access rewrites the segment and recomputes its hash sidecar.
        stored = tli / f"{last}.zst"
        raw = bytearray(Codec().decode(stored.read_bytes(), name=last))
        raw[8192 + 100 : 8192 + 108] = b"intruder"
        stored.write_bytes(Codec().encode(bytes(raw)))
        (tli / f"{last}.sha256").write_text(sha256(bytes(raw)))
        fetched = as_database_user(
            box, good, "--config", str(box.config_path), "wal-fetch", last, str(good / "x")
        )
        assert fetched.code == 126 and "not signed" in fetched.stderr, fetched.stdout + fetched.stderr

        forged = restore_dir(box.dir, "signed-forged", box.box.os_user)
        refused = run_drkit("restore", "postgres", "--to", str(forged), config=box.config_path)
        assert refused.code == 1, refused.stdout + refused.stderr
        assert "not signed" in refused.stderr or "FATAL" in refused.stderr, refused.stderr
    finally:
        box.config_path.write_text(original)  # the sandbox's own code reads it to stop it


def test_on_s3_a_missing_or_empty_bucket_is_not_the_end_of_the_wal(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The same rules on the S3 backend: a bucket that is not there, or holds nothing, makes
    wal-fetch stop recovery; once the first push recorded the identity, absent means absent."""
    from drkit.adapters.repository.s3 import S3Repository
    from drkit.domain.errors import IntegrityError
    from drkit.engines.postgres.wal.archive import WalArchive
    from tests.unit.test_wal_identity import NEXT, SEG, THEIRS, wal

    (tmp_path / "access").write_text(s3_server.access_key)

    def config(bucket: str) -> Path:
        path = tmp_path / f"stack-{bucket}.yaml"
        repo = {
            "type": "s3",
            "endpoint": s3_server.url,
            "bucket": bucket,
            "prefix": "drkit",
            "access_key": f"file:{tmp_path / 'access'}",
            "secret_key": f"file:{s3_server.secret_file}",
        }
        stack = {
            "stack": "demo",
            "repositories": {"s3": repo},
            "services": {"postgres": {"kind": "postgres"}},
        }
        path.write_text(yaml.safe_dump(stack))
        return path

    empty = s3_server.new_bucket("wal-empty")
    for bucket in ("no-such-bucket-for-drkit", empty):
        result = run_drkit("wal-fetch", SEG, str(tmp_path / "RECOVERYXLOG"), config=config(bucket))
        assert result.code == 126, result.stdout + result.stderr
        assert len(result.stderr.splitlines()) == 1

    archive = WalArchive(
        S3Repository(s3_server.repository_spec(empty, prefix="drkit")), "demo", "postgres", Codec()
    )
    archive.push_bytes(SEG, wal(SEG))
    with pytest.raises(IntegrityError, match="it is from system"):
        archive.push_bytes(NEXT, wal(NEXT, THEIRS))
    assert run_drkit("wal-fetch", SEG, str(tmp_path / "RECOVERYXLOG"), config=config(empty)).code == 0
    assert run_drkit("wal-fetch", NEXT, str(tmp_path / "RECOVERYXLOG"), config=config(empty)).code == 1
