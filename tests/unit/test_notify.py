"""Notifications through apprise to a local HTTP receiver: the message arrives, holds no
secret, and goes only to the targets whose min_severity it reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.errors import ConfigError
from drkit.domain.stack import Severity
from drkit.engines.ops.notify import Message, mask, send
from tests.conftest import run_drkit
from tests.receiver import receiver

PASSWORD = "pg-Secr3t-value"
TOKEN = "hook-token-4f9a"

STACK = """\
version: 1
stack: demo
repositories:
  local:
    type: fs
    path: ./repo
services:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 dbname=app
    password: env:DRKIT_TEST_PG_PASSWORD
notifications:
  targets:
    - url: env:DRKIT_TEST_URL_CRITICAL
      min_severity: critical
    - url: file:{url_file}
      min_severity: info
"""


@pytest.fixture
def stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with receiver() as rx:
        url_file = tmp_path / "url"
        url_file.write_text(rx.url(f"all/{TOKEN}") + "\n")
        monkeypatch.setenv("DRKIT_TEST_PG_PASSWORD", PASSWORD)
        monkeypatch.setenv("DRKIT_TEST_URL_CRITICAL", rx.url(f"critical/{TOKEN}"))
        path = tmp_path / "stack.yaml"
        path.write_text(STACK.format(url_file=url_file))
        yield path, rx


def test_a_failure_arrives_without_any_secret(stack_file) -> None:  # type: ignore[no-untyped-def]
    path, rx = stack_file
    stack = load_stack(path)
    body = (
        f"backup failed: connection to postgresql://app:{PASSWORD}@10.0.0.5/app refused; "
        f"retried with host=db password={PASSWORD}; s3 https://key:other-s3cret@s3.example/bucket"
    )
    deliveries = send(stack, Message("backup of postgres failed", body, Severity.CRITICAL))
    assert [d.sent for d in deliveries] == [True, True]
    messages = rx.messages()
    assert len(messages) == 2
    for m in messages:
        assert "backup of postgres failed" in m["title"]
        assert "connection to postgresql://app:***@10.0.0.5/app refused" in m["message"]
        raw = str(m)
        assert PASSWORD not in raw and "other-s3cret" not in raw and TOKEN not in raw
    assert all(TOKEN not in d.target for d in deliveries)


def test_routing_by_severity(stack_file) -> None:  # type: ignore[no-untyped-def]
    path, rx = stack_file
    deliveries = send(load_stack(path), Message("digest", "2 backups", Severity.INFO))
    assert [(d.sent, d.skipped) for d in deliveries] == [(False, True), (True, False)]
    assert [m["message"] for m in rx.messages()] == ["2 backups"]


def test_notify_test_command_sends_to_the_receiver(stack_file) -> None:  # type: ignore[no-untyped-def]
    path, rx = stack_file
    env = {"DRKIT_TEST_PG_PASSWORD": PASSWORD, "DRKIT_TEST_URL_CRITICAL": rx.url(f"critical/{TOKEN}")}
    result = run_drkit("notify", "test", "--severity", "warning", config=path, env=env)
    assert result.code == 0, result.stderr
    messages = rx.messages()
    assert len(messages) == 1 and "test notification" in messages[0]["title"]
    assert "skipped" in result.stdout and TOKEN not in result.stdout


def test_a_target_that_cannot_be_reached_fails_the_command(tmp_path: Path) -> None:
    with receiver() as rx:
        port = rx.port
    url_file = tmp_path / "url"
    url_file.write_text(f"json://127.0.0.1:{port}/gone")
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.format(url_file=url_file))
    env = {"DRKIT_TEST_PG_PASSWORD": PASSWORD, "DRKIT_TEST_URL_CRITICAL": f"json://127.0.0.1:{port}/x"}
    result = run_drkit("notify", "test", config=path, env=env)
    assert result.code == 1
    assert "could not notify json://127.0.0.1" in result.stderr


def test_bad_min_severity_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.format(url_file="/x").replace("min_severity: info", "min_severity: loud"))
    with pytest.raises(ConfigError, match=r"notifications\.targets\.1\.min_severity"):
        load_stack(path, strict_secrets=False)


def test_mask_hides_credentials_of_every_shape() -> None:
    text = "redis://:redispw@h:6379/0 token=abc123 api_key: 'k e y' ok"
    masked = mask(text, ["ok-not-secret-but-listed"])
    assert masked == "redis://:***@h:6379/0 token=*** api_key: *** ok"
    assert mask("user pw is hunter22 here", ["hunter22"]) == "user pw is *** here"
