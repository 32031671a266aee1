"""Secrets are references (`env:NAME`, `file:/path`), resolved when loaded, never stored inline."""

from __future__ import annotations

import os
from pathlib import Path


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
    raise SecretMissing(f"unknown secret reference {ref!r}: use env:NAME or file:/path")
