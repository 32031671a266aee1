"""drkit's Hasura client against answers recorded from Hasura's documentation and source
(hasura/graphql-engine v2), not from drkit's stand-in: the replace_metadata matrix and the
/healthz matrix."""

from __future__ import annotations

import pytest

from drkit.adapters.hasura import HasuraClient, HasuraError
from tests.unit.contract_replay import Recorded, Replay

METADATA_HS = "hasura/graphql-engine server/src-lib/Hasura/RQL/DDL/Metadata.hs"
HEALTH_DOC = "https://hasura.io/docs/latest/api-reference/health"
REMOTE_SCHEMA_DOWN = {
    "definition": {"name": "functions", "definition": {"url": "http://functions:3000/graphql"}},
    "reason": "Inconsistent object: HTTP exception occurred while sending the request to "
    "http://functions:3000/graphql",
    "name": "remote_schema functions",
    "type": "remote_schema",
}
# replace_metadata v2 answers formatInconsistentObjs (runReplaceMetadataV2), consistent or not
CONSISTENT = Recorded(200, {"is_consistent": True, "inconsistent_objects": []}, METADATA_HS)
ALLOWED_INCONSISTENT = Recorded(
    200, {"is_consistent": False, "inconsistent_objects": [REMOTE_SCHEMA_DOWN]}, METADATA_HS
)
# buildSchemaCacheStrict: err400 Unexpected with the objects as `internal`
# (also server/tests-py/test_metadata.py)
REFUSED_INCONSISTENT = Recorded(
    400,
    {
        "internal": [REMOTE_SCHEMA_DOWN],
        "path": "$.args",
        "error": "cannot continue due to inconsistent metadata",
        "code": "unexpected",
    },
    "hasura/graphql-engine server/src-lib/Hasura/RQL/DDL/Schema/Cache.hs (buildSchemaCacheStrict)",
)
# No secret sent, HASURA_GRAPHQL_UNAUTHORIZED_ROLE set (nself sets `public`): the request runs as
# that role and the metadata API answers 400 access-denied (server/src-lib/Hasura/App.hs,
# accessDeniedErrMsg; the api-tests expect path $.args)
ADMIN_ONLY = Recorded(
    400,
    {"path": "$.args", "error": "restricted access : admin only", "code": "access-denied"},
    "hasura/graphql-engine server/src-lib/Hasura/App.hs (authorizeV1MetadataApi)",
)
# A wrong secret, and no secret without an unauthorized role: 401 access-denied
# (server/src-lib/Hasura/Server/Auth.hs)
WRONG_SECRET = Recorded(
    401,
    {"path": "$", "error": "invalid x-hasura-admin-secret/x-hasura-access-key", "code": "access-denied"},
    "hasura/graphql-engine server/src-lib/Hasura/Server/Auth.hs",
)
NO_SECRET = Recorded(
    401,
    {
        "path": "$",
        "error": "x-hasura-admin-secret/x-hasura-access-key required, but not found",
        "code": "access-denied",
    },
    "hasura/graphql-engine server/src-lib/Hasura/Server/Auth.hs",
)
# /healthz (docs: api-reference/health): the table of server condition x strict
HEALTH_OK = Recorded(200, "OK", HEALTH_DOC, text=True)
HEALTH_WARN = Recorded(200, "WARN: inconsistent objects in schema", HEALTH_DOC, text=True)
HEALTH_STRICT_ERROR = Recorded(500, "ERROR: inconsistent objects in schema", HEALTH_DOC, text=True)
HEALTH_DOWN = Recorded(500, "ERROR", HEALTH_DOC, text=True)
METADATA = {"version": 3, "sources": [], "remote_schemas": [{"name": "functions"}]}


def client(replay: Replay, secret: str | None = "admin-secret") -> HasuraClient:
    return HasuraClient("http://hasura:8080", admin_secret=secret, transport=replay.transport())


def test_consistent_replace() -> None:
    replay = Replay({("POST", "/v1/metadata"): [CONSISTENT]})
    outcome = client(replay).replace_metadata(METADATA)
    assert outcome.replaced and outcome.inconsistent == ()
    [sent] = replay.bodies()
    assert sent == {
        "type": "replace_metadata",
        "version": 2,
        "args": {"metadata": METADATA, "allow_inconsistent_metadata": False},
    }
    assert replay.sent[0].headers["X-Hasura-Admin-Secret"] == "admin-secret"


def test_allowed_inconsistent_replace_reports_the_objects() -> None:
    replay = Replay({("POST", "/v1/metadata"): [ALLOWED_INCONSISTENT]})
    outcome = client(replay).replace_metadata(METADATA, allow_inconsistent=True)
    assert outcome.replaced
    assert [(o.type, o.name) for o in outcome.inconsistent] == [("remote_schema", "remote_schema functions")]


def test_refused_inconsistent_replace_is_not_replaced() -> None:
    replay = Replay({("POST", "/v1/metadata"): [REFUSED_INCONSISTENT]})
    outcome = client(replay).replace_metadata(METADATA)
    assert not outcome.replaced
    assert outcome.inconsistent[0].reason.startswith("Inconsistent object: HTTP exception")


def test_admin_only_names_the_unauthorized_role() -> None:
    replay = Replay({("POST", "/v1/metadata"): [ADMIN_ONLY]})
    with pytest.raises(
        HasuraError, match="no admin secret was sent.*HASURA_GRAPHQL_UNAUTHORIZED_ROLE"
    ) as err:
        client(replay, secret=None).replace_metadata(METADATA)
    assert "HASURA_GRAPHQL_ADMIN_SECRET" in (err.value.hint or "")
    assert "X-Hasura-Admin-Secret" not in replay.sent[0].headers


@pytest.mark.parametrize(
    ("answer", "said"),
    [(WRONG_SECRET, "refused the admin secret"), (NO_SECRET, "wants an admin secret and none was sent")],
)
def test_secret_refusals(answer: Recorded, said: str) -> None:
    replay = Replay({("POST", "/v1/metadata"): [answer]})
    with pytest.raises(HasuraError, match=said):
        client(replay).export_metadata()


@pytest.mark.parametrize(
    ("strict", "answer", "ok"),
    [
        (False, HEALTH_OK, True),
        (True, HEALTH_OK, True),
        (False, HEALTH_WARN, False),
        (True, HEALTH_STRICT_ERROR, False),
        (False, HEALTH_DOWN, False),
        (True, HEALTH_DOWN, False),
    ],
)
def test_healthz_matrix(strict: bool, answer: Recorded, ok: bool) -> None:
    replay = Replay({("GET", "/healthz"): [answer]})
    health = client(replay).health(strict=strict)
    assert (health.status_code, health.ok) == (answer.status, ok)
    assert replay.sent[0].url.params.get("strict") == ("true" if strict else None)
