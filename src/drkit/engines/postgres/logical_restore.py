"""Restore from a logical backup (`pg_dump -Fc` per database): a whole dump into a new
database (`--database NAME`), or chosen tables back into the live database (`--table T`).

Nothing existing is overwritten: the new database must not exist, and a table to bring
back must be absent (dropped) from the live database. pg_restore stops at the first error
(adapters/postgres/pg_restore.py, the rules `verify --deep` uses too); a database drkit
created for a restore that failed is dropped again, or named with the command to drop it.
Tables come back with what belongs to them (indexes, constraints, triggers): the dump is
restored into a scratch database first (`drkit_restore_<time>`, dropped afterwards), then
`pg_dump -t` of the tables goes into the live database in one transaction. Roles
(globals.sql) are not applied.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from drkit.adapters.postgres.client import connect, describe, dsn_param, first_line, service_dsn
from drkit.adapters.postgres.pg_restore import dump_tables, restore_dump
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import DrkitError, IntegrityError, NotFoundError, OperationError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import choose_backup
from drkit.engines.core.layout import backup_dir, lock_name
from drkit.engines.core.workspace import Workspace
from drkit.infra import locks

PART_RE = r"\.\d{5}(?:\.zst)?(?:\.age)?$"  # a stored part: NAME.00000.zst[.age]


@dataclass(frozen=True)
class PreparedLogicalRestore:
    """`restore postgres --database NAME` or `--table T`: decided, nothing touched yet."""

    service: Service
    manifest: Manifest
    source: str
    into: str | None
    tables: tuple[str, ...]

    @property
    def summary(self) -> str:
        if self.tables:
            return (
                f"bring back {', '.join(self.tables)} into {self.source} from logical backup "
                f"{self.manifest.backup_id}"
            )
        return f"restore {self.source}'s dump of {self.manifest.backup_id} into the new database {self.into}"

    @property
    def question(self) -> str | None:
        return f"{self.summary}?" if self.tables else None  # a new database overwrites nothing

    def run(self, ws: Workspace) -> LogicalRestoreResult:
        with locks.exclusive(ws.lock_dir, lock_name(self.service.name), "restore"):
            if self.tables:
                return restore_tables(ws, self.service, self.manifest, self.source, self.tables)
            return restore_database(ws, self.service, self.manifest, self.source, self.into or "")


def prepare_logical(
    ws: Workspace,
    service: Service,
    *,
    backup_id: str | None,
    into: str | None,
    tables: tuple[str, ...],
    from_database: str | None,
) -> PreparedLogicalRestore:
    if bool(into) == bool(tables):
        raise UsageError(
            "from a logical backup, give --database NEW_NAME (the whole dump) or --table T, not both"
        )
    manifest = choose_logical(ws, service, backup_id)
    return PreparedLogicalRestore(service, manifest, source_database(manifest, from_database), into, tables)


@dataclass(frozen=True)
class LogicalRestoreResult:
    backup_id: str
    source_database: str
    into: str
    tables: tuple[str, ...]
    rows: dict[str, int]
    seconds: float


def choose_logical(ws: Workspace, service: Service, backup_id: str | None) -> Manifest:
    """The newest logical backup, or the one named: the one rule of core/choose.py."""
    found = [
        m for m in list_backups(ws.repo, ws.stack.name, service.name).complete if m.kind is BackupKind.LOGICAL
    ]
    if not found and backup_id is None:
        raise NotFoundError(
            f"no logical backup of {service.name}", hint="take one: drkit backup --type logical"
        )
    what, where = f"logical backup of {service.name}", ws.repo.location
    return choose_backup(found, now=ws.clock.now(), what=what, where=where, backup_id=backup_id).manifest


def source_database(manifest: Manifest, wanted: str | None) -> str:
    databases = [str(d) for d in manifest.details.get("databases", [])]
    if wanted is not None:
        if wanted not in databases:
            raise UsageError(
                f"{manifest.backup_id} has no dump of {wanted!r} (it has {', '.join(databases)})"
            )
        return wanted
    if len(databases) != 1:
        raise UsageError(f"{manifest.backup_id} holds {', '.join(databases)}: name one with --from-database")
    return databases[0]


def restore_database(
    ws: Workspace, service: Service, manifest: Manifest, source: str, into: str
) -> LogicalRestoreResult:
    """The dump of `source` into a new database `into` (refused if it exists)."""
    began = ws.clock.monotonic()
    admin = service_dsn(service)
    if _database_exists(admin, into):
        raise UsageError(f"database {into!r} exists; restore never writes over data: choose another name")
    with fetched_dump(ws, manifest, source) as dump:
        restore_new_database(admin, service_dsn(service, dbname=into), into, dump, service.runtime.bin_dir)
    return LogicalRestoreResult(manifest.backup_id, source, into, (), {}, ws.clock.monotonic() - began)


def restore_tables(
    ws: Workspace, service: Service, manifest: Manifest, source: str, tables: tuple[str, ...]
) -> LogicalRestoreResult:
    """Bring back tables absent from the live database, with their indexes and constraints."""
    began = ws.clock.monotonic()
    live = service_dsn(service, dbname=source)
    qualified = [t if "." in t else f"public.{t}" for t in tables]
    present = [t for t in qualified if _table_exists(live, t)]
    if present:
        raise UsageError(
            f"{', '.join(present)} exists in {source}; drkit brings back only tables that are gone "
            "(rename or drop it first, or restore the whole dump elsewhere with --database NAME)"
        )
    scratch = f"drkit_restore_{ws.clock.now():%Y%m%d%H%M%S}"
    admin = service_dsn(service)
    with fetched_dump(ws, manifest, source) as dump, new_database(admin, scratch, keep=False):
        in_scratch = service_dsn(service, dbname=scratch)
        restore_dump(in_scratch, dump, service.runtime.bin_dir)
        missing = [t for t in qualified if not _table_exists(in_scratch, t)]
        if missing:
            raise NotFoundError(f"{manifest.backup_id} has no table {', '.join(missing)} in {source}")
        subset = dump.with_suffix(".tables")
        dump_tables(in_scratch, qualified, subset, service.runtime.bin_dir)
        try:
            restore_dump(live, subset, service.runtime.bin_dir, single_transaction=True)
        finally:
            subset.unlink(missing_ok=True)
    rows = {t: _count(live, t) for t in qualified}
    return LogicalRestoreResult(
        manifest.backup_id, source, source, tuple(qualified), rows, ws.clock.monotonic() - began
    )


def fetched_dump(ws: Workspace, manifest: Manifest, database: str) -> AbstractContextManager[Path]:
    """The database's dump (`pg_dump -Fc`), checked whole against its recorded SHA-256."""
    expected = dict(manifest.details.get("dump_sha256", {})).get(database)
    return fetched(ws, manifest, f"{database}.dump", whole_sha256=str(expected) if expected else None)


