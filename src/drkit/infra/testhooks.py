"""Named points where a fault test can stop drkit, to kill it there for real.

`DRKIT_TEST_HOLD=POINT=MARKER` makes drkit, on reaching POINT, create the file MARKER and
wait (at most HOLD_LIMIT seconds) to be killed. Tests read MARKER with a deadline, then
`kill -9`; nothing else reads this variable, and without it a point costs one dict lookup.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

ENV = "DRKIT_TEST_HOLD"
HOLD_LIMIT = 300.0


def hold(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec or "=" not in spec:
        return
    wanted, marker = spec.split("=", 1)
    if wanted != point:
        return
    Path(marker).write_text(f"{os.getpid()}\n")
    threading.Event().wait(HOLD_LIMIT)  # the test kills us here; if it does not, go on
