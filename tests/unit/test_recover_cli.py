"""`drkit recover service NAME --restore` (docs/recovery.md): restore the service's newest
backup even when it answers after the restart. The scenario had the parameter and its step
named the option, but the command line had no `--restore` ("No such option")."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_drkit

STACK = """\
version: 1
stack: demo
repositories:
  local: {type: fs, path: ./repo}
services:
  postgres: {kind: postgres, dsn: host=127.0.0.1 dbname=app}
  redis: {kind: redis, url: "redis://127.0.0.1:6379/0"}
"""


def config(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    return path


def test_restore_makes_the_plan_restore_always(tmp_path: Path) -> None:
    forced = run_drkit(
        "--output", "json", "--dry-run", "recover", "service", "redis", "--restore", config=config(tmp_path)
    )
    assert forced.code == 0, forced.stderr
    assert forced.json()["targets"]["restore_newest_backup"] == "always (--restore)"
    assert "restore redis's newest backup (--restore)" in [s["title"] for s in forced.json()["steps"]]
    plain = run_drkit("--output", "json", "--dry-run", "recover", "service", "redis", config=config(tmp_path))
    assert plain.json()["targets"]["restore_newest_backup"] == "if still unhealthy after the restart"


def test_restore_is_refused_for_other_scenarios(tmp_path: Path) -> None:
    refused = run_drkit("--dry-run", "recover", "db-corruption", "--restore", config=config(tmp_path))
    assert refused.code == 2 and "--restore is for `recover service NAME`" in refused.stderr
