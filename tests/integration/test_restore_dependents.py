"""`drkit restore postgres --in-place` on a stack where Hasura depends on PostgreSQL: Hasura
is stopped before the data directory is replaced (it is down while recovery runs), started
again after with its health checked; `--leave-dependents` leaves it alone."""

from __future__ import annotations

import json

import pytest

from drkit.runtimes.factory import runtime_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.test_pg_failclosed import start_held

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres", "hasura")}], indirect=True)
def test_hasura_is_down_while_postgres_is_replaced_and_healthy_after(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    hasura = runtime_for(box.stack.services["hasura"], box.stack.state_dir)
    assert run_drkit("backup", "postgres", config=box.config_path).code == 0

    dry = run_drkit("--dry-run", "restore", "postgres", "--in-place", config=box.config_path)
    assert dry.code == 0 and "would stop hasura first and start them again after" in dry.stdout
    assert hasura.is_running()

    holds = box.dir / "holds"
    proc = start_held(box, "recovery", holds, "--in-place", "--yes", "--output", "json")
    try:
        assert not hasura.is_running()  # stopped before anything was moved, still down
    finally:
        (holds / "recovery.release").touch()
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    result = json.loads(out[out.index("{") :])
    assert result["dependents"] == {"paused": ["hasura"], "started_ok": True}
    assert hasura.is_running()
    health = run_drkit("--output", "json", "health", config=box.config_path)
    assert health.code == 0, health.stdout

    left = run_drkit("--output", "json", "--yes", "restore", "postgres", "--in-place", "--leave-dependents",
                     config=box.config_path)  # fmt: skip
    assert left.code == 0, left.stderr
    assert json.loads(left.stdout[left.stdout.index("{") :])["dependents"] == {
        "paused": [],
        "started_ok": None,
    }
