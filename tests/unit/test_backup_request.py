"""What `drkit backup` refuses before any backup starts: the check and the engines that run
agree on PostgreSQL's backup types (`--type incremental` was refused by the check alone)."""

from __future__ import annotations

import pytest

from drkit.domain.errors import UsageError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.stack.backup import check_request

POSTGRES = Service("postgres", "postgres", RuntimeSpec(type="local"), dsn="postgresql://localhost/x")


@pytest.mark.parametrize("type_", ["base", "incremental", "logical"])
def test_every_postgres_backup_type_passes_the_check(type_: str) -> None:
    check_request([POSTGRES], type_)


def test_an_unknown_type_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(UsageError, match="base, incremental or logical"):
        check_request([POSTGRES], "snapshot")
