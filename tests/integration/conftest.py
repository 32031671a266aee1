"""Integration fixtures: a real sandbox PostgreSQL, started once per session by the
project's own sandbox code (the same code `drkit sandbox up` runs); `pg_sandbox` and
`across_majors` run a test on every PostgreSQL major of the matrix (pg_versions.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drkit.adapters.postgres.client import connect
from drkit.config.loader import load_stack
from drkit.domain.stack import Stack
from drkit.sandbox import stack as sandbox_stack
from drkit.sandbox.seed import SeedSize
from drkit.sandbox.stack import Sandbox, SandboxOptions
from tests.integration.docker_engine import DockerEngine, start_engine, stop_engine
from tests.integration.pg_versions import bin_dir_for, majors
from tests.integration.s3_fixtures import s3_server  # noqa: F401 - a fixture


@dataclass
class SandboxHandle:
    box: Sandbox

    @property
    def dir(self) -> Path:
        return self.box.dir

    @property
    def config_path(self) -> Path:
        return self.box.config_path

    @property
    def dsn(self) -> str:
        return self.box.dsn

    @property
    def bin_dir(self) -> str:
        """The PostgreSQL binaries this sandbox runs (its major's)."""
        return str(self.box.state["services"]["postgres"]["bin_dir"])

    @property
    def major(self) -> int:
        return int(self.box.state["services"]["postgres"]["major"])

    @property
    def stack(self) -> Stack:
        return load_stack(self.config_path)

    def psql(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement; return the first column of the first row (or None)."""
        with connect(self.dsn) as conn:
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            if cur.description is None:
                return None
            row = cur.fetchone()
            return row[0] if row else None


def make_sandbox(prefix: str, **options: Any) -> SandboxHandle:
    # Not pytest's tmp_path: as root that lies under a 0700 directory the database user
    # (which runs archive_command) cannot traverse.
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    directory.rmdir()
    if "pg_major" in options:
        options["pg_bin_dir"] = bin_dir_for(options.pop("pg_major"))
    opts = SandboxOptions(seed=SeedSize(users=50, channels=5, messages=1000, attachments=50), **options)
    return SandboxHandle(sandbox_stack.up(directory, opts))


def destroy_sandbox(handle: SandboxHandle) -> None:
    sandbox_stack.down(handle.dir)
    shutil.rmtree(handle.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    """The shared sandbox (archive mode). Tests must not damage it; make your own for that."""
    handle = make_sandbox("drkit-it-")
    yield handle
    destroy_sandbox(handle)


@pytest.fixture(scope="session", params=majors(), ids=lambda m: f"pg{m}")
def pg_sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """A shared PostgreSQL-only sandbox per major, each started once per session (15 is the
    shared `sandbox`). Tests must not damage it; use private_sandbox with across_majors."""
    if request.param == 15:
        yield request.getfixturevalue("sandbox")
        return
    handle = make_sandbox(f"drkit-it-pg{request.param}-", services=("postgres",), pg_major=request.param)
    assert handle.major == request.param
    yield handle
    destroy_sandbox(handle)


@pytest.fixture
def private_sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """A sandbox of one's own, for tests that stop, corrupt or restore over it: PostgreSQL
    only unless asked (each other service costs start time). Parametrize indirectly with a
    dict of SandboxOptions fields to change it, e.g. {"services": ("postgres", "redis")}, and
    "pg_major" to run another PostgreSQL major (across_majors(...) makes one per major)."""
    params = {"services": ("postgres",), **(getattr(request, "param", {}) or {})}
    handle = make_sandbox("drkit-it-own-", **params)
    yield handle
    destroy_sandbox(handle)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd (own socket, data root) with the locally built test image; once per session."""
    engine = start_engine()
    yield engine
    stop_engine(engine)
