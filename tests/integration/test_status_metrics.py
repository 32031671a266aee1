"""`drkit status`, `drkit metrics` and notifications on the sandbox: metrics parsed back
match real backups; with WAL archiving stopped, status turns red within one RPO period and
a notification reaches a local receiver, with no secret in it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import OperationError
from drkit.infra.wait import wait_for
from tests.conftest import CliResult, run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import switch_and_wait_archived
from tests.receiver import receiver

pytestmark = pytest.mark.integration

PASSWORD = "status-test-Secr3t"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_match_real_backups(sandbox: SandboxHandle) -> None:
    for service in ("postgres", "redis"):
        result = run_drkit("backup", service, config=sandbox.config_path)
        assert result.code == 0, result.stderr
    switch_and_wait_archived(sandbox.dsn)
    verified = run_drkit("verify", "--latest", "--service", "redis", config=sandbox.config_path)
    assert verified.code == 0, verified.stdout + verified.stderr
    listed = run_drkit("--output", "json", "backups", "list", config=sandbox.config_path)
    assert listed.code == 0, listed.stderr
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for m in listed.json()["backups"]:
        key = (m["service"], m["kind"])
        if key not in newest or (m["finished_at"], m["backup_id"]) > (
            newest[key]["finished_at"],
            newest[key]["backup_id"],
        ):
            newest[key] = m
    assert ("postgres", "base") in newest and ("redis", "rdb") in newest

    scrape = run_drkit("metrics", "--once", config=sandbox.config_path)
    assert scrape.code == 0, scrape.stderr
    values = samples(scrape.stdout)
    from datetime import datetime

    for (service, kind), m in newest.items():
        labels = (("service", service), ("type", kind))
        finished = datetime.fromisoformat(m["finished_at"])
        started = datetime.fromisoformat(m["started_at"])
        assert values[("drkit_backup_last_success_timestamp_seconds", labels)] == pytest.approx(
            finished.timestamp(), abs=1e-3
        )
        assert values[("drkit_backup_last_duration_seconds", labels)] == pytest.approx(
            (finished - started).total_seconds(), abs=1e-3
        )
        assert values[("drkit_backup_last_size_bytes", labels)] == sum(f["size"] for f in m["files"])
    pg = (("service", "postgres"),)
    assert values[("drkit_rpo_target_seconds", pg)] == 300
    assert values[("drkit_wal_archive_failing", pg)] == 0
    assert values[("drkit_recoverable_point_age_seconds", pg)] < 300
    assert values[("drkit_wal_last_archived_timestamp_seconds", pg)] > 0
    assert values[("drkit_verify_last_success", (("service", "redis"),))] == 1


def short_rpo_config(box: SandboxHandle, url_env: str) -> Path:
    """The sandbox's stack.yaml with a 5s RPO, a (secret) password and a notification target."""
    config = yaml.safe_load(box.config_path.read_text())
    config["services"]["postgres"]["rpo"] = "5s"
    config["services"]["postgres"]["password"] = "env:DRKIT_TEST_PG_PASSWORD"
    config["notifications"] = {"targets": [{"url": f"env:{url_env}", "min_severity": "critical"}]}
    path = box.dir / "stack-short-rpo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_status_turns_red_when_archiving_stops(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    with receiver() as rx:
        env = {"DRKIT_TEST_PG_PASSWORD": PASSWORD, "DRKIT_TEST_NOTIFY_URL": rx.url("drkit/token-xyz")}
        config = short_rpo_config(box, "DRKIT_TEST_NOTIFY_URL")
        assert run_drkit("backup", "postgres", config=config, env=env).code == 0

        def status() -> CliResult:
            return run_drkit("--output", "json", "status", "--notify", config=config, env=env)

        def green_and_caught_up() -> CliResult | None:
            # "Caught up" holds until the server writes its next WAL record (a checkpoint's,
            # or the running-xacts record the background writer logs every 15 s): switch and
            # ask again until one status saw it, however slowly this machine runs.
            switch_and_wait_archived(box.dsn)
            result = status()
            assert result.code == 0, result.stdout + result.stderr
            return result if result.json()["services"][0]["wal"]["caught_up"] is True else None

        wait_for(green_and_caught_up, timeout=180, what="a green status with the archive caught up")
        assert rx.messages() == []

        with connect(box.dsn) as conn:
            conn.execute("alter system set archive_command = 'false'")
            conn.execute("select pg_reload_conf()")
            conn.execute("create table after_stop (id int)")
            conn.execute("insert into after_stop select generate_series(1, 1000)")
            conn.execute("select pg_switch_wal()")
        stopped = time.monotonic()

        def red_for_rpo() -> CliResult | None:
            result = status()
            if result.code != 3:
                return None
            problems = result.json()["services"][0]["problems"]
            return result if any("more than the RPO target 5s" in p for p in problems) else None

        red = wait_for(red_for_rpo, timeout=180, what="drkit status to report the RPO missed")
        elapsed = time.monotonic() - stopped
        pg = red.json()["services"][0]
        assert pg["wal"]["failing"] is True and pg["wal"]["caught_up"] is False
        assert pg["recoverable_age_seconds"] > 5
        # The archiver's failure makes status red at once; the age passes the RPO 5s later.
        # How soon is a figure (printed), not an assertion: each probe is a whole `drkit
        # status`, and a loaded machine may take seconds to run one.
        print(f"status red (RPO 5s missed) {elapsed:.1f}s after archiving stopped")

        def notified() -> list[dict[str, Any]] | None:
            return rx.messages() or None

        messages = wait_for(notified, timeout=60, what="the notification", retry_on=(OperationError,))
        body = str(messages)
        assert "postgres" in messages[-1]["title"] and "RPO at risk" in messages[-1]["title"]
        assert "WAL archive is failing" in body
        assert PASSWORD not in body and "token-xyz" not in body


@pytest.mark.parametrize("private_sandbox", [{"wal_mode": "stream"}], indirect=True)
def test_status_turns_red_when_the_stream_receiver_stops(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    config = box.config_path
    assert run_drkit("backup", "postgres", config=config).code == 0

    def status() -> CliResult:
        return run_drkit("--output", "json", "status", "postgres", config=config)

    def caught_up() -> CliResult | None:
        result = status()
        return result if result.code == 0 and result.json()["services"][0]["wal"]["caught_up"] else None

    wait_for(caught_up, timeout=30, what="the stream receiver to flush everything")
    receiver_pid = int(box.box.state["wal_stream_pid"])
    os.kill(receiver_pid, signal.SIGTERM)  # the sandbox's own `drkit wal-stream`
    box.psql("create table after_receiver_stopped (id int)")

    def red() -> CliResult | None:
        result = status()
        return result if result.code == 3 else None

    pg = wait_for(red, timeout=30, what="drkit status to turn red").json()["services"][0]
    assert pg["wal"]["mode"] == "stream" and pg["wal"]["failing"] is True
    assert "nothing is receiving on slot 'drkit'" in pg["problems"][0]
