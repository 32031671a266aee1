"""PostgreSQL tools run in a compose container: the argument list and the secret's path
(the in-place restore's moves inside the volume: tests/unit/test_aside.py; the WAL served
to it: tests/unit/test_wal_spool.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from drkit.adapters.container import env_file_text
from drkit.adapters.postgres.toolhost import inside_dsn, tool_host
from drkit.domain.errors import ConfigError
from drkit.domain.stack import RuntimeSpec, Service

SECRET = "pa:ss w0rd#"


def compose_service(tmp_path: Path) -> Service:
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    spec = RuntimeSpec(type="compose", container="shop_postgres", bin_dir=str(tmp_path), port=5433)
    return Service(name="postgres", kind="postgres", runtime=spec)


def test_the_password_goes_in_a_0600_env_file_never_on_the_command_line(tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 port=15432 user=postgres dbname=shop password='{SECRET}'"
    with tool_host(compose_service(tmp_path), dsn) as host:
        argv = host.argv(["/usr/lib/postgresql/15/bin/pg_basebackup", "--dbname", host.login.dsn, "-D", "-"])
        assert argv[:2] == [str(tmp_path / "docker"), "exec"]
        assert argv[argv.index("--user") + 1] == "postgres"
        assert argv[argv.index("shop_postgres") + 1] == "pg_basebackup"  # the container's own
        assert not any(SECRET in a or "pa:ss" in a for a in argv)
        env_file = Path(argv[argv.index("--env-file") + 1])
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert env_file.read_text() == f"PGPASSWORD={SECRET}\n"
        assert "host=/var/run/postgresql" in host.login.dsn and "port=5433" in host.login.dsn
    assert not env_file.exists()


def test_inside_dsn_uses_the_socket_and_drops_the_password() -> None:
    inner, password = inside_dsn("host=db.example port=6543 user=u dbname=d password=x sslmode=require", None)
    assert password == "x"
    assert "password" not in inner and "sslmode" not in inner and "db.example" not in inner
    assert "host=/var/run/postgresql" in inner and "port=5432" in inner and "dbname=d" in inner


def test_env_file_refuses_a_value_with_a_line_break() -> None:
    with pytest.raises(ConfigError, match="line break"):
        env_file_text({"PGPASSWORD": "a\nB=c"})
