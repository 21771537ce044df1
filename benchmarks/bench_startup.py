"""Start-up time of nnctl commands: the minimum wall time of N fresh processes each, against the floor
of importing what every command needs anyway (`python -c "import numpy"`).

    python benchmarks/bench_startup.py [--runs 10] [--json]

Targets (issue "Fast where users actually run it"): `nnctl --help` <= 0.2 s, `nnctl train --help`
<= 0.3 s, `nnctl list layers` <= 0.5 s, `nnctl validate configs/iris.yaml` <= 0.6 s. The minimum of
several runs is the figure: start-up has no warm state to amortise, and the minimum is the least
disturbed by other processes (the load average is printed beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NNCTL = (
    [sys.executable, "-m", "nnctl"]
    if not (Path(sys.executable).parent / "nnctl").exists()
    else [str(Path(sys.executable).parent / "nnctl")]
)
COMMANDS = {
    "python -c 'import numpy' (floor)": ([sys.executable, "-c", "import numpy"], None),
    "nnctl --help": ([*NNCTL, "--help"], 0.2),
    "nnctl train --help": ([*NNCTL, "train", "--help"], 0.3),
    "nnctl list layers": ([*NNCTL, "list", "layers"], 0.5),
    "nnctl validate configs/iris.yaml": ([*NNCTL, "validate", "configs/iris.yaml"], 0.6),
}


def minimum_seconds(argv: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()[-500:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    results = {name: (minimum_seconds(argv, args.runs), target) for name, (argv, target) in COMMANDS.items()}
    if args.json:
        print(json.dumps({"runs": args.runs, "load": load, "seconds": {k: v[0] for k, v in results.items()}}))
        return
    print(f"start-up, minimum of {args.runs} runs each (load average {load:.2f}, {os.cpu_count()} cores)")
    for name, (seconds, target) in results.items():
        verdict = "" if target is None else f"target <= {target:.1f} s: {'met' if seconds <= target else 'NOT met'}"
        print(f"  {name:38s} {seconds:6.3f} s  {verdict}")


if __name__ == "__main__":
    main()
