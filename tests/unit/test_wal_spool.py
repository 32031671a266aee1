"""The one spool server (engines/postgres/wal/spool.py) that serves WAL to a recovering
PostgreSQL, local or in a container: it survives whatever the database's OS user, who owns
the spool, puts there (hostile request names, planted links, a fifo), and never writes,
chmods or reads through a link as root."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.wal import Segment
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR, prefetching
from drkit.engines.postgres.wal.spool import request_command

SEG = "000000010000000000000003"
NEXT = "000000010000000000000004"
MISSING = "000000010000000000000009"
SIZE = 16 * 1024 * 1024
OTHER_OWNER = (12345, 12345)


def wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def archive_with(tmp_path: Path, *names: str) -> WalArchive:
    archive = WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec())
    for name in names:
        archive.push_bytes(name, name.encode() * 4 + bytes(4096))
    return archive


def answered(spool: Path, name: str) -> bool:
    return not (spool / f".want-{name}").exists() and any(
        (spool / f"{p}{name}").is_file() for p in ("", ".absent-", ".error-")
    )


def test_a_hostile_request_and_a_dangling_absent_link_do_not_stop_or_fool_the_server(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, SEG)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    spool = data_dir / PREFETCH_DIR
    outside = tmp_path / "outside-target"
    first = Segment.parse(MISSING, SIZE)  # prefetch starts past the archive: only requests
    with prefetching(archive, data_dir, first, first, os_user=None) as server:
        # What the database user plants once the spool exists: requests that are no WAL
        # name (one of which sorts first), and a dangling link where a marker will go.
        for hostile in ("+not-a-wal-name", "..", "x" * 200, "00000002.history\n"):
            (spool / f".want-{hostile}").touch()
        (spool / f".absent-{NEXT}").symlink_to(outside)
        wait(lambda: not list(spool.glob(".want-*")), "the hostile requests to be dropped")
        (spool / f".want-{NEXT}").touch()
        (spool / f".want-{SEG}").touch()
        wait(lambda: answered(spool, SEG) and answered(spool, NEXT), "the real requests to be answered")
        assert (spool / SEG).read_bytes().startswith(SEG.encode())
        marker = spool / f".absent-{NEXT}"
        assert marker.is_file() and not marker.is_symlink()  # the link was replaced, not followed
        assert not outside.exists()
        assert server.problems == []
    assert not spool.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown and chmod through a link matter only as root")
def test_no_chmod_or_chown_follows_a_link_in_the_spool(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, SEG)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    first = Segment.parse(SEG, SIZE)
    with prefetching(archive, data_dir, first, first, os_user=None, owner=OTHER_OWNER):
        spool = data_dir / PREFETCH_DIR
        (spool / "000000010000000000000002").symlink_to(secret)  # a WAL name, planted as a link
        wait((spool / SEG).is_file, "the segment to be prefetched")
        served = (spool / SEG).stat()
        assert (served.st_uid, served.st_gid) == OTHER_OWNER and stat.S_IMODE(served.st_mode) == 0o600
        wait((spool / f".absent-{NEXT}").is_file, "the end of the archive to be marked")
    st = secret.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


def test_a_fifo_as_the_position_note_does_not_hang_the_server(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, SEG, NEXT)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = Segment.parse(SEG, SIZE)
    with prefetching(archive, data_dir, first, None, os_user=None):
        spool = data_dir / PREFETCH_DIR
        os.mkfifo(spool / ".requested")
        (spool / f".want-{MISSING}").touch()
        wait(lambda: answered(spool, MISSING), "a request after the fifo was planted")
        assert (spool / NEXT).is_file()


def test_a_request_the_archive_cannot_serve_is_answered_with_the_reason(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, SEG)
    stored = next((tmp_path / "repo").rglob(f"{SEG}.zst"))
    stored.write_bytes(stored.read_bytes()[:-4] + b"oops")  # damaged in the repository
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = Segment.parse(MISSING, SIZE)
    with prefetching(archive, data_dir, first, first, os_user=None) as server:
        spool = data_dir / PREFETCH_DIR
        (spool / f".want-{SEG}").touch()
        wait(lambda: answered(spool, SEG), "the damaged segment's request to be answered")
        assert "cannot serve" in (spool / f".error-{SEG}").read_text()
        assert not (spool / SEG).exists()
        assert server.problems and SEG in server.problems[0]


def test_the_container_command_stops_recovery_on_an_error_and_a_timeout() -> None:
    command = request_command("/var/lib/postgresql/data/drkit-prefetch", 600)
    assert ".want-%f" in command and ".absent-%f" in command and ".error-%f" in command
    assert command.count("exit 126") == 2 and "exit 1;" in command


def test_prefetch_follows_the_plans_timeline_path_across_a_switch(tmp_path: Path) -> None:
    from drkit.domain.wal import Lsn, TimelineSpan

    names = ["000000010000000000000002", "000000010000000000000003"]
    names += ["000000020000000000000004", "000000020000000000000005"]
    archive = archive_with(tmp_path, *names, "000000010000000000000004")  # the old branch's too
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    switch = Lsn.parse("0/4000100")
    path = (TimelineSpan(1, None, switch), TimelineSpan(2, switch, None))
    first, last = Segment.parse(names[0], SIZE), Segment.parse(names[-1], SIZE)
    with prefetching(archive, data_dir, first, last, os_user=None, path=path):
        spool = data_dir / PREFETCH_DIR
        wait((spool / ".absent-000000020000000000000006").is_file, "the end of timeline 2")
        assert sorted(p.name for p in spool.iterdir() if not p.name.startswith(".")) == names


def test_a_segment_asked_for_behind_the_position_stays_until_the_asker_copies_it(tmp_path: Path) -> None:
    """The end of recovery reads its last segment again, after the position note has moved on
    (the compose restore's CI hang: served on `.want-`, then swept as "recovery is past it"
    before the container's shell copied it, which then waited ten minutes)."""
    from drkit.engines.postgres.wal.spool import SpoolDir, SpoolServer

    archive = archive_with(tmp_path, SEG, NEXT)
    spool = SpoolDir(tmp_path / "spool", None)
    server = SpoolServer(archive, spool, Segment.parse(MISSING, SIZE), None)
    spool.publish(".requested", f"{NEXT}\n".encode())  # recovery last took NEXT
    (tmp_path / "spool" / f".want-{SEG}").touch()  # and now asks for SEG again
    for _ in range(5):  # rounds of the server: answer, then sweep what is behind the position
        server.step()
    assert (tmp_path / "spool" / SEG).read_bytes().startswith(SEG.encode())
    spool.close()
