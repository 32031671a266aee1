"""A service run as a systemd unit, driven through `systemctl`.

`--no-ask-password` everywhere: drkit runs unattended and must fail, not wait for a
polkit prompt. Pause and unpause send SIGSTOP/SIGCONT to every process of the unit. A fence masks the unit
(disables it when a unit file in /etc prevents masking) so a reboot does not bring it back.
"""

from __future__ import annotations

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.proc import Completed, find_tool, last_line, run
from drkit.runtimes.port import Fenced

COMMAND_TIMEOUT = 60.0


class SystemdRuntime:
    def __init__(self, spec: RuntimeSpec, *, name: str = "") -> None:
        if not spec.unit:
            what = f"service {name}" if name else "a systemd runtime"
            raise UsageError(f"{what} needs runtime.unit (e.g. postgresql@15-main.service)")
        self.unit = spec.unit
        self.spec = spec

    @property
    def description(self) -> str:
        return f"systemd unit {self.unit}"

    def _systemctl(self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> Completed:
        systemctl = find_tool("systemctl", self.spec.bin_dir)
        result = run([systemctl, "--no-ask-password", *args], timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise OperationError(
                f"systemctl {args[0]} {self.unit} failed: {last_line(result.stderr, result.stdout)}"
            )
        return result

    def start(self) -> None:
        self._systemctl("start", self.unit)

    def stop(self, timeout: float = 60.0) -> None:
        # systemctl waits for the unit's own TimeoutStopSec; bound our wait as well.
        self._systemctl("stop", self.unit, timeout=timeout + 30)

    def is_running(self) -> bool:
        """`is-active` prints `active` and exits 0 only for a running unit."""
        result = self._systemctl("is-active", self.unit, check=False)
        return result.returncode == 0 and result.stdout.strip() == "active"

    def pause(self) -> None:
        self._systemctl("kill", "--signal=SIGSTOP", self.unit)

    def unpause(self) -> None:
        self._systemctl("kill", "--signal=SIGCONT", self.unit)

    def fence(self, timeout: float, *, immediate: bool) -> Fenced:
        """Mask the unit first (nothing, not even a dependency or a reboot, starts it again;
        `disable` when its unit file lives in /etc), then stop it (SIGKILL to all its
        processes first when `immediate`), then see it inactive with no main process."""
        masked = self._systemctl("mask", self.unit, check=False)
        if masked.returncode == 0:
            lasting, undo = "unit masked", f"systemctl unmask {self.unit}"
        else:
            self._systemctl("disable", self.unit)
            lasting, undo = "unit disabled (it could not be masked)", f"systemctl enable {self.unit}"
        if immediate:
            self._systemctl("kill", "--signal=SIGKILL", self.unit, check=False)
        self.stop(timeout)
        state = self.show("ActiveState", "MainPID")
        gone = state.get("ActiveState") in ("inactive", "failed") and state.get("MainPID") == "0"
        return Fenced("killed" if immediate else "stopped", lasting, gone, undo)

    def show(self, *properties: str) -> dict[str, str]:
        """`systemctl show -p P ...` as a dict."""
        args = [a for p in properties for a in ("-p", p)]
        out = self._systemctl("show", *args, self.unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
