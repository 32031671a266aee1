"""A hold point for tests: stop at a named step so a test can act there (kill -9, fill a disk).

`DRKIT_TEST_HOLD=STEP:DIR` makes `hold("STEP")` write `DIR/STEP.reached` (holding the
process id) and wait until `DIR/STEP.release` exists. Only tests set it; unset, a hold point
costs one environment lookup. Steps: see the `hold(...)` calls (restore: move-aside,
extract, start, recovery, promoted (recovery done, its WAL spool still there), clients
(accepted, before the start for clients); runbooks: before-STEP, after-STEP)."""

from __future__ import annotations

import os
from pathlib import Path

from drkit.infra.wait import wait_for

ENV = "DRKIT_TEST_HOLD"


def hold(step: str) -> None:
    name, _, directory = os.environ.get(ENV, "").partition(":")
    if name != step or not directory:
        return
    folder = Path(directory)
    (folder / f"{step}.reached").write_text(f"{os.getpid()}\n")
    release = folder / f"{step}.release"
    wait_for(release.exists, timeout=3600, what=f"{release} (test hold point)", max_interval=0.2)
