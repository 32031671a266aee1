"""An isolated drill copy that does not come up is stopped, not left running (a drill whose
copy's S3 did not start left the copy's PostgreSQL, Redis and stand-ins running)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.errors import OperationError
from drkit.engines.core.workspace import open_workspace
from drkit.sandbox import drill_env

STACK = """
version: 1
stack: demo
repositories: {local: {type: fs, path: ./repo}}
services:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 port=5999 user=postgres dbname=x
    runtime: {type: local, data_dir: ./data, bin_dir: /usr/lib/postgresql/15/bin}
"""


def test_a_copy_that_did_not_come_up_is_torn_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stack.yaml").write_text(STACK)
    live = open_workspace(load_stack(tmp_path / "stack.yaml"))
    stopped: list[Path] = []

    def up(directory: Path, options: object) -> None:
        directory.mkdir()  # prepared, some services started, then one did not come up
        raise OperationError("sandbox service s3 did not start: timed out")

    monkeypatch.setattr(drill_env.sandbox_stack, "up", up)
    monkeypatch.setattr(drill_env.sandbox_stack, "down", lambda root: stopped.append(Path(root)) or [])
    env = drill_env.IsolatedSandbox(parent=tmp_path)
    with pytest.raises(OperationError, match="did not start"):
        env.build(live)
    assert env.root is not None and stopped == [env.root]
    assert not env.root.exists()  # and its directory removed
