"""The equivalence cases: each trained on one process and on 2 MPI ranks (`python -m tests.parallel.cases OUT`
under mpiexec trains them all in one MPI world, rank 0 writing OUT/<case>/...; `... OUT CASE ...` only those)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_MLP = [
    "dtype=float64",
    "train.epochs=3",
    "data.split={train: 0.7, val: 0.3, test: 0.0}",
    "model.layers=[{type: dense, units: 32, activation: tanh}, {type: dense, units: 16, activation: relu}, {type: dense, units: 10}]",
    "metrics=[accuracy, f1, log_loss]",
]
# 1257 training digits at batch 50: a ragged last batch (7 samples: 3 and 4 per rank) and odd slices (25/25).
CASES: dict[str, tuple[str, list[str]]] = {
    "mlp_sgd_momentum": (
        "configs/digits.yaml",
        [
            *_MLP,
            "train.batch_size=50",
            "optimizer={type: sgd, lr: 0.05, momentum: 0.9, nesterov: true}",
            "regularizers=[{type: l2, rate: 0.001}]",
        ],
    ),
    "mlp_class_weight": (  # a weighted loss: ranks weigh their gradients by their share of the batch's weight
        "configs/digits.yaml",
        [
            *_MLP,
            "train.batch_size=50",
            "optimizer={type: adam, lr: 0.003}",
            "loss={type: cross_entropy, class_weight: {'0': 5.0, '3': 0.2, '7': 2.5}}",
        ],
    ),
    "sample_weight_regression": (  # per-row weights from a csv column
        "configs/diabetes.yaml",
        [
            "dtype=float64",
            "train.epochs=3",
            "train.batch_size=21",
            "metrics=[mse, r2]",
            "data.source={type: csv, path: {out}/data/weighted.csv, target: y, sample_weight: w}",
        ],
    ),
    "mlp_adam": ("configs/digits.yaml", [*_MLP, "train.batch_size=37", "optimizer={type: adam, lr: 0.003}"]),
    "cnn_adam": (
        "configs/digits_cnn.yaml",
        [
            "dtype=float64",
            "train.epochs=3",
            "train.batch_size=45",
            "data.train_fraction=0.4",
            "model.layers[5].rate=0.0",
            "optimizer={type: adam, lr: 0.003}",
        ],
    ),
    "sync_batch_norm": (
        "configs/deep_sigmoid_batchnorm.yaml",
        [
            "dtype=float64",
            "train.epochs=3",
            "train.batch_size=33",
            "model.layers=[{type: dense, units: 32}, {type: batch_norm, sync: true}, sigmoid, {type: dense, units: 32}, "
            "{type: batch_norm, sync: true}, sigmoid, {type: dense, units: 10}]",
        ],
    ),
    "mapped_npy": (  # features memory-mapped: each rank reads only its slices
        "configs/digits.yaml",
        [*_MLP, "train.batch_size=64", "data.source={type: npy, x: {out}/data/x.npy, y: {out}/data/y.npy}"],
    ),
    "regression": (
        "configs/diabetes.yaml",
        ["dtype=float64", "train.epochs=3", "train.batch_size=21", "metrics=[mse, mae, r2]"],
    ),
}


def write_data(out: Path) -> None:
    """The digits as .npy files (for the memory-mapped case)."""
    import numpy as np

    from nnctl import registry

    data = registry.DATA_SOURCES.create({"type": "digits"}).load(np.random.default_rng(0))
    (out / "data").mkdir(exist_ok=True)
    np.save(out / "data" / "x.npy", data.x.astype(np.float32))
    np.save(out / "data" / "y.npy", data.y)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = x @ [1.0, -2.0, 0.5, 0.0] + rng.normal(0, 0.1, 300)
    w = rng.uniform(0.1, 3.0, 300)
    rows = ["a,b,c,d,w,y"] + [",".join(f"{v:.6f}" for v in (*xi, wi, yi)) for xi, wi, yi in zip(x, w, y, strict=True)]
    (out / "data" / "weighted.csv").write_text("\n".join(rows) + "\n")


def train_all(out: Path, comm=None, names=None) -> dict[str, Path]:
    from nnctl.session import run_training

    if comm is None or comm.rank == 0:
        write_data(out)
    if comm is not None:
        comm.barrier()
    runs = {}
    for name, (config, overrides) in CASES.items():
        if names and name not in names:
            continue
        overrides = [o.replace("{out}", str(out)) for o in overrides]
        result = run_training(ROOT / config, overrides, runs_dir=out / name, comm=comm)
        assert result.status == "completed", (name, result.status)
        runs[name] = result.run_dir
    return runs


if __name__ == "__main__":
    from nnctl.parallel import world

    train_all(Path(sys.argv[1]), world(), sys.argv[2:])  # OUT [CASE ...]: all cases, or those named
