"""A real S3 server (SeaweedFS) for tests, started by the sandbox's own s3 part and runtime.

`s3_server` is shared by the session; tests that stop or kill the server make their own
with `make_s3_server()`. Register with `pytest_plugins = ["tests.integration.s3_fixtures"]`.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.s3.client import S3Endpoint, make_client
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.config.loader import load_stack
from drkit.domain.stack import RepositorySpec, Service
from drkit.runtimes.local_process import LocalProcess
from drkit.sandbox import s3_part
from drkit.sandbox.parts import PartContext

STOP_GRACE = 5.0  # weed's filer waits 15 s for its gRPC streams; tests need not


@dataclass
class S3Server:
    dir: Path
    service: Service
    secret_file: Path

    @property
    def endpoint(self) -> S3Endpoint:
        return endpoint_for(self.service)

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def access_key(self) -> str:
        return self.endpoint.access_key or ""

    @property
    def secret_key(self) -> str:
        return self.endpoint.secret_key or ""

    def client(self) -> Any:
        return make_client(self.endpoint)

    def store(self) -> ObjectStore:
        return ObjectStore(self.endpoint)

    def runtime(self) -> LocalProcess:
        return LocalProcess(self.service.runtime, name=self.service.name, state_dir=self.dir / "state")

    def start(self) -> None:
        """Start (or restart) and wait until a real write succeeds."""
        self.runtime().start()
        s3_part.wait_writable(self.store(), "drkit-ready-check")

    def stop(self) -> None:
        self.runtime().stop(timeout=STOP_GRACE)

    def new_bucket(self, stem: str, *, versioned: bool = True) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        store = self.store()
        store.create_bucket(name)
        if versioned:
            store.enable_versioning(name)
        return name

    def repository_spec(self, bucket: str, *, prefix: str = "") -> RepositorySpec:
        return RepositorySpec(
            name="s3",
            type="s3",
            endpoint=self.url,
            bucket=bucket,
            prefix=prefix,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )

    def service_yaml(self, *buckets: str) -> dict[str, Any]:
        """services.<name> for a stack.yaml: an s3 service on this server, for `buckets`."""
        query = f"?buckets={','.join(buckets)}" if buckets else ""
        return {
            "kind": "s3",
            "url": f"http://{self.access_key}@{self.url.removeprefix('http://')}{query}",
            "password": f"file:{self.secret_file}",
        }


def make_s3_server(prefix: str = "drkit-s3-") -> S3Server:
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    ctx = PartContext(directory, None, "s3test")
    entry = s3_part.prepare(ctx)
    config = {
        "version": 1,
        "stack": "s3test",
        "state_dir": str(directory / "state"),
        "repositories": {"local": {"type": "fs", "path": str(directory / "repo")}},
        "services": {entry.name: entry.config},
    }
    (directory / "stack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    service = load_stack(directory / "stack.yaml").services[entry.name]
    server = S3Server(directory, service, directory / "s3" / "secret_key")
    try:
        server.start()
    except BaseException:
        destroy_s3_server(server)
        raise
    return server


def destroy_s3_server(server: S3Server) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One SeaweedFS for the session. Tests make their own buckets (`new_bucket`)."""
    server = make_s3_server()
    yield server
    destroy_s3_server(server)
