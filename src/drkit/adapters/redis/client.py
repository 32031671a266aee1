"""Typed calls to one Redis server through redis-py. Every call has a socket timeout; every
failure is an OperationError that names the server (its URL without the password).

Waiting is on conditions the server reports, with deadlines (FIELD-NOTES, Redis): BGSAVE
forks and returns at once, so completion is read from INFO persistence
(`rdb_bgsave_in_progress:0`, `rdb_last_bgsave_status:ok`) together with a save counter or
LASTSAVE that moved past the value from before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock, SystemClock
from drkit.infra.wait import wait_for

CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Layout:
    """Where a server keeps its files (CONFIG GET), as the server itself sees them."""

    dir: str
    dbfilename: str
    appendonly: bool
    appenddirname: str = "appendonlydir"
    appendfilename: str = "appendonly.aof"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dir": self.dir,
            "dbfilename": self.dbfilename,
            "appendonly": self.appendonly,
            "appenddirname": self.appenddirname,
            "appendfilename": self.appendfilename,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(
            dir=str(data["dir"]),
            dbfilename=str(data["dbfilename"]),
            appendonly=bool(data["appendonly"]),
            appenddirname=str(data.get("appenddirname", "appendonlydir")),
            appendfilename=str(data.get("appendfilename", "appendonly.aof")),
        )


@dataclass(frozen=True)
class Keyspace:
    """Keys (and keys with a TTL) per database, from INFO keyspace."""

    keys: dict[int, int]
    expires: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.keys.values())


@dataclass(frozen=True)
class SaveMark:
    """How many RDB saves the server made (`rdb_saves`, Redis 7+) and LASTSAVE (seconds)."""

    saves: int | None
    lastsave: int

    def newer_than(self, other: SaveMark) -> bool:
        if self.saves is not None and other.saves is not None:
            return self.saves > other.saves
        return self.lastsave > other.lastsave


class _Exited(Exception):
    pass


class _Refused(OperationError):
    """The server reported a failure: waiting longer will not help."""


class RedisServer:
    def __init__(self, url: str, *, password: str | None = None, timeout: float = CALL_TIMEOUT) -> None:
        self.url = url
        self.password = password
        self.timeout = timeout
        self._clients: dict[int, redis.Redis] = {}

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@")
        return self.url

    def client(self, db: int = 0) -> redis.Redis:
        if db not in self._clients:
            parts = urlsplit(self.url)
            url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
            extra = {"password": self.password} if self.password else {}
            self._clients[db] = redis.Redis.from_url(
                url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, **extra
            )
        return self._clients[db]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn redis-py's errors into an OperationError naming the server and the step."""
        try:
            yield
        except redis.RedisError as exc:
            raise OperationError(f"redis at {self.where}: {what}: {exc}") from exc

    def command(self, *args: Any, db: int = 0) -> Any:
        conn: Any = self.client(db)  # execute_command is untyped in redis-py
        with self.errors(str(args[0])):
            return conn.execute_command(*args)

    def ping(self) -> None:
        self.command("PING")

    def answers(self) -> bool:
        try:
            self.ping()
        except OperationError:
            return False
        return True

    def info(self, section: str) -> dict[str, Any]:
        with self.errors(f"INFO {section}"):
            raw: Any = self.client().info(section)
        return dict(raw)

    def version(self) -> str:
        return str(self.info("server")["redis_version"])

    def config(self, name: str) -> str:
        with self.errors(f"CONFIG GET {name}"):
            raw: Any = self.client().config_get(name)
        if name not in raw:
            raise OperationError(f"redis at {self.where}: CONFIG GET {name} returned nothing")
        return str(raw[name])

    def layout(self) -> Layout:
        return Layout(
            dir=self.config("dir"),
            dbfilename=self.config("dbfilename"),
            appendonly=self.config("appendonly") == "yes",
            appenddirname=self.config("appenddirname"),
            appendfilename=self.config("appendfilename"),
        )

    def keyspace(self) -> Keyspace:
        keys: dict[int, int] = {}
        expires: dict[int, int] = {}
        for name, stats in self.info("keyspace").items():
            if str(name).startswith("db") and isinstance(stats, dict):
                db = int(str(name)[2:])
                keys[db] = int(stats.get("keys", 0))
                expires[db] = int(stats.get("expires", 0))
        return Keyspace(keys, expires)

    def save_mark(self) -> SaveMark:
        saves = self.info("persistence").get("rdb_saves")
        with self.errors("LASTSAVE"):
            last: Any = self.client().lastsave()
        return SaveMark(int(saves) if saves is not None else None, int(last.timestamp()))

    def bgsave(self) -> None:
        """Start a background save; OperationError when the server refuses (another fork)."""
        with self.errors("BGSAVE"):
            self.client().bgsave()

    @contextlib.contextmanager
    def writes_paused(self, ms: int, clock: Clock | None = None) -> Iterator[None]:
        """CLIENT PAUSE WRITE: clients' writes (and key expiry) wait; reads go on. The
        server lifts the pause by itself after `ms`, so a dead drkit cannot leave it on;
        finishing after that is an error, since the snapshot would no longer be one."""
        clock = clock or SystemClock()
        self.command("CLIENT", "PAUSE", ms, "WRITE")
        began = clock.monotonic()
        try:
            yield
        finally:
            with contextlib.suppress(OperationError):
                self.command("CLIENT", "UNPAUSE")
        held = (clock.monotonic() - began) * 1000
        if held >= ms:
            raise OperationError(
                f"redis at {self.where}: the snapshot took {held:.0f} ms, longer than the "
                f"{ms} ms write pause; writes may have slipped in"
            )

    def wait_idle(self, *, timeout: float, clock: Clock | None = None) -> None:
        """Until no RDB save or AOF rewrite runs (a BGSAVE would be refused meanwhile)."""

        def idle() -> bool:
            p = self.info("persistence")
            busy = int(p.get("rdb_bgsave_in_progress", 0)) or int(p.get("aof_rewrite_in_progress", 0))
            return not busy and not int(p.get("aof_rewrite_scheduled", 0))

        wait_for(
            idle,
            timeout=timeout,
            what=f"redis at {self.where} to finish its save or rewrite",
            clock=clock,
            retry_on=(OperationError,),
        )

    def wait_saved(self, before: SaveMark, *, timeout: float, clock: Clock | None = None) -> SaveMark:
        """Until the BGSAVE started after `before` has finished; OperationError if it failed."""

        def saved() -> SaveMark | None:
            p = self.info("persistence")
            if int(p["rdb_bgsave_in_progress"]):
                return None
            if str(p["rdb_last_bgsave_status"]) != "ok":
                raise _Refused(
                    f"redis at {self.where}: BGSAVE failed (rdb_last_bgsave_status:"
                    f"{p['rdb_last_bgsave_status']}); see the server's log"
                )
            mark = self.save_mark()
            return mark if mark.newer_than(before) else None

        return wait_for(
            saved,
            timeout=timeout,
            what=f"BGSAVE on {self.where}",
            clock=clock,
            retry_on=(OperationError,),
            fatal=(_Refused,),
        )

    def wait_aof_flushed(self, *, timeout: float, clock: Clock | None = None) -> None:
        """Until the AOF buffer is written to the file (with writes paused, it stays so)."""

        def flushed() -> bool:
            p = self.info("persistence")
            if str(p.get("aof_last_write_status", "ok")) != "ok":
                raise _Refused(f"redis at {self.where}: the last AOF write failed")
            return int(p.get("aof_buffer_length", 0)) == 0

        wait_for(
            flushed,
            timeout=timeout,
            what=f"the AOF buffer of {self.where}",
            clock=clock,
            retry_on=(OperationError,),
            fatal=(_Refused,),
        )

    def wait_loaded(self, *, timeout: float, alive: Callable[[], bool], clock: Clock | None = None) -> None:
        """Until the server answers PING and has loaded its data (INFO persistence loading:0).
        `alive` says whether its process still runs: a server that exits fails at once."""

        def loaded() -> bool:
            if not alive():
                raise _Exited
            self.ping()
            p = self.info("persistence")
            return not int(p.get("loading", 0)) and not int(p.get("async_loading", 0))

        try:
            wait_for(
                loaded,
                timeout=timeout,
                what=f"redis at {self.where} to load its data",
                clock=clock,
                retry_on=(OperationError,),
                fatal=(_Exited,),
            )
        except _Exited as exc:
            raise OperationError(f"redis at {self.where} exited while starting; see its log") from exc
