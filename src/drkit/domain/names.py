"""Names that come from a repository (a manifest, a listing) and end up on this host's disk:
each must be a plain file name, joined to a directory the configuration names."""

from __future__ import annotations

from drkit.domain.errors import IntegrityError


def is_plain_name(name: str) -> bool:
    """A file name without directories: safe to join to a data directory."""
    return bool(name) and "/" not in name and "\x00" not in name and name not in (".", "..")


def require_plain_name(name: str, what: str) -> str:
    """`name`, or IntegrityError naming `what` when it is not a plain file name."""
    if not is_plain_name(name):
        raise IntegrityError(
            f"{what} {name!r} is not a plain file name: a restore writes only inside the directory "
            "the configuration names; refusing (nothing was touched)"
        )
    return name
