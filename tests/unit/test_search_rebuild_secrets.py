"""`drkit search rebuild` and embedder API keys, against the MeiliSearch stand-in (which masks
them on every settings read, as Meilisearch does): a masked key is never written into the
rebuilt index; it is given by reference, or the rebuild refuses before touching anything.
The rows come from a stub instead of PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drkit.adapters.meilisearch import MeilisearchClient
from drkit.domain.errors import UsageError
from drkit.engines.search import rebuild
from drkit.engines.search.secrets import parse_key_refs
from tests.unit.test_search_standin import EMBEDDER, KEY, SECRET, Start, start  # noqa: F401

ROWS = [{"id": n, "content": f"message {n}"} for n in range(7)]


@pytest.fixture
def live(start: Start, monkeypatch: pytest.MonkeyPatch) -> MeilisearchClient:  # noqa: F811
    """A stand-in whose live `messages` index has 3 documents and a `default` embedder with
    an apiKey; rebuild reads its rows from ROWS."""
    meili = start()
    meili.wait_succeeded(meili.add_documents("messages", ROWS[:3], primary_key="id"), timeout=10)
    settings = {"embedders": {"default": EMBEDDER}, "searchableAttributes": ["content"]}
    meili.wait_succeeded(meili.update_settings("messages", settings), timeout=10)
    monkeypatch.setattr(rebuild, "postgres_dsn", lambda stack, service: "postgresql://unused")
    monkeypatch.setattr(rebuild, "_batches", lambda dsn, query, size: iter([ROWS[:4], ROWS[4:]]))
    return meili


def run(meili: MeilisearchClient, keys: dict[str, str] | None = None) -> rebuild.RebuildResult:
    service: Any = SimpleNamespace(name="meilisearch", url=meili.url, password=KEY)
    source = rebuild.IndexSource("select id, content from messages")
    return rebuild.rebuild_index(SimpleNamespace(), service, "messages", source, embedder_keys=keys)


def stored(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The stand-in's own state on disk: the keys as stored, which no API read shows."""
    data = json.loads((tmp_path / "data.ms" / "data.json").read_text())
    return {i["uid"]: i for i in data["indexes"]}


def test_a_masked_key_is_refused_naming_the_embedder_before_anything_is_touched(
    live: MeilisearchClient, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=r"embedder 'default' \(My suXXXXXX...\) only masked") as refused:
        run(live)
    assert "--embedder-key" in (refused.value.hint or "")
    indexes = stored(tmp_path)
    assert list(indexes) == ["messages"]  # no half-built messages__drkit_rebuild
    assert indexes["messages"]["settings"]["embedders"]["default"]["apiKey"] == SECRET
    assert live.index_count("messages") == 3


def test_a_key_given_by_reference_is_the_one_the_rebuilt_index_keeps(
    live: MeilisearchClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRKIT_TEST_EMBEDDER_KEY", SECRET)
    result = run(live, parse_key_refs(["default=env:DRKIT_TEST_EMBEDDER_KEY"]))
    assert (result.swapped, result.rows, result.documents) == (True, 7, 7)
    settings = stored(tmp_path)["messages"]["settings"]
    assert settings["embedders"]["default"] == EMBEDDER and settings["searchableAttributes"] == ["content"]
    assert list(stored(tmp_path)) == ["messages"]


def test_another_key_or_an_unknown_embedder_is_refused(
    live: MeilisearchClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRKIT_TEST_EMBEDDER_KEY", "sk-another-key-of-the-same-length-42-bytes")
    with pytest.raises(UsageError, match="is not the one index 'messages' has"):
        run(live, {"default": "env:DRKIT_TEST_EMBEDDER_KEY"})
    with pytest.raises(UsageError, match=r"no embedder 'other' with an apiKey .*\(with one: 'default'\)"):
        run(live, {"default": "env:DRKIT_TEST_EMBEDDER_KEY", "other": "env:DRKIT_TEST_EMBEDDER_KEY"})
    assert list(stored(tmp_path)) == ["messages"]
    assert stored(tmp_path)["messages"]["settings"]["embedders"]["default"]["apiKey"] == SECRET


def test_embedder_key_options_take_references_and_never_echo_a_key() -> None:
    assert parse_key_refs(["a=env:A", "b=file:/run/k", "c=dotenv:/x/.env#K"]) == {
        "a": "env:A",
        "b": "file:/run/k",
        "c": "dotenv:/x/.env#K",
    }
    for given in ("sk-live-0123456789", "default=sk-live-0123456789"):
        with pytest.raises(UsageError) as refused:
            parse_key_refs([given])
        assert "sk-live" not in refused.value.message
