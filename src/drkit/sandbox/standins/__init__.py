"""Stand-ins for servers that cannot be installed here (Hasura, MeiliSearch).

Each one speaks the documented subset of its server's HTTP API that drkit uses, with the
same status codes, bodies and error shapes, and nothing more; its module docstring says
what it stands for and what it leaves out. Where the real binary is on PATH, use it.

This module holds what they share: a JSON request handler and a server that stops cleanly
on SIGTERM (the local-process runtime stops services that way).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 200 * 1024 * 1024


class BadRequest(Exception):
    """The request cannot be taken; the handler answers `status` (400) with `body`."""

    def __init__(self, body: Any, status: int = 400) -> None:
        super().__init__(str(body))
        self.body = body
        self.status = status


class JsonHandler(BaseHTTPRequestHandler):
    """Shared request plumbing. Subclasses implement `route(method)`."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse their connection
    payload_limit = MAX_BODY
    server_version = "drkit-standin"
    body: bytes = b""

    def route(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            # Read the whole body first, whatever the answer: a body left unread on a
            # kept-alive connection would be taken for the next request.
            self.body = self._read_body()
            self.route(method)
        except BadRequest as exc:
            self.reply_json(exc.status, exc.body)
        except Exception as exc:  # a stand-in answers 500 rather than dropping the connection
            self.reply_json(500, {"message": f"internal error: {exc}", "code": "internal"})

    def too_large(self) -> BadRequest:
        return BadRequest({"message": "payload too large", "code": "payload_too_large"})

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.payload_limit:
            self.close_connection = True
            raise self.too_large()
        return self.rfile.read(length) if length else b""

    def json_body(self) -> Any:
        raw = self.body
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadRequest({"message": f"malformed JSON: {exc}", "code": "malformed_payload"}) from exc

    def reply_json(self, status: int, body: Any) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def reply_text(self, status: int, text: str) -> None:
        self._reply(status, text.encode(), "text/plain; charset=utf-8")

    def _reply(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve(
    handler: type[BaseHTTPRequestHandler],
    host: str,
    port: int,
    *,
    name: str,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then return (after `on_stop`)."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"{name} stand-in listening on http://{host}:{port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if on_stop is not None:
            on_stop()
        sys.stderr.write(f"{name} stand-in stopped\n")


def read_secret_file(path: str | None) -> str | None:
    if not path:
        return None
    with open(path) as fh:
        return fh.read().strip() or None
