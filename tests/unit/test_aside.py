"""The one move-aside mechanism (drkit.infra.aside): names never reused whatever the clock, a
roll-back that always ends with the old data at the live path, a ledger that lets the next
run undo a killed one, and the listing `drkit check` shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.domain.errors import OperationError
from drkit.infra.aside import in_use, kept, move_aside, roll_back, settle, unfinished

NOW = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
EARLIER = datetime(2026, 11, 30, 7, 0, 0, tzinfo=UTC)


def data_dir(root: Path, marker: str) -> Path:
    live = root / "data"
    live.mkdir()
    (live / "PG_VERSION").write_text("15\n")
    (live / "marker").write_text(marker)
    return live


def test_two_moves_in_the_same_second_get_two_names(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "first")
    one = move_aside(live, "before-restore", now=NOW)
    data_dir(tmp_path, "second")
    two = move_aside(live, "before-restore", now=NOW)
    assert one.path != two.path and one.path and two.path
    assert (one.path / "marker").read_text() == "first"
    assert (two.path / "marker").read_text() == "second"
    assert not live.exists()


def test_a_clock_gone_back_never_reuses_a_name(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "first")
    one = move_aside(live, "before-restore", now=NOW)
    data_dir(tmp_path, "second")
    two = move_aside(live, "before-restore", now=EARLIER)
    data_dir(tmp_path, "third")
    three = move_aside(live, "before-restore", now=EARLIER)
    assert len({one.path, two.path, three.path}) == 3
    assert [(a.path / "marker").read_text() for a in (one, two, three) if a.path] == [
        "first",
        "second",
        "third",
    ]


def test_two_failed_restores_in_a_row_each_end_with_the_old_data_back(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "good")
    for attempt in range(2):  # the second used to meet data.failed-restore left by the first
        aside = move_aside(live, "before-restore", now=NOW)
        live.mkdir()
        (live / "half").write_text(f"half-written restore {attempt}")
        left = roll_back(aside, now=NOW)
        assert left is None
        assert (live / "marker").read_text() == "good"
        assert not (live / "half").exists()
    assert [k.path for k in kept(live)] == []  # nothing left beside it


def test_roll_back_when_the_restore_never_created_the_live_directory(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "good")
    aside = move_aside(live, "before-restore", now=NOW)
    roll_back(aside, now=NOW)
    assert (live / "marker").read_text() == "good"


def test_nothing_to_move_rolls_back_to_nothing(tmp_path: Path) -> None:
    live = tmp_path / "data"
    aside = move_aside(live, "before-restore", now=NOW)
    assert aside.path is None
    live.mkdir()
    (live / "half").write_text("x")
    roll_back(aside, now=NOW)
    assert not live.exists()


def test_inside_moves_every_entry_but_earlier_asides_and_rolls_back(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "PG_VERSION").write_text("16")
    (volume / "base").mkdir()
    (volume / "base" / "1").write_text("rows")
    earlier = move_aside(volume, "before-restore", now=EARLIER, inside=True)
    (volume / "PG_VERSION").write_text("16 again")
    aside = move_aside(volume, "before-restore", now=NOW, inside=True)
    assert aside.path and earlier.path
    assert sorted(p.name for p in volume.iterdir()) == sorted([earlier.path.name, aside.path.name])
    (volume / "PG_VERSION").write_text("half")
    (volume / ".drkit-restoring").mkdir()  # a staging folder of the failed restore
    roll_back(aside, now=NOW)
    assert (volume / "PG_VERSION").read_text() == "16 again"
    assert sorted(p.name for p in volume.iterdir()) == sorted(["PG_VERSION", earlier.path.name])


def test_inside_with_named_entries_leaves_the_others(tmp_path: Path) -> None:
    redis = tmp_path / "redis"
    redis.mkdir()
    (redis / "dump.rdb").write_text("old rdb")
    (redis / "redis.conf").write_text("conf")
    aside = move_aside(redis, "before-restore", now=NOW, inside=True, only=("dump.rdb", "appendonlydir"))
    assert aside.path and (aside.path / "dump.rdb").read_text() == "old rdb"
    assert (redis / "redis.conf").exists()
    (redis / "dump.rdb").write_text("new rdb")
    roll_back(aside, now=NOW)
    assert (redis / "dump.rdb").read_text() == "old rdb" and (redis / "redis.conf").exists()


def test_the_ledger_lets_the_next_run_undo_a_killed_replacement(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "good")
    ledger = tmp_path / "state" / "replacing.json"
    move_aside(live, "before-restore", now=NOW, ledger=ledger, facts={"was_running": "yes"})
    live.mkdir()
    (live / "half").write_text("x")  # ... and the process was killed here
    found = unfinished(ledger)
    assert found is not None
    aside, state = found
    assert state == "replacing" and aside.fact("was_running") == "yes"
    roll_back(aside, now=NOW)
    assert (live / "marker").read_text() == "good"
    assert unfinished(ledger) is None


def test_a_kill_between_the_folder_and_the_rename_keeps_the_live_data(tmp_path: Path) -> None:
    """The ledger names an empty folder: the rename never happened; nothing is cleared."""
    live = data_dir(tmp_path, "good")
    ledger = tmp_path / "replacing.json"
    aside = move_aside(live, "before-restore", now=NOW, ledger=ledger)
    assert aside.path is not None
    aside.path.rename(live)  # as if the kill came before the rename: live intact,
    aside.path.mkdir()  # the empty folder made
    found = unfinished(ledger)
    assert found is not None
    roll_back(found[0], now=NOW)
    assert (live / "marker").read_text() == "good" and not aside.path.exists()


def test_a_kill_half_way_through_an_inside_move_is_undone_without_loss(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    for name in ("a", "b", "c"):
        (volume / name).write_text(name)
    ledger = tmp_path / "replacing.json"
    aside = move_aside(volume, "before-restore", now=NOW, inside=True, ledger=ledger)
    assert aside.path is not None
    moving = aside.path.with_name(aside.path.name + ".moving")
    aside.path.rename(moving)
    (moving / "c").rename(volume / "c")  # as if killed after moving a and b
    found = unfinished(ledger)
    assert found is not None
    roll_back(found[0], now=NOW)
    assert sorted(p.name for p in volume.iterdir()) == ["a", "b", "c"]


def test_started_replacements_are_settled_not_rolled_back(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "good")
    ledger = tmp_path / "replacing.json"
    aside = move_aside(live, "before-restore", now=NOW, ledger=ledger)
    in_use(aside)
    found = unfinished(ledger)
    assert found is not None and found[1] == "started"
    settle(found[0])
    assert unfinished(ledger) is None


def test_an_unreadable_ledger_is_an_error_naming_it(tmp_path: Path) -> None:
    ledger = tmp_path / "replacing.json"
    ledger.write_text("{not json")
    with pytest.raises(OperationError, match="replacing.json"):
        unfinished(ledger)


def test_kept_lists_every_aside_with_its_size_and_the_command_that_removes_it(tmp_path: Path) -> None:
    live = data_dir(tmp_path, "x" * 100)
    aside = move_aside(live, "before-restore", now=NOW)
    (tmp_path / "data.before-restore-20250101T000000Z").mkdir()  # an older drkit's name
    (tmp_path / "data.unrelated").mkdir()
    live.mkdir()
    found = kept(live)
    assert [k.path.name for k in found] == sorted(
        [aside.path.name if aside.path else "", "data.before-restore-20250101T000000Z"]
    )
    mine = next(k for k in found if k.path == aside.path)
    assert mine.size >= 103 and mine.remove == f"rm -rf -- {aside.path}"
    assert mine.to_dict()["bytes"] == mine.size


def test_moving_aside_fails_with_one_line_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename the filesystem refuses (permissions for a non-root user; as root, which no
    permission stops, the refusal is injected at the rename itself)."""
    live = data_dir(tmp_path, "good")

    def refused(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr("drkit.infra.aside.os.rename", refused)
    with pytest.raises(OperationError, match="cannot move .*data aside"):
        move_aside(live, "before-restore", now=NOW)
    assert (live / "marker").read_text() == "good"  # nothing lost


def test_a_ledger_of_another_directory_is_refused_untouched(tmp_path: Path) -> None:
    from drkit.infra.aside import undo_unfinished

    live = data_dir(tmp_path, "good")
    ledger = tmp_path / "replacing.json"
    aside = move_aside(live, "before-restore", now=NOW, ledger=ledger)
    stopped: list[bool] = []
    with pytest.raises(OperationError, match="not of"):
        undo_unfinished(ledger, now=NOW, stop=lambda: stopped.append(True), live=tmp_path / "elsewhere")
    assert stopped == [] and aside.path is not None and aside.path.exists()
    undone = undo_unfinished(ledger, now=NOW, stop=lambda: stopped.append(True), live=live)
    assert undone is not None and undone[1] == "undone"
    assert (live / "marker").read_text() == "good" and stopped == [True]
