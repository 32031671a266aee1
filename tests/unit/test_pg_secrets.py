"""PostgreSQL passwords stay off command lines and out of messages: the client tools get a
connection string without one and a 0600 passfile (removed after); connection strings that
libpq cannot parse, or servers that refuse, are reported without the password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drkit.adapters.postgres.basebackup import pg_basebackup_args
from drkit.adapters.postgres.client import connect, describe, make_dsn, passwords_in, tool_login
from drkit.adapters.postgres.dump import dump_args, globals_args
from drkit.adapters.postgres.receivewal import create_slot_args, receivewal_args
from drkit.domain.errors import ConfigError, OperationError
from drkit.infra.ports import free_port

SECRET = "pa:ss\\w0rd S3CRET"


def test_tool_login_moves_the_password_into_a_private_passfile() -> None:
    dsn = make_dsn("host=127.0.0.1 port=5432 user=backup dbname=app", password=SECRET)
    assert "S3CRET" in dsn  # what psycopg gets in-process keeps it
    with tool_login(dsn) as login:
        assert "S3CRET" not in login.dsn and "password" not in login.dsn
        assert "user=backup" in login.dsn and "dbname=app" in login.dsn
        path = str(login.env["PGPASSFILE"])
        assert login.env["PGPASSWORD"] is None  # an inherited PGPASSWORD would win over the file
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        # libpq's format: host:port:db:user:password, with \\ and : escaped.
        assert Path(path).read_text() == "*:*:*:*:pa\\:ss\\\\w0rd S3CRET\n"
        for args in (
            dump_args(login, None),
            globals_args(login, None),
            pg_basebackup_args(login, None, "fast", "drkit x"),
            create_slot_args(login, None, "drkit"),
            receivewal_args(login, None, "drkit", Path("/tmp/spool")),
        ):
            assert not any("S3CRET" in a for a in args), args
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_tool_login_without_a_password_changes_nothing() -> None:
    with tool_login("host=127.0.0.1 user=postgres dbname=app") as login:
        assert login.env == {}
        assert "user=postgres" in login.dsn


def test_a_password_in_the_dsn_itself_is_moved_too() -> None:
    with tool_login("postgresql://backup:S3CRET@127.0.0.1:5432/app") as login:
        assert "S3CRET" not in login.dsn
        assert Path(str(login.env["PGPASSFILE"])).read_text() == "*:*:*:*:S3CRET\n"


def test_a_password_with_a_line_break_goes_through_the_environment() -> None:
    with tool_login(make_dsn("host=h user=u", password="two\nlines")) as login:
        assert "two" not in login.dsn
        assert login.env == {"PGPASSWORD": "two\nlines", "PGPASSFILE": None}


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://backup:bad%zzS3CRET@127.0.0.1/app",  # libpq echoes the token
        "host=127.0.0.1 user=backup password=se S3CRET dbname=app",  # libpq echoes "S3CRET"
    ],
)
def test_an_unparsable_dsn_is_reported_without_its_password(dsn: str) -> None:
    with pytest.raises(ConfigError, match="not a valid PostgreSQL connection string") as caught:
        make_dsn(dsn)
    assert "S3CRET" not in str(caught.value) and "se" not in str(caught.value).split(":", 1)[1].split()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "S3CRET" not in describe(dsn)


def test_a_refused_connection_is_reported_without_the_password() -> None:
    dsn = make_dsn(f"host=127.0.0.1 port={free_port()} user=backup dbname=app", password="S3CRET")
    with (
        pytest.raises(OperationError, match="cannot connect to PostgreSQL at 127.0.0.1") as caught,
        connect(dsn),
    ):
        pass
    assert "S3CRET" not in str(caught.value)


def test_passwords_in_finds_them_in_every_form() -> None:
    assert "S3CRET" in passwords_in("postgresql://u:S3CRET@h/db")
    assert "S 3" in passwords_in("postgresql://u:S%203@h/db")
    assert "S3 CRET" in passwords_in("host=h password='S3 CRET'")
    assert "S3CRET" in passwords_in("postgresql://h/db?password=S3CRET&sslmode=disable")
