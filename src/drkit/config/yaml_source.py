"""YAML with positions: find the line of any key path, so errors name file, line and key.

A YAML syntax error is said where the mistake is, not where the parser gave up: an unclosed
quote makes PyYAML read on to the next quote, possibly hundreds of lines later, so the
quoted value that spans lines is named instead (a multi-line quoted value in stack.yaml is
always such a mistake)."""

from __future__ import annotations

from typing import Any

import yaml

from drkit.domain.errors import ConfigError

# PyYAML's words -> what is wrong and what to do.
SYNTAX = (
    ("found character '\\t'", "a tab character: indent with spaces only"),
    (
        "mapping values are not allowed here",
        "a `key: value` where none can start: check the indentation, or quote a value that holds ': '",
    ),
    ("expected <block end>", "this line's indentation does not match the lines above it"),
    ("could not find expected ':'", "a line that is not `key: value`: add the ':' or fix the indentation"),
    ("found undefined alias", "an alias (*name) with no anchor (&name): define the anchor first"),
    ("found unexpected end of stream", "the file ends inside a value: close its quote or bracket"),
    ("did not find expected ',' or ']'", "a list in [brackets] that is not closed: add the ']'"),
    ("did not find expected ',' or '}'", "a mapping in {braces} that is not closed: add the '}'"),
)


class PositionedYaml:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(_syntax_error(text, path, exc)) from exc
        duplicates = [
            f"{path}:{again}: {key}: given twice (first on line {first}): keep one"
            for key, first, again in _duplicates(self.root)
        ]
        if duplicates:
            raise ConfigError(_summary(path, duplicates), problems=tuple(duplicates))

    def data(self) -> Any:
        if self.root is None:
            return {}
        return yaml.SafeLoader("").construct_document(self.root)

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        """1-based line of the deepest node on `loc` that exists (the key itself when it does)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == str(part):
                        line = key.start_mark.line + 1
                        node = value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _summary(path: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{path}: {len(problems)} problems"


def _syntax_error(text: str, path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    unclosed = _unclosed_quote(text)
    if unclosed is not None:
        line, key, quote, ends = unclosed
        name = f"{key}: " if key else ""
        reads = f"line {ends}" if ends else "the end of the file"
        return (
            f"{path}:{line}: {name}not valid YAML: the {quote} opened on this line is not closed on it "
            f"(YAML reads on to {reads}): close it on line {line}"
        )
    problem = str(getattr(exc, "problem", None) or exc)
    said = next((words for found, words in SYNTAX if problem.startswith(found)), problem)
    where = f"{path}:{mark.line + 1}" if mark is not None else path
    return f"{where}: not valid YAML: {said}"


def _unclosed_quote(text: str) -> tuple[int, str, str, int | None] | None:
    """(line, key, which quote, line it runs to or None: the end) of the first quoted value
    that spans lines; None when there is none."""
    key = ""
    previous: Any = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken):
                if isinstance(previous, yaml.KeyToken):
                    key = str(token.value)
                start, end = token.start_mark.line, token.end_mark.line
                if token.style in ('"', "'") and end > start:
                    return start + 1, key, _quote_name(token.style), end + 1
            previous = token
    except yaml.YAMLError as exc:
        context = getattr(exc, "context", None) or ""
        mark = getattr(exc, "context_mark", None)
        if "quoted scalar" in context and mark is not None:
            name = _quote_name(text[mark.index]) if mark.index < len(text) else "quote"
            return mark.line + 1, key, name, None
    return None


def _quote_name(style: str) -> str:
    return 'double quote (")' if style == '"' else "single quote (')"


def _duplicates(node: yaml.Node | None, path: str = "") -> list[tuple[str, int, int]]:
    """(dotted key, first line, repeated line) of every key given twice in a mapping."""
    found: list[tuple[str, int, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            if key.value in seen:
                found.append((name, seen[key.value], line))
            else:
                seen[key.value] = line
            found += _duplicates(value, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicates(item, f"{path}.{i}")
    return found
