"""Every GPU check of issue 18 in one run, results written to OUT_DIR/gpu_checks.json and gpu_checks.md.

1. components: every registered layer (forward, backward, eval), loss, optimizer, regularizer and metric,
   on the device vs the CPU in float64 (nnctl/devicecheck.py over tests/device_cases.py): relative error
   < 1e-6 on every output, gradient, buffer and state; a registered component without a case fails.
2. trainings: configs/digits_cnn.yaml and the MLP benchmark (bench_mlp.py's data with a test split) trained
   on the device and on the CPU from the same seed: test accuracy within 0.5 points.
3. benchmark: benchmarks/bench_gpu.py (nnctl CUDA vs PyTorch CUDA, s/epoch and ratios).

    python benchmarks/gpu_checks.py OUT_DIR                 # on a machine with a GPU: device cuda
    python benchmarks/gpu_checks.py OUT_DIR --device cpu --quick   # self-test: CPU vs CPU, small, no GPU

The exit status is 0 when every check passed, 1 otherwise (2: the device is missing).
"""

from __future__ import annotations

# isort: off
import _common  # first: thread settings and the repository on sys.path
from _common import machine_info

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bench_mlp
from nnctl import devicecheck
from nnctl.build import build_experiment
from nnctl.config import config_from_dict, load_config
from nnctl.device import CPU, resolve_device
from nnctl.errors import ConfigError
from nnctl.train.evaluate import score_split
from nnctl.train.trainer import train
from tests.device_cases import TABLES, device_cases
# isort: on

TOLERANCE = 1e-6  # relative error, float64
ACCURACY_POINTS = 0.5  # test accuracy, GPU vs CPU
HERE = Path(__file__).resolve().parent


def check_components(device) -> dict:
    missing = {kind: devicecheck.missing_cases(kind, TABLES[kind]) for kind in TABLES}
    records = devicecheck.check_all(device_cases(), CPU, device, dtype=np.float64)
    for record in records:
        record["passed"] = record["max"] < TOLERANCE
    failed = [f"{r['kind']}/{r['case']}" for r in records if not r["passed"]]
    return {
        "tolerance": TOLERANCE,
        "cases": len(records),
        "missing_cases": {k: v for k, v in missing.items() if v},
        "failed": failed,
        "worst": max(records, key=lambda r: r["max"])["case"] if records else None,
        "records": records,
        "passed": not failed and not any(missing.values()),
    }


def _train_and_score(raw_or_path, device, overrides: list[str]) -> dict:
    if isinstance(raw_or_path, dict):
        config = config_from_dict(raw_or_path)
    else:
        config = load_config(raw_or_path, overrides)
    experiment = build_experiment(config, device=device)
    t0 = time.perf_counter()
    result = train(experiment)
    device.synchronize()
    seconds = time.perf_counter() - t0
    scores = score_split(experiment, "test")
    return {"status": result.status, "epochs": result.epochs, "seconds": round(seconds, 3), **scores["metrics"]}


def mlp_check_config(path: str, epochs: int, threads: int | str = "auto") -> dict:
    raw = bench_mlp.mlp_config(path)
    raw["data"]["split"] = {"train": 0.8, "val": 0.1, "test": 0.1}
    raw["train"].update(epochs=epochs, monitor="val_loss", threads=threads)
    raw["metrics"] = ["accuracy"]
    return raw


def check_trainings(device, quick: bool) -> dict:
    runs = {}
    # CPU against CPU (the self-test) must agree bit for bit, so both runs get one BLAS thread: with
    # threads: auto each run picks its count from the machine's load at its start, and a different count
    # sums in another order (on a busy machine the quick MLP's two runs ended 0.98 points apart).
    threads = 1 if quick or device.kind == "cpu" else "auto"
    with tempfile.TemporaryDirectory(prefix="nnctl-gpu-checks-") as tmp:
        x, y = bench_mlp.make_data(2048 if quick else 60_000)
        path = os.path.join(tmp, "mlp.npz")
        np.savez(path, x=x, y=y)
        cnn = ["train.epochs=2"] if quick else []
        cases = {
            "digits_cnn.yaml": (str(_common.ROOT + "/configs/digits_cnn.yaml"), cnn + [f"train.threads={threads}"]),
            "mlp_benchmark": (mlp_check_config(path, 1 if quick else 5, threads), []),
        }
        for name, (source, overrides) in cases.items():
            cpu = _train_and_score(source, CPU, overrides)
            dev = _train_and_score(source, device, overrides)
            diff = 100 * abs(dev["accuracy"] - cpu["accuracy"])
            runs[name] = {
                "cpu": cpu,
                "device": dev,
                "accuracy_difference_points": round(diff, 3),
                "passed": cpu["status"] == dev["status"] == "completed" and diff <= ACCURACY_POINTS,
            }
    return {"tolerance_points": ACCURACY_POINTS, "runs": runs, "passed": all(r["passed"] for r in runs.values())}


