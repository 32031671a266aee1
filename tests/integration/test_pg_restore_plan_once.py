"""`drkit restore postgres` plans once: the plan it shows is the plan it carries out (planning
reads every manifest and, for a time target, the WAL; doing it twice is time off the RTO)."""

from __future__ import annotations

from typing import Any

import pytest

from drkit.cli import app as drkit_app
from drkit.engines.postgres import prepare, restore
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import restore_dir, switch_and_wait_archived


def test_a_restore_plans_once(private_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = private_sandbox
    made = run_drkit("--output", "json", "backup", "postgres", config=sandbox.config_path)
    assert made.code == 0, made.stderr
    stop = made.json()[0]["postgres"]["stop_lsn"]
    switch_and_wait_archived(sandbox.dsn)
    calls: list[str] = []
    original = restore.plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append("plan")
        return original(*args, **kwargs)

    monkeypatch.setattr(restore, "plan", counted)
    monkeypatch.setattr(prepare, "plan", counted)
    dest = restore_dir(sandbox.dir, "plan-once", sandbox.box.os_user)
    argv = [
        "--config",
        str(sandbox.config_path),
        "restore",
        "postgres",
        "--to",
        str(dest),
        "--target-lsn",
        stop,
    ]
    with pytest.raises(SystemExit) as done:
        drkit_app.main(argv)
    assert done.value.code in (0, None)
    assert calls == ["plan"]
