"""CNN benchmark: conv3x3(1->32, same)-relu-maxpool2-conv3x3(32->64, same)-relu-maxpool2-dense(128)-relu-dense(10),
28x28 inputs, 10,000 synthetic samples, batch 64, SGD with momentum 0.9, cross-entropy.

nnctl is driven through its own trainer (config -> build_experiment -> train) on a continued
experiment: one warm-up epoch, then --epochs timed epochs (train.epochs = 1 per call); the figure is
the median seconds per epoch, with the peak memory (RSS) of the process. If torch is importable, the
same network (same initial weights, copied from nnctl's), data and batching run in PyTorch CPU.

    python benchmarks/bench_cnn.py [--epochs 3] [--json] [--quick] [--no-torch] [--profile]

Ratio = torch seconds / nnctl seconds: above 1 means nnctl is faster (issue 14's target is a ratio
of at least 1 / 1.2 = 0.83, i.e. nnctl within 1.2x of PyTorch's time). The header names numpy's BLAS
kernel: OPENBLAS_CORETYPE=Haswell on an AVX-512 machine halves nnctl's GEMM speed, not PyTorch's.
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy (or torch) is loaded
from _common import add_sides, emit, epoch_line, fmt_ratio, machine_info, nnctl_epoch, parser, profile_top, timed

import os
import resource
import sys
import tempfile
import time

import numpy as np

from nnctl.build import build_experiment
from nnctl.config import config_from_dict
from nnctl.train.trainer import train
# isort: on

SEED = 0
SIZE, CLASSES = 28, 10
BATCH, LR, MOMENTUM = 64, 0.01, 0.9


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28): a faint 6x6 square at a class-dependent, jittered place in strong noise.

    Learnable but not trivially (the loss stays well above zero for a few epochs, so no gradient or
    momentum decays into float32 denormals, which would slow both sides for reasons unrelated to speed)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.random((n, 1, SIZE, SIZE), dtype=np.float32)
    rows = 4 + 10 * (y // 5) + rng.integers(-2, 3, n)
    cols = 2 + 4 * (y % 5) + rng.integers(-1, 2, n)
    for k in range(6):  # the square, drawn for all samples at once
        for j in range(6):
            x[np.arange(n), 0, rows + k, cols + j] += 0.25
    return x, y.astype(np.int64)


def cnn_config(path: str) -> dict:
    return {
        "name": "bench_cnn",
        "seed": SEED,
        "dtype": "float32",
        "data": {
            "source": {"type": "image_npz", "path": path, "task": "classification"},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
            "normalize": "none",
        },
        "model": {
            "layers": [
                {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "max_pool2d", "pool_size": 2},
                {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "max_pool2d", "pool_size": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 128, "activation": "relu", "init": "he_uniform"},
                {"type": "dense", "units": CLASSES, "init": "he_uniform"},
            ]
        },
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": LR, "momentum": MOMENTUM},
        "train": {"epochs": 1, "batch_size": BATCH, "shuffle": True, "monitor": "train_loss"},
        "output": {"checkpoint_every": 1_000_000},
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def torch_epoch(torch, x: np.ndarray, y: np.ndarray, layers, losses: list[float], device="cpu"):
    """The same network in PyTorch (NCHW, weights copied from nnctl's), randperm batches, SGD momentum; on
    `device` (benchmarks/bench_gpu.py: cuda) the data and the order live there."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, CLASSES),
    )
    ours = [layer for layer in layers if "weight" in layer.params]
    theirs = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for mine, other in zip(ours, theirs, strict=True):
            w = mine.device.to_host(mine.params["weight"])
            # conv: nnctl (kh, kw, C, F) -> torch (F, C, kh, kw); dense: (in, out) -> (out, in). Flatten orders agree.
            w = w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T
            other.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            other.bias.copy_(torch.from_numpy(mine.device.to_host(mine.params["bias"]).copy()))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    criterion = nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.int64)).to(device)
    n = len(X)
    gen = torch.Generator().manual_seed(SEED)

    def one_epoch():
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(X.index_select(0, idx)), Y.index_select(0, idx))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)

    return one_epoch


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument(
        "--epochs", type=int, default=3, help="timed epochs per side after one warm-up epoch (median reported)"
    )
    p.add_argument("--samples", type=int, default=None, help="number of samples (default 10000; 1024 with --quick)")
    args = p.parse_args()
    samples = args.samples or (1024 if args.quick else 10_000)
    epochs = 1 if args.quick else max(1, args.epochs)
    torch = None if args.no_torch else _common.import_torch()

    t0 = time.perf_counter()
    x, y = make_data(samples)
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        path = os.path.join(tmp, "cnn.npz")
        np.savez(path, x=x, y=y)
        del x, y
        config = config_from_dict(cnn_config(path))
        t1 = time.perf_counter()
        experiment = build_experiment(config)
        build_s = time.perf_counter() - t1
    data_s = time.perf_counter() - t0 - build_s
    split = experiment.splits["train"]

    losses: dict[str, list[float]] = {"nnctl": [], "torch": []}
    sides = {"nnctl": nnctl_epoch(experiment, losses["nnctl"])}
    rss_before = peak_rss_mb()
    steal = _common.StealMeter()
    warmup = {"nnctl": timed(sides["nnctl"])}
    rss_nnctl = peak_rss_mb()  # before torch is imported or run: nnctl's own peak
    if torch is not None:
        sides["torch"] = torch_epoch(torch, split.x, split.y, experiment.network.layers, losses["torch"])
        warmup["torch"] = timed(sides["torch"])
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(epochs):  # interleaved rounds: drift in the machine's speed hits both sides alike
        for name, fn in sides.items():
            times[name].append(timed(fn))

    result = {
        "benchmark": "cnn",
        "workload": {
            "layers": "conv3x3(32,same)-relu-maxpool2-conv3x3(64,same)-relu-maxpool2-dense128-relu-dense10",
            "input": [1, SIZE, SIZE],
            "optimizer": f"sgd lr={LR} momentum={MOMENTUM}",
            "batch_size": BATCH,
            "samples": samples,
            "timed_epochs": epochs,
            "dtype": "float32",
        },
        "machine": machine_info(torch),
        "steal_fraction": steal.fraction(),
        "data_s": data_s,
        "build_s": build_s,
        "peak_rss_mb": {"before_training": rss_before, "nnctl": rss_nnctl, "end": peak_rss_mb()},
    }
    add_sides(result, ("nnctl", "torch"), times, warmup, losses, sides)

    def line(label: str, res: dict | None) -> str:
        return epoch_line(label, res, 8)

    m = result["machine"]
    steal_txt = "n/a" if result["steal_fraction"] is None else f"{100 * result['steal_fraction']:.0f} %"
    r = result["ratio_torch_over_nnctl"]
    lines = [
        f"CNN conv32-pool-conv64-pool-fc128-fc10, sgd momentum, batch {BATCH}, {samples} samples 1x{SIZE}x{SIZE}, "
        f"float32, {m['threads']} threads  [{m['cpu']}; numpy {m['numpy']} ({m['blas'] or 'BLAS n/a'}), torch {m['torch']}; "
        f"CPU steal {steal_txt}; load {m.get('load_avg_1m', 'n/a')}]",
        f"(data generation + npz write {data_s:.2f} s; nnctl load + build {build_s:.2f} s; not timed below)",
        line("nnctl", result["nnctl"]),
        line("torch", result["torch"]),
        f"peak memory (RSS): {rss_before:.0f} MB after build, {rss_nnctl:.0f} MB after nnctl's first epoch",
        f"ratio torch/nnctl: {fmt_ratio(r)} (>1: nnctl faster)"
        + ("" if r is None else f"; nnctl takes {1 / r:.2f}x PyTorch's time (target <= 1.2x)"),
    ]
    emit(result, args.json, lines)

    if args.profile:
        print(f"--- cProfile of one nnctl epoch ---\n{profile_top(lambda: train(experiment))}", file=sys.stderr)


if __name__ == "__main__":
    main()
