"""YAML with positions: find the line of any key path, so errors name file, line and key."""

from __future__ import annotations

from typing import Any

import yaml


class PositionedYaml:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ValueError(f"{path}{line}: not valid YAML: {problem}") from exc

        duplicate = _first_duplicate(self.root)
        if duplicate is not None:
            key, first, again = duplicate
            raise ValueError(f"{path}:{again}: {key}: given twice (first on line {first}); keep one")

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


def _first_duplicate(node: yaml.Node | None, path: str = "") -> tuple[str, int, int] | None:
    """(dotted key, first line, repeated line) of the first key given twice in a mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            if key.value in seen:
                return name, seen[key.value], line
            seen[key.value] = line
            found = _first_duplicate(value, name)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _first_duplicate(item, f"{path}.{i}")
            if found:
                return found
    return None
