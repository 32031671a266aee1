"""Secrets are references (`env:NAME`, `file:/path`, `dotenv:/path/.env#KEY`), resolved when
loaded, never stored inline."""

from __future__ import annotations

import os
import re
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretMissing(Exception):
    pass


def resolve_secret(ref: str) -> str:
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretMissing(f"environment variable {name} is not set")
        return value
    if scheme == "file":
        try:
            return Path(name).read_text().strip()
        except FileNotFoundError as exc:
            raise SecretMissing(f"secret file {name} does not exist") from exc
        except PermissionError as exc:
            raise SecretMissing(f"secret file {name} is not readable") from exc
    if scheme == "dotenv":
        # dotenv:/path/to/.env#KEY: a value in an env file (nself keeps its secrets there)
        path, _, key = name.partition("#")
        try:
            values = parse_env_text(Path(path).read_text())
        except OSError as exc:
            raise SecretMissing(f"env file {path} is not readable") from exc
        if key not in values:
            raise SecretMissing(f"{key} is not set in {path}")
        return values[key]
    raise SecretMissing(f"unknown secret reference {ref!r}: use env:NAME, file:/path or dotenv:/path#KEY")


def parse_env_text(text: str) -> dict[str, str]:
    """KEY=VALUE lines as nself's safe loader reads them (no expansion, quotes stripped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.removeprefix("export ").partition("=")
        key = key.strip()
        if not _KEY.match(key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values
