"""A stack-wide restore point, on the real sandbox: PostgreSQL, Redis and SeaweedFS are
real servers; Hasura and MeiliSearch are the sandbox's stand-ins speaking their documented
APIs (metadata export/replace; dumps, tasks, documents).

Take a set at T; then add messages, overwrite and delete objects, change Redis keys,
reindex; restore the stack to T: rows, objects (content by hash), Redis keys and the index
all equal their state at T, and the cross-service checks pass."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis
from botocore.exceptions import BotoCoreError, ClientError

from drkit.adapters.postgres.client import rows
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Stack
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.workspace import open_workspace
from drkit.engines.search.server import client_for as meili_client
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.redis_helpers import dump_all

ALL = {"services": ("postgres", "redis", "s3", "hasura", "meilisearch")}
BUCKET = "nchat-uploads"


def state(stack: Stack, dsn: str) -> dict[str, Any]:
    messages = rows(dsn, "select id, content from nchat_messages order by id")
    store = ObjectStore(endpoint_for(stack.services["s3"]))
    objects = {key: store.sha256_of(BUCKET, key) for key in sorted(store.current(BUCKET))}
    documents: list[dict[str, Any]] = []
    with meili_client(stack.services["meilisearch"]) as meili:
        while page := meili.get_documents("messages", limit=1000, offset=len(documents)):
            documents += page
    digest = hashlib.sha256(repr(messages).encode()).hexdigest()
    return {
        "messages": (len(messages), digest),
        "objects": objects,
        "redis": dump_all(stack.services["redis"].url or ""),  # every key: type, value, TTL or not
        "documents": sorted(documents, key=lambda d: str(d["id"])),  # every document, whole
    }


@pytest.mark.parametrize("private_sandbox", [ALL], indirect=True)
def test_the_whole_stack_comes_back_to_one_moment(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    stack = box.stack
    taken = run_drkit("--output", "json", "backup", "--all", config=box.config_path)
    assert taken.code == 0, taken.stderr
    set_id = taken.json()["set_id"]
    at_t = state(stack, box.dsn)
    assert at_t["objects"] and at_t["documents"]

    # after T: new messages, an object overwritten and one deleted, Redis and the index changed
    box.psql("insert into nchat_messages (channel_id, content) select id, 'after T' from nchat_channels")
    store = ObjectStore(endpoint_for(stack.services["s3"]))
    keys = sorted(at_t["objects"])
    store.put(BUCKET, keys[0], b"overwritten after T", "text/plain", {})
    store.delete(BUCKET, keys[1])
    r = redis.Redis.from_url(stack.services["redis"].url or "")
    r.set("after:t", "1")
    some = next(k for k, (t, _v, _ttl) in at_t["redis"].items() if t == "string")
    r.set(some, "changed after T")
    other = next(k for k, (t, _v, _ttl) in at_t["redis"].items() if t != "string")
    r.delete(other)
    r.close()
    with meili_client(stack.services["meilisearch"]) as meili:
        changed = {**at_t["documents"][0], "content": "reindexed after T"}
        task = meili.add_documents("messages", [{"id": 10**9, "content": "after T"}, changed])
        meili.wait_succeeded(task, timeout=30)
    assert state(stack, box.dsn) != at_t

    refused = run_drkit("restore", "--set", set_id, config=box.config_path)
    assert refused.code == 2 and "--yes" in refused.stderr

    restored = run_drkit("--output", "json", "restore", "--set", set_id, "--yes", config=box.config_path)
    assert restored.code == 0, restored.stdout + restored.stderr
    report = restored.json()
    assert report["steps"][0]["service"] == "postgres"
    assert {c["name"]: c["status"] for c in report["checks"]}, "cross-service checks ran"
    assert all(c["status"] == "ok" for c in report["checks"]), report["checks"]

    after = state(box.stack, box.dsn)
    assert after["messages"] == at_t["messages"]
    assert after["objects"] == at_t["objects"]
    assert after["redis"] == at_t["redis"]
    assert after["documents"] == at_t["documents"]


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres", "s3")}], indirect=True)
def test_an_object_store_that_is_down_fails_the_set_clearly_and_leaves_none(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    assert run_drkit("stop", "s3", config=box.config_path).code == 0

    failed = run_drkit("backup", "--all", config=box.config_path)
    assert failed.code == 1
    assert "cannot reach S3" in failed.stderr and "connection refused" in failed.stderr
    ws = open_workspace(box.stack)
    assert list_sets(ws) == []
    assert list_backups(ws.repo, ws.stack.name, "s3").complete == ()

    assert run_drkit("start", "s3", config=box.config_path).code == 0
    # The health probe (a signed ListBuckets) answers before SeaweedFS's volume server has
    # registered again; reading object data then gets InternalError for a moment.
    store = ObjectStore(endpoint_for(box.stack.services["s3"]))
    wait_for(
        lambda: all(store.sha256_of(BUCKET, k) for k in store.current(BUCKET)),
        timeout=120,
        what="SeaweedFS serving object data again",
        retry_on=(DrkitError, BotoCoreError, ClientError),
    )
    again = run_drkit("--output", "json", "backup", "--all", config=box.config_path)
    assert again.code == 0, again.stderr
    assert [s.set_id for s in list_sets(ws)] == [again.json()["set_id"]]
