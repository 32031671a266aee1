"""MeiliSearch's HTTP API as drkit uses it: tasks, dumps, snapshots, indexes, documents.

Every write in Meilisearch is an asynchronous task: the call returns a task uid, and
`wait_succeeded` polls `GET /tasks/{uid}` with a deadline until it is done. Every failure
is one clear line: unreachable, the key refused, or Meilisearch's own error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from drkit.adapters.http_api import DEFAULT_TIMEOUT, HttpApi
from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock
from drkit.infra.wait import wait_for

FINISHED = ("succeeded", "failed", "canceled")
KEY_HINT = (
    "set the service's master key, e.g. password: env:MEILISEARCH_MASTER_KEY "
    "(nself: SEARCH_API_KEY or MEILISEARCH_MASTER_KEY)"
)
SNAPSHOT_ROUTE_SINCE = (1, 5)  # POST /snapshots exists from Meilisearch v1.5
# Meilisearch (v1.8+) never returns an embedder's apiKey: every settings read masks it
# (meilisearch/meilisearch crates/meilisearch-types/src/settings.rs `hide_secret`): by the
# key's length in bytes, keep its first 0 (< 10), 2 (< 20), 3 (< 30) or 5 bytes (rounded up
# to a character boundary), then "XXX...", "XXXX...", "XXXXX..." or "XXXXXX...".
SECRET_MASKS = ((10, 0, "XXX..."), (20, 2, "XXXX..."), (30, 3, "XXXXX..."), (None, 5, "XXXXXX..."))
MASKED = re.compile(r"^.{0,5}X{3,6}\.\.\.$", re.DOTALL)


class MeilisearchError(OperationError):
    """MeiliSearch is unreachable, refused us, answered an error, or a task failed."""


@dataclass(frozen=True)
class Task:
    uid: int
    status: str
    type: str
    index_uid: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error_message: str = ""
    error_code: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Task:
        error = body.get("error") or {}
        return cls(
            uid=int(body["uid"]),
            status=str(body["status"]),
            type=str(body.get("type", "")),
            index_uid=body.get("indexUid"),
            details=dict(body.get("details") or {}),
            error_message=str(error.get("message", "")),
            error_code=str(error.get("code", "")),
        )


@dataclass(frozen=True)
class IndexInfo:
    uid: str
    primary_key: str | None


def mask_secret(secret: str) -> str:
    """How Meilisearch shows `secret` in a settings read."""
    raw = secret.encode()
    keep, tail = next((k, t) for limit, k, t in SECRET_MASKS if limit is None or len(raw) < limit)
    while keep < len(raw) and raw[keep] & 0xC0 == 0x80:
        keep += 1
    return raw[:keep].decode() + tail


def masked_embedder_keys(settings: dict[str, Any]) -> dict[str, str]:
    """Embedder name -> its apiKey, for the embedders whose apiKey in these settings (as
    read from the server) is Meilisearch's mask rather than a key."""
    embedders = settings.get("embedders")
    if not isinstance(embedders, dict):
        return {}
    return {
        str(name): str(e["apiKey"])
        for name, e in embedders.items()
        if isinstance(e, dict) and isinstance(e.get("apiKey"), str) and MASKED.match(e["apiKey"])
    }


