"""`drkit --version` and shell completion (issue 18, item 7)."""

from __future__ import annotations

from drkit import __version__
from tests.conftest import run_drkit


def test_version_flag() -> None:
    result = run_drkit("--version")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"drkit {__version__}"
    assert run_drkit("--output", "json", "version").json() == {"version": __version__}


def test_completion_scripts_and_the_candidates_they_ask_for() -> None:
    for shell in ("bash", "zsh", "fish"):
        script = run_drkit("completion", shell)
        assert script.code == 0, script.stderr
        assert "_DRKIT_COMPLETE=complete_" in script.stdout and "drkit" in script.stdout
    # What the bash script runs when the operator types `drkit back<TAB>`:
    asked = run_drkit(env={"_DRKIT_COMPLETE": "complete_bash", "COMP_WORDS": "drkit back", "COMP_CWORD": "1"})
    assert asked.code == 0, asked.stderr
    assert asked.stdout.split() == ["backup", "backups"]
    options = run_drkit(
        env={"_DRKIT_COMPLETE": "complete_bash", "COMP_WORDS": "drkit restore --target-t", "COMP_CWORD": "2"}
    )
    assert options.stdout.split() == ["--target-time"]


def test_an_unknown_shell_is_refused() -> None:
    result = run_drkit("completion", "tcsh")
    assert result.code == 2 and "use bash, zsh, fish" in result.stderr
