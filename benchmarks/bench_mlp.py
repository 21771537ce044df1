"""MLP benchmark: 784-256-128-10 ReLU, Adam 1e-3, batch 128, cross-entropy, 60,000 synthetic samples.

nnctl is driven through its own trainer (config -> build_experiment -> train), on a continued
experiment: one warm-up epoch, then --epochs timed epochs (train.epochs = 1 per call); the figure is
the median seconds per epoch. Data loading and build are timed separately and not included.

If torch is importable, the same network (same initial weights, copied from nnctl's), data and
batching run in PyTorch CPU: default, and again from the same start with set_flush_denormal(True).

    python benchmarks/bench_mlp.py [--epochs 3] [--json] [--quick] [--no-torch] [--profile]

Ratio = torch seconds / nnctl seconds: above 1 means nnctl is faster.
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy (or torch) is loaded
from _common import (
    add_sides,
    emit,
    epoch_line,
    fmt_ratio,
    machine_info,
    nnctl_epoch,
    parser,
    profile_top,
    timed,
    torch_mlp,
)

import os
import sys
import tempfile
import time

import numpy as np

from nnctl.build import build_experiment
from nnctl.config import config_from_dict
from nnctl.train.trainer import train
# isort: on

SEED = 0
FEATURES, HIDDEN, CLASSES = 784, (256, 128), 10
BATCH, LR = 128, 1e-3


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-like inputs uniform in [0, 1]; labels = argmax of a fixed random linear teacher on the
    centred inputs (learnable, roughly balanced classes)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, FEATURES), dtype=np.float32)
    teacher = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    y = np.argmax((x - 0.5) @ teacher, axis=1).astype(np.int64)
    return x, y


def mlp_config(path: str) -> dict:
    return {
        "name": "bench_mlp",
        "seed": SEED,
        "dtype": "float32",
        "data": {
            "source": {"type": "npz", "path": path, "task": "classification"},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
            "normalize": "none",
        },
        "model": {
            "layers": [
                {"type": "dense", "units": HIDDEN[0], "activation": "relu", "init": "he_uniform"},
                {"type": "dense", "units": HIDDEN[1], "activation": "relu", "init": "he_uniform"},
                {"type": "dense", "units": CLASSES, "init": "he_uniform"},
            ]
        },
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": LR},
        "train": {"epochs": 1, "batch_size": BATCH, "shuffle": True, "monitor": "train_loss"},
        "output": {"checkpoint_every": 1_000_000},
    }


def initial_weights(experiment) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (fan_in, fan_out), bias) of each dense layer as NumPy arrays, copied before any training."""
    host = experiment.device.to_host
    return [
        (host(layer.params["weight"]).copy(), host(layer.params["bias"]).copy())
        for layer in experiment.network.layers
        if "weight" in layer.params
    ]


# --- the two sides, each as "run one epoch" -------------------------------------------------------


def torch_epoch(
    torch, x: np.ndarray, y: np.ndarray, init, losses: list[float], flush_denormal: bool, device="cpu", batch=BATCH
):
    """One epoch of the same network in PyTorch: randperm per epoch, index_select batches, Adam. On `device`
    (benchmarks/bench_gpu.py: cuda) the data and the order live there."""
    nn = torch.nn
    model = torch_mlp(torch, init, nn.ReLU).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    X = torch.from_numpy(x).to(device)
    Y = torch.from_numpy(y.astype(np.int64)).to(device)
    n = len(X)
    gen = torch.Generator().manual_seed(SEED)

    def one_epoch():
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            xb = X.index_select(0, idx)
            yb = Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)

    if not flush_denormal:
        return one_epoch

    def one_epoch_flushed():
        torch.set_flush_denormal(True)
        try:
            one_epoch()
        finally:
            torch.set_flush_denormal(False)  # it sets the FPU mode of this thread, which numpy uses too

    return one_epoch_flushed


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument(
        "--epochs", type=int, default=3, help="timed epochs per side after one warm-up epoch (median reported)"
    )
    p.add_argument("--samples", type=int, default=None, help="number of samples (default 60000; 2048 with --quick)")
    args = p.parse_args()
    samples = args.samples or (2048 if args.quick else 60_000)
    epochs = 1 if args.quick else max(1, args.epochs)
    torch = None if args.no_torch else _common.import_torch()

    t0 = time.perf_counter()
    x, y = make_data(samples)
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        path = os.path.join(tmp, "mlp.npz")
        np.savez(path, x=x, y=y)
        del x, y
        config = config_from_dict(mlp_config(path))
        t1 = time.perf_counter()
        experiment = build_experiment(config)
        build_s = time.perf_counter() - t1
    data_s = time.perf_counter() - t0 - build_s
    init = initial_weights(experiment)
    split = experiment.splits["train"]

    # Sides run interleaved (one epoch each per round) so that drift in the machine's speed hits all alike.
    sides: dict[str, tuple] = {}
    losses: dict[str, list[float]] = {"nnctl": [], "torch": [], "torch_flush_denormal": []}
    sides["nnctl"] = nnctl_epoch(experiment, losses["nnctl"])
    if torch is not None:
        sides["torch"] = torch_epoch(torch, split.x, split.y, init, losses["torch"], flush_denormal=False)
        sides["torch_flush_denormal"] = torch_epoch(
            torch, split.x, split.y, init, losses["torch_flush_denormal"], flush_denormal=True
        )
    steal = _common.StealMeter()
    warmup = {name: timed(fn) for name, fn in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(epochs):
        for name, fn in sides.items():
            times[name].append(timed(fn))

    result = {
        "benchmark": "mlp",
        "workload": {
            "layers": [FEATURES, *HIDDEN, CLASSES],
            "activation": "relu",
            "optimizer": f"adam lr={LR}",
            "loss": "cross_entropy",
            "batch_size": BATCH,
            "samples": samples,
            "timed_epochs": epochs,
            "dtype": "float32",
            "method": "one warm-up epoch per side, then timed epochs interleaved round-robin; nnctl on a "
            "continued experiment with train.epochs=1 per train() call",
        },
        "machine": machine_info(torch),
        "steal_fraction": steal.fraction(),
        "data_s": data_s,
        "build_s": build_s,
    }
    add_sides(result, ("nnctl", "torch", "torch_flush_denormal"), times, warmup, losses, sides)

    def line(label: str, res: dict | None) -> str:
        return epoch_line(label, res, 22)

    m = result["machine"]
    steal_txt = "n/a" if result["steal_fraction"] is None else f"{100 * result['steal_fraction']:.0f} %"
    lines = [
        f"MLP 784-256-128-10 relu, adam {LR}, batch {BATCH}, {samples} samples, float32, {m['threads']} threads"
        f"  [{m['cpu']}; numpy {m['numpy']}, torch {m['torch']}; CPU steal during timing {steal_txt}]",
        f"(data generation + npz write {data_s:.2f} s; nnctl load + build {build_s:.2f} s; not timed below)",
        line("nnctl", result["nnctl"]),
        line("torch", result["torch"]),
        line("torch flush_denormal", result["torch_flush_denormal"]),
        f"ratio torch/nnctl: {fmt_ratio(result['ratio_torch_over_nnctl'])} default, "
        f"{fmt_ratio(result['ratio_torch_flush_denormal_over_nnctl'])} with flush_denormal  (>1: nnctl faster)",
    ]
    emit(result, args.json, lines)

    if args.profile:
        print(
            f"--- cProfile of one nnctl epoch (continued experiment) ---\n{profile_top(lambda: train(experiment))}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
