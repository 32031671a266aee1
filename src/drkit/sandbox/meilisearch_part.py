"""The sandbox's MeiliSearch: the stand-in (standins/meilisearch.py) on a free loopback port
with a master key, its database, dump and snapshot directories under the sandbox, and the
`messages` index built from PostgreSQL's nchat_messages (the same rebuild `drkit search
rebuild messages` runs)."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from drkit.domain.errors import OperationError
from drkit.domain.stack import Stack
from drkit.engines.search.rebuild import rebuild_index, source_for
from drkit.infra.atomic import write_atomic
from drkit.sandbox.parts import PartContext, ServiceEntry

NAME = "meilisearch"
SEED_INDEX = "messages"


def prepare(ctx: PartContext) -> ServiceEntry:
    port = ctx.port()
    base = ctx.service_dir(NAME)
    url = f"http://127.0.0.1:{port}"
    key_file = base / "master-key"
    key = secrets.token_urlsafe(24)  # >= 16 bytes, as Meilisearch requires
    write_atomic(key_file, key.encode(), mode=0o600)
    # Meilisearch reads ./config.toml from its working directory (runtime.data_dir): the key
    # reaches it there, never on a command line, and a real `meilisearch` reads it the same way.
    write_atomic(base / "config.toml", f'master_key = "{key}"\n'.encode(), mode=0o600)
    command = [
        sys.executable,
        "-m",
        "drkit.sandbox.standins.meilisearch",
        "--http-addr",
        f"127.0.0.1:{port}",
        "--db-path",
        str(base / "data.ms"),
        "--dump-dir",
        str(base / "dumps"),
        "--snapshot-dir",
        str(base / "snapshots"),
    ]
    runtime: dict[str, Any] = {
        "type": "local",
        "command": command,
        "data_dir": str(base),
        "log_file": str(ctx.logs / f"{NAME}.log"),
    }
    if ctx.os_user:
        runtime["os_user"] = ctx.os_user
    config = {
        "kind": "meilisearch",
        "runtime": runtime,
        "url": url,
        "password": f"file:{key_file}",  # the master key
        "depends_on": ["postgres"],  # its index is built from there
        "rto": "2h",
        "rpo": "1d",
        "priority": "low",
        "health": {"type": "http", "target": f"{url}/health"},
    }
    return ServiceEntry(NAME, config, url, {"port": port, "url": url})


def seed(ctx: PartContext, stack: Stack) -> None:
    result = rebuild_index(stack, stack.services[NAME], SEED_INDEX, source_for(SEED_INDEX, None, None))
    if not result.ok:
        raise OperationError(
            f"sandbox index {SEED_INDEX}: {result.documents} documents for {result.rows} rows"
        )
