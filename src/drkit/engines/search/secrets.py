"""Embedder API keys when a rebuild copies the live index's settings into a fresh index.

Meilisearch (v1.8+) masks every embedder's `apiKey` when it returns settings (e.g.
"My suXXXXXX..."; `drkit.adapters.meilisearch.mask_secret`). Written back as read, the mask
would become the rebuilt index's key: its embeddings would fail, and the swap would put that
index live. So drkit never PATCHes a masked key: it refuses, naming the embedders, unless
each key is given by reference (`--embedder-key NAME=env:VAR`, or file:/path,
dotenv:/path#KEY), and a key given must mask to what the live index shows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from drkit.adapters.meilisearch import mask_secret, masked_embedder_keys
from drkit.config.secrets import SecretMissing, resolve_secret
from drkit.domain.errors import UsageError

KEY_HINT = (
    "give each embedder's key by reference: drkit search rebuild INDEX "
    "--embedder-key NAME=env:VAR (or file:/path, dotenv:/path#KEY)"
)


def settings_to_copy(settings: dict[str, Any], index: str, keys: Mapping[str, str]) -> dict[str, Any]:
    """`settings` (read from the live `index`) with each masked embedder key replaced by the
    key its reference in `keys` (embedder name -> reference) resolves to."""
    masked = masked_embedder_keys(settings)
    unknown = sorted(set(keys) - set(masked))
    if unknown:
        raise UsageError(
            f"index {index!r} has no embedder {_names(unknown)} with an apiKey to give "
            f"(with one: {_names(sorted(masked)) or 'none'})"
        )
    missing = sorted(set(masked) - set(keys))
    if missing:
        shown = ", ".join(f"{n!r} ({masked[n]})" for n in missing)
        raise UsageError(
            f"index {index!r}: MeiliSearch shows the apiKey of embedder {shown} only masked; "
            "drkit will not copy a masked key into the rebuilt index (its embeddings would fail)",
            hint=KEY_HINT,
        )
    out = copy.deepcopy(settings)
    for name, ref in sorted(keys.items()):
        key = _resolve(name, ref)
        if mask_secret(key) != masked[name]:
            raise UsageError(
                f"the key {ref} gives for embedder {name!r} is not the one index {index!r} has: "
                f"it would show as another mask than {masked[name]}"
            )
        out["embedders"][name]["apiKey"] = key
    return out


def parse_key_refs(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`NAME=REF` options (never a key itself: REF is env:, file: or dotenv:)."""
    refs: dict[str, str] = {}
    for item in items:
        name, sep, ref = item.partition("=")
        if not sep or not name or ref.partition(":")[0] not in ("env", "file", "dotenv"):
            given = f" {name}=..." if sep else ""  # never echo what may be a key
            raise UsageError(
                f"--embedder-key{given}: expected NAME=env:VAR, "
                "NAME=file:/path or NAME=dotenv:/path#KEY (never the key itself)"
            )
        refs[name] = ref
    return refs


def _resolve(name: str, ref: str) -> str:
    try:
        return resolve_secret(ref)
    except SecretMissing as exc:
        raise UsageError(f"the key for embedder {name!r} ({ref}): {exc}") from exc


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
