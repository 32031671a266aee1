"""Row counts (adapters/postgres/counts.py, used by backup manifests and verify) on a database
whose encoding is SQL_ASCII, where psycopg answers text as bytes and names may hold bytes that
are not UTF-8; and, in any encoding, on a schema whose name holds a dot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drkit.adapters.postgres.client import connect, make_dsn
from drkit.adapters.postgres.counts import cheap_counts, exact_counts, exported_snapshot
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox

pytestmark = pytest.mark.integration
DB = "drkit_counts_enc"
# table (as the bytes of its name) -> rows, and the key its count is found under
TABLES = {
    b'public."plain"': (3, "public.plain"),
    b'public."caf\xc3\xa9"': (2, "public.café"),  # UTF-8 bytes
    b'"my.schema"."t"': (4, "my.schema.t"),
}
NOT_UTF8 = {b'public."caf\xe9"': (1, "public.caf\\xe9")}  # Latin-1 é: only SQL_ASCII takes it


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """A PostgreSQL of this module's own."""
    handle = make_sandbox("drkit-it-counts-", services=("postgres",))
    yield handle
    destroy_sandbox(handle)


def make_db(sandbox: SandboxHandle, encoding: str, tables: dict[bytes, tuple[int, str]]) -> dict[str, int]:
    """`createdb -E <encoding> -T template0` with `tables`; the counts expected of it."""
    with connect(sandbox.dsn) as conn:
        conn.execute(f"drop database if exists {DB} with (force)".encode())
        conn.execute(f"create database {DB} encoding '{encoding}' template template0 locale 'C'".encode())
    with connect(make_dsn(sandbox.dsn, dbname=DB)) as conn:
        conn.execute(b'create schema "my.schema"')
        for name, (rows, _key) in tables.items():
            conn.execute(b"create table " + name + b" (id int)")
            conn.execute(b"insert into " + name + b" select generate_series(1, %d)" % rows)
        assert conn.execute("show server_encoding").fetchone() in ((encoding,), (encoding.encode(),))
    return {f"{DB}:{key}": rows for rows, key in tables.values()}


def assert_counts(dsn: str, expected: dict[str, int]) -> None:
    assert exact_counts(dsn, [DB]) == expected
    cheap = cheap_counts(dsn, [DB])
    assert (cheap.counts, cheap.estimated) == (expected, set())
    estimated = cheap_counts(dsn, [DB], exact_max_bytes=-1)  # no count(*): every table still named
    assert set(estimated.counts) == set(expected) and estimated.estimated == set(expected)
    with exported_snapshot(dsn, DB) as (snapshot, counts):
        assert snapshot and counts.counts == expected


def test_counts_on_a_sql_ascii_database_name_undecodable_bytes_escaped(sandbox: SandboxHandle) -> None:
    try:
        assert_counts(sandbox.dsn, make_db(sandbox, "SQL_ASCII", TABLES | NOT_UTF8))
    finally:
        sandbox.psql(f"drop database if exists {DB} with (force)")


def test_counts_of_a_schema_with_a_dot_in_its_name(sandbox: SandboxHandle) -> None:
    try:
        assert_counts(sandbox.dsn, make_db(sandbox, "UTF8", TABLES))
    finally:
        sandbox.psql(f"drop database if exists {DB} with (force)")
