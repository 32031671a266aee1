"""`drkit init --preset nself --compose-service` without Docker: the override it writes and
merges, and the Prometheus scrape job (docs/nself.md, "drkit in the compose project")."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drkit.config.nself_compose import compose_service, pg_major, write_compose_service
from drkit.config.nself_preset import nself_config
from drkit.domain.errors import ConfigError

NSELF_PROMETHEUS = """global:
  scrape_interval: 15s

scrape_configs:
  # nself's jobs
  - job_name: 'prometheus'
    static_configs:
      - targets: ['prometheus:9090']
"""


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / ".env").write_text(
        "PROJECT_NAME=shop\nENV=prod\nPOSTGRES_EXPOSE_PORT=false\nREDIS_ENABLED=true\nPOSTGRES_VERSION=16-alpine\n"
        "HASURA_ENABLED=false\nAUTH_ENABLED=false\n"
    )
    (root / ".env.secrets").write_text("POSTGRES_PASSWORD=pw\n")
    return root


def _generate(root: Path) -> tuple[dict[str, object], object]:
    text = nself_config(root, shell={}).text
    (root / "stack.yaml").write_text(text)
    doc = yaml.safe_load(text)
    volumes = {"shop_postgres_data": "/data/docker/volumes/shop_postgres_data/_data"}
    generated = compose_service(
        doc, root, root / "stack.yaml", {"POSTGRES_VERSION": "16-alpine"}, volumes.get
    )
    return doc, generated


def test_the_override_adds_drkit_and_its_metrics_with_the_hosts_paths(tmp_path: Path) -> None:
    root = _project(tmp_path)
    doc, generated = _generate(root)
    override = yaml.safe_load(generated.override_text)  # type: ignore[attr-defined]
    drkit, metrics = override["services"]["drkit"], override["services"]["drkit-metrics"]
    assert drkit["image"] == "drkit:pg16" and drkit["command"] == ["schedule", "run"]
    assert metrics["command"] == ["metrics", "--listen", "0.0.0.0:9188"] and metrics["expose"] == ["9188"]
    assert drkit["networks"] == ["shop_network"] and drkit["container_name"] == "shop_drkit"
    stack = str((root / "stack.yaml").resolve())
    state = str(doc["state_dir"])
    assert f"{stack}:{stack}:ro" in drkit["volumes"] and f"{state}:{state}" in drkit["volumes"]
    assert f"{root.resolve() / '.env.secrets'}:{root.resolve() / '.env.secrets'}:ro" in drkit["volumes"]
    assert "postgres_data:/data/docker/volumes/shop_postgres_data/_data" in drkit["volumes"]
    # a volume docker does not know yet: the default path, and init says so
    assert "redis_data:/var/lib/docker/volumes/shop_redis_data/_data" in drkit["volumes"]
    assert any("shop_redis_data not found by docker" in f for f in generated.findings)  # type: ignore[attr-defined]
    spool = f"{state}/wal-spool/postgres"
    assert override["services"]["postgres"]["volumes"] == [f"{spool}:{spool}"]


def test_an_existing_override_keeps_its_entries_and_the_spool_mount_once(tmp_path: Path) -> None:
    root = _project(tmp_path)
    doc = yaml.safe_load(nself_config(root, shell={}).text)
    spool = f"{doc['state_dir']}/wal-spool/postgres"
    before = {"version": "3.8", "services": {"hasura": {"deploy": {"replicas": 2}},
                                             "postgres": {"volumes": [f"{spool}:{spool}"]}}}  # fmt: skip
    (root / "docker-compose.override.yml").write_text(yaml.safe_dump(before))
    _doc, generated = _generate(root)
    written = write_compose_service(generated)  # type: ignore[arg-type]
    override = yaml.safe_load((root / "docker-compose.override.yml").read_text())
    assert override["version"] == "3.8" and override["services"]["hasura"] == {"deploy": {"replicas": 2}}
    assert override["services"]["postgres"]["volumes"] == [f"{spool}:{spool}"]
    assert {"drkit", "drkit-metrics"} <= set(override["services"])
    kept = list(root.glob("docker-compose.override.yml.before-drkit-*"))
    assert len(kept) == 1 and yaml.safe_load(kept[0].read_text()) == before
    assert written == [str(root / "docker-compose.override.yml")]
    assert write_compose_service(generated) == []  # type: ignore[arg-type]  # nothing changed: nothing written


def test_the_scrape_job_is_appended_to_nselfs_prometheus_config_keeping_its_comments(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "monitoring" / "prometheus").mkdir(parents=True)
    path = root / "monitoring" / "prometheus" / "prometheus.yml"
    path.write_text(NSELF_PROMETHEUS)
    _doc, generated = _generate(root)
    write_compose_service(generated)  # type: ignore[arg-type]
    text = path.read_text()
    assert text.startswith(NSELF_PROMETHEUS.rstrip("\n")) and "# nself's jobs" in text
    jobs = {j["job_name"]: j for j in yaml.safe_load(text)["scrape_configs"]}
    assert jobs["drkit"]["static_configs"] == [{"targets": ["drkit-metrics:9188"]}]
    _doc, again = _generate(root)
    assert again.prometheus_text is None  # type: ignore[attr-defined]  # the job is there: not added twice


def test_no_prometheus_config_means_no_job_and_a_note(tmp_path: Path) -> None:
    _doc, generated = _generate(_project(tmp_path))
    assert generated.prometheus_path is None  # type: ignore[attr-defined]
    assert any("add a scrape job" in f for f in generated.findings)  # type: ignore[attr-defined]


def test_an_override_that_is_not_a_compose_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "docker-compose.override.yml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="not a compose file"):
        _generate(root)


@pytest.mark.parametrize(("version", "major"), [("16-alpine", 16), ("15.4", 15), ("", 16), ("17", 17)])
def test_the_image_follows_nselfs_postgres_version(version: str, major: int) -> None:
    assert pg_major({"POSTGRES_VERSION": version}) == major
