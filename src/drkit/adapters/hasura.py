"""Hasura's metadata API (`POST /v1/metadata`) and health check, over httpx with timeouts.

Every failure is one clear line: the server is not reachable, it refused the admin secret,
or it answered an error (with Hasura's own `error` text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from drkit.adapters.http_api import DEFAULT_TIMEOUT, HttpApi
from drkit.domain.errors import OperationError

SECRET_HINT = "set the service's admin secret: password: env:HASURA_GRAPHQL_ADMIN_SECRET"  # noqa: S105


class HasuraError(OperationError):
    """Hasura is unreachable, refused us, or answered an error."""


@dataclass(frozen=True)
class ExportedMetadata:
    """`export_metadata` version 2: the metadata and its optimistic-locking version."""

    resource_version: int
    metadata: dict[str, Any]


@dataclass(frozen=True)
class InconsistentObject:
    type: str
    name: str
    reason: str

    def describe(self) -> str:
        return f"{self.type} {self.name}: {self.reason}"


@dataclass(frozen=True)
class ReplaceOutcome:
    """What `replace_metadata` did. Hasura refuses inconsistent metadata (400) unless asked
    to allow it; then `replaced` is False and the live metadata is unchanged."""

    replaced: bool
    inconsistent: tuple[InconsistentObject, ...] = ()


@dataclass(frozen=True)
class HealthAnswer:
    status_code: int
    text: str

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.text.strip() == "OK"


class HasuraClient(HttpApi):
    def __init__(
        self,
        url: str,
        *,
        admin_secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            {"X-Hasura-Admin-Secret": admin_secret} if admin_secret else {},
            timeout=timeout,
            transport=transport,
        )

    def export_metadata(self) -> ExportedMetadata:
        body = self._call({"type": "export_metadata", "version": 2, "args": {}}).json()
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise HasuraError(f"Hasura at {self.url} answered export_metadata without a metadata object")
        return ExportedMetadata(int(body.get("resource_version", 0)), body["metadata"])

    def replace_metadata(
        self, metadata: dict[str, Any], *, allow_inconsistent: bool = False
    ) -> ReplaceOutcome:
        args = {"metadata": metadata, "allow_inconsistent_metadata": allow_inconsistent}
        response = self._call({"type": "replace_metadata", "version": 2, "args": args}, accept=(400,))
        body = _json(response)
        if response.status_code == 400:
            if "inconsistent" not in str(body.get("error", "")):
                raise HasuraError(f"Hasura refused replace_metadata: {_error_text(response)}")
            return ReplaceOutcome(False, _objects(body.get("internal")))
        return ReplaceOutcome(True, _objects(body.get("inconsistent_objects")))

    def reload_metadata(self) -> tuple[InconsistentObject, ...]:
        body = _json(self._call({"type": "reload_metadata", "args": {"reload_remote_schemas": True}}))
        return _objects(body.get("inconsistent_objects"))

    def inconsistent_objects(self) -> tuple[InconsistentObject, ...]:
        body = _json(self._call({"type": "get_inconsistent_metadata", "args": {}}))
        return _objects(body.get("inconsistent_objects"))

    def health(self, *, strict: bool) -> HealthAnswer:
        """`/healthz` (public): 200 OK; 200 WARN or (strict) 500 ERROR on inconsistent metadata."""
        response = self._send("GET", "/healthz", params={"strict": "true"} if strict else None)
        return HealthAnswer(response.status_code, response.text)

    def version(self) -> str:
        response = self._send("GET", "/v1/version")
        return str(_json(response).get("version", "unknown")) if response.status_code == 200 else "unknown"

    def _call(self, body: dict[str, Any], *, accept: tuple[int, ...] = ()) -> httpx.Response:
        response = self._send("POST", "/v1/metadata", json=body)
        if response.status_code in (401, 403) or _json(response).get("code") == "access-denied":
            raise HasuraError(f"Hasura at {self.url} {_refusal(response)}", hint=SECRET_HINT)
        if response.status_code >= 300 and response.status_code not in accept:
            raise HasuraError(
                f"Hasura {body['type']} failed: HTTP {response.status_code}: {_error_text(response)}"
            )
        return response

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise HasuraError(f"Hasura at {self.url} did not answer {method} {path} in time ({exc})") from exc
        except httpx.TransportError as exc:
            raise HasuraError(
                f"Hasura at {self.url} is not reachable: {exc}", hint="is it running? drkit start hasura"
            ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(response: httpx.Response) -> str:
    body = _json(response)
    if "error" in body:
        return str(body["error"]) + (f" ({body['code']})" if body.get("code") else "")
    return " ".join(response.text.split())[:200] or "(empty answer)"


def _refusal(response: httpx.Response) -> str:
    """Why the metadata API said no (hasura/graphql-engine: 401 `access-denied` for a missing
    or wrong secret; 400 `restricted access : admin only` when no secret was sent and
    HASURA_GRAPHQL_UNAUTHORIZED_ROLE made the request that role, as nself configures it)."""
    error = str(_json(response).get("error", ""))
    if "admin only" in error:
        return (
            f"answered {error!r}: no admin secret was sent, so it treated drkit as its unauthorized "
            "role (HASURA_GRAPHQL_UNAUTHORIZED_ROLE)"
        )
    if "required, but not found" in error:
        return f"wants an admin secret and none was sent ({error})"
    return f"refused the admin secret: {_error_text(response)}"


def _objects(raw: Any) -> tuple[InconsistentObject, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        InconsistentObject(str(o.get("type", "")), str(o.get("name", "")), str(o.get("reason", "")))
        for o in raw
        if isinstance(o, dict)
    )
