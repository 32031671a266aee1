"""A MeiliSearch (v1) stand-in: the subset of its HTTP API and launch options drkit uses.

Stands for:
- `GET /health` (public) `{"status": "available"}`; `GET /version`; `GET /stats`.
- Indexes: `GET|POST /indexes`, `GET|DELETE /indexes/{uid}`, `GET /indexes/{uid}/stats`
  (`numberOfDocuments`), `GET|PATCH /indexes/{uid}/settings`, `GET .../settings/embedders`,
  `POST /swap-indexes`. Settings reads (and a settingsUpdate task's details) mask every
  embedder's `apiKey` as Meilisearch does (`hide_secrets` in meilisearch_store.py); dumps and
  snapshots keep it.
- Documents: `POST` (add or replace) and `PUT` (add or update) `/indexes/{uid}/documents`
  with `?primaryKey=`, primary-key inference and id checks as Meilisearch does them;
  `GET ...?limit&offset&fields`; `DELETE` (clear all).
- Asynchronous tasks: every write answers 202 with a summarized task; one worker applies
  tasks in order, `enqueued` -> `processing` -> `succeeded` | `failed` (with an `error`
  object); `GET /tasks/{uid}`.
- `POST /dumps` writes `<dump-dir>/<dumpUid>.dump` (`details.dumpUid`, like
  `20240101-120000123`); `POST /snapshots` writes `<snapshot-dir>/<db name>.snapshot`.
- Launch options `--http-addr`, `--db-path` (kept across restarts), `--dump-dir`,
  `--snapshot-dir`, `--import-dump` (refused when a database exists unless
  `--ignore-dump-if-db-exists`; the server listens only once the import is done),
  `--import-snapshot` (with `--ignore-snapshot-if-db-exists`, `--ignore-missing-snapshot`),
  `--master-key` (`Authorization: Bearer <key>` on every route but /health; 401 without
  it, 403 with a wrong one), `--config-file-path`, `--http-payload-size-limit`.

File formats are the stand-in's own, modelled on the real ones but not compatible with
them: a dump is a tar.gz of `metadata.json` and `indexes/<uid>/{metadata.json,
settings.json,documents.jsonl}`; a snapshot is a tar.gz of the database directory (one
`data.json` and a `VERSION`).

Leaves out: search, API keys other than the master key, filters, task lists and
cancelation, resuming tasks a restart interrupted (they are marked failed), NDJSON/CSV
payloads, the task queue and keys in dumps. Stand-in only: `--task-delay S` holds each task
in `processing` for S seconds. Options come as Meilisearch takes them: a flag, else
`MEILI_<NAME>`, else the TOML config file (`--config-file-path`, or `./config.toml` in the
working directory: how the sandbox gives the master key without putting it on a command
line); `--http-payload-size-limit` (100 MB) answers 413 `payload_too_large`. A snapshot
loads only into the version that wrote it; snapshot tasks have no `details`.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
import tarfile
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drkit.sandbox.standins import BadRequest, JsonHandler, serve
from drkit.sandbox.standins.meilisearch_store import (
    UID_RE,
    VERSION,
    Index,
    MeiliError,
    Store,
    hide_secrets,
    restore_snapshot,
)


class MeiliHandler(JsonHandler):
    store: Store
    master_key: str | None = None

    def route(self, method: str) -> None:
        parts = [p for p in self.path_only.split("/") if p]
        try:
            if parts == ["health"] and method == "GET":
                self.reply_json(200, {"status": "available"})
            elif self.authorized():
                self.reply_json(*self.answer(method, parts))
        except MeiliError as exc:
            self.reply_json(exc.status, exc.body())

    def too_large(self) -> BadRequest:
        size = (
            f"{self.payload_limit // 1000**2} MB"
            if self.payload_limit >= 1000**2
            else f"{self.payload_limit} B"
        )
        message = f"The provided payload reached the size limit. The maximum accepted payload size is {size}."
        return BadRequest(MeiliError(413, "payload_too_large", message).body(), status=413)

    def authorized(self) -> bool:
        if self.master_key is None:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            message = "The Authorization header is missing. It must use the bearer authorization method."
            raise MeiliError(401, "missing_authorization_header", message, "auth")
        if not hmac.compare_digest(header[7:].strip().encode(), self.master_key.encode()):
            raise MeiliError(403, "invalid_api_key", "The provided API key is invalid.", "auth")
        return True

    def answer(self, method: str, parts: list[str]) -> tuple[int, Any]:
        store, route = self.store, (method, *parts[:1], *(["{uid}"] if len(parts) > 1 else []), *parts[2:])
        uid = parts[1] if len(parts) > 1 else ""
        if uid and parts[0] == "indexes" and not UID_RE.match(uid):
            raise MeiliError(400, "invalid_index_uid", f"`{uid}` is not a valid index uid.")
        with store.lock:
            reads: dict[tuple[str, ...], Callable[[], Any]] = {
                ("GET", "version"): lambda: {"pkgVersion": VERSION, "commitSha": "standin", "commitDate": ""},
                ("GET", "stats"): self.stats,
                ("GET", "indexes"): lambda: self.page([i.view() for i in store.indexes.values()]),
                ("GET", "indexes", "{uid}"): lambda: store.index(uid).view(),
                ("GET", "indexes", "{uid}", "stats"): lambda: store.index(uid).stats(store.indexing(uid)),
                ("GET", "indexes", "{uid}", "settings"): lambda: hide_secrets(store.index(uid).settings),
                ("GET", "indexes", "{uid}", "settings", "embedders"): lambda: hide_secrets(
                    store.index(uid).settings
                ).get("embedders", {}),
                ("GET", "indexes", "{uid}", "documents"): lambda: self.documents(store.index(uid)),
                ("GET", "tasks", "{uid}"): lambda: self.task(uid),
            }
            if route in reads:
                return 200, reads[route]()
        return 202, self.write(route, uid)

    def write(self, route: tuple[str, ...], uid: str) -> dict[str, Any]:
        store, body = self.store, self.json_body()
        if route in (("POST", "indexes", "{uid}", "documents"), ("PUT", "indexes", "{uid}", "documents")):
            docs = body if isinstance(body, list) else [body]
            if not all(isinstance(d, dict) for d in docs):
                raise MeiliError(400, "malformed_payload", "The documents must be JSON objects.")
            key, replace = self.query.get("primaryKey"), route[0] == "POST"
            details = {"receivedDocuments": len(docs), "indexedDocuments": None}
            return store.enqueue(
                "documentAdditionOrUpdate", uid, details, lambda: store.add_documents(uid, docs, key, replace)
            )
        if route == ("DELETE", "indexes", "{uid}", "documents"):
            return store.enqueue(
                "documentDeletion", uid, {"deletedDocuments": None}, lambda: store.clear(uid)
            )
        if route == ("POST", "indexes"):
            new, key = str((body or {}).get("uid", "")), (body or {}).get("primaryKey")
            if not UID_RE.match(new):
                raise MeiliError(400, "invalid_index_uid", f"`{new}` is not a valid index uid.")
            return store.enqueue(
                "indexCreation", new, {"primaryKey": key}, lambda: store.create_index(new, key)
            )
        if route == ("DELETE", "indexes", "{uid}"):
            return store.enqueue(
                "indexDeletion", uid, {"deletedDocuments": None}, lambda: store.delete_index(uid)
            )
        if route == ("PATCH", "indexes", "{uid}", "settings"):
            settings = body if isinstance(body, dict) else {}
            return store.enqueue(
                "settingsUpdate", uid, hide_secrets(settings), lambda: store.update_settings(uid, settings)
            )
        if route == ("POST", "swap-indexes"):
            pairs = [list(p["indexes"]) for p in (body or [])]
            if not all(len(p) == 2 for p in pairs):
                raise MeiliError(400, "invalid_swap_indexes", "Each swap needs exactly two indexes.")
            return store.enqueue("indexSwap", None, {"swaps": body}, lambda: store.swap(pairs))
        if route == ("POST", "dumps"):
            return store.enqueue("dumpCreation", None, {"dumpUid": None}, store.dump)
        if route == ("POST", "snapshots"):
            return store.enqueue("snapshotCreation", None, None, store.snapshot)
        raise MeiliError(404, "not_found", f"{route[0]} {self.path_only} is not a route the stand-in serves.")

    def page(self, results: list[Any]) -> dict[str, Any]:
        limit, offset = int(self.query.get("limit", 20)), int(self.query.get("offset", 0))
        return {
            "results": results[offset : offset + limit],
            "offset": offset,
            "limit": limit,
            "total": len(results),
        }

    def documents(self, index: Index) -> dict[str, Any]:
        docs = list(index.documents.values())
        fields = [f for f in self.query.get("fields", "").split(",") if f and f != "*"]
        return self.page([{k: v for k, v in d.items() if k in fields} if fields else d for d in docs])

    def task(self, uid: str) -> dict[str, Any]:
        if not uid.isdigit() or int(uid) >= len(self.store.tasks):
            raise MeiliError(404, "task_not_found", f"Task `{uid}` not found.")
        return dict(self.store.tasks[int(uid)])

    def stats(self) -> dict[str, Any]:
        store = self.store
        size = store.data_file.stat().st_size if store.data_file.exists() else 0
        indexes = {u: i.stats(store.indexing(u)) for u, i in store.indexes.items()}
        last = max((t["finishedAt"] for t in store.tasks if t["finishedAt"]), default=None)
        return {"databaseSize": size, "lastUpdate": last, "indexes": indexes}


def prepare_database(store: Store, args: argparse.Namespace) -> None:
    """--import-snapshot / --import-dump, with the refusals Meilisearch makes, then load."""
    exists = store.exists()
    if args.import_snapshot:
        snapshot = Path(args.import_snapshot)
        if exists and not args.ignore_snapshot_if_db_exists:
            fatal(f'database already exists at "{store.db_path}", try to delete it or rename it')
        elif not exists and not snapshot.is_file() and not args.ignore_missing_snapshot:
            fatal(f'snapshot "{snapshot}" does not exist')
        elif not exists and snapshot.is_file():
            restore_snapshot(snapshot, store.db_path)
    if args.import_dump:
        dump = Path(args.import_dump)
        if exists and not args.ignore_dump_if_db_exists:
            fatal(f'database already exists at "{store.db_path}", try to delete it or rename it')
        elif not exists and not dump.is_file() and not args.ignore_missing_dump:
            fatal(f'dump "{dump}" does not exist')
        elif not exists and dump.is_file():
            store.import_dump(dump)
            sys.stderr.write(f"imported dump {dump}: {len(store.indexes)} indexes\n")
    store.load()
    store.persist()


def fatal(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")
    sys.exit(1)


# Options as Meilisearch takes them: a flag, else MEILI_<NAME> in the environment, else
# <name> in the config file (--config-file-path, MEILI_CONFIG_FILE_PATH, or ./config.toml in the
# working directory), else the default.
DEFAULTS = {
    "http_addr": "localhost:7700",
    "db_path": "./data.ms",
    "dump_dir": "dumps/",
    "snapshot_dir": "snapshots/",
    "master_key": None,
    "http_payload_size_limit": "100 MB",
}
SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MeiliSearch stand-in (tasks, documents, dumps, snapshots)")
    p.add_argument("--config-file-path")
    for name in DEFAULTS:
        p.add_argument("--" + name.replace("_", "-"))
    imports = p.add_mutually_exclusive_group()
    imports.add_argument("--import-dump")
    imports.add_argument("--import-snapshot")
    for flag in ("ignore-dump-if-db-exists", "ignore-missing-dump", "ignore-snapshot-if-db-exists",
                 "ignore-missing-snapshot"):  # fmt: skip
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--task-delay", type=float, default=0.0, help="stand-in only: seconds in `processing`")
    args = p.parse_args(argv)
    config = read_config(args.config_file_path or os.environ.get("MEILI_CONFIG_FILE_PATH"))
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, os.environ.get(f"MEILI_{name.upper()}") or config.get(name, default))
    args.http_payload_size_limit = parse_size(str(args.http_payload_size_limit))
    return args


def read_config(explicit: str | None) -> dict[str, Any]:
    """The TOML config file: the one named (which must exist), or ./config.toml if there."""
    path = Path(explicit or "config.toml")
    if not path.is_file():
        if explicit:
            fatal(f"unable to open config file {explicit}")
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fatal(f"invalid config file {path}: {exc}")
        return {}


def parse_size(text: str) -> int:
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :] or "b"
    if not number.isdigit() or unit not in SIZE_UNITS:
        fatal(f"invalid size {text!r} for --http-payload-size-limit")
    return int(number) * SIZE_UNITS[unit]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host, _, port = args.http_addr.rpartition(":")
    store = Store(Path(args.db_path), Path(args.dump_dir), Path(args.snapshot_dir), args.task_delay)
    try:
        prepare_database(store, args)
    except (OSError, ValueError, KeyError, tarfile.TarError, MeiliError) as exc:
        fatal(f"cannot open or import the database: {exc}")
    worker = threading.Thread(target=store.work, name="scheduler", daemon=True)
    worker.start()
    attrs = {"store": store, "master_key": args.master_key, "payload_limit": args.http_payload_size_limit}
    handler = type("Handler", (MeiliHandler,), attrs)

    def stop() -> None:
        store.stopping.set()
        store.pending.put(None)
        worker.join(timeout=10)

    serve(handler, host or "127.0.0.1", int(port), name="meilisearch", on_stop=stop)


if __name__ == "__main__":
    main()
