"""What is wrong with stack.yaml, in drkit's words: every problem pydantic found, each as
`file:line: key: what is wrong, what to do`, with "did you mean" for a near-miss key or value.

pydantic finds the problems (every one of them, not the first); this module only says them.
The schema itself (config/models.py) is walked to know which keys and values a place allows.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from drkit.config.models import Loc, Problems, StackModel
from drkit.config.yaml_source import PositionedYaml

PATTERNS = {
    r"^(env|file|dotenv):.+$": (
        "a secret is never written in stack.yaml: give a reference, env:NAME, file:/path or dotenv:/path#KEY"
    ),
    r"^[A-Za-z0-9_.-]+$": "use letters, digits, '_', '.' and '-' only",
    r"^[a-z0-9_]{1,63}$": "use 1 to 63 lowercase letters, digits and '_'",
    r"^[A-Za-z0-9_.:-]+$": "use letters, digits, '_', '.', ':' and '-' only",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "a docker volume name: letters, digits, '_', '.' and '-'",
    r"^/": "give an absolute path (starting with /)",
    r"^\d+[kM]?$": "a rate in bytes per second, like 100M or 500k",
}

TYPES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping (indented `key: value` lines)",
    "model_type": "must be a mapping (indented `key: value` lines)",
    "model_attributes_type": "must be a mapping (indented `key: value` lines)",
    "list_type": "must be a list (`[a, b]` or `- item` lines)",
}


def describe(exc: ValidationError, source: PositionedYaml) -> list[tuple[int | None, str]]:
    """(line, `file:line: key: what, what to do`) for every problem, in the file's order."""
    out: list[tuple[int | None, str]] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Problems):
            out += [located(source, (*loc, *where), message) for where, message in error.problems]
        else:
            out.append(located(source, loc, _message(err, loc)))
    return out


def located(source: PositionedYaml, loc: Loc, message: str) -> tuple[int | None, str]:
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = source.line_of(loc)
    where = f"{source.path}:{line}" if line else source.path
    return line, f"{where}: {key}: {message}"


def _message(err: ErrorDetails, loc: Loc) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if kind == "extra_forbidden":
        return unknown_key(str(loc[-1]), allowed_keys(loc[:-1]))
    if kind == "missing":
        return "required key is missing: add it"
    if kind == "literal_error":
        return _choice(given, allowed_values(loc))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{_shown(given)}: " + PATTERNS.get(pattern, f"does not have the expected form ({pattern})")
    if kind in TYPES:
        return f"{_shown(given)}: {TYPES[kind]}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }
        bound = next(iter(ctx.values()), "?")
        return f"{_shown(given)}: must be {words[kind]} {bound}"
    if kind == "too_short":
        return "is empty: it needs at least one entry"
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def unknown_key(key: str, allowed: Iterable[str]) -> str:
    options = sorted(allowed)
    near = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    if near:
        return f"unknown key: did you mean {near[0]!r}? (or remove it)"
    if options:
        return f"unknown key: remove it (keys here: {', '.join(options)})"
    return "unknown key: remove it"


def _choice(given: Any, options: tuple[str, ...]) -> str:
    listed = ", ".join(options)
    near = difflib.get_close_matches(str(given), options, n=1, cutoff=0.6) if options else []
    if near:
        return f"{_shown(given)} is not one of {listed}: did you mean {near[0]!r}?"
    return f"{_shown(given)} is not one of {listed}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def allowed_keys(loc: Loc) -> tuple[str, ...]:
    """The keys the mapping at `loc` may hold (empty when it is not a model)."""
    found = _unwrap(_type_at(loc))
    if isinstance(found, type) and issubclass(found, BaseModel):
        return tuple(found.model_fields)
    return ()


def allowed_values(loc: Loc) -> tuple[str, ...]:
    found = _unwrap(_type_at(loc))
    if get_origin(found) is Literal:
        return tuple(str(v) for v in get_args(found))
    return ()


def _type_at(loc: Loc) -> Any:
    current: Any = StackModel
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return None
    return current


def _unwrap(tp: Any) -> Any:
    """`X | None` -> X; `Annotated[X, ...]` -> X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
