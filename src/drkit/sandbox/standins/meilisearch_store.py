"""The MeiliSearch stand-in's state: indexes, documents, the task queue, dump and snapshot
files (see `meilisearch.py` for what the stand-in stands for and what it leaves out)."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import sys
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = "1.5.0-drkit-standin"  # POST /snapshots exists from v1.5
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
DOC_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,511}$")
DUMP_MEMBER = re.compile(r"^indexes/([A-Za-z0-9_-]{1,400})/(metadata\.json|settings\.json|documents\.jsonl)$")
Action = Callable[[], dict[str, Any]]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MeiliError(Exception):
    def __init__(self, status: int, code: str, message: str, kind: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.code, self.kind = status, code, kind

    def body(self) -> dict[str, Any]:
        link = f"https://docs.meilisearch.com/errors#{self.code}"
        return {"message": str(self), "code": self.code, "type": self.kind, "link": link}


@dataclass
class Index:
    uid: str
    primary_key: str | None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "primaryKey": self.primary_key,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def stats(self, indexing: bool) -> dict[str, Any]:
        fields: dict[str, int] = {}
        for doc in self.documents.values():
            for key in doc:
                fields[key] = fields.get(key, 0) + 1
        return {"numberOfDocuments": len(self.documents), "isIndexing": indexing, "fieldDistribution": fields}

    def to_json(self) -> dict[str, Any]:
        return {**self.view(), "settings": self.settings, "documents": list(self.documents.values())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Index:
        index = cls(data["uid"], data.get("primaryKey"), data["createdAt"], data["updatedAt"])
        index.settings = dict(data.get("settings", {}))
        index.add(data.get("documents", []), replace=True)
        return index

    def add(self, docs: list[dict[str, Any]], *, replace: bool) -> None:
        key = self.primary_key
        if key is None:
            raise MeiliError(400, "index_primary_key_no_candidate_found", "The primary key is unknown.")
        for doc in docs:
            if key not in doc:
                raise MeiliError(
                    400,
                    "missing_document_id",
                    f"Document doesn't have a `{key}` attribute: `{json.dumps(doc)[:200]}`.",
                )
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, int | str) or not DOC_ID_RE.match(str(value)):
                raise MeiliError(
                    400, "invalid_document_id", f"Document identifier `{json.dumps(value)}` is invalid."
                )
            old = self.documents.get(str(value), {})
            self.documents[str(value)] = doc if replace else {**old, **doc}
        self.updated_at = now_iso()


PK_HINT = "Please specify the primary key manually using the `primaryKey` query parameter."


# Meilisearch never returns an embedder's `apiKey` in clear: GET /indexes/{uid}/settings (and
# every /settings/<name> route, e.g. /settings/embedders) reads them with
# SecretPolicy::HideSecrets, and a settingsUpdate task's details are hidden the same way;
# dumps (and snapshots) keep them (SecretPolicy::RevealSecrets). The rule, from
# meilisearch/meilisearch crates/meilisearch-types/src/settings.rs (`Settings::hide_secrets`,
# `hide_secret(secret, 0)`; routes/indexes/settings.rs `get_all`, task_view.rs; commit
# f82d05607 "Hide secrets in settings and task queue", v1.8): for each embedder whose
# `apiKey` is set, by the key's length in bytes, keep 0 (< 10), 2 (< 20), 3 (< 30) or 5 bytes
# (rounded up to a character boundary) and append "XXX...", "XXXX...", "XXXXX..." or
# "XXXXXX..."; e.g. "My super secret value you will never guess" -> "My suXXXXXX...".
# This is the stand-in's own copy of the rule, kept apart from drkit's client on purpose.
MASKS = ((10, 0, "XXX..."), (20, 2, "XXXX..."), (30, 3, "XXXXX..."))


def hide_secret(secret: str) -> str:
    raw = secret.encode()
    keep, tail = next(((k, t) for limit, k, t in MASKS if len(raw) < limit), (5, "XXXXXX..."))
    while keep < len(raw) and raw[keep] & 0xC0 == 0x80:  # ceil_char_boundary
        keep += 1
    return raw[:keep].decode() + tail


def hide_secrets(settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of `settings` as Meilisearch shows it: every embedder's apiKey masked."""
    embedders = settings.get("embedders")
    if not isinstance(embedders, dict):
        return dict(settings)
    shown = {
        name: {**e, "apiKey": hide_secret(e["apiKey"])}
        if isinstance(e, dict) and isinstance(e.get("apiKey"), str)
        else e
        for name, e in embedders.items()
    }
    return {**settings, "embedders": shown}


