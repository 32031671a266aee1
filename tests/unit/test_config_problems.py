"""Every problem of a stack.yaml at once, each as `file:line: key: what is wrong, what to do`,
in drkit's words (issue 18, item 3): through the real CLI, exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drkit.config.dsn import check_dsn
from drkit.config.loader import find_config, load_stack
from drkit.domain.errors import ConfigError
from tests.conftest import run_drkit

FIVE_PROBLEMS = """\
version: 1
stack: demo
repositories:
  local:
    type: fs
    path: ./repo
services:
  postgres:
    kind: postgress
    dsn: host=127.0.0.1 port=notaport dbname=app
    rpo: 5 minutes
    priorty: high
    backup:
      compress_level: 40
"""


def write(tmp_path: Path, text: str, name: str = "stack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problem_lines(stderr: str, path: Path) -> list[str]:
    return [
        line.strip() for line in stderr.splitlines() if re.match(rf"\s+{re.escape(str(path))}:\d+: ", line)
    ]


def test_five_problems_print_five_lines_with_their_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_PROBLEMS)
    result = run_drkit("backups", "list", config=path)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: {path}: 5 problems" in result.stderr
    lines = problem_lines(result.stderr, path)
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:9", "services.postgres.kind"],
        [f"{path}:10", "services.postgres.dsn"],
        [f"{path}:11", "services.postgres.rpo"],
        [f"{path}:12", "services.postgres.priorty"],
        [f"{path}:14", "services.postgres.backup.compress_level"],
    ], result.stderr
    kind, dsn, rpo, typo, level = lines
    assert "did you mean 'postgres'?" in kind
    assert "port='notaport' is not a port number" in dsn
    assert "bad duration '5 minutes'" in rpo
    assert "unknown key: did you mean 'priority'?" in typo
    assert "must be at most 19" in level
    assert "more problem" not in result.stderr
    assert "Input should be" not in result.stderr  # drkit's words, not pydantic's


def test_json_mode_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_PROBLEMS)
    result = run_drkit("--output", "json", "backups", "list", config=path)
    assert result.code == 2
    body = result.json()
    assert body["error"] == f"{path}: 5 problems"
    assert len(body["problems"]) == 5
    assert body["problems"][0].startswith(f"{path}:9: services.postgres.kind: ")


def test_an_unclosed_quote_is_reported_on_its_own_line_not_where_yaml_gives_up(tmp_path: Path) -> None:
    checks = "".join(f'  - name: "check {i}"\n    query: select {i}\n' for i in range(100))
    text = (
        'version: 1\nstack: demo\nrepositories:\n  local: {type: fs, path: "./repo}\n'
        "services:\n  postgres: {kind: postgres}\nchecks:\n" + checks
    )
    path = write(tmp_path, text)
    result = run_drkit("backups", "list", config=path)
    assert result.code == 2
    assert f"{path}:4: path: not valid YAML: the double quote" in result.stderr, result.stderr
    assert "close it on line 4" in result.stderr


def test_an_unclosed_quote_at_the_end_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nstack: 'demo\nservices: {}\n")
    with pytest.raises(ConfigError, match=r"stack\.yaml:2: stack: not valid YAML: the single quote"):
        load_stack(path)


def test_bad_indentation_in_drkit_words(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nstack: demo\n services:\n  postgres: {kind: postgres}\n")
    with pytest.raises(ConfigError, match=r"stack\.yaml:3: not valid YAML: .*indentation"):
        load_stack(path)


def test_every_duplicate_key_is_listed(tmp_path: Path) -> None:
    text = "version: 1\nstack: demo\nstack: again\nservices:\n  a: {kind: redis}\nversion: 1\n"
    with pytest.raises(ConfigError) as exc:
        load_stack(write(tmp_path, text))
    assert [p.split(": ")[1] for p in exc.value.problems] == ["stack", "version"]
    assert "given twice (first on line 2)" in exc.value.problems[0]


def test_every_missing_secret_is_listed_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRKIT_T_NOPE_A", raising=False)
    monkeypatch.delenv("DRKIT_T_NOPE_B", raising=False)
    text = (
        "version: 1\nstack: demo\nrepositories:\n"
        "  local: {type: fs, path: ./r, sign_key: env:DRKIT_T_NOPE_A}\n"
        "services:\n  postgres:\n    kind: postgres\n    password: env:DRKIT_T_NOPE_B\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_stack(write(tmp_path, text))
    assert len(exc.value.problems) == 2
    assert (
        ":4: repositories.local.sign_key: environment variable DRKIT_T_NOPE_A is not set"
        in exc.value.problems[0]
    )
    assert ":8: services.postgres.password: environment variable DRKIT_T_NOPE_B" in exc.value.problems[1]


def test_schedule_references_each_at_their_line(tmp_path: Path) -> None:
    text = (
        "version: 1\nstack: demo\nrepositories:\n  local: {type: fs, path: ./r}\n"
        "services:\n  postgres: {kind: postgres}\nschedule:\n"
        "  nightly:\n    cron: '0 2 * * *'\n    job: backup\n    services: [postgress]\n"
        "  offsite:\n    cron: '0 3 * * *'\n    job: sync\n    to: remote\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_stack(write(tmp_path, text))
    assert len(exc.value.problems) == 2
    assert (
        ":11: schedule.nightly.services: unknown service 'postgress' (known: postgres)"
        in exc.value.problems[0]
    )
    assert ":15: schedule.offsite.to: repository 'remote' is not among repositories" in exc.value.problems[1]


def test_an_inline_secret_says_what_to_write_instead(tmp_path: Path) -> None:
    text = "version: 1\nstack: demo\nrepositories:\n  local: {type: fs, path: ./r}\nservices:\n"
    text += "  postgres:\n    kind: postgres\n    password: hunter2\n"
    with pytest.raises(ConfigError, match=r":8: services\.postgres\.password: 'hunter2': .*env:NAME"):
        load_stack(write(tmp_path, text))


@pytest.mark.parametrize(
    ("dsn", "words"),
    [
        ("host=db port=notaport", "port='notaport' is not a port number"),
        ("host='db port=5432", "opens a quote (') and never closes it"),
        ('host="db" port=5432', "double quote, which libpq takes literally"),
        ("hots=db", "unknown connection keyword 'hots': did you mean 'host'?"),
        ("host db", "missing \"=\" after 'host'"),
        ("postgresql://u@db:port/app", "not a valid URI"),
        ("host=db connect_timeout=soon", "connect_timeout='soon' is not a number"),
    ],
)
def test_a_dsn_is_checked_when_stack_yaml_loads(tmp_path: Path, dsn: str, words: str) -> None:
    text = "version: 1\nstack: demo\nrepositories:\n  local: {type: fs, path: ./r}\nservices:\n"
    text += f"  postgres:\n    kind: postgres\n    dsn: {dsn!r}\n"
    with pytest.raises(ConfigError) as exc:
        load_stack(write(tmp_path, text))
    assert exc.value.message.startswith(f"{tmp_path / 'stack.yaml'}:8: services.postgres.dsn: "), (
        exc.value.message
    )
    assert words in exc.value.message


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 port=5432 user=app dbname=nchat",
        "host = db  port = 5432,5433 application_name='drkit backup'",
        "postgresql://app@db:5432/nchat?sslmode=require",
        "host=/var/run/postgresql dbname='a b\\'c'",
        "",
    ],
)
def test_valid_dsns_pass(dsn: str) -> None:
    check_dsn(dsn)


def test_system_config_is_found_when_nothing_else_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    system = write(tmp_path, "stack: x\n", "etc-stack.yaml")
    assert find_config(None, system=system) == system
    with pytest.raises(ConfigError, match="install one as"):
        find_config(None, system=tmp_path / "absent.yaml")
    local = write(tmp_path, "stack: y\n")
    assert find_config(None, system=system) == Path("stack.yaml")  # the directory's wins
    assert local.is_file()
