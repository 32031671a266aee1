"""stack.yaml errors, as an operator meets them: through the real CLI, exit 2, and one line
on stderr that names the file, the line and the dotted key."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.errors import ConfigError
from drkit.domain.stack import Priority, WalMode
from tests.conftest import run_drkit

MISSING_VAR = "DRKIT_TEST_SURELY_NOT_SET_VAR"

VALID = """\
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
    rto: 30m
    rpo: 5m
    backup:
      wal_mode: archive
      part_size: 8MiB
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def line_of(text: str, fragment: str) -> int:
    """1-based line of the first line holding `fragment`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in the test config")


def assert_config_error(path: Path, line: int | None, key: str, *words: str) -> str:
    result = run_drkit("backups", "list", config=path)
    assert result.code == 2, result.stderr
    where = f"{path}:{line}: " if line else f"{path}: "
    assert f"{where}{key}: " in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def assert_load_error(path: Path, line: int, key: str, *words: str) -> None:
    """The same check in-process (no subprocess), for the rarer cases."""
    with pytest.raises(ConfigError) as exc:
        load_stack(path)
    assert exc.value.exit_code == 2
    assert exc.value.message.startswith(f"{path}:{line}: {key}: "), exc.value.message
    for word in words:
        assert word in exc.value.message


@pytest.fixture(autouse=True)
def _no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MISSING_VAR, raising=False)


def test_unknown_key(tmp_path: Path) -> None:
    text = VALID.replace("    rpo: 5m\n", "    rpo: 5m\n    colour: blue\n")
    path = write(tmp_path, text)
    assert_config_error(path, line_of(text, "colour"), "services.postgres.colour", "unknown key")


def test_unknown_key_nested_in_a_list(tmp_path: Path) -> None:
    text = VALID + "checks:\n  - name: users\n    query: select 1\n    expct: {equals: 1}\n"
    path = write(tmp_path, text)
    assert_load_error(path, line_of(text, "expct"), "checks.0.expct", "unknown key")


def test_bad_duration(tmp_path: Path) -> None:
    text = VALID.replace("rpo: 5m", "rpo: 5 minutes")
    path = write(tmp_path, text)
    assert_config_error(path, line_of(text, "rpo:"), "services.postgres.rpo", "bad duration", "'5 minutes'")


def test_missing_secret(tmp_path: Path) -> None:
    text = VALID.replace("    rto: 30m\n", f"    password: env:{MISSING_VAR}\n    rto: 30m\n")
    path = write(tmp_path, text)
    stderr = assert_config_error(
        path, line_of(text, "password:"), "services.postgres.password", MISSING_VAR, "not set"
    )
    assert "Traceback" not in stderr


def test_missing_secret_file(tmp_path: Path) -> None:
    text = VALID.replace("    type: fs\n", f"    type: fs\n    access_key: file:{tmp_path}/nope.txt\n")
    path = write(tmp_path, text)
    assert_config_error(path, line_of(text, "access_key"), "repositories.local.access_key", "does not exist")


def test_missing_required_key(tmp_path: Path) -> None:
    text = VALID.replace("    kind: postgres\n", "")
    path = write(tmp_path, text)
    # The key itself is absent: the error points at its parent's line.
    assert_config_error(
        path, line_of(text, "  postgres:"), "services.postgres.kind", "required key is missing"
    )


def test_invalid_yaml(tmp_path: Path) -> None:
    text = VALID.replace("    rpo: 5m\n", "    rpo: [5m\n")
    path = write(tmp_path, text)
    result = run_drkit("backups", "list", config=path)
    assert result.code == 2, result.stderr
    # PyYAML reports the line where it noticed the problem, after the unclosed bracket.
    bad = line_of(text, "rpo: [5m")
    assert any(f"{path}:{n}: not valid YAML" in result.stderr for n in (bad, bad + 1)), result.stderr


def test_tab_indentation_is_invalid_yaml_with_its_line(tmp_path: Path) -> None:
    text = VALID.replace("    rto: 30m\n", "\trto: 30m\n")
    path = write(tmp_path, text)
    where = re.escape(f"{path}:{line_of(text, 'rto')}: not valid YAML")
    with pytest.raises(ConfigError, match=f"^{where}"):
        load_stack(path)


def test_unknown_dependency(tmp_path: Path) -> None:
    text = VALID.replace("    rto: 30m\n", "    depends_on: [redis]\n    rto: 30m\n")
    path = write(tmp_path, text)
    assert_config_error(path, line_of(text, "depends_on"), "services.postgres.depends_on", "'redis'")


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = run_drkit("backups", "list", config=path)
    assert result.code == 2
    assert f"{path}: configuration file not found" in result.stderr


def test_json_mode_reports_the_config_error_as_json(tmp_path: Path) -> None:
    text = VALID.replace("rpo: 5m", "rpo: soon")
    path = write(tmp_path, text)
    result = run_drkit("--output", "json", "backups", "list", config=path)
    assert result.code == 2
    body = result.json()
    assert body["kind"] == "ConfigError"
    assert body["exit_code"] == 2
    assert body["error"].startswith(f"{path}:{line_of(text, 'rpo')}: services.postgres.rpo: ")


def test_valid_minimal_config_loads_to_domain_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_TEST_PG_PASSWORD", "s3cret")
    (tmp_path / "key.txt").write_text("AGE-SECRET-KEY-1EXAMPLE\n")
    text = VALID.replace("    rto: 30m\n", "    password: env:DRKIT_TEST_PG_PASSWORD\n    rto: 30m\n") + (
        f"encryption:\n  recipients: [age1example]\n  identity: file:{tmp_path}/key.txt\n"
    )
    stack = load_stack(write(tmp_path, text))
    assert stack.name == "demo"
    assert stack.primary_repository == "local"
    assert stack.repository.type == "fs"
    assert stack.repository.path == str(tmp_path.resolve() / "repo")  # relative to the file
    assert stack.state_dir == str(tmp_path.resolve() / ".drkit")
    assert stack.source_path == str((tmp_path / "stack.yaml").resolve())
    pg = stack.service("postgres")
    assert pg.kind == "postgres"
    assert pg.runtime.type == "local"
    assert pg.password == "s3cret"
    assert pg.rto == timedelta(minutes=30)
    assert pg.rpo == timedelta(minutes=5)
    assert pg.priority is Priority.MEDIUM
    assert pg.postgres is not None
    assert pg.postgres.wal_mode is WalMode.ARCHIVE
    assert pg.postgres.part_size == 8 * 1024 * 1024
    assert pg.postgres.wal_retention == timedelta(days=7)
    assert stack.encryption is not None
    assert stack.encryption.recipients == ("age1example",)
    assert stack.encryption.identity == "AGE-SECRET-KEY-1EXAMPLE"


def test_unresolvable_secret_is_none_when_not_strict(tmp_path: Path) -> None:
    text = VALID.replace("    rto: 30m\n", f"    password: env:{MISSING_VAR}\n    rto: 30m\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=MISSING_VAR):
        load_stack(path)
    assert load_stack(path, strict_secrets=False).service("postgres").password is None


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("    rto: 30m\n", "    password: hunter2\n    rto: 30m\n")
    with pytest.raises(ConfigError, match=r"stack\.yaml:\d+: services\.postgres\.password: "):
        load_stack(write(tmp_path, text))


def test_negative_duration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"services\.postgres\.rpo"):
        load_stack(write(tmp_path, VALID.replace("rpo: 5m", "rpo: -5")))


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("    rpo: 5m\n", "    rpo: 5m\n    priority: high\n    rpo: 1h\n")
    with pytest.raises(ConfigError, match=r"services\.postgres\.rpo"):
        load_stack(write(tmp_path, text))
