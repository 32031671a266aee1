"""drkit's MeiliSearch client against answers recorded from Meilisearch's documentation and
source (not from drkit's stand-in): the task lifecycle of dumps and snapshots, its auth
errors, a missing task, POST /snapshots on a server older than v1.5, and settings whose
embedder apiKey the server masks."""

from __future__ import annotations

from typing import Any

import pytest

from drkit.adapters.meilisearch import (
    MeilisearchClient,
    MeilisearchError,
    mask_secret,
    masked_embedder_keys,
)
from tests.unit.contract_replay import Recorded, Replay

DOCS = "https://www.meilisearch.com/docs/reference"

# POST /dumps: 202 with a summarized task (docs: reference/api/dump, "Create a dump")
DUMP_ENQUEUED = Recorded(
    202,
    {
        "taskUid": 1,
        "indexUid": None,
        "status": "enqueued",
        "type": "dumpCreation",
        "enqueuedAt": "2022-06-21T16:10:29.217688Z",
    },
    f"{DOCS}/api/dump",
)
# GET /tasks/1 while it runs, then done: details.dumpUid names <dump-dir>/<dumpUid>.dump
# (docs: reference/api/tasks, task object; dumpCreation details)
DUMP_PROCESSING = Recorded(
    200,
    {
        "uid": 1,
        "indexUid": None,
        "status": "processing",
        "type": "dumpCreation",
        "canceledBy": None,
        "details": {"dumpUid": None},
        "error": None,
        "duration": None,
        "enqueuedAt": "2022-06-21T16:10:29.217688Z",
        "startedAt": "2022-06-21T16:10:29.218688Z",
        "finishedAt": None,
    },
    f"{DOCS}/api/tasks",
)
DUMP_SUCCEEDED = Recorded(
    200,
    {
        "uid": 1,
        "indexUid": None,
        "status": "succeeded",
        "type": "dumpCreation",
        "canceledBy": None,
        "details": {"dumpUid": "20220621-161029217"},
        "error": None,
        "duration": "PT0.025872S",
        "enqueuedAt": "2022-06-21T16:10:29.217688Z",
        "startedAt": "2022-06-21T16:10:29.218688Z",
        "finishedAt": "2022-06-21T16:10:29.244560Z",
    },
    f"{DOCS}/api/tasks",
)
# A failed task carries an error object (docs: reference/errors, "Error format")
DUMP_FAILED = Recorded(
    200,
    {
        "uid": 2,
        "indexUid": None,
        "status": "failed",
        "type": "dumpCreation",
        "canceledBy": None,
        "details": {"dumpUid": None},
        "error": {
            "message": "An error occurred during the dump creation process. The task was aborted.",
            "code": "dump_process_failed",
            "type": "internal",
            "link": "https://docs.meilisearch.com/errors#dump_process_failed",
        },
        "duration": "PT0.1S",
        "enqueuedAt": "2023-06-21T11:09:36.417758Z",
        "startedAt": "2023-06-21T11:09:36.418758Z",
        "finishedAt": "2023-06-21T11:09:36.518758Z",
    },
    f"{DOCS}/errors (dump_process_failed)",
)
# POST /snapshots (v1.5+): 202, then a succeeded task WITHOUT `details` (meilisearch/meilisearch
# crates/index-scheduler process_snapshot_creation.rs sets only the status; the task view skips
# a None details) -- the file is <snapshot-dir>/<db name>.snapshot, e.g. snapshots/data.ms.snapshot
SNAPSHOT_ENQUEUED = Recorded(
    202,
    {
        "taskUid": 3,
        "indexUid": None,
        "status": "enqueued",
        "type": "snapshotCreation",
        "enqueuedAt": "2023-06-21T11:09:36.417758Z",
    },
    f"{DOCS}/api/snapshots",
)
SNAPSHOT_SUCCEEDED = Recorded(
    200,
    {
        "uid": 3,
        "indexUid": None,
        "status": "succeeded",
        "type": "snapshotCreation",
        "canceledBy": None,
        "error": None,
        "duration": "PT0.2S",
        "enqueuedAt": "2023-06-21T11:09:36.417758Z",
        "startedAt": "2023-06-21T11:09:36.418758Z",
        "finishedAt": "2023-06-21T11:09:36.618758Z",
    },
    "meilisearch/meilisearch crates/index-scheduler/src/scheduler/process_snapshot_creation.rs",
)
# GET /tasks/99 for a task that does not exist (docs: reference/errors, task_not_found)
TASK_NOT_FOUND = Recorded(
    404,
    {
        "message": "Task `99` not found.",
        "code": "task_not_found",
        "type": "invalid_request",
        "link": "https://docs.meilisearch.com/errors#task_not_found",
    },
    f"{DOCS}/errors (task_not_found)",
)
# A protected route without the Authorization header: 401; with a wrong key: 403
# (docs: reference/errors; reference/api "Authorization")
MISSING_HEADER = Recorded(
    401,
    {
        "message": "The Authorization header is missing. It must use the bearer authorization method.",
        "code": "missing_authorization_header",
        "type": "auth",
        "link": "https://docs.meilisearch.com/errors#missing_authorization_header",
    },
    f"{DOCS}/errors (missing_authorization_header)",
)
INVALID_KEY = Recorded(
    403,
    {
        "message": "The provided API key is invalid.",
        "code": "invalid_api_key",
        "type": "auth",
        "link": "https://docs.meilisearch.com/errors#invalid_api_key",
    },
    f"{DOCS}/errors (invalid_api_key)",
)
# Before v1.5 there is no POST /snapshots route: actix answers 404 with an empty body
NO_SNAPSHOT_ROUTE = Recorded(404, None, "meilisearch v1.4 routes (POST /snapshots added in v1.5)")
VERSION_14 = Recorded(
    200,
    {"commitSha": "b1c5d5b", "commitDate": "2023-09-18T09:07:02Z", "pkgVersion": "1.4.0"},
    f"{DOCS}/api/version",
)