def infer_primary_key(docs: list[dict[str, Any]]) -> str:
    """The one attribute ending in `id`, as Meilisearch infers it; else the error it gives."""
    candidates = [k for k in (docs[0] if docs else {}) if k.lower().endswith("id")]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        message = "The primary key inference failed as the engine did not find any field ending with `id`"
        raise MeiliError(400, "index_primary_key_no_candidate_found", f"{message} in its name. {PK_HINT}")
    names = ", ".join(repr(c) for c in candidates)
    message = (
        f"The primary key inference failed as the engine found {len(candidates)} fields ending with `id`"
    )
    raise MeiliError(400, "index_primary_key_multiple_candidates_found", f"{message}: {names}. {PK_HINT}")


class Store:
    """Indexes and the task queue. One worker applies tasks in order, as Meilisearch's
    scheduler does, and persists the database after each one (temp file, rename)."""

    def __init__(self, db_path: Path, dump_dir: Path, snapshot_dir: Path, task_delay: float = 0.0) -> None:
        self.db_path, self.dump_dir, self.snapshot_dir = db_path, dump_dir, snapshot_dir
        self.task_delay = task_delay
        self.lock = threading.RLock()
        self.indexes: dict[str, Index] = {}
        self.tasks: list[dict[str, Any]] = []
        self.pending: queue.Queue[tuple[dict[str, Any], Action] | None] = queue.Queue()
        self.stopping = threading.Event()

    @property
    def data_file(self) -> Path:
        return self.db_path / "data.json"

    def exists(self) -> bool:
        return self.db_path.is_dir() and any(self.db_path.iterdir())

    def load(self) -> None:
        if not self.data_file.exists():
            return
        data = json.loads(self.data_file.read_text())
        self.indexes = {i["uid"]: Index.from_json(i) for i in data.get("indexes", [])}
        self.tasks = list(data.get("tasks", []))
        for task in self.tasks:
            if task["status"] in ("enqueued", "processing"):
                self._finish(task, error=MeiliError(500, "internal", "interrupted by a restart", "internal"))

    def persist(self) -> None:
        self.db_path.mkdir(parents=True, exist_ok=True)
        data = {"indexes": [i.to_json() for i in self.indexes.values()], "tasks": self.tasks}
        _write_atomic(self.data_file, json.dumps(data).encode())
        _write_atomic(self.db_path / "VERSION", VERSION.encode())

    def enqueue(
        self, kind: str, index_uid: str | None, details: dict[str, Any] | None, action: Action
    ) -> dict[str, Any]:
        with self.lock:
            task = {"uid": len(self.tasks), "indexUid": index_uid, "status": "enqueued", "type": kind,
                    "canceledBy": None, "details": details, "error": None, "duration": None,
                    "enqueuedAt": now_iso(), "startedAt": None, "finishedAt": None}  # fmt: skip
            if details is None:  # the task view skips a None details (snapshotCreation)
                del task["details"]
            self.tasks.append(task)
        self.pending.put((task, action))
        return {k: task[k] for k in ("indexUid", "status", "type", "enqueuedAt")} | {"taskUid": task["uid"]}

    def work(self) -> None:
        while (item := self.pending.get()) is not None:
            task, action = item
            with self.lock:
                task["status"], task["startedAt"] = "processing", now_iso()
            if self.task_delay and self.stopping.wait(self.task_delay):
                return
            with self.lock:
                self._run(task, action)
                try:
                    self.persist()
                except OSError as exc:  # the scheduler goes on; the next write may succeed
                    sys.stderr.write(f"cannot persist the database: {exc}\n")

    def _run(self, task: dict[str, Any], action: Action) -> None:
        try:
            found = action()
            if "details" in task:
                task["details"] = {**task["details"], **found}
            self._finish(task)
        except MeiliError as exc:
            self._finish(task, error=exc)
        except OSError as exc:
            self._finish(
                task, error=MeiliError(500, "internal", f"{exc.strerror}: {exc.filename}", "internal")
            )
        except Exception as exc:  # a task fails; the scheduler goes on with the next one
            self._finish(task, error=MeiliError(500, "internal", f"{type(exc).__name__}: {exc}", "internal"))

    def _finish(self, task: dict[str, Any], error: MeiliError | None = None) -> None:
        task["status"] = "failed" if error else "succeeded"
        task["error"] = error.body() if error else None
        task["finishedAt"] = now_iso()
        started = datetime.fromisoformat((task["startedAt"] or task["finishedAt"]).replace("Z", "+00:00"))
        task["duration"] = f"PT{(datetime.now(UTC) - started).total_seconds():.6f}S"

    def index(self, uid: str) -> Index:
        if uid not in self.indexes:
            raise MeiliError(404, "index_not_found", f"Index `{uid}` not found.")
        return self.indexes[uid]

    def indexing(self, uid: str) -> bool:
        return any(t["indexUid"] == uid and t["status"] in ("enqueued", "processing") for t in self.tasks)

    # -- task actions (run by the worker, holding the lock) -------------------------------
    def add_documents(
        self, uid: str, docs: list[dict[str, Any]], key: str | None, replace: bool
    ) -> dict[str, Any]:
        index = self.indexes.get(uid) or Index(uid, None)
        if key and index.primary_key and key != index.primary_key:
            raise MeiliError(
                400,
                "index_primary_key_already_exists",
                f"Index `{uid}` already has a primary key: `{index.primary_key}`.",
            )
        index.primary_key = index.primary_key or key or infer_primary_key(docs)
        index.add(docs, replace=replace)
        self.indexes[uid] = index
        return {"receivedDocuments": len(docs), "indexedDocuments": len(docs)}

    def clear(self, uid: str) -> dict[str, Any]:
        index = self.index(uid)
        count, index.documents = len(index.documents), {}
        return {"deletedDocuments": count}

    def create_index(self, uid: str, key: str | None) -> dict[str, Any]:
        if uid in self.indexes:
            raise MeiliError(409, "index_already_exists", f"Index `{uid}` already exists.")
        self.indexes[uid] = Index(uid, key)
        return {}

    def delete_index(self, uid: str) -> dict[str, Any]:
        return {"deletedDocuments": len(self.indexes.pop(self.index(uid).uid).documents)}

    def swap(self, pairs: list[list[str]]) -> dict[str, Any]:
        for a, b in pairs:
            first, second = self.index(a), self.index(b)
            first.uid, second.uid = b, a
            self.indexes[a], self.indexes[b] = second, first
        return {}

    def update_settings(self, uid: str, settings: dict[str, Any]) -> dict[str, Any]:
        index = self.indexes.setdefault(uid, Index(uid, None))
        index.settings.update(settings)
        return {}

    def dump(self) -> dict[str, Any]:
        dump_uid = new_dump_uid(self.dump_dir)
        members = {
            "metadata.json": json.dumps({"dumpVersion": "V6", "dbVersion": VERSION, "dumpDate": now_iso()})
        }
        for index in self.indexes.values():
            members[f"indexes/{index.uid}/metadata.json"] = json.dumps(index.view())
            members[f"indexes/{index.uid}/settings.json"] = json.dumps(index.settings)
            members[f"indexes/{index.uid}/documents.jsonl"] = "".join(
                json.dumps(d) + "\n" for d in index.documents.values()
            )
        _write_atomic(self.dump_dir / f"{dump_uid}.dump", _targz(members))
        return {"dumpUid": dump_uid}

    def snapshot(self) -> dict[str, Any]:
        self.persist()
        members = {p.name: p.read_text() for p in sorted(self.db_path.iterdir()) if p.is_file()}
        _write_atomic(self.snapshot_dir / f"{self.db_path.name}.snapshot", _targz(members))
        return {}

    def import_dump(self, path: Path) -> None:
        found: dict[str, dict[str, str]] = {}
        with tarfile.open(path, "r:gz") as tar:
            if tar.extractfile("metadata.json") is None:
                raise ValueError("not a dump: no metadata.json")
            for member in tar.getmembers():
                match = DUMP_MEMBER.match(member.name)
                fh = tar.extractfile(member) if match and member.isfile() else None
                if match and fh is not None:
                    found.setdefault(match.group(1), {})[match.group(2)] = fh.read().decode()
        for uid, parts in found.items():
            meta = json.loads(parts["metadata.json"])
            index = Index(uid, meta.get("primaryKey"), meta["createdAt"], meta["updatedAt"])
            index.settings = json.loads(parts.get("settings.json", "{}"))
            index.add(
                [json.loads(line) for line in parts.get("documents.jsonl", "").splitlines() if line],
                replace=True,
            )
            self.indexes[uid] = index
        self.persist()


def restore_snapshot(path: Path, db_path: Path) -> None:
    """Unpack a snapshot; like Meilisearch, only one written by this very version."""
    with tarfile.open(path, "r:gz") as tar:
        members = {}
        for name in ("data.json", "VERSION"):
            fh = tar.extractfile(name)
            if fh is None:
                raise ValueError(f"not a snapshot: no {name}")
            members[name] = fh.read()
    found = members["VERSION"].decode(errors="replace").strip()
    if found != VERSION:
        raise ValueError(
            f"Your database version ({found}) is incompatible with your current engine version ({VERSION})"
        )
    db_path.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        _write_atomic(db_path / name, data)


def _targz(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_dump_uid(dump_dir: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S%f")[:-3]
    candidate, n = stamp, 1
    while (dump_dir / f"{candidate}.dump").exists():
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate
