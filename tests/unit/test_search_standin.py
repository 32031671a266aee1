"""The MeiliSearch stand-in's task flow and launch options, through drkit's own client.

Each case states the Meilisearch behaviour the stand-in stands for; the stand-in runs as a
real process on a free loopback port, under pytest's tmp_path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drkit.adapters.meilisearch import MeilisearchClient, MeilisearchError
from drkit.domain.errors import OperationError
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for

KEY = "a-master-key-of-24-bytes"
Start = Callable[..., MeilisearchClient]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a stand-in in tmp_path with extra flags; every one is stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[MeilisearchClient] = []

    def launch(*flags: str, key: str | None = KEY, key_flag: bool = True) -> MeilisearchClient:
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "drkit.sandbox.standins.meilisearch",
            "--http-addr",
            f"127.0.0.1:{port}",
        ]
        given = ["--master-key", KEY] if key_flag else []
        proc = subprocess.Popen([*argv, *flags, *given], cwd=tmp_path, stderr=subprocess.DEVNULL)
        procs.append(proc)
        client = MeilisearchClient(f"http://127.0.0.1:{port}", api_key=key, timeout=5)
        clients.append(client)
        wait_for(client.health, timeout=15, what="the stand-in to listen", retry_on=(MeilisearchError,))
        return client

    yield launch
    for client in clients:
        client.close()
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_task_goes_enqueued_processing_succeeded(start: Start) -> None:
    """Meilisearch: a write answers at once with an enqueued task; the task is processed
    asynchronously and ends `succeeded` with its details; a caller waiting with too short a
    deadline gets a timeout, not a hang."""
    meili = start("--task-delay", "1.5")
    uid = meili.add_documents("books", [{"id": 1, "title": "Dune"}, {"id": 2, "title": "Emma"}])
    seen = {meili.task(uid).status}
    with pytest.raises(OperationError, match=f"timed out .* task {uid}"):
        meili.wait_task(uid, timeout=0.1)
    seen.add(meili.task(uid).status)
    done = meili.wait_succeeded(uid, timeout=10)
    assert seen <= {"enqueued", "processing"} and "processing" in seen
    assert done.details == {"receivedDocuments": 2, "indexedDocuments": 2}
    assert meili.index_count("books") == 2


def test_a_failed_task_carries_meilisearch_error(start: Start) -> None:
    """Meilisearch: with no primaryKey given and several attributes ending in `id`, primary
    key inference fails; the task ends `failed` with error code
    index_primary_key_multiple_candidates_found, and nothing is indexed."""
    meili = start()
    uid = meili.add_documents("messages", [{"id": 1, "channel_id": "c", "content": "hi"}])
    with pytest.raises(MeilisearchError, match="index_primary_key_multiple_candidates_found"):
        meili.wait_succeeded(uid, timeout=10)
    assert meili.get_index("messages") is None


def test_the_master_key_guards_every_route_but_health(start: Start) -> None:
    """Meilisearch: with a master key, /health stays public; other routes answer 401 without
    an Authorization header and 403 with a wrong key."""
    meili = start(key="wrong-key")
    assert meili.health() == "available"
    with pytest.raises(MeilisearchError, match="refused the API key: The provided API key is invalid"):
        meili.document_counts()


def test_dump_import_and_database_refusal(start: Start, tmp_path: Path) -> None:
    """Meilisearch: POST /dumps writes <dump-dir>/<dumpUid>.dump; --import-dump loads it at
    launch into an empty --db-path, and refuses (exits) when a database already exists.
    The database persists across restarts."""
    meili = start("--db-path", "one.ms")
    meili.wait_succeeded(meili.add_documents("books", [{"id": n} for n in range(5)]), timeout=10)
    dump = meili.wait_succeeded(meili.create_dump(), timeout=10)
    path = tmp_path / "dumps" / f"{dump.details['dumpUid']}.dump"
    assert path.is_file()

    imported = start("--db-path", "two.ms", "--import-dump", str(path))
    assert imported.document_counts() == {"books": 5}

    port = free_port()
    again = ["--http-addr", f"127.0.0.1:{port}", "--db-path", "two.ms", "--import-dump", str(path)]
    refused = subprocess.run(
        [sys.executable, "-m", "drkit.sandbox.standins.meilisearch", *again],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 1
    assert 'database already exists at "two.ms"' in refused.stderr


def test_snapshot_import(start: Start, tmp_path: Path) -> None:
    """Meilisearch: POST /snapshots writes <snapshot-dir>/<db name>.snapshot; a server started
    with --import-snapshot on an empty --db-path holds the same indexes."""
    meili = start("--db-path", "live.ms")
    meili.wait_succeeded(meili.add_documents("books", [{"id": n} for n in range(3)]), timeout=10)
    meili.wait_succeeded(meili.create_snapshot(), timeout=10)
    snapshot = tmp_path / "snapshots" / "live.ms.snapshot"
    assert snapshot.is_file()

    copy = start("--db-path", "copy.ms", "--import-snapshot", str(snapshot))
    assert copy.document_counts() == {"books": 3}


def test_the_key_comes_from_config_toml_in_the_working_directory(start: Start, tmp_path: Path) -> None:
    """Meilisearch reads ./config.toml (snake_case option names) when no flag or MEILI_*
    variable gives the option: the sandbox hands the master key over that way."""
    (tmp_path / "config.toml").write_text(f'master_key = "{KEY}"\n')
    meili = start(key=None, key_flag=False)
    with pytest.raises(MeilisearchError, match="wants an API key and none was sent"):
        meili.document_counts()
    assert start(key_flag=False).document_counts() == {}


def test_payloads_over_the_limit_are_413(start: Start) -> None:
    """Meilisearch: --http-payload-size-limit (100 MB by default) answers 413 payload_too_large."""
    meili = start("--http-payload-size-limit", "1 KB")
    with pytest.raises(MeilisearchError, match=r"larger than the server accepts.*\[payload_too_large\]"):
        meili.add_documents("books", [{"id": n, "text": "x" * 100} for n in range(20)])


def test_snapshot_tasks_have_no_details_and_load_only_into_their_version(
    start: Start, tmp_path: Path
) -> None:
    """meilisearch process_snapshot_creation.rs sets no details; a snapshot of another version
    is refused at launch ("Your database version ... is incompatible")."""
    import io
    import tarfile

    meili = start("--db-path", "live.ms")
    task = meili.wait_succeeded(meili.create_snapshot(), timeout=10)
    assert task.details == {}
    assert "details" not in meili._json("GET", f"/tasks/{task.uid}")
    other = tmp_path / "other.snapshot"
    with tarfile.open(other, "w:gz") as tar:
        for name, data in {"data.json": b"{}", "VERSION": b"1.6.0"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    proc = subprocess.run(
        [sys.executable, "-m", "drkit.sandbox.standins.meilisearch", "--db-path", "new.ms",
         "--import-snapshot", str(other), "--http-addr", f"127.0.0.1:{free_port()}"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Your database version (1.6.0) is incompatible" in proc.stderr


SECRET = "My super secret value you will never guess"  # meilisearch tests/settings/get_settings.rs
EMBEDDER = {
    "source": "rest",
    "url": "https://localhost:7777",
    "apiKey": SECRET,
    "dimensions": 4,
    "request": "{{text}}",
    "response": "{{embedding}}",
}


def test_settings_reads_mask_embedder_keys_and_dumps_keep_them(start: Start, tmp_path: Path) -> None:
    """meilisearch-types settings.rs `hide_secrets`: GET /indexes/{uid}/settings, GET
    .../settings/embedders and a settingsUpdate task's details show an embedder's apiKey
    masked ("My suXXXXXX..."); the server keeps the key, and dumps carry it (RevealSecrets)."""
    import json
    import tarfile

    meili = start()
    meili.wait_succeeded(meili.create_index("books", primary_key="id"), timeout=10)
    embedders = {"embedders": {"default": EMBEDDER}}
    task = meili.wait_succeeded(meili.update_settings("books", embedders), timeout=10)
    shown = {**EMBEDDER, "apiKey": "My suXXXXXX..."}
    assert meili.get_settings("books")["embedders"] == {"default": shown}
    assert meili._json("GET", "/indexes/books/settings/embedders") == {"default": shown}
    assert task.details["embedders"] == {"default": shown}
    assert SECRET not in str(meili._json("GET", f"/tasks/{task.uid}"))
    stored = json.loads((tmp_path / "data.ms" / "data.json").read_text())
    assert stored["indexes"][0]["settings"]["embedders"]["default"]["apiKey"] == SECRET
    dump = meili.wait_succeeded(meili.create_dump(), timeout=10)
    with tarfile.open(tmp_path / "dumps" / f"{dump.details['dumpUid']}.dump") as tar:
        member = tar.extractfile("indexes/books/settings.json")
        assert member is not None
        assert json.loads(member.read())["embedders"]["default"]["apiKey"] == SECRET


def test_settings_patched_back_as_read_lose_the_key(start: Start, tmp_path: Path) -> None:
    """What the masking means for a client: Meilisearch stores whatever apiKey a PATCH
    carries, so settings written back as read replace the key with its mask."""
    import json

    meili = start()
    meili.wait_succeeded(meili.update_settings("books", {"embedders": {"default": EMBEDDER}}), timeout=10)
    meili.wait_succeeded(meili.update_settings("copy", meili.get_settings("books")), timeout=10)
    stored = json.loads((tmp_path / "data.ms" / "data.json").read_text())
    keys = {i["uid"]: i["settings"]["embedders"]["default"]["apiKey"] for i in stored["indexes"]}
    assert keys == {"books": SECRET, "copy": "My suXXXXXX..."}
