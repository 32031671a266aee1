"""The one subprocess runner (infra.proc.stream_tool / Child), on small real commands: the
consumer gets the tool's stdout; a timeout or a failing consumer kills the tool and its
process group; a failed tool is one ToolError with its last stderr line; stderr is kept
bounded and read as it comes (a chatty tool never blocks)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drkit.domain.errors import ToolError
from drkit.infra.proc import Child, secret_file, stream_tool
from drkit.infra.wait import wait_for


def read_all(read: Callable[[int], bytes]) -> bytes:
    chunks = []
    while chunk := read(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet (it runs no more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def pid_from(path: Path) -> int:
    # The shell creates the file before it writes the pid: an empty file is "not yet" (None).
    text = wait_for(
        lambda: (path.read_text().strip() or None) if path.exists() else None, timeout=60, what=f"{path}"
    )
    return int(text)


def test_the_consumer_gets_all_of_stdout_and_its_result_is_returned() -> None:
    script = "printf 'hello '; echo 'warning: chatter' >&2; printf world"
    assert stream_tool(["sh", "-c", script], read_all, timeout=30) == b"hello world"


def test_a_failed_tool_is_a_tool_error_with_its_last_stderr_line() -> None:
    script = "echo 'first line' >&2; echo 'pg_dump: error: the real reason' >&2; exit 3"
    with pytest.raises(ToolError, match=r"^sh failed: pg_dump: error: the real reason$"):
        stream_tool(["sh", "-c", script], read_all, timeout=30)


def test_a_timeout_kills_the_tool_and_its_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # A grandchild in the same group: killing only the direct child would leave it running.
    script = 'echo "started, waiting" >&2; sleep 60 & echo $! > "$1"; wait'
    with pytest.raises(ToolError, match=r"^sh timed out after 1s and was killed: started, waiting$"):
        stream_tool(["sh", "-c", script, "sh", str(pidfile)], read_all, timeout=1)
    grandchild = pid_from(pidfile)
    wait_for(lambda: gone(grandchild), timeout=10, what="the grandchild to be killed")


def test_a_failing_consumer_kills_the_tool_and_its_error_propagates(tmp_path: Path) -> None:
    pidfile = tmp_path / "tool"

    def consume(read: Callable[[int], bytes]) -> None:
        assert read(4) == b"y\ny\n"
        raise ValueError("the sink is full")

    started = time.monotonic()
    with pytest.raises(ValueError, match="the sink is full"):
        stream_tool(["sh", "-c", 'echo $$ > "$1"; exec yes', "sh", str(pidfile)], consume, timeout=60)
    # Killed when the consumer failed, not when the 60 s timeout ran out.
    assert time.monotonic() - started < 50
    assert gone(pid_from(pidfile))


def test_a_tool_killed_by_a_signal_says_so() -> None:
    with pytest.raises(ToolError, match=r"^sh was killed by signal 9: about to die$"):
        stream_tool(["sh", "-c", "echo 'about to die' >&2; kill -9 $$"], read_all, timeout=30)


def test_stderr_is_read_as_it_comes_and_kept_bounded() -> None:
    # 1 MiB of stderr (far more than a pipe holds) before stdout: a runner that read stderr
    # only at the end would deadlock here until the timeout.
    script = "head -c 1048576 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'the last words' >&2; echo out"
    child = Child(["sh", "-c", script], keep=4096)
    assert child.proc.wait(timeout=30) == 0
    child.stderr.join()
    text = child.stderr.text()
    assert len(text.encode()) <= 4096
    assert text.endswith("the last words\n")
    assert child.last_error() == "the last words"


def test_a_missing_tool_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="cannot start no-such-tool-here"):
        stream_tool(["/nonexistent/no-such-tool-here"], read_all, timeout=5)


def test_child_stop_asks_first_then_kills(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = "trap 'echo bye >&2; exit 0' INT; echo $$ > \"$1\"; while :; do sleep 0.05; done"
    polite = Child(["sh", "-c", script, "sh", str(ready)])
    try:
        pid_from(ready)
        assert polite.stop(signal.SIGINT, grace=30) == 0  # generous: a loaded machine is slow
        assert polite.last_error() == "bye"
    finally:
        polite.kill()  # never leave it looping if an assertion failed
    ready.unlink()
    stubborn = Child(["sh", "-c", "trap '' INT; echo $$ > \"$1\"; exec sleep 60", "sh", str(ready)])
    pid_from(ready)
    # Killed, not waited out: `sleep 60` left alone would exit 0.
    assert stubborn.stop(signal.SIGINT, grace=0.5) == -signal.SIGKILL


def test_secret_file_is_private_and_removed() -> None:
    with secret_file(b"s3cret", prefix="drkit-test-") as path:
        assert Path(path).read_bytes() == b"s3cret"
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))