# GET /indexes/{uid}/settings after an embedder was set with apiKey "My super secret value you
# will never guess": the key comes back masked (v1.8+, SecretPolicy::HideSecrets)
SOURCE_MASK = (
    "meilisearch/meilisearch crates/meilisearch/tests/settings/get_settings.rs "
    "(secrets_are_hidden_in_settings); the rule: crates/meilisearch-types/src/settings.rs hide_secret"
)
SETTINGS_MASKED_KEY = Recorded(
    200,
    {
        "displayedAttributes": ["*"],
        "searchableAttributes": ["*"],
        "filterableAttributes": [],
        "sortableAttributes": [],
        "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"],
        "stopWords": [],
        "nonSeparatorTokens": [],
        "separatorTokens": [],
        "dictionary": [],
        "synonyms": {},
        "distinctAttribute": None,
        "proximityPrecision": "byWord",
        "typoTolerance": {
            "enabled": True,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
            "disableOnNumbers": False,
        },
        "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
        "pagination": {"maxTotalHits": 1000},
        "embedders": {
            "default": {
                "source": "rest",
                "apiKey": "My suXXXXXX...",
                "dimensions": 4,
                "documentTemplate": "{% for field in fields %}"
                "{% if field.is_searchable and field.value != nil %}"
                "{{ field.name }}: {{ field.value }}\n{% endif %}{% endfor %}",
                "documentTemplateMaxBytes": 400,
                "url": "https://localhost:7777",
                "request": "{{text}}",
                "response": "{{embedding}}",
                "headers": {},
            }
        },
        "searchCutoffMs": None,
        "localizedAttributes": None,
        "facetSearch": True,
        "prefixSearch": "indexingTime",
    },
    SOURCE_MASK,
)
# GET /indexes/{uid} (docs: reference/api/indexes, "Get one index")
INDEX_MESSAGES = Recorded(
    200,
    {
        "uid": "messages",
        "createdAt": "2022-02-10T07:45:15.628261Z",
        "updatedAt": "2022-02-21T15:28:43.496574Z",
        "primaryKey": "id",
    },
    f"{DOCS}/api/indexes",
)


def client(replay: Replay, key: str | None = "masterKey-0123456789") -> MeilisearchClient:
    return MeilisearchClient("http://meili:7700", api_key=key, transport=replay.transport())


def test_dump_task_lifecycle_gives_the_dump_uid() -> None:
    replay = Replay(
        {
            ("POST", "/dumps"): [DUMP_ENQUEUED],
            ("GET", "/tasks/1"): [DUMP_PROCESSING, DUMP_SUCCEEDED],
        }
    )
    meili = client(replay)
    uid = meili.create_dump()
    task = meili.wait_succeeded(uid, timeout=5)
    assert (uid, task.type, task.details["dumpUid"]) == (1, "dumpCreation", "20220621-161029217")
    assert replay.sent[0].headers["Authorization"] == "Bearer masterKey-0123456789"


def test_a_failed_task_names_its_error_code() -> None:
    replay = Replay({("GET", "/tasks/2"): [DUMP_FAILED]})
    with pytest.raises(MeilisearchError, match=r"task 2 \(dumpCreation\) failed: .*\[dump_process_failed\]"):
        client(replay).wait_succeeded(2, timeout=5)


def test_snapshot_task_succeeds_without_details() -> None:
    replay = Replay({("POST", "/snapshots"): [SNAPSHOT_ENQUEUED], ("GET", "/tasks/3"): [SNAPSHOT_SUCCEEDED]})
    meili = client(replay)
    task = meili.wait_succeeded(meili.create_snapshot(), timeout=5)
    assert task.status == "succeeded" and task.details == {}


