"""`drkit init --preset nself`: a sample nself project (its documented .env keys) becomes a
stack.yaml that drkit's own loader accepts, with secrets as references only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.config.loader import load_stack
from drkit.config.nself_preset import (
    GeneratedConfig,
    nself_config,
    parse_env_text,
    read_project_env,
    write_config,
)
from drkit.domain.errors import UsageError

ENV_DEV = """\
# team defaults (committed)
PROJECT_NAME=nchat
ENV=dev
BASE_DOMAIN=local.nself.org
POSTGRES_DB=nchat
POSTGRES_USER=postgres
POSTGRES_PASSWORD=dev-password-not-secret
POSTGRES_PORT=5432
HASURA_GRAPHQL_ADMIN_SECRET=dev-admin-secret
HASURA_ENABLED=true
AUTH_ENABLED=true
REDIS_ENABLED=true
MINIO_ENABLED=true
MINIO_ROOT_USER=minioadmin
MINIO_ROOT_PASSWORD=minio-dev-password
FUNCTIONS_ENABLED=true
MEILISEARCH_ENABLED=true
MEILISEARCH_MASTER_KEY=meili-dev-key
MONITORING_ENABLED=true
"""
ENV_LOCAL = """\
export HASURA_PORT="8081"
AUTH_PORT='4001'
"""
ENV_PROD = "MINIO_PORT=9100\n"
ENV_SECRETS = "REDIS_PASSWORD=s3cr3t-redis\nPOSTGRES_PASSWORD=prod-password-0001\n"
ENV = "ENV=prod\nPOSTGRES_PORT=5433\n"

SECRET_VALUES = (
    "dev-password-not-secret",
    "prod-password-0001",
    "s3cr3t-redis",
    "dev-admin-secret",
    "minio-dev-password",
    "meili-dev-key",
)


@pytest.fixture(autouse=True)
def clean_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TARGET_ENV", "NSELF_ENV", "ENV"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "nchat"
    root.mkdir()
    for name, text in {
        ".env.dev": ENV_DEV,
        ".env.local": ENV_LOCAL,
        ".env.prod": ENV_PROD,
        ".env.secrets": ENV_SECRETS,
        ".env": ENV,
    }.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "pw")
    monkeypatch.setenv("REDIS_PASSWORD", "rpw")
    monkeypatch.setenv("DRKIT_AUTH_CANARY_PASSWORD", "canary")


def test_env_files_cascade_like_nself(project: Path) -> None:
    loaded = read_project_env(project)
    env, files = loaded.values, loaded.files
    # prod: .env.local is a developer's file, read only in dev (env-detection.sh)
    assert [f.name for f in files] == [".env.dev", ".env.prod", ".env.secrets", ".env"]
    assert env["POSTGRES_PORT"] == "5433"  # .env wins over .env.dev
    assert "HASURA_PORT" not in env
    assert env["REDIS_PASSWORD"] == "s3cr3t-redis"  # .env.secrets is read for ENV=prod
    assert loaded.choice.name == "prod" and loaded.choice.reason == "ENV=prod in .env"


def test_dev_projects_skip_the_prod_files(project: Path) -> None:
    (project / ".env").write_text("ENV=dev\n")
    loaded = read_project_env(project)
    assert [f.name for f in loaded.files] == [".env.dev", ".env.local", ".env"]
    assert "REDIS_PASSWORD" not in loaded.values
    assert loaded.values["HASURA_PORT"] == "8081"  # `export` and quotes are read like nself does


def test_generated_config_loads_and_validates(project: Path, tmp_path: Path, secrets_in_env: None) -> None:
    out = tmp_path / "stack.yaml"
    write_config(nself_config(project), out, overwrite=False)
    stack = load_stack(out)
    assert stack.name == "nchat"
    assert list(stack.services) == [
        "postgres",
        "redis",
        "minio",
        "hasura",
        "auth",
        "functions",
        "meilisearch",
        "monitoring",
        "nginx",
    ]
    for name, service in stack.services.items():
        assert service.runtime.type == "compose"
        expected = "nchat_prometheus" if name == "monitoring" else f"nchat_{name}"
        assert service.runtime.container == expected
    pg = stack.service("postgres")
    # ENV=prod, POSTGRES_EXPOSE_PORT unset (auto): not published, reached through the container
    assert pg.dsn == "host=nchat_postgres port=5432 user=postgres dbname=nchat"
    assert pg.password == "prod-password-0001"  # read from .env through a dotenv: reference
    assert stack.service("minio").kind == "s3"
    assert stack.repository.type == "fs"
    # The state directory is the project's, wherever stack.yaml goes, and init says what the
    # container must mount for the WAL stream (the same path on both sides).
    assert stack.state_dir == str(project.resolve() / ".drkit")
    spool = project.resolve() / ".drkit" / "wal-spool" / "postgres"
    [mount] = [f for f in nself_config(project).findings if "wal-stream" in f]
    assert f"`- {spool}:{spool}`" in mount and "docker-compose.override.yml" in mount


def test_dependency_graph_probes_and_objectives(
    project: Path, tmp_path: Path, secrets_in_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSELF_ENV", "dev")  # the shell wins over ENV=prod in .env: .env.local is read
    out = tmp_path / "stack.yaml"
    write_config(nself_config(project), out, overwrite=False)
    stack = load_stack(out)
    deps = {n: set(s.depends_on) for n, s in stack.services.items()}
    assert deps["hasura"] == {"postgres"}
    assert deps["auth"] == {"postgres", "hasura"}
    assert deps["functions"] == {"postgres", "hasura"}
    assert deps["meilisearch"] == {"postgres"}
    assert deps["postgres"] == deps["redis"] == deps["minio"] == set()
    probes: dict[str, Any] = {n: s.health for n, s in stack.services.items()}
    assert (probes["hasura"].type, probes["hasura"].target) == (
        "hasura",
        "http://127.0.0.1:8081/healthz?strict=true",
    )
    assert probes["auth"].type == "auth"
    assert probes["auth"].target == "http://drkit-canary%40local.nself.org@127.0.0.1:4001"
    assert probes["minio"].target == "http://127.0.0.1:9000/minio/health/live"  # .env.prod not read in dev
    assert probes["meilisearch"].target == "http://127.0.0.1:7700/health"
    assert probes["monitoring"].target == "http://127.0.0.1:9090/-/healthy"
    assert probes["postgres"].type == "sql" and probes["redis"].type == "redis"
    objectives = {n: (s.rto, s.rpo) for n, s in stack.services.items()}
    m = timedelta(minutes=1)
    assert objectives["postgres"] == (30 * m, 5 * m)
    # Hasura keeps its metadata in PostgreSQL: no rpo of its own, it inherits postgres's
    assert objectives["hasura"] == (15 * m, 5 * m)
    assert stack.services["hasura"].rpo_from == "postgres"
    assert "rpo" not in yaml.safe_load(out.read_text())["services"]["hasura"]
    assert objectives["auth"] == (15 * m, 5 * m)
    assert objectives["redis"] == (10 * m, 15 * m)
    assert objectives["minio"] == (60 * m, 60 * m)
    assert objectives["meilisearch"] == (120 * m, timedelta(days=1))


def test_secrets_are_references_never_values(project: Path) -> None:
    text = nself_config(project).text
    for value in SECRET_VALUES:
        assert value not in text
    # defined in the project's env files: referenced there (the last file defining it wins)
    assert f"password: dotenv:{(project / '.env.secrets').resolve()}#POSTGRES_PASSWORD" in text
    assert f"password: dotenv:{(project / '.env.secrets').resolve()}#REDIS_PASSWORD" in text
    assert "password: env:DRKIT_AUTH_CANARY_PASSWORD" in text


def test_integrity_checks_are_the_corrected_ones(project: Path, tmp_path: Path, secrets_in_env: None) -> None:
    out = tmp_path / "stack.yaml"
    write_config(nself_config(project), out, overwrite=False)
    checks = {c.name: c for c in load_stack(out).checks}
    by_user = checks["orphaned_messages_by_user"].query or ""
    assert "user_id is not null" in by_user  # a NULL user_id is a system message
    assert "nchat_channels" in (checks["orphaned_messages_by_channel"].query or "")
    assert "interval '1 day'" in (checks["future_message_timestamps"].query or "")
    users = checks["nchat_users_match_auth_users"]
    assert users.expect.equals_query == "select count(*) from auth.users"
    builtins = {c.builtin.split("(")[0] for c in checks.values() if c.builtin}
    assert builtins == {
        "pg_amcheck",
        "checksum_failures",
        "expected_indexes",
        "invalid_indexes",
        "unvalidated_constraints",
        "unindexed_foreign_keys",
    }
    assert checks["btree_indexes_amcheck"].critical


def test_a_disabled_service_is_left_out_with_its_edges(project: Path) -> None:
    (project / ".env").write_text(ENV + "HASURA_ENABLED=false\nMEILISEARCH_ENABLED=false\n")
    config = nself_config(project)
    assert "hasura" not in config.services and "meilisearch" not in config.services
    assert "auth" in config.services
    assert "- hasura" not in config.text  # no dangling depends_on


def test_project_name_defaults_to_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "My Chat"
    root.mkdir()
    (root / ".env").write_text("POSTGRES_PASSWORD=x\n")
    config = nself_config(root)
    assert config.stack == "my-chat"
    assert "container: my-chat_postgres" in config.text
    assert "dbname=my-chat" in config.text  # POSTGRES_DB defaults to PROJECT_NAME unchanged


def test_refuses_to_overwrite_without_consent(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack.yaml"
    out.write_text("# mine\n")
    config: GeneratedConfig = nself_config(project)
    with pytest.raises(UsageError, match="already exists"):
        write_config(config, out, overwrite=False)
    assert out.read_text() == "# mine\n"
    write_config(config, out, overwrite=True)
    assert out.read_text() == config.text


def test_not_an_nself_project(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no .env"):
        nself_config(tmp_path)


def test_env_parsing_follows_nselfs_safe_loader() -> None:
    parsed = parse_env_text(
        "# comment\nA=1\n  B = two words \nC=\"quoted\"\nD='single'\nnot a line\n1X=bad\nE=a=b\n"
    )
    assert parsed == {"A": "1", "B": "two words", "C": "quoted", "D": "single", "E": "a=b"}


def test_init_command_writes_and_refuses(project: Path, tmp_path: Path, drkit: Any) -> None:
    out = tmp_path / "out" / "stack.yaml"
    first = drkit("init", "--preset", "nself", "--project-dir", str(project), "--out", str(out))
    assert first.code == 0, first.stderr
    assert out.exists() and "nchat_postgres" in out.read_text()
    again = drkit("init", "--preset", "nself", "--project-dir", str(project), "--out", str(out))
    assert again.code == 2 and "already exists" in again.stderr
    forced = drkit(
        "--yes",
        "init",
        "--preset",
        "nself",
        "--project-dir",
        str(project),
        "--out",
        str(out),
        "--output",
        "json",
    )
    assert forced.code == 0, forced.stderr
    assert forced.json()["services"][0] == "postgres"
