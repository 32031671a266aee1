"""Pure parts of drills and recoveries: the monthly rotation, copy-back specifications, and
the state comparison that decides whether a drill's recovery gave everything back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drkit.domain.errors import UsageError
from drkit.engines.drills.run import rotation_for
from drkit.engines.drills.state import compare
from drkit.engines.runbooks.copy_back import parse_copy_back


@pytest.mark.parametrize(
    ("day", "scenario"),
    [
        (1, "db-corruption"),
        (7, "db-corruption"),
        (8, "service-redis"),
        (15, "data-loss"),
        (22, "full-outage"),
        (31, "full-outage"),
    ],
)
def test_the_monthly_rotation_follows_the_week_of_the_month(day: int, scenario: str) -> None:
    assert rotation_for(datetime(2026, 12, day, 3, 0, tzinfo=UTC)) == scenario


def test_copy_back_specifications() -> None:
    spec = parse_copy_back("nchat_messages where channel_id = 'c1'")
    assert (spec.schema, spec.table, spec.condition) == ("public", "nchat_messages", "channel_id = 'c1'")
    assert parse_copy_back("auth.users").describe() == "auth.users"
    assert parse_copy_back("t WHERE a in (select 1)").condition == "a in (select 1)"
    with pytest.raises(UsageError, match="TABLE where CONDITION"):
        parse_copy_back("drop table x; --")


def test_state_comparison_names_what_differs() -> None:
    before = {"postgres": {"public.t": [3, "aa"], "public.u": [1, "bb"]}, "redis": {"db0": 5}}
    after = {"postgres": {"public.t": [2, "cc"], "public.u": [1, "bb"]}, "redis": {"db0": 5}}
    diffs = compare(before, after)
    assert diffs["redis"] == []
    assert diffs["postgres"] == ['public.t: [3, "aa"] before, [2, "cc"] after']
    assert compare(before, {}) == {
        "postgres": ['public.t: [3, "aa"] before, null after', 'public.u: [1, "bb"] before, null after'],
        "redis": ["db0: 5 before, null after"],
    }
