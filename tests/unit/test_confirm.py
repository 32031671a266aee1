"""Destructive commands ask; without a terminal they refuse (exit 2) and say, on one line, the
whole of what they would have done (the recovery's refusal said only "this recovery will:")."""

from __future__ import annotations

import io

import pytest

from drkit.cli.context import Options
from drkit.domain.errors import UsageError


def test_without_a_terminal_the_refusal_says_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    question = "this recovery will:\n  - stop hasura\n  - move /srv/pg aside\nproceed?"
    with pytest.raises(UsageError) as refused:
        Options().confirm(question)
    assert refused.value.message == (
        "this recovery will: stop hasura; move /srv/pg aside; proceed? "
        "Refusing without --yes (no terminal to ask on)"
    )
    assert refused.value.exit_code == 2


def test_a_one_line_question_is_said_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(UsageError, match=r"^replace the live data of redis\? Refusing without --yes"):
        Options().confirm("replace the live data of redis?")


def test_yes_answers_without_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    Options(yes=True).confirm("this recovery will:\n  - stop hasura\nproceed?")
