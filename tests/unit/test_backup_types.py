"""`drkit backup --type T` for several services: what is refused before any backup starts is
exactly what no service could take (README: `drkit backup --type incremental` backs up every
service, PostgreSQL's part an incremental one; it was refused as "must be base or logical")."""

from __future__ import annotations

import pytest

from drkit.domain.errors import UsageError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.stack.backup import POSTGRES_TYPES, check_request

LOCAL = RuntimeSpec(type="local")
EVERY = [
    Service("postgres", "postgres", LOCAL, dsn="host=127.0.0.1"),
    Service("redis", "redis", LOCAL, url="redis://127.0.0.1:6379/0"),
    Service("search", "meilisearch", LOCAL, url="http://127.0.0.1:7700"),
]


@pytest.mark.parametrize("postgres_type", POSTGRES_TYPES)
def test_every_postgres_type_is_accepted_for_a_whole_stack(postgres_type: str) -> None:
    check_request(EVERY, postgres_type)  # no UsageError


def test_incremental_is_one_of_them() -> None:
    assert set(POSTGRES_TYPES) == {"base", "incremental", "logical"}


def test_a_type_postgres_cannot_take_is_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as refused:
        check_request(EVERY, "snapshot")
    assert "base, incremental or logical" in refused.value.message
    check_request(EVERY[2:], "snapshot")  # MeiliSearch alone takes a snapshot
