"""A Hasura restore whose metadata names a remote schema served by `functions` ends
consistent: Hasura's real answers (recorded in test_contract_hasura) are replayed, the first
replace is refused for the unreachable remote schema only, drkit replaces with
allow_inconsistent_metadata and reloads until functions answers."""

from __future__ import annotations

from datetime import UTC, datetime

from drkit.adapters.hasura import HasuraClient
from drkit.domain.checks import Status
from drkit.engines.hasura.restore import REMOTE_WAIT, replace_for_restore
from tests.unit.contract_replay import Recorded, Replay
from tests.unit.test_contract_hasura import (
    ALLOWED_INCONSISTENT,
    CONSISTENT,
    METADATA,
    METADATA_HS,
    REFUSED_INCONSISTENT,
    REMOTE_SCHEMA_DOWN,
)

# runReloadMetadata: message, is_consistent, and inconsistent_objects only when there are some
RELOAD_STILL_DOWN = Recorded(
    200,
    {"message": "success", "is_consistent": False, "inconsistent_objects": [REMOTE_SCHEMA_DOWN]},
    METADATA_HS,
)
RELOAD_CONSISTENT = Recorded(200, {"message": "success", "is_consistent": True}, METADATA_HS)
TABLE_MISSING = Recorded(
    400,
    {
        "internal": [{"name": "table nchat_messages", "reason": "no such table", "type": "table"}],
        "path": "$.args",
        "error": "cannot continue due to inconsistent metadata",
        "code": "unexpected",
    },
    "hasura/graphql-engine server/tests-py/test_metadata.py",
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Scripted(Replay):
    """One route, answers in order: the metadata API takes every call on POST /v1/metadata."""

    def __init__(self, answers: list[Recorded]) -> None:
        super().__init__({("POST", "/v1/metadata"): answers})


Checks = tuple[tuple[str, Status, str], ...]


def run(answers: list[Recorded]) -> tuple[Checks, list[str]]:
    """The checks replace_for_restore returns, and the metadata calls it made."""
    replay = Scripted(answers)
    hasura = HasuraClient("http://hasura:8080", admin_secret="s", transport=replay.transport())
    checks = replace_for_restore(FakeClock(), hasura, METADATA, "b1")
    sent = [
        b["type"] + ("+allow" if b["args"].get("allow_inconsistent_metadata") else "")
        for b in replay.bodies()
    ]
    return tuple((c.name, c.status, c.detail) for c in checks), sent


def test_unreachable_remote_schema_is_replaced_then_reloaded_until_consistent() -> None:
    checks, sent = run(
        [REFUSED_INCONSISTENT, ALLOWED_INCONSISTENT, RELOAD_STILL_DOWN, RELOAD_STILL_DOWN, RELOAD_CONSISTENT]
    )
    assert [(n, s) for n, s, _ in checks] == [("replace_metadata", Status.OK), ("remote schemas", Status.OK)]
    assert "allowing 1 unreachable remote schema" in checks[0][2]
    assert sent == [
        "replace_metadata",
        "replace_metadata+allow",
        "reload_metadata",
        "reload_metadata",
        "reload_metadata",
    ]


def test_functions_never_answering_fails_naming_it() -> None:
    checks, _ = run([REFUSED_INCONSISTENT, ALLOWED_INCONSISTENT, RELOAD_STILL_DOWN])
    name, status, detail = checks[-1]
    assert (name, status) == ("remote schemas", Status.FAILED)
    assert (
        f"after {REMOTE_WAIT:.0f}s" in detail
        and "functions" in detail
        and "remote_schema functions" in detail
    )


def test_a_missing_table_is_not_allowed_through() -> None:
    checks, sent = run([TABLE_MISSING])
    assert checks == (
        ("replace_metadata", Status.FAILED, "inconsistent: table table nchat_messages: no such table"),
    )
    assert sent == ["replace_metadata"]


def test_a_consistent_replace_needs_nothing_more() -> None:
    assert run([CONSISTENT]) == ((("replace_metadata", Status.OK, "replaced with b1"),), ["replace_metadata"])
