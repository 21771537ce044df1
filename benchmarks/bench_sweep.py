"""Sweep benchmark: a 3x3 grid (learning rate x hidden width) on the digits MLP, run with
--parallel 1 and --parallel 2 local worker processes; prints both wall times and their ratio.

Each worker gets a fair share of BLAS threads (cores // workers), so the two runs use the same
cores; the speed-up comes from running two trials at once. The script also checks that both runs
give identical trial results (trial seeds come from the parameters, not from the worker).

    python benchmarks/bench_sweep.py [--epochs 200] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SWEEP = """\
name: bench_sweep
base: {base}
set: [train.epochs={epochs}, output.checkpoint_every=1000]
objective: {{metric: accuracy, split: val}}
strategy: grid
space:
  optimizer.lr: [0.001, 0.003, 0.01]
  model.layers[0].units: [64, 128, 256]
"""


def run(sweep_file: Path, runs_dir: Path, parallel: int, threads: int | None = None):
    from nnctl.sweep.executors import ProcessExecutor
    from nnctl.sweep.runner import Runner, prepare_sweep

    sweep = prepare_sweep(sweep_file, runs_dir)
    started = time.perf_counter()
    executor = ProcessExecutor(parallel, threads=threads)
    outcome = Runner(sweep, executor).run()
    seconds = time.perf_counter() - started
    assert outcome.exit_code == 0, outcome.counts()
    results = [(r["trial"], r["seed"], r["objective"], r["epochs"]) for r in outcome.records]
    return seconds, executor.threads, results


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--epochs", type=int, default=200)
    args.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best time of each counts")
    args.add_argument("--json", action="store_true", help="one JSON document on stdout")
    opts = args.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "bench_sweep.yaml"
        sweep_file.write_text(SWEEP.format(base=ROOT / "configs" / "digits.yaml", epochs=opts.epochs))
        times: dict[str, list[float]] = {"p1": [], "p2": [], "p1_t1": []}
        seen = []
        for _ in range(opts.repeats):  # interleaved, best of N: robust to other load on the machine
            for key, parallel, threads in (("p1", 1, None), ("p2", 2, None), ("p1_t1", 1, 1)):
                seconds, used, results = run(sweep_file, Path(tmp) / "runs", parallel, threads)
                times[key].append(seconds)
                seen.append(results)
                if key == "p1":
                    threads1 = used
                elif key == "p2":
                    threads2 = used
        serial, parallel, serial1 = min(times["p1"]), min(times["p2"]), min(times["p1_t1"])
    report = {
        "grid": "3x3 (optimizer.lr x model.layers[0].units), digits MLP",
        "epochs": opts.epochs,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "parallel_1_s": round(serial, 2),
        "parallel_2_s": round(parallel, 2),
        "ratio": round(serial / parallel, 2),
        "parallel_1_one_blas_thread_s": round(serial1, 2),
        "ratio_vs_one_blas_thread": round(serial1 / parallel, 2),
        "blas_threads_per_worker": {"parallel_1": threads1, "parallel_2": threads2},
        "same_results": all(r == seen[0] for r in seen),
        "all_times_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
    }
    if opts.json:
        print(json.dumps(report, indent=2))
        return
    print(f"sweep benchmark: {report['grid']}, {opts.epochs} epochs per trial, {report['cores']} cores")
    print(f"  --parallel 1: {serial:7.2f} s   ({threads1} BLAS threads per worker)")
    print(f"  --parallel 2: {parallel:7.2f} s   ({threads2} BLAS threads per worker)")
    print(f"  ratio (parallel 1 / parallel 2): {serial / parallel:.2f}x")
    print(f"  --parallel 1 with 1 BLAS thread: {serial1:.2f} s; ratio to --parallel 2: {serial1 / parallel:.2f}x")
    print(f"  identical trial results: {'yes' if report['same_results'] else 'NO'}  (best of {opts.repeats})")


if __name__ == "__main__":
    main()
