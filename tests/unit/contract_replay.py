"""Replaying answers recorded from real servers' documentation and source through
httpx.MockTransport: each route answers its recorded responses in order (the last repeats),
and every request is kept so a test can check what drkit sent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Recorded:
    """One answer as the real server gives it, and where that was read (`source`)."""

    status: int
    body: Any
    source: str
    text: bool = False  # body is plain text (Hasura's /healthz), not JSON

    def response(self) -> httpx.Response:
        if self.text:
            return httpx.Response(self.status, text=str(self.body))
        if self.body is None:
            return httpx.Response(self.status)
        return httpx.Response(self.status, content=json.dumps(self.body).encode())


@dataclass
class Replay:
    routes: dict[tuple[str, str], list[Recorded]]
    sent: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        key = (request.method, request.url.path)
        answers = self.routes.get(key)
        if not answers:
            return httpx.Response(404)
        return (answers.pop(0) if len(answers) > 1 else answers[0]).response()

    def bodies(self) -> Iterable[dict[str, Any]]:
        for request in self.sent:
            if request.content:
                yield json.loads(request.content)
