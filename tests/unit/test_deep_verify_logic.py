"""Deep verify's pure parts: count comparison, tool output parsing, what --deep refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from drkit.adapters.postgres.amcheck import amcheck_args, corrupt_relations, password_env
from drkit.adapters.postgres.basebackup import damaged_pages
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.checks import Status
from drkit.domain.errors import UsageError
from drkit.engines.postgres.rowcheck import Recorded, compare_counts
from drkit.engines.stack.verify import verify_backup


def statuses(results: list[Any]) -> dict[str, Status]:
    return {r.name: r.status for r in results}


def test_exact_counts_must_be_equal_and_estimates_only_near() -> None:
    recorded = Recorded({"d:s.small": 10, "d:s.big": 100_000}, frozenset({"d:s.big"}))
    ok = compare_counts(recorded, {"d:s.small": 10, "d:s.big": 110_000})
    assert statuses(ok) == {"row counts": Status.OK}
    assert "1 big table(s) within 20%" in ok[0].detail

    off = compare_counts(recorded, {"d:s.small": 11, "d:s.big": 200_000})
    assert statuses(off) == {"rows d:s.small": Status.FAILED, "rows d:s.big": Status.WARNING}
    assert "estimate 100000" in off[1].detail


def test_exact_counts_of_a_busy_backup_differ_as_a_warning_and_extra_tables_are_named() -> None:
    busy = Recorded({"d:s.t": 5}, settled=False)
    results = compare_counts(busy, {"d:s.t": 6, "d:s.new": 1})
    assert statuses(results) == {"rows d:s.t": Status.WARNING, "rows d:s.new": Status.WARNING}
    missing = compare_counts(Recorded({"d:s.t": 5}), {})
    assert missing[0].status is Status.FAILED and "no table" in missing[0].detail


def test_small_estimates_get_an_absolute_slack() -> None:
    assert statuses(compare_counts(Recorded({"d:s.t": 0}, frozenset({"d:s.t"})), {"d:s.t": 900})) == {
        "row counts": Status.OK
    }


def test_amcheck_output_names_each_damaged_relation_once() -> None:
    out = (
        'btree index "nchat.public.t_pkey":\n'
        '    ERROR:  high key invariant violated for index "t_pkey"\n'
        'heap table "nchat.public.t", block 3, offset 2:\n'
        "    line pointer redirection to item at offset 9999 exceeds maximum\n"
        'heap table "nchat.public.t", block 4, offset 1:\n'
    )
    assert corrupt_relations(out) == ["btree index nchat.public.t_pkey", "heap table nchat.public.t"]


def test_amcheck_keeps_the_password_off_its_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from drkit.adapters.postgres import amcheck

    monkeypatch.setattr(amcheck, "find_tool", lambda name, bin_dir=None: f"/bin/{name}")
    dsn = "host=127.0.0.1 port=5433 user=app dbname=nchat password=s3cret"
    args = amcheck_args(None, dsn)
    assert "s3cret" not in " ".join(args)
    assert args[args.index("--port") + 1] == "5433" and "--heapallindexed" in args
    assert password_env(dsn) == {"PGPASSWORD": "s3cret"}


def test_checksum_failures_of_pg_basebackup_name_the_files() -> None:
    stderr = (
        'WARNING:  checksum verification failed in file "./base/5/16384", block 2: calculated 1B3A '
        "but expected C387\npg_basebackup: error: checksum error occurred\n"
    )
    assert "./base/5/16384 block 2" in damaged_pages(stderr)
    assert damaged_pages("pg_basebackup: error: connection refused") == ""


@pytest.mark.parametrize(
    ("kind", "words"), [(BackupKind.DUMP, "MeiliSearch"), (BackupKind.METADATA, "Hasura")]
)
def test_deep_is_refused_where_it_means_nothing(kind: BackupKind, words: str) -> None:
    now = datetime.now(UTC)
    m = Manifest("id", "stack", "svc", kind, now, now, (), {})
    with pytest.raises(UsageError, match=words) as refused:
        verify_backup(None, None, m, deep=True, drkit_argv=[])  # type: ignore[arg-type]
    assert int(refused.value.exit_code) == 2


def test_a_postgres_without_the_amcheck_extension_is_a_warning_not_corruption(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from drkit.adapters.postgres import amcheck
    from drkit.infra.proc import Completed

    monkeypatch.setattr(amcheck, "find_tool", lambda name, bin_dir=None: f"/bin/{name}")
    out = 'pg_amcheck: error: ERROR:  extension "amcheck" is not available\nDETAIL: Could not open ...'
    monkeypatch.setattr(amcheck, "run", lambda *a, **k: Completed((), 1, "", out))
    assert amcheck.run_amcheck(None, "host=x").status is Status.WARNING
    damaged = 'btree index "d.public.t_pkey":\n    ERROR:  item order invariant violated\n'
    monkeypatch.setattr(amcheck, "run", lambda *a, **k: Completed((), 2, damaged, ""))
    found = amcheck.run_amcheck(None, "host=x")
    assert found.status is Status.FAILED and "d.public.t_pkey" in found.detail
