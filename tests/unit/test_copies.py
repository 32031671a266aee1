"""copies(): how many complete copies of each service's newest backup, where, and 3-2-1."""

from __future__ import annotations

from pathlib import Path

import yaml

from drkit.config.loader import load_stack
from drkit.domain.stack import RepositorySpec
from drkit.engines.core.workspace import open_workspace
from drkit.engines.ops.copies import copies, count_copies
from drkit.engines.ops.sync import sync
from tests.unit.test_sync import _backup

REPOS = {
    "local": RepositorySpec("local", "fs", path="/r"),
    "nas": RepositorySpec("nas", "fs", path="/n"),
    "far": RepositorySpec("far", "fs", path="/f", offsite=True),
    "bucket": RepositorySpec("bucket", "s3", bucket="b"),
}


def test_the_rule_needs_three_copies_two_repositories_and_one_off_site() -> None:
    newest = {"postgres": "b2", "redis": "r1", "hasura": None}
    holdings = {
        "local": {"postgres": frozenset({"b1", "b2"}), "redis": frozenset({"r1"})},
        "nas": {"postgres": frozenset({"b2"}), "redis": frozenset({"r1"})},
        "bucket": {"postgres": frozenset({"b1"})},  # an older backup does not count
    }
    by = {c.service: c for c in count_copies(newest, holdings, REPOS)}
    assert (by["postgres"].copies, by["postgres"].repositories) == (3, ("local", "nas"))
    assert by["postgres"].offsite == () and not by["postgres"].rule_321
    assert by["hasura"].copies == 1 and by["hasura"].backup_id is None and not by["hasura"].rule_321

    holdings["bucket"] = {"postgres": frozenset({"b2"})}
    by = {c.service: c for c in count_copies(newest, holdings, REPOS)}
    assert by["postgres"].copies == 4 and by["postgres"].offsite == ("bucket",) and by["postgres"].rule_321
    assert not by["redis"].rule_321  # 3 copies on 2 repositories, none off-site

    holdings["far"] = {"redis": frozenset({"r1"})}  # an fs repository marked offsite: true
    by = {c.service: c for c in count_copies(newest, holdings, REPOS)}
    assert by["redis"].offsite == ("far",) and by["redis"].rule_321


def test_live_data_and_two_repositories_one_off_site_are_enough_one_repository_is_not() -> None:
    holdings = {"local": {"x": frozenset({"1"})}, "bucket": {"x": frozenset({"1"})}}
    (only,) = count_copies({"x": "1"}, holdings, REPOS)
    assert (only.copies, only.rule_321) == (3, True)
    (one,) = count_copies({"x": "1"}, {"bucket": holdings["bucket"]}, REPOS)
    assert (one.copies, one.rule_321) == (2, False)


def test_copies_reads_the_repositories_of_the_stack(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "stack": "sandbox",
        "state_dir": str(tmp_path / "state"),
        "repository": "local",
        "repositories": {
            "local": {"type": "fs", "path": str(tmp_path / "repo")},
            "nas": {"type": "fs", "path": str(tmp_path / "nas")},
            "far": {"type": "fs", "path": str(tmp_path / "far"), "offsite": True},
        },
        "services": {"redis": {"kind": "redis", "url": "redis://127.0.0.1:1"}},
    }
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(config))
    ws = open_workspace(load_stack(tmp_path / "stack.yaml"))
    _backup(ws, "20261125T020000Z-rdb")
    (before,) = copies(ws)
    assert (before.copies, before.rule_321) == (2, False)
    sync(ws)
    (synced,) = copies(ws)
    assert (synced.backup_id, synced.copies, synced.repositories) == (
        "20261125T020000Z-rdb",
        4,
        ("far", "local", "nas"),
    )
    assert synced.offsite == ("far",) and synced.rule_321
    _backup(ws, "20261126T020000Z-rdb")  # newer, not yet copied
    (newer,) = copies(ws)
    assert (newer.backup_id, newer.copies, newer.rule_321) == ("20261126T020000Z-rdb", 2, False)
