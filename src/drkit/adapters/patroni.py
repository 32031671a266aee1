"""Patroni's REST API (docs/rest_api.rst): GET /cluster (every member: name, role, state,
host, port, timeline, lag in bytes), GET /patroni (one member: role, timeline, xlog
positions), POST /switchover {leader, candidate} and POST /failover {candidate}. Patroni
decides and acts; this client only reads and asks. Every request has a timeout; the cluster's
view comes from the first member that answers."""

from __future__ import annotations

from typing import Any

import httpx

from drkit.domain.errors import OperationError

CONNECT_TIMEOUT = 2.0


class PatroniApi:
    def __init__(
        self,
        urls: tuple[str, ...],
        auth: str | None = None,
        *,
        timeout: float = 3.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not urls:
            raise OperationError("no Patroni REST API configured (replication.patroni.rest)")
        self.urls = urls
        user, _, password = (auth or "").partition(":")
        self._http = httpx.Client(
            auth=httpx.BasicAuth(user, password) if auth else None,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def cluster(self) -> dict[str, Any]:
        """GET /cluster from the first member that answers."""
        data, _url = self._first("/cluster")
        if not isinstance(data.get("members"), list):
            raise OperationError("Patroni's /cluster has no members list")
        return data

    def member(self, api_url: str) -> dict[str, Any]:
        """GET /patroni of one member (its api_url as /cluster gives it)."""
        base = api_url.removesuffix("/patroni").rstrip("/")
        return self._get(f"{base}/patroni")

    def switchover(self, leader: str, candidate: str, *, timeout: float) -> str:
        return self._post("/switchover", {"leader": leader, "candidate": candidate}, timeout)

    def failover(self, candidate: str, *, timeout: float) -> str:
        return self._post("/failover", {"candidate": candidate}, timeout)

    def _first(self, path: str) -> tuple[dict[str, Any], str]:
        errors = []
        for url in self.urls:
            try:
                return self._get(url + path), url
            except OperationError as exc:
                errors.append(exc.message)
        raise OperationError(f"no Patroni REST API answers: {'; '.join(errors)}")

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise OperationError(f"{url}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 500 and not response.content:
            raise OperationError(f"{url}: HTTP {response.status_code}")
        try:  # /patroni answers 503 with a body when PostgreSQL is not running
            data = response.json()
        except ValueError as exc:
            raise OperationError(f"{url}: HTTP {response.status_code}, not JSON") from exc
        if not isinstance(data, dict):
            raise OperationError(f"{url}: unexpected answer")
        return data

    def _post(self, path: str, body: dict[str, str], timeout: float) -> str:
        """To the first member that answers at all; Patroni answers 200 once the switch is
        done (it polls the outcome), 412 when it refuses, 503 when it failed."""
        errors = []
        for url in self.urls:
            try:
                response = self._http.post(url + path, json=body, timeout=httpx.Timeout(timeout, connect=2.0))
            except httpx.TransportError as exc:
                errors.append(f"{url}: {exc or type(exc).__name__}")
                continue
            text = response.text.strip()
            if response.status_code == 401:
                raise OperationError(
                    f"Patroni refused the credentials ({url}{path}): set replication.patroni.auth"
                )
            if response.status_code != 200:
                raise OperationError(f"Patroni {path} answered {response.status_code}: {text or 'no reason'}")
            return text
        raise OperationError(f"no Patroni REST API takes {path}: {'; '.join(errors)}")
