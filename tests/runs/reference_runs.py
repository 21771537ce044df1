"""Reference trainings whose checkpoints must stay byte-identical across refactors of the middle.

`OPENBLAS_NUM_THREADS=1 python -m tests.runs.reference_runs > tests/runs/reference_hashes.json` records the SHA-256 of
every checkpoint and of metrics.csv (without its wall-clock `seconds` column) on the commit
before a redesign; `test_reference_checkpoints.py` trains the same cases and compares.
The fingerprint says where the hashes hold: another numpy, Python or CPU gives other bits, and so
does another BLAS thread count (OpenBLAS splits some products differently), hence one thread.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "spiral": ("configs/spiral.yaml", ["train.epochs=20"]),
    "digits_cnn": ("configs/digits_cnn.yaml", ["train.epochs=2"]),
    "gru_order": ("configs/gru_order.yaml", ["train.epochs=2"]),
    "overfit_sine_dropout": ("configs/overfit_sine_dropout.yaml", ["train.epochs=300"]),
    "iris_early_plateau": (
        "configs/iris.yaml",
        [
            "train.epochs=200",
            "train.monitor=val_loss",
            "train.early_stopping={patience: 8, min_delta: 0.0005, restore_best: true}",
            "schedule={type: reduce_on_plateau, patience: 3, factor: 0.5}",
            "output.keep_last=2",
            "output.checkpoint_min_seconds=0",
        ],
    ),
}


def fingerprint() -> dict:
    return {
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def metrics_without_seconds(path: Path) -> str:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    drop = rows[0].index("seconds")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:drop] + r[drop + 1 :] for r in rows])
    return out.getvalue()


def run_hashes(run_dir: Path) -> dict[str, str]:
    hashes = {
        f"checkpoints/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run_dir / "checkpoints").glob("*.npz"))
    }
    hashes["metrics.csv"] = hashlib.sha256(metrics_without_seconds(run_dir / "metrics.csv").encode()).hexdigest()
    return hashes


def train_case(name: str, runs_dir: Path) -> Path:
    from nnctl.session import run_training

    config, overrides = CASES[name]
    result = run_training(ROOT / config, overrides, runs_dir=runs_dir)
    assert result.status == "completed", result.status
    return Path(result.run_dir)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = {name: run_hashes(train_case(name, Path(tmp))) for name in CASES}
    json.dump({"fingerprint": fingerprint(), "cases": cases}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
