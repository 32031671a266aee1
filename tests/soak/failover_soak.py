"""The failover and Patroni namespace tests, N times in a row with every CPU kept busy by a
spinning process: `make failover-soak` (RUNS=5 by default). Not part of `make test`: the
project's rule is that nothing lands while a test flakes, and this is how the failover tests
show they do not. Prints each run's outcome and time; exits 1 when any run failed.

    .venv/bin/python tests/soak/failover_soak.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/integration/test_failover.py", "tests/integration/test_patroni.py"]
SPIN = "while True: pass"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--busy", type=int, default=os.cpu_count() or 2, help="spinning processes (one per CPU)"
    )
    parser.add_argument("tests", nargs="*", default=TESTS)
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
    outcomes = []
    try:
        for n in range(1, args.runs + 1):
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            spent = time.monotonic() - started
            summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
            outcomes.append(proc.returncode)
            load = os.getloadavg()[0]
            print(f"run {n}/{args.runs}: exit {proc.returncode} in {spent:.0f}s, load {load:.1f}: {summary}")
            if proc.returncode != 0:
                print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    passed = sum(1 for rc in outcomes if rc == 0)
    print(f"{passed} of {len(outcomes)} runs passed with {args.busy} CPU(s) kept busy")
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
