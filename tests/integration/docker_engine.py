"""A real Docker engine for the tests: a private dockerd, and a locally built image.

No image registry is reachable, so the image is a Debian rootfs built with `debootstrap`
(PostgreSQL 15 and Redis from Debian) and loaded with `docker import`. The rootfs tarball is
cached on disk, keyed by what goes into it, so CI builds it once (about 2 minutes cold).
Each test session starts its own dockerd on its own socket, data root and exec root, and
stops it at the end; DOCKER_HOST points drkit (and the tests) at it.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drkit.infra.wait import wait_for

# The nself project's containers (PostgreSQL 15, Redis) and the base of the drkit image
# (docker_image.py: its client tools, redis-tools, age, zstd, python3): one rootfs for both.
PACKAGES = (
    "postgresql-15", "postgresql-client-15", "redis-server", "redis-tools",
    "age", "zstd", "python3", "python3-venv", "ca-certificates",
)  # fmt: skip
SUITE = "bookworm"
RECIPE_VERSION = "2"  # bump when the steps below change what the image holds
CACHE_DIR = Path(os.environ.get("DRKIT_TEST_IMAGE_CACHE", "/var/cache/drkit-test-images"))
# The test engines' own pool for bridge networks, apart from docker's defaults (a host's own
# docker uses those). Each bridge network is an interface on the host; dockerd leaves it behind
# when it stops with the network still defined, and docker refuses a new network once every
# pool overlaps such a leftover ("could not find an available, non-overlapping IPv4 address
# pool"): 31 of them, one session's networks at a time, filled the defaults on this machine.
ADDRESS_POOL = ipaddress.ip_network("10.213.0.0/16")


def apt_mirror() -> str:
    """The machine's configured Debian mirror (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if len(words) > 2 and words[0] == "deb" and "security" not in words[1]:
                return words[1]
    return "http://deb.debian.org/debian"


def recipe_key() -> str:
    text = "\n".join([RECIPE_VERSION, SUITE, *PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def cache_lock() -> Iterator[None]:
    """One builder of the cache at a time, across test sessions and workers: the others wait,
    then find what it built."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _chroot(root: Path, *argv: str) -> None:
    subprocess.run(["chroot", str(root), *argv], check=True, timeout=300, capture_output=True)


def build_rootfs_tar() -> Path:
    """The cached rootfs tarball, built with debootstrap when missing."""
    with cache_lock():
        return _build_rootfs_tar()


def _build_rootfs_tar() -> Path:
    key = recipe_key()
    tarball = CACHE_DIR / f"nself-debian-{key}.tar"
    if tarball.is_file():
        return tarball
    work = Path(tempfile.mkdtemp(prefix="drkit-rootfs-", dir=CACHE_DIR))
    try:
        root = work / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                apt_mirror(),
            ],
            check=True,
            timeout=1800,
            capture_output=True,
        )
        # The data directories the compose file mounts volumes on, owned as nself's images own them.
        _chroot(
            root,
            "install",
            "-d",
            "-o",
            "postgres",
            "-g",
            "postgres",
            "-m",
            "0700",
            "/var/lib/postgresql/data",
        )
        _chroot(root, "install", "-d", "-o", "redis", "-g", "redis", "-m", "0750", "/data")
        _chroot(
            root, "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "2775", "/var/run/postgresql"
        )
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        partial = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=600)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


@dataclass
class DockerEngine:
    root: Path
    proc: subprocess.Popen[bytes] | None
    image: str

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
        return result


def _alive(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def _daemon_pid(root: Path) -> int:
    try:
        daemon = int((root / "dockerd.pid").read_text())
    except (OSError, ValueError):
        return 0
    return daemon if _alive(daemon, "dockerd") else 0


def empty_engine(engine: DockerEngine) -> None:
    """Remove every container (with its anonymous volumes) and every network, whose bridge
    interface on the host goes with it. Named volumes go with the data root."""
    ids = engine.docker("ps", "-aq", check=False).stdout.split()
    if ids:
        engine.docker("rm", "-f", "-v", *ids, timeout=120, check=False)
    engine.docker("network", "prune", "-f", timeout=120, check=False)


def reap_stale_engines() -> None:
    """A session killed before its teardown leaves its dockerd running: stop those whose
    owning test process is gone (by the pids they recorded, checked to be dockerd)."""
    for root in Path("/tmp").glob("drkit-dockerd-*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        daemon = _daemon_pid(root)
        if daemon:
            empty_engine(DockerEngine(root, None, image=""))
            os.kill(daemon, signal.SIGTERM)
            wait_for(
                lambda pid=daemon: not _alive(pid, "dockerd"),
                timeout=60,
                what=f"stale dockerd {daemon} to exit",
            )
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    remove_orphan_bridges()


def _live_bridges() -> set[str]:
    """The bridge interfaces of the networks every running test engine holds."""
    names: set[str] = set()
    for root in Path("/tmp").glob("drkit-dockerd-*"):
        if not _daemon_pid(root):
            continue
        listed = DockerEngine(root, None, image="").docker("network", "ls", "-q", check=False)
        names.update(f"br-{network_id[:12]}" for network_id in listed.stdout.split())
    return names


def remove_orphan_bridges() -> None:
    """Bridges in the test pool that no running test engine holds: a dockerd killed before
    it removed its networks left them. Nothing outside ADDRESS_POOL is touched."""
    shown = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "type", "bridge"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if shown.returncode != 0:
        return
    live = _live_bridges()
    for link in json.loads(shown.stdout or "[]"):
        name = str(link.get("ifname", ""))
        addresses = [ipaddress.ip_address(a["local"]) for a in link.get("addr_info", []) if "local" in a]
        in_pool = bool(addresses) and all(a in ADDRESS_POOL for a in addresses)
        if name.startswith("br-") and in_pool and name not in live:
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30, check=False)


def start_engine() -> DockerEngine:
    """A private dockerd with the test image imported."""
    engine = start_daemon()
    tarball = build_rootfs_tar()
    engine.docker("import", str(tarball), engine.image, timeout=600)
    return engine


def start_daemon() -> DockerEngine:
    """A private dockerd, answering, with no image yet (engine.image names the one to import)."""
    reap_stale_engines()
    root = Path(tempfile.mkdtemp(prefix="drkit-dockerd-", dir="/tmp"))
    (root / "owner.pid").write_text(str(os.getpid()))
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [
            "dockerd",
            "--host",
            f"unix://{root}/docker.sock",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "dockerd.pid"),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--default-address-pool",
            f"base={ADDRESS_POOL},size=24",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    engine = DockerEngine(root, proc, image=f"drkit-test/nself-debian:{recipe_key()}")

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited ({proc.returncode}); see {root}/dockerd.log")
        return engine.docker("version", timeout=10, check=False).returncode == 0

    wait_for(ready, timeout=60, what="dockerd answers")
    return engine


def stop_engine(engine: DockerEngine) -> None:
    empty_engine(engine)
    proc = engine.proc
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    unmount_under(engine.root)
    shutil.rmtree(engine.root, ignore_errors=True)


def unmount_under(root: Path) -> None:
    """What dockerd left mounted under its directories (its netns/default, a volume)."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60, check=False)
