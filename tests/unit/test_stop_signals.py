"""Stop signals are never passed on ignored (infra/interrupt.py): drkit started as a script's
background job (SIGINT ignored) takes them back, and what it starts, during a deferred cleanup
too, can be asked to stop. Real processes: a Python child started with SIGINT ignored, and a
shell it starts that sends itself SIGINT (killed by it, or left running if it was ignored)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

CHILD = r"""
import json, signal, subprocess
from drkit.infra.interrupt import deferred, take_signals

def grandchild():  # a shell that cannot undo an ignored SIGINT (POSIX), sending it to itself
    return subprocess.run(["sh", "-c", "trap - INT; kill -INT $$; echo survived"]).returncode

seen = {"inherited": grandchild(), "ignored_at_start": signal.getsignal(signal.SIGINT) == signal.SIG_IGN}
take_signals()
seen["taken"] = grandchild()
seen["handler"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
with deferred():
    seen["deferred"] = grandchild()
seen["after"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
print(json.dumps(seen))
"""


def test_an_inherited_ignored_sigint_is_taken_back_and_never_passed_on() -> None:
    # `trap '' INT; exec ...`: what a non-interactive shell does for a job started with `&`
    out = subprocess.run(
        ["sh", "-c", 'trap "" INT; exec "$0" -c "$1"', sys.executable, CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["ignored_at_start"] is True and seen["inherited"] == 0  # the old state: survived
    assert seen["taken"] == -signal.SIGINT and seen["handler"] is True
    assert seen["deferred"] == -signal.SIGINT  # a cleanup's tools are not started deaf
    assert seen["after"] is True
