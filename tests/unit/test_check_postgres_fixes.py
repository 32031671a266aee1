"""`drkit check` names the exact change when PostgreSQL blocks backups: the pg_hba.conf
replication line (with the address the server saw), the setting that publishes nself's port,
or that the host is a compose network name. The server messages are the ones PostgreSQL 15
printed here (`no pg_hba.conf entry for replication connection from host ...`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from drkit.domain.checks import Status
from drkit.domain.errors import OperationError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.postgres import check

HBA = (
    'cannot connect to PostgreSQL at 127.0.0.1:5432/postgres: connection to server at "127.0.0.1", port 5432 '
    "failed: FATAL:  no pg_hba.conf entry for replication connection from host "
    '"172.18.0.1", user "postgres", no encryption'
)


def nself_pg(host: str = "127.0.0.1") -> Service:
    runtime = RuntimeSpec(
        type="compose",
        container="nchat_postgres",
        volume="nchat_postgres_data",
        mount="/var/lib/postgresql/data",
    )
    return Service(
        name="postgres", kind="postgres", runtime=runtime, dsn=f"host={host} port=5432 user=postgres"
    )


def refusing(message: str | None) -> Any:
    @contextmanager
    def connect(dsn: str, **_: Any) -> Iterator[None]:
        if message is not None and "replication=true" in dsn:
            raise OperationError(message)
        yield None

    return connect


def test_replication_refused_names_the_pg_hba_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "connect", refusing(HBA))
    [result] = check._replication(nself_pg())
    assert result.status is Status.FAILED and result.critical
    assert "`host replication postgres 172.18.0.1/32 scram-sha-256`" in result.detail
    assert "/var/lib/postgresql/data/pg_hba.conf (volume nchat_postgres_data)" in result.detail
    assert "pg_reload_conf()" in result.detail


def test_replication_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "connect", refusing(None))
    [result] = check._replication(nself_pg())
    assert result.status is Status.OK


def test_unpublished_port_names_the_nself_setting() -> None:
    message = "cannot connect to PostgreSQL at 127.0.0.1:5432/nchat: connection refused"
    fix = check.connect_fix(nself_pg(), message)
    assert "POSTGRES_EXPOSE_PORT=true" in fix and "nself build && nself restart" in fix
    assert "dsn host=nchat_postgres" in fix


def test_container_without_an_address_says_docker_gave_none() -> None:
    message = 'cannot connect to PostgreSQL at nchat_postgres:5432/nchat: could not translate host name "x"'
    fix = check.connect_fix(nself_pg("nchat_postgres"), message)
    assert "docker inspect nchat_postgres" in fix and "is the container running" in fix
    assert "POSTGRES_EXPOSE_PORT=true" in fix


def test_container_address_unreachable_names_docker_desktop() -> None:
    message = "cannot connect to PostgreSQL at nchat_postgres:5432/nchat: timeout expired"
    fix = check.connect_fix(nself_pg("nchat_postgres"), message)
    assert "Docker Desktop" in fix and "dsn host=127.0.0.1" in fix


def test_another_unresolvable_name_points_at_the_container() -> None:
    message = 'cannot connect to PostgreSQL at db:5432/nchat: could not translate host name "db"'
    fix = check.connect_fix(nself_pg("db"), message)
    assert "dsn host=nchat_postgres" in fix and "POSTGRES_EXPOSE_PORT=true" in fix


def test_local_runtimes_get_no_nself_advice() -> None:
    service = Service(name="pg", kind="postgres", runtime=RuntimeSpec(type="local"), dsn="host=127.0.0.1")
    assert check.connect_fix(service, "connection refused") == ""


def test_check_postgres_reports_the_fix_on_connect_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(dsn: str) -> Any:
        raise OperationError("cannot connect to PostgreSQL at 127.0.0.1:5432/nchat: connection refused")

    monkeypatch.setattr(check, "server_info", down)
    [result] = check.check_postgres(None, nself_pg())  # type: ignore[arg-type]
    assert result.status is Status.FAILED
    assert result.detail.endswith("(dsn host=nchat_postgres port=5432)")
