"""`drkit stop|start|health` on a real stack: the sandbox's PostgreSQL plus local-process
stand-ins (a hasura that answers /healthz, an auth that signs in a canary, a search
service, and one that answers 503 forever)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from drkit.infra.ports import free_port
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox

STAND_IN = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, status = int(sys.argv[1]), int(sys.argv[2])
canary = sys.argv[3] if len(sys.argv) > 3 else ""

class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(status, {"status": "ok" if status == 200 else "unavailable"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/signin/email-password" and canary == body["email"] + ":" + body["password"]:
            self.reply(200, {"session": {"accessToken": "token"}, "mfa": None})
        else:
            self.reply(401, {"error": "invalid-email-password"})

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""
CANARY = "canary@example.com"


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A PostgreSQL of this module's own: these tests stop and start it."""
    handle = make_sandbox("drkit-it-start-")
    yield handle
    destroy_sandbox(handle)


def stand_in(
    script: Path, kind: str, status: int, deps: list[str], health: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    port = free_port()
    command = [sys.executable, str(script), str(port), str(status), *extra.pop("args", [])]
    health = {k: (v.format(port=port) if isinstance(v, str) else v) for k, v in health.items()}
    return {
        "kind": kind,
        "runtime": {"type": "local", "command": command},
        "url": f"http://127.0.0.1:{port}",
        "depends_on": deps,
        "health": health,
        **extra,
    }


def write_stack(box: SandboxHandle, directory: Path, *, broken: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "stand_in.py"
    script.write_text(STAND_IN)
    doc = yaml.safe_load(box.config_path.read_text())
    doc["state_dir"] = str(directory / "state")
    pg = doc["services"]["postgres"]
    redis_port = free_port()
    services = {
        "postgres": {**pg, "health": {"type": "sql", "timeout": "60s"}},
        "redis": {  # no health configured: the default probe for kind redis is PING
            "kind": "redis",
            "runtime": {
                "type": "local",
                "command": [
                    "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                ],
            },
            "url": f"redis://127.0.0.1:{redis_port}/0",
        },
        "hasura": stand_in(script, "hasura", 200, ["postgres"], {"type": "hasura"}),
        "search": stand_in(script, "meilisearch", 200, ["postgres"], {"type": "http"}),
        "auth": stand_in(
            script,
            "auth",
            200,
            ["postgres", "hasura"],
            {"type": "auth", "target": "http://canary%40example.com@127.0.0.1:{port}"},
            args=[f"{CANARY}:letmein"],
            password="env:CANARY_PASSWORD",
        ),
    }
    if broken:
        services["broken"] = stand_in(script, "http", 503, ["postgres"], {"type": "http", "timeout": "2s"})
        services["needs_broken"] = stand_in(script, "http", 200, ["broken"], {"type": "http"})
    doc["services"] = services
    doc["smoke"] = [s for s in doc.get("smoke", []) if s["service"] in services]  # of its own services
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def drkit(config: Path, *args: str, password: str = "letmein") -> Any:
    return run_drkit(*args, config=config, timeout=120, env={"CANARY_PASSWORD": password})


def answers(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def test_stop_then_start_in_dependency_order_with_timings(box: SandboxHandle, tmp_path: Path) -> None:
    config = write_stack(box, tmp_path / "ordered", broken=False)
    doc = yaml.safe_load(config.read_text())
    try:
        assert drkit(config, "start").code == 0  # everything up first
        stopped = drkit(config, "--output", "json", "stop")
        assert stopped.code == 0, stopped.stderr
        order = [s["service"] for s in stopped.json()["steps"]]
        assert set(order[-2:]) == {"postgres", "redis"}  # the level everything builds on
        assert order.index("auth") < order.index("hasura")
        assert not box.box.postgres_runtime().is_running()
        assert not any(answers(s["url"]) for n, s in doc["services"].items() if n != "postgres")

        started = drkit(config, "--output", "json", "start")
        assert started.code == 0, started.stderr
        report = started.json()
        steps = {s["service"]: s for s in report["steps"]}
        assert [s["service"] for s in report["steps"]][:2] == ["postgres", "redis"]
        assert {n: s["status"] for n, s in steps.items()} == dict.fromkeys(steps, "healthy")
        assert {n: s["level"] for n, s in steps.items()} == {
            "postgres": 0,
            "redis": 0,
            "hasura": 1,
            "search": 1,
            "auth": 2,
        }
        assert steps["redis"]["detail"] == "PONG"
        pg = steps["postgres"]
        assert pg["seconds"] > 0 and pg["detail"] == "select 1 ok"
        for name in ("hasura", "search"):  # started only once postgres was healthy
            assert steps[name]["started_after"] >= pg["started_after"] + pg["seconds"]
        assert steps["auth"]["started_after"] >= steps["hasura"]["started_after"]
        assert steps["auth"]["detail"].startswith("canary signed in")
        assert report["total_seconds"] >= pg["seconds"] + steps["auth"]["seconds"]
        assert box.psql("select count(*) from nchat_users") == 50

        health = drkit(config, "--output", "json", "health")
        assert health.code == 0, health.stdout
        assert {r["service"]: r["status"] for r in health.json()} == dict.fromkeys(steps, "ok")

        text = drkit(config, "health", password="wrong")
        assert text.code == 3
        assert "auth" in text.stdout and "HTTP 401" in text.stdout
    finally:
        drkit(config, "stop")
        box.box.postgres_runtime().start()


def test_a_service_that_never_gets_healthy_fails_start_and_leaves_the_rest_up(
    box: SandboxHandle, tmp_path: Path
) -> None:
    config = write_stack(box, tmp_path / "broken", broken=True)
    doc = yaml.safe_load(config.read_text())
    try:
        result = drkit(config, "start")
        assert result.code == 1
        assert "broken unhealthy" in result.stderr
        assert "timed out after 2s" in result.stderr and "HTTP 503" in result.stderr
        assert "needs_broken" in result.stdout and "skipped" in result.stdout
        assert "total" in result.stdout
        assert box.psql("select 1") == 1  # postgres stays up
        for name in ("hasura", "search", "auth"):
            assert answers(doc["services"][name]["url"]), f"{name} should still run"
        assert not answers(doc["services"]["needs_broken"]["url"])
        assert answers(doc["services"]["broken"]["url"])  # started, left for inspection

        as_json = drkit(config, "--output", "json", "start")
        assert as_json.code == 1
        steps = {s["service"]: s for s in as_json.json()["steps"]}
        assert steps["broken"]["status"] == "unhealthy" and steps["broken"]["seconds"] >= 2
        assert steps["needs_broken"]["status"] == "skipped"
        assert "broken is unhealthy" in steps["needs_broken"]["detail"]
    finally:
        drkit(config, "stop", *(name for name in doc["services"] if name != "postgres"))


def test_dry_run_prints_the_plan_and_starts_nothing(box: SandboxHandle, tmp_path: Path) -> None:
    config = write_stack(box, tmp_path / "plan", broken=False)
    result = drkit(config, "--dry-run", "--output", "json", "start", "auth")
    assert result.code == 0
    assert result.json()["levels"] == [["postgres"], ["hasura"], ["auth"]]
    unknown = drkit(config, "start", "nope")
    assert unknown.code == 2 and "unknown service 'nope'" in unknown.stderr
