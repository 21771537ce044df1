"""GRU benchmark: GRU(64) on sequences of length 40 with 1 feature, dense 10, Adam 1e-3, batch 100, 4,000 samples.

nnctl is driven through its own trainer (config -> build_experiment -> train) on a continued
experiment: one warm-up epoch, then --epochs timed epochs (train.epochs = 1 per call); the figure is
the median seconds per epoch. Data generation and build are not timed.

If torch is importable, the same network (torch.nn.GRU + Linear with nnctl's initial weights copied
in; nnctl follows PyTorch's gate order and reset-gate convention, so they compute the same function),
data and batching run in PyTorch CPU.

    python benchmarks/bench_rnn.py [--epochs 5] [--json] [--quick] [--no-torch] [--profile]

Ratio = torch seconds / nnctl seconds: above 1 means nnctl is faster.
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy (or torch) is loaded
from _common import add_sides, emit, epoch_line, fmt_ratio, machine_info, nnctl_epoch, parser, profile_top, timed

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
LENGTH, FEATURES, UNITS, CLASSES = 40, 1, 64, 10
BATCH, LR = 100, 1e-3


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine waves, class k = frequency k + 1 cycles per sequence, random phase: learnable, balanced."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    t = np.arange(LENGTH) / LENGTH
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t + phase) + 0.3 * rng.standard_normal((n, LENGTH))
    return x[:, :, None].astype(np.float32), y.astype(np.int64)


def rnn_config(path: str) -> dict:
    return {
        "name": "bench_rnn",
        "seed": SEED,
        "dtype": "float32",
        "data": {
            "source": {"type": "sequence_npz", "path": path, "task": "classification"},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        },
        "model": {"layers": [{"type": "gru", "units": UNITS}, {"type": "dense", "units": CLASSES}]},
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": LR},
        "train": {"epochs": 1, "batch_size": BATCH, "shuffle": True, "monitor": "train_loss"},
        "output": {"checkpoint_every": 1_000_000},
    }


def torch_epoch(torch, x: np.ndarray, y: np.ndarray, experiment, losses: list[float]):
    """One epoch of the same network in PyTorch: randperm per epoch, index_select batches, Adam."""
    nn = torch.nn
    gru_layer, dense_layer = experiment.network.layers
    g, d = gru_layer.params, dense_layer.params

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(FEATURES, UNITS, batch_first=True)
            self.fc = nn.Linear(UNITS, CLASSES)

        def forward(self, xb):
            _, h = self.gru(xb)
            return self.fc(h[0])

    model = Model()
    with torch.no_grad():  # nnctl's bias = torch's b_ih + [b_hr, b_hz, 0]; bias_hn = torch's b_hn
        model.gru.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(g["weight_ih"].T)))
        model.gru.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(g["weight_hh"].T)))
        model.gru.bias_ih_l0.copy_(torch.from_numpy(g["bias"].copy()))
        b_hh = np.zeros(3 * UNITS, dtype=np.float32)
        b_hh[2 * UNITS :] = g["bias_hn"]
        model.gru.bias_hh_l0.copy_(torch.from_numpy(b_hh))
        model.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(d["weight"].T)))
        model.fc.bias.copy_(torch.from_numpy(d["bias"].copy()))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    n = len(X)
    gen = torch.Generator().manual_seed(SEED)

    def one_epoch():
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            xb, yb = X.index_select(0, idx), Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)

    return one_epoch


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per side after one warm-up epoch (median)")
    p.add_argument("--samples", type=int, default=None, help="number of samples (default 4000; 400 with --quick)")
    args = p.parse_args()
    samples = args.samples or (400 if args.quick else 4000)
    epochs = 1 if args.quick else max(1, args.epochs)
    torch = None if args.no_torch else _common.import_torch()

    t0 = time.perf_counter()
    x, y = make_data(samples)
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        path = os.path.join(tmp, "rnn.npz")
        np.savez(path, x=x, y=y)
        config = config_from_dict(rnn_config(path))
        t1 = time.perf_counter()
        experiment = build_experiment(config)
        build_s = time.perf_counter() - t1
    data_s = time.perf_counter() - t0 - build_s
    split = experiment.splits["train"]

    sides: dict = {}
    losses: dict[str, list[float]] = {"nnctl": [], "torch": []}
    sides["nnctl"] = nnctl_epoch(experiment, losses["nnctl"])
    if torch is not None:  # built before nnctl trains, so both start from the same weights
        sides["torch"] = torch_epoch(torch, split.x, split.y, experiment, losses["torch"])
    steal = _common.StealMeter()
    warmup = {name: timed(fn) for name, fn in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(epochs):  # interleaved, so drift in the machine's speed hits both alike
        for name, fn in sides.items():
            times[name].append(timed(fn))

    result = {
        "benchmark": "rnn",
        "workload": {
            "layers": f"gru({UNITS}) -> dense({CLASSES})",
            "length": LENGTH,
            "features": FEATURES,
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
    add_sides(result, ("nnctl", "torch"), times, warmup, losses, sides)

    def line(label: str, res: dict | None) -> str:
        return epoch_line(label, res, 8)

    m = result["machine"]
    steal_txt = "n/a" if result["steal_fraction"] is None else f"{100 * result['steal_fraction']:.0f} %"
    lines = [
        f"GRU({UNITS}) T={LENGTH} F={FEATURES} -> dense({CLASSES}), adam {LR}, batch {BATCH}, {samples} samples, "
        f"float32, {m['threads']} threads  [{m['cpu']}; numpy {m['numpy']}, torch {m['torch']}; "
        f"CPU steal during timing {steal_txt}]",
        f"(data generation + npz write {data_s:.2f} s; nnctl load + build {build_s:.2f} s; not timed below)",
        line("nnctl", result["nnctl"]),
        line("torch", result["torch"]),
        f"ratio torch/nnctl: {fmt_ratio(result['ratio_torch_over_nnctl'])}  (>1: nnctl faster; target >= 0.5)",
    ]
    emit(result, args.json, lines)

    if args.profile:
        print(
            f"--- cProfile of one nnctl epoch (continued experiment) ---\n{profile_top(lambda: train(experiment))}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
