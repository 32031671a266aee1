"""Every `drkit ...` command line in README.md, docs/ and contrib/ names a command drkit has,
with options that command (or drkit itself) takes: documentation that drifted from the
command line (`recover service NAME --restore`, `drkit drill report`) fails here, not in front
of an operator. Positional arguments and values are not checked; `drkit` in prose is not a
command line (only a code span that starts with it, or a code-block line where it starts a
command, after `$ `, `&&`, `|` or `(`). A placeholder where a command goes (COMMAND,
`<command>`) ends the check of its line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from drkit.cli.app import _register, app

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(p for p in (ROOT / "contrib").rglob("*") if p.is_file()),
    ]
)
VALUED_GLOBALS = {"--config", "-c", "--output", "-o"}
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# where a command starts inside a code-block line
STARTS = re.compile(r"(?:^\s*(?:\$\s+)?|&&\s*|\|\s*|\(\s*)drkit(?= )")
END = re.compile(r"\s(?:&&|\|\|?|;|#|>)|[)`]")


def command_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, the text after `drkit`) of each command line in a document."""
    for block in FENCE.finditer(text):
        first = text[: block.start()].count("\n") + 1
        for offset, line in enumerate(block.group(0).splitlines()[1:-1], 1):
            for start in STARTS.finditer(line):
                yield first + offset, _until_end(line[start.end() :])
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in re.finditer(r"`([^`\n]+)`", prose):
        code = span.group(1).strip().removeprefix("$ ")
        if code.startswith("drkit "):
            yield prose[: span.start()].count("\n") + 1, _until_end(code[len("drkit") :])


def _until_end(rest: str) -> str:
    end = END.search(rest)
    return rest[: end.start()] if end else rest


def _options(command: Any) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}


def problems_in(words: list[str], root: Any) -> list[str]:
    command, path, found, i = root, ["drkit"], [], 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in VALUED_GLOBALS:
            i += 1
        elif word.startswith("-") and not word.startswith("--") and len(word) > 2:
            continue  # a value such as -2h
        elif word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in _options(root) | _options(command):
                found.append(f"{' '.join(path)}: no option {name}")
        elif hasattr(command, "commands"):
            if re.fullmatch(r"<.*>|[A-Z][A-Z_]*", word):
                break  # a placeholder for a command
            if word not in command.commands:
                found.append(f"{' '.join(path)}: no command {word!r} (known: {', '.join(command.commands)})")
                break
            command = command.commands[word]
            path.append(word)
    return found


def documented() -> list[tuple[str, int, str]]:
    out = []
    for path in FILES:
        for line, rest in command_lines(path.read_text(errors="replace")):
            out.append((str(path.relative_to(ROOT)), line, rest))
    return out


def test_documents_hold_command_lines() -> None:
    assert len(documented()) > 200  # the extraction finds them (a broken pattern finds none)


@pytest.mark.parametrize("where", sorted({f for f, _, _ in documented()}))
def test_every_documented_command_line_is_one_drkit_takes(where: str) -> None:
    _register()
    root = typer.main.get_command(app)
    wrong = []
    for path, line, rest in documented():
        if path != where:
            continue
        words = [w for w in rest.split() if not re.fullmatch(r"\[.*|.*\]|\|", w)]
        wrong += [f"{path}:{line}: drkit{rest}: {p}" for p in problems_in(words, root)]
    assert not wrong, "\n".join(wrong)


def help_examples(command: Any, path: str = "drkit") -> Iterator[tuple[str, str]]:
    """(command path, the text after `drkit`) of each example in each command's --help (from
    its `Example` on: the prose before it names drkit too)."""
    text = command.help or ""
    examples = text[text.index("Example") :] if "Example" in text else ""
    for part in re.split(r";|\n", examples):
        for start in re.finditer(r"(?:^|\s|\$\s)drkit(?= )", part):
            yield path, _until_end(part[start.end() :].replace("\\", " "))
    for name, sub in getattr(command, "commands", {}).items():
        yield from help_examples(sub, f"{path} {name}")


def test_every_help_example_is_a_command_line_drkit_takes() -> None:
    _register()
    root = typer.main.get_command(app)
    examples = list(help_examples(root))
    assert len(examples) > 40
    wrong = []
    for path, rest in examples:
        words = [w for w in rest.split() if not re.fullmatch(r"\[.*|.*\]|\|", w)]
        wrong += [f"{path} --help: drkit{rest}: {p}" for p in problems_in(words, root)]
    assert not wrong, "\n".join(wrong)