class MeilisearchClient(HttpApi):
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            {"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=timeout,
            transport=transport,
        )

    # -- reads -----------------------------------------------------------------------------
    def health(self) -> str:
        return str(self._json("GET", "/health").get("status", ""))

    def version(self) -> str:
        return str(self._json("GET", "/version").get("pkgVersion", "unknown"))

    def document_counts(self) -> dict[str, int]:
        """numberOfDocuments of every index (`GET /stats`)."""
        indexes = self._json("GET", "/stats").get("indexes", {})
        return {str(uid): int(stats.get("numberOfDocuments", 0)) for uid, stats in indexes.items()}

    def index_count(self, uid: str) -> int:
        return int(self._json("GET", f"/indexes/{uid}/stats").get("numberOfDocuments", 0))

    def get_index(self, uid: str) -> IndexInfo | None:
        body = self._json("GET", f"/indexes/{uid}", missing_ok=True)
        return IndexInfo(str(body["uid"]), body.get("primaryKey")) if body else None

    def get_settings(self, uid: str) -> dict[str, Any]:
        """The index's settings as Meilisearch shows them: embedders' apiKeys masked
        (`masked_embedder_keys`); never PATCH them back as they are."""
        return self._json("GET", f"/indexes/{uid}/settings")

    def get_documents(self, uid: str, *, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        body = self._json("GET", f"/indexes/{uid}/documents", params={"limit": limit, "offset": offset})
        return list(body.get("results", []))

    def task(self, uid: int) -> Task:
        return Task.from_json(self._json("GET", f"/tasks/{uid}"))

    # -- writes: each returns the uid of the task that will do it --------------------------
    def create_dump(self) -> int:
        return self._task("POST", "/dumps")

    def create_snapshot(self) -> int:
        """POST /snapshots (Meilisearch v1.5+; older servers only snapshot on a schedule)."""
        response = self._send("POST", "/snapshots")
        if response.status_code == 404:
            version = self.version()
            raise MeilisearchError(
                f"MeiliSearch {version} at {self.url} has no POST /snapshots: on-demand snapshots "
                "need v1.5 or newer; use dumps, or run it with --schedule-snapshot"
            )
        return self._task_of(response, "POST", "/snapshots")

    def add_documents(
        self, uid: str, documents: list[dict[str, Any]], *, primary_key: str | None = None
    ) -> int:
        params = {"primaryKey": primary_key} if primary_key else None
        return self._task("POST", f"/indexes/{uid}/documents", json=documents, params=params)

    def delete_all_documents(self, uid: str) -> int:
        return self._task("DELETE", f"/indexes/{uid}/documents")

    def create_index(self, uid: str, *, primary_key: str | None = None) -> int:
        return self._task("POST", "/indexes", json={"uid": uid, "primaryKey": primary_key})

    def delete_index(self, uid: str) -> int:
        return self._task("DELETE", f"/indexes/{uid}")

    def update_settings(self, uid: str, settings: dict[str, Any]) -> int:
        return self._task("PATCH", f"/indexes/{uid}/settings", json=settings)

    def swap_indexes(self, first: str, second: str) -> int:
        return self._task("POST", "/swap-indexes", json=[{"indexes": [first, second]}])

    def wait_task(self, uid: int, *, timeout: float, clock: Clock | None = None) -> Task:
        """Poll until the task is finished (succeeded, failed or canceled), or time out."""

        def finished() -> Task | None:
            task = self.task(uid)
            return task if task.finished else None

        return wait_for(
            finished,
            timeout=timeout,
            what=f"MeiliSearch task {uid} to finish",
            interval=0.05,
            max_interval=2.0,
            clock=clock,
            fatal=(MeilisearchError,),
        )

    def wait_succeeded(self, uid: int, *, timeout: float, clock: Clock | None = None) -> Task:
        """Like wait_task; a failed or canceled task is a MeilisearchError with its reason."""
        task = self.wait_task(uid, timeout=timeout, clock=clock)
        if task.status != "succeeded":
            reason = f"{task.error_message} [{task.error_code}]" if task.error_message else task.status
            raise MeilisearchError(f"MeiliSearch task {uid} ({task.type}) {task.status}: {reason}")
        return task

    # -- plumbing ---------------------------------------------------------------------------
    def _task(self, method: str, path: str, **kwargs: Any) -> int:
        return self._task_of(self._send(method, path, **kwargs), method, path)

    def _task_of(self, response: httpx.Response, method: str, path: str) -> int:
        body = self._judge(response, method, path)
        if "taskUid" not in body:
            raise MeilisearchError(f"MeiliSearch {method} {path} answered without a taskUid")
        return int(body["taskUid"])

    def _json(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        if missing_ok and response.status_code == 404:
            return {}
        return self._judge(response, method, path)

    def _judge(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        """The JSON body of a 2xx answer; Meilisearch's error codes as one clear line."""
        code = _error_code(response)
        if response.status_code == 401 or code == "missing_authorization_header":
            raise MeilisearchError(
                f"MeiliSearch at {self.url} wants an API key and none was sent: {_error_text(response)}",
                hint=KEY_HINT,
            )
        if response.status_code == 403:
            raise MeilisearchError(
                f"MeiliSearch at {self.url} refused the API key: {_error_text(response)}", hint=KEY_HINT
            )
        if response.status_code == 413:
            raise MeilisearchError(
                f"MeiliSearch {method} {path}: the payload is larger than the server accepts "
                f"(--http-payload-size-limit, 100 MB by default): {_error_text(response)}"
            )
        if response.status_code >= 300:
            raise MeilisearchError(
                f"MeiliSearch {method} {path}: HTTP {response.status_code}: {_error_text(response)}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise MeilisearchError(f"MeiliSearch {method} {path} answered something other than JSON") from exc
        return body if isinstance(body, dict) else {"results": body}

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise MeilisearchError(
                f"MeiliSearch at {self.url} did not answer {method} {path} in time ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise MeilisearchError(
                f"MeiliSearch at {self.url} is not reachable: {exc}", hint="is it running? drkit start"
            ) from exc


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        return f"{body['message']} [{body.get('code', '')}]"
    return " ".join(response.text.split())[:200] or "(empty answer)"