def test_a_missing_task_is_one_clear_error() -> None:
    replay = Replay({("GET", "/tasks/99"): [TASK_NOT_FOUND]})
    with pytest.raises(MeilisearchError, match=r"HTTP 404: Task `99` not found. \[task_not_found\]"):
        client(replay).wait_task(99, timeout=5)


def test_no_key_sent_and_a_wrong_key_are_told_apart() -> None:
    missing = Replay({("POST", "/dumps"): [MISSING_HEADER]})
    with pytest.raises(MeilisearchError, match="wants an API key and none was sent") as no_key:
        client(missing, key=None).create_dump()
    assert "SEARCH_API_KEY" in (no_key.value.hint or "")
    assert "Authorization" not in missing.sent[0].headers
    wrong = Replay({("POST", "/dumps"): [INVALID_KEY]})
    with pytest.raises(MeilisearchError, match=r"refused the API key: .*\[invalid_api_key\]"):
        client(wrong, key="wrong").create_dump()


def test_snapshots_before_v1_5_say_so() -> None:
    replay = Replay({("POST", "/snapshots"): [NO_SNAPSHOT_ROUTE], ("GET", "/version"): [VERSION_14]})
    with pytest.raises(MeilisearchError, match=r"MeiliSearch 1.4.0 .* need v1.5 or newer"):
        client(replay).create_snapshot()


def test_every_fixture_names_its_source() -> None:
    fixtures = [v for v in globals().values() if isinstance(v, Recorded)]
    assert len(fixtures) >= 10 and all(f.source for f in fixtures)


def test_drkit_refuses_a_snapshot_of_another_version_before_touching_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Meilisearch loads a snapshot only into the version that wrote it, and says so only when
    restarted on it; drkit compares the versions first (engines/search/restore.py)."""
    from types import SimpleNamespace

    from drkit.domain.errors import UsageError
    from drkit.engines.search import restore as search_restore

    version_16 = Recorded(200, {**VERSION_14.body, "pkgVersion": "1.6.0"}, f"{DOCS}/api/version")
    monkeypatch.setattr(
        search_restore, "client_for", lambda s: client(Replay({("GET", "/version"): [version_16]}))
    )
    manifest: Any = SimpleNamespace(backup_id="b-snapshot", tool_versions={"meilisearch": "1.5.0"})
    service: Any = SimpleNamespace(name="meilisearch")
    with pytest.raises(UsageError, match=r"snapshot of Meilisearch 1.5.0, and meilisearch runs 1.6.0.*dump"):
        search_restore.same_version_only(service, manifest)
    manifest.tool_versions["meilisearch"] = "1.6.0"
    search_restore.same_version_only(service, manifest)  # the same version: no objection


def test_a_masked_embedder_key_is_recognized_as_the_server_masks_it() -> None:
    """drkit's copy of the rule gives the recorded mask and the vectors of Meilisearch's own
    test_hide_secret (crates/meilisearch-types/src/settings.rs)."""
    replay = Replay({("GET", "/indexes/messages/settings"): [SETTINGS_MASKED_KEY]})
    settings = client(replay).get_settings("messages")
    assert masked_embedder_keys(settings) == {"default": "My suXXXXXX..."}
    assert mask_secret("My super secret value you will never guess") == "My suXXXXXX..."
    assert mask_secret("123456789") == "XXX..."
    assert mask_secret("123456789012345678901234567890") == "12345XXXXXX..."
    assert mask_secret("ひらがな6789012345678901234567890") == "ひらXXXXXX..."
    clear = {"embedders": {"default": {**settings["embedders"]["default"], "apiKey": "sk-0123456789abcdef"}}}
    assert masked_embedder_keys(clear) == {}  # a server before v1.8 answered the key itself


def test_rebuild_never_patches_a_masked_key_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """engines/search/rebuild.py copies the live index's settings into the rebuilt one: with
    the recorded masked key it refuses, naming the embedder, and sends no write at all."""
    from types import SimpleNamespace

    from drkit.domain.errors import UsageError
    from drkit.engines.search import rebuild

    replay = Replay(
        {
            ("GET", "/indexes/messages"): [INDEX_MESSAGES],
            ("GET", "/indexes/messages/settings"): [SETTINGS_MASKED_KEY],
        }
    )
    monkeypatch.setattr(rebuild, "client_for", lambda service: client(replay))
    monkeypatch.setattr(rebuild, "postgres_dsn", lambda stack, service: "postgresql://unused")
    source = rebuild.IndexSource("select id from messages")
    stack: Any = SimpleNamespace()
    with pytest.raises(UsageError, match=r"embedder 'default' \(My suXXXXXX...\) only masked"):
        rebuild.rebuild_index(stack, SimpleNamespace(name="meilisearch"), "messages", source)
    assert {r.method for r in replay.sent} == {"GET"}