def check_benchmark(device, quick: bool) -> dict:
    if device.kind != "cuda":  # self-test: bench_gpu must refuse cleanly without a GPU
        proc = subprocess.run(
            [sys.executable, str(HERE / "bench_gpu.py"), "--quick", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        return {"skipped": "no GPU", "exit_code": proc.returncode, "message": message, "passed": proc.returncode == 2}
    import bench_gpu

    result = bench_gpu.run(quick=quick)
    result["lines"] = bench_gpu.report_lines(result)
    # the figures are reported, not judged: a missed speed target does not fail the correctness checks
    result["passed"] = True
    return result


def markdown(results: dict) -> str:
    comp, trn, bench = results["components"], results["trainings"], results["benchmark"]
    lines = [
        f"# nnctl GPU checks: {results['device']} vs cpu ({results['date']})",
        "",
        f"all passed: **{results['passed']}**",
        "",
        f"## components ({comp['cases']} cases, float64, relative error < {comp['tolerance']:g})",
        f"passed: {comp['passed']}; failed: {comp['failed'] or 'none'}; missing cases: {comp['missing_cases'] or 'none'}",
        "",
        "| kind | case | max relative error |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r['kind']} | {r['case']} | {r['max']:.2e} |" for r in comp["records"]]
    lines += ["", f"## trainings (test accuracy within {trn['tolerance_points']} points)", ""]
    lines += ["| config | cpu accuracy | device accuracy | difference (points) | cpu s | device s | passed |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in trn["runs"].items():
        lines.append(
            f"| {name} | {r['cpu']['accuracy']:.4f} | {r['device']['accuracy']:.4f} | "
            f"{r['accuracy_difference_points']} | {r['cpu']['seconds']} | {r['device']['seconds']} | {r['passed']} |"
        )
    lines += ["", "## benchmark", ""]
    if "skipped" in bench:
        lines.append(f"skipped ({bench['skipped']}); bench_gpu.py exit {bench['exit_code']}: {bench['message']}")
    else:
        lines += [f"    {line}" for line in bench["lines"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir", type=Path, help="folder for gpu_checks.json and gpu_checks.md (created)")
    p.add_argument("--device", default="cuda", help="the device checked against the CPU (cpu: a self-test)")
    p.add_argument("--quick", action="store_true", help="small trainings and benchmark: a smoke test")
    args = p.parse_args()
    try:
        device = resolve_device(args.device)
    except ConfigError as exc:
        print(f"gpu_checks: {exc}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {
        "device": device.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "cupy": getattr(device.xp, "__version__", None) if device.kind == "cuda" else None,
        "cupy_tf32": os.environ.get("CUPY_TF32", "0"),
    }
    for name, check in (
        ("components", check_components),
        ("trainings", check_trainings),
        ("benchmark", check_benchmark),
    ):
        t0 = time.perf_counter()
        try:
            results[name] = check(device) if name == "components" else check(device, args.quick)
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check; the others still run
            import traceback

            results[name] = {
                "passed": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        results[name]["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"gpu_checks: {name}: {'passed' if results[name]['passed'] else 'FAILED'} ({results[name]['seconds']} s)")
    results["passed"] = all(results[name]["passed"] for name in ("components", "trainings", "benchmark"))
    results["seconds"] = round(time.perf_counter() - started, 2)
    (args.out_dir / "gpu_checks.json").write_text(json.dumps(results, indent=1, default=float))
    try:
        (args.out_dir / "gpu_checks.md").write_text(markdown(results))
    except (KeyError, TypeError):  # a crashed check has no table; the JSON holds its error
        (args.out_dir / "gpu_checks.md").write_text(f"see gpu_checks.json: passed {results['passed']}\n")
    print(
        f"gpu_checks: {'all passed' if results['passed'] else 'SOME FAILED'}; wrote {args.out_dir}/gpu_checks.json, .md"
    )
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