@contextmanager
def fetched(ws: Workspace, manifest: Manifest, stem: str, *, whole_sha256: str | None) -> Iterator[Path]:
    """The file `stem` of a logical backup, fetched part by part (each checked against its
    hash), decoded into a private temporary file (0600), checked whole, removed on exit."""
    directory = ws.state_dir / "tmp"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pattern = re.compile(re.escape(stem) + PART_RE)
    parts = sorted((f for f in manifest.files if pattern.fullmatch(f.name)), key=lambda f: f.name)
    if not parts:
        raise IntegrityError(f"{manifest.backup_id} lists no part of {stem}")
    where = backup_dir(manifest.stack, manifest.service, manifest.backup_id)
    fd, name = tempfile.mkstemp(prefix=f"{stem}.", dir=directory)
    path = Path(name)
    try:
        whole = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                try:
                    stored = ws.repo.get(f"{where}/{part.name}")
                except FileNotFoundError as exc:
                    raise IntegrityError(f"{part.name} of {manifest.backup_id} is missing") from exc
                if sha256(stored) != part.sha256:
                    raise IntegrityError(f"{part.name} of {manifest.backup_id} does not match its hash")
                raw = ws.codec.decode(stored, name=part.name)
                whole.update(raw)
                out.write(raw)
        if whole_sha256 and whole.hexdigest() != whole_sha256:
            raise IntegrityError(f"{stem} in {manifest.backup_id} does not match its hash")
        yield path
    finally:
        path.unlink(missing_ok=True)


def restore_new_database(
    admin: str, dsn: str, name: str, dump: Path, bin_dir: str | None, **rules: bool
) -> None:
    """Create the database `name` (from template0) and restore the dump into it with the one
    set of pg_restore rules (`restore_dump`); if that fails, the database is dropped again."""
    with new_database(admin, name, keep=True):
        restore_dump(dsn, dump, bin_dir, **rules)


@contextmanager
def new_database(admin: str, name: str, *, keep: bool) -> Iterator[None]:
    """A database created for the `with`: dropped when the body fails (or is interrupted),
    and at its end unless `keep`. A drop that fails is named, with the command to do it."""
    _create_database(admin, name)
    try:
        yield
    except BaseException as exc:
        _drop_or_name(admin, name, exc)
        if isinstance(exc, DrkitError):  # say that nothing is left
            exc.message = f"{exc.message}; the database {name} it created was dropped again"
            exc.args = (exc.message,)
        raise
    if not keep:
        _drop_or_name(admin, name, None)


def _drop_or_name(admin: str, name: str, cause: BaseException | None) -> None:
    try:
        _drop_database(admin, name)
    except (DrkitError, psycopg.Error) as exc:
        reason = exc.message if isinstance(exc, DrkitError) else str(exc).strip().splitlines()[0]
        before = f"{cause.message}; " if isinstance(cause, DrkitError) else ""
        raise OperationError(
            f"{before}the database {name} drkit created is left on {describe(admin)} "
            f"(dropping it failed: {reason})",
            hint=f"remove it: {_drop_command(admin, name)}",
        ) from exc


def _drop_command(admin: str, name: str) -> str:
    where = [f"{flag} {value}" for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user"))
             if (value := dsn_param(admin, key))]  # fmt: skip
    quoted = name.replace('"', '""')
    return " ".join(["psql", *where, "-d postgres -c", f"'DROP DATABASE \"{quoted}\" WITH (FORCE)'"])


def _database_exists(admin: str, name: str) -> bool:
    with connect(admin) as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is not None


def _create_database(admin: str, name: str) -> None:
    try:
        with connect(admin) as conn:
            conn.execute(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise OperationError(
            f"cannot create the database {name} on {describe(admin)}: {first_line(exc)}"
        ) from exc


def _drop_database(admin: str, name: str) -> None:
    with connect(admin) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _table_exists(dsn: str, table: str) -> bool:
    with connect(dsn) as conn:
        row = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
    return bool(row and row[0])


def _count(dsn: str, table: str) -> int:
    schema, _, name = table.partition(".")
    with connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        ).fetchone()
    return int(row[0]) if row else 0
