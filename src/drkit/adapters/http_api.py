"""The part every JSON-over-HTTP service client shares: one connection pool, timeouts, closing."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


class HttpApi:
    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
