"""`drkit init --preset nself` on project directories shaped like what nself-org/cli v0.9.x
writes for dev, staging and prod (src/templates/envs/: .env.dev team defaults, .env.staging,
.env.prod with POSTGRES_EXPOSE_PORT=false, .env.secrets, .env with ENV=): every stack.yaml
field the preset writes, read back from the YAML text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.config.nself_preset import nself_config

DEV = """\
PROJECT_NAME=chat-app
BASE_DOMAIN=local.nself.org
POSTGRES_PASSWORD=dev-pw
HASURA_GRAPHQL_ADMIN_SECRET=dev-admin
"""
LOCAL = "POSTGRES_PORT=5544\nREDIS_ENABLED=true\n"
STAGING = "POSTGRES_PASSWORD=staging-pw\nBASE_DOMAIN=staging.example.com\n"
PROD = "POSTGRES_EXPOSE_PORT=false\nBASE_DOMAIN=example.com\n"
SECRETS = "POSTGRES_PASSWORD=prod-pw\nHASURA_GRAPHQL_ADMIN_SECRET=prod-admin\nREDIS_PASSWORD=prod-redis\n"
OPTIONAL_ON = """\
REDIS_ENABLED=true
STORAGE_ENABLED=true
MINIO_ROOT_USER=minio-user
MINIO_ROOT_PASSWORD=minio-pw
MINIO_DEFAULT_BUCKETS=uploads,avatars
MEILISEARCH_ENABLED=true
SEARCH_API_KEY=search-key-value
FUNCTIONS_ENABLED=true
MONITORING_ENABLED=true
MAILPIT_ENABLED=true
NSELF_ADMIN_ENABLED=true
CS_1=api:express-js:8001
"""
VALUES = (
    "dev-pw",
    "dev-admin",
    "staging-pw",
    "prod-pw",
    "prod-admin",
    "prod-redis",
    "minio-pw",
    "search-key-value",
)


@pytest.fixture(autouse=True)
def clean_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TARGET_ENV", "NSELF_ENV", "ENV"):
        monkeypatch.delenv(key, raising=False)


def make_project(root: Path, env_line: str, extra_dev: str = "") -> Path:
    root.mkdir()
    files = {
        ".env.dev": DEV + extra_dev,
        ".env.local": LOCAL,
        ".env.staging": STAGING,
        ".env.prod": PROD,
        ".env.secrets": SECRETS,
        ".env": env_line,
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def doc_of(root: Path) -> dict[str, Any]:
    config = nself_config(root)
    for value in VALUES:
        assert value not in config.text, "a secret value was written"
    loaded = yaml.safe_load(config.text)
    assert isinstance(loaded, dict)
    return loaded


def ref(root: Path, name: str, key: str) -> str:
    return f"dotenv:{(root / name).resolve()}#{key}"


def test_dev_publishes_postgres_reads_env_local_and_keeps_optional_services_off(tmp_path: Path) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=dev\n")
    doc = doc_of(root)
    assert doc["stack"] == "chat-app"
    # REDIS_ENABLED=true comes from .env.local, read in dev only
    assert list(doc["services"]) == ["postgres", "redis", "hasura", "auth", "nginx"]
    pg = doc["services"]["postgres"]
    assert pg["kind"] == "postgres"
    assert pg["runtime"] == {
        "type": "compose",
        "container": "chat-app_postgres",
        "volume": "chat-app_postgres_data",
        "mount": "/var/lib/postgresql/data",
    }
    # POSTGRES_EXPOSE_PORT unset = auto; ENV=dev publishes on 127.0.0.1:POSTGRES_PORT (.env.local)
    assert pg["dsn"] == "host=127.0.0.1 port=5544 user=postgres dbname=chat-app"
    assert pg["password"] == ref(root, ".env.dev", "POSTGRES_PASSWORD")
    assert pg["backup"] == {"wal_mode": "stream", "databases": ["chat-app"]}
    assert pg["health"] == {"type": "sql", "timeout": "2m"}
    redis = doc["services"]["redis"]
    assert redis["runtime"] == {
        "type": "compose",
        "container": "chat-app_redis",
        "volume": "chat-app_redis_data",
        "mount": "/data",
    }
    assert redis["url"] == "redis://127.0.0.1:6379/0" and "password" not in redis
    hasura = doc["services"]["hasura"]
    assert hasura["password"] == ref(root, ".env.dev", "HASURA_GRAPHQL_ADMIN_SECRET")
    assert hasura["runtime"] == {"type": "compose", "container": "chat-app_hasura"}
    nginx = doc["services"]["nginx"]
    assert nginx["kind"] == "http" and "backup" not in nginx
    assert nginx["health"] == {"type": "http", "target": "http://127.0.0.1:80/health"}
    assert nginx["runtime"] == {"type": "compose", "container": "chat-app_nginx"}


def test_nself_env_in_the_shell_beats_env_in_dot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=dev\n")
    monkeypatch.setenv("NSELF_ENV", "production")
    config = nself_config(root)
    assert config.environment == "prod"
    assert "environment: prod (NSELF_ENV=production in the shell)" in config.findings
    doc = yaml.safe_load(config.text)
    assert "redis" not in doc["services"]  # .env.local (dev only) is not read
    pg = doc["services"]["postgres"]
    # .env.prod sets POSTGRES_EXPOSE_PORT=false: not published, reached through the container
    assert pg["dsn"] == "host=chat-app_postgres port=5432 user=postgres dbname=chat-app"
    assert pg["password"] == ref(root, ".env.secrets", "POSTGRES_PASSWORD")
    assert doc["services"]["hasura"]["password"] == ref(root, ".env.secrets", "HASURA_GRAPHQL_ADMIN_SECRET")
    assert any("not published (POSTGRES_EXPOSE_PORT=false with ENV=prod)" in f for f in config.findings)
    assert any("POSTGRES_EXPOSE_PORT=true" in f for f in config.findings)  # the fix is named


def test_target_env_beats_nself_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=prod\n")
    monkeypatch.setenv("NSELF_ENV", "prod")
    monkeypatch.setenv("TARGET_ENV", "stage")
    config = nself_config(root)
    assert config.environment == "staging"
    assert [Path(s).name for s in config.sources] == [".env.dev", ".env.staging", ".env"]


def test_staging_reads_staging_not_secrets_and_auto_does_not_publish(tmp_path: Path) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=staging\n")
    doc = doc_of(root)
    pg = doc["services"]["postgres"]
    assert pg["dsn"] == "host=chat-app_postgres port=5432 user=postgres dbname=chat-app"
    assert pg["password"] == ref(root, ".env.staging", "POSTGRES_PASSWORD")
    auth = doc["services"]["auth"]
    assert auth["health"]["target"] == "http://drkit-canary%40staging.example.com@127.0.0.1:4000"
    assert auth["password"] == "env:DRKIT_AUTH_CANARY_PASSWORD"


def test_expose_true_publishes_in_prod(tmp_path: Path) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=prod\nPOSTGRES_EXPOSE_PORT=true\nPOSTGRES_PORT=6543\n")
    pg = doc_of(root)["services"]["postgres"]
    assert pg["dsn"] == "host=127.0.0.1 port=6543 user=postgres dbname=chat-app"


def test_optional_services_on_with_their_secrets(tmp_path: Path) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=prod\n", extra_dev=OPTIONAL_ON)
    config = nself_config(root)
    doc = yaml.safe_load(config.text)
    assert list(doc["services"]) == [
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
    s = doc["services"]
    assert s["redis"]["password"] == ref(root, ".env.secrets", "REDIS_PASSWORD")
    minio = s["minio"]
    assert minio["kind"] == "s3" and minio["url"] == "http://127.0.0.1:9000"
    assert minio["access_key"] == ref(root, ".env.dev", "MINIO_ROOT_USER")
    assert minio["secret_key"] == ref(root, ".env.dev", "MINIO_ROOT_PASSWORD")
    assert minio["runtime"]["volume"] == "chat-app_minio_data" and minio["runtime"]["mount"] == "/data"
    assert "buckets" not in minio  # every bucket; the defaults are named in the findings
    assert any("uploads,avatars" in f for f in config.findings)
    meili = s["meilisearch"]
    assert meili["password"] == ref(root, ".env.dev", "SEARCH_API_KEY")
    assert meili["runtime"] == {
        "type": "compose",
        "container": "chat-app_meilisearch",
        "volume": "chat-app_meilisearch_data",
        "mount": "/meili_data",
    }
    assert "/var/lib/docker/volumes" not in config.text
    assert s["functions"]["health"]["target"] == "http://127.0.0.1:3008/healthz"
    assert s["monitoring"]["runtime"]["container"] == "chat-app_prometheus"
    notes = "\n".join(config.findings)
    assert "mailpit" in notes and "nself-admin" in notes and "custom service api (CS_1)" in notes
    assert "minio: on (STORAGE_ENABLED=true)" in notes


def test_only_the_word_true_turns_a_service_on(tmp_path: Path) -> None:
    extra = "REDIS_ENABLED=yes\nMINIO_ENABLED=false\nSTORAGE_ENABLED=true\nHASURA_ENABLED=false\n"
    root = make_project(tmp_path / "chat-app", "ENV=staging\n", extra_dev=extra)
    config = nself_config(root)
    assert config.services == ("postgres", "auth", "nginx")  # MINIO_ENABLED wins over STORAGE_ENABLED
    assert any("REDIS_ENABLED=yes" in f and "exact word `true`" in f for f in config.findings)
    doc = yaml.safe_load(config.text)
    assert doc["services"]["auth"]["depends_on"] == ["postgres"]  # no dangling edge to hasura


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("MEILISEARCH_MASTER_KEY=a\nMEILI_MASTER_KEY=b\n", "MEILISEARCH_MASTER_KEY"),
        ("MEILI_MASTER_KEY=b\n", "MEILI_MASTER_KEY"),
        ("SEARCH_API_KEY=c\nMEILISEARCH_MASTER_KEY=a\n", "SEARCH_API_KEY"),
    ],
)
def test_meilisearch_key_names(tmp_path: Path, keys: str, expected: str) -> None:
    extra = "SEARCH_ENABLED=true\n" + keys
    root = make_project(tmp_path / "p", "ENV=dev\n", extra_dev=extra)
    doc = yaml.safe_load(nself_config(root).text)
    assert doc["services"]["meilisearch"]["password"] == ref(root, ".env.dev", expected)


def test_no_meilisearch_key_is_reported(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "ENV=dev\n", extra_dev="MEILISEARCH_ENABLED=true\n")
    config = nself_config(root)
    assert "password" not in yaml.safe_load(config.text)["services"]["meilisearch"]
    assert any("no key in SEARCH_API_KEY" in f for f in config.findings)


def test_typesense_is_not_meilisearch(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p", "ENV=dev\n", extra_dev="SEARCH_ENABLED=true\nSEARCH_PROVIDER=typesense\n"
    )
    config = nself_config(root)
    assert "meilisearch" not in config.services
    assert any("Typesense" in f for f in config.findings)


def test_findings_name_secrets_by_reference_and_what_is_unknown(tmp_path: Path) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=prod\n")
    config = nself_config(root)
    notes = config.findings
    assert "secret: postgres.password = POSTGRES_PASSWORD from .env.secrets" in notes
    assert any(n.startswith("unknown: the host paths of volumes chat-app_postgres_data") for n in notes)
    assert "files: .env.dev -> .env.staging -> .env.prod -> .env.secrets -> .env" in notes
    assert all(v not in "\n".join(notes) for v in VALUES)
    assert "# Environment prod: ENV=prod in .env." in config.text  # also in the file's header


def test_init_prints_what_it_found(tmp_path: Path, drkit: Any) -> None:
    root = make_project(tmp_path / "chat-app", "ENV=prod\n")
    out = tmp_path / "stack.yaml"
    result = drkit("init", "--preset", "nself", "--project-dir", str(root), "--out", str(out))
    assert result.code == 0, result.stderr
    text = result.stdout
    assert "environment: prod (ENV=prod in .env)" in text
    assert "redis: off (REDIS_ENABLED=unset (default false))" in text
    assert "POSTGRES_EXPOSE_PORT=true" in text
    assert "secret: postgres.password = POSTGRES_PASSWORD from .env.secrets" in text
    assert all(v not in text for v in VALUES)
