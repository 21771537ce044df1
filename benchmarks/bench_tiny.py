"""Tiny-network benchmark: 2-8-8-1 tanh, SGD 0.03, batch 10, 500 Playground `plane` points, mse, 200 epochs.

This is configs/tiny.yaml; the figure is per-step overhead, not arithmetic. nnctl runs through its
own trainer (config -> build_experiment -> train, no run directory); each timed run is a fresh
experiment (build not timed) training --epochs epochs. If torch is importable, the same network
(same initial weights, copied from nnctl's), data and batching run in PyTorch CPU (float32, per-step
Python loop: zero_grad / forward / backward / step). Both sides get one short warm-up run, then
--repeats timed runs, interleaved; the median is reported.

    python benchmarks/bench_tiny.py [--epochs 200] [--repeats 3] [--json] [--quick] [--no-torch] [--profile]

Ratio = torch seconds / nnctl seconds: above 1 means nnctl is faster.
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy (or torch) is loaded
from _common import emit, fmt_ratio, machine_info, parser, profile_top, summarize, timed, torch_mlp

import math
import os
import sys

import numpy as np

from nnctl.build import build_experiment
from nnctl.config import config_from_dict, dump_config, load_config
from nnctl.train.trainer import train
# isort: on

SEED, SAMPLES, BATCH, LR = 0, 500, 10, 0.03
WARMUP_EPOCHS = 10


def tiny_config(epochs: int) -> dict:
    """configs/tiny.yaml, with train.epochs set."""
    return {
        "name": "tiny",
        "seed": SEED,
        "data": {
            "source": {"type": "plane", "samples": SAMPLES, "noise": 0},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        },
        "model": {
            "layers": [
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dense", "units": 1},
            ]
        },
        "loss": "mse",
        "optimizer": {"type": "sgd", "lr": LR},
        "train": {"epochs": epochs, "batch_size": BATCH, "monitor": "train_loss"},
    }


def check_matches_yaml(config) -> None:
    """Warn (stderr) if configs/tiny.yaml has drifted from the workload this script measures."""
    path = os.path.join(_common.ROOT, "configs", "tiny.yaml")
    if not os.path.exists(path):
        return
    from_yaml = load_config(path, [f"train.epochs={config.train.epochs}"])
    if dump_config(from_yaml) != dump_config(config):
        print(
            f"warning: {path} differs from the workload in benchmarks/bench_tiny.py; the figures below are "
            "for the script's workload.",
            file=sys.stderr,
        )


def nnctl_run(config, losses: list[float]):
    """A fresh experiment from config, trained by nnctl's trainer; only train() is timed."""
    experiment = build_experiment(config)

    def run():
        result = train(experiment)
        assert result.status == "completed", result.status
        losses.append(result.final["train_loss"])

    return run, experiment


def torch_run(torch, x: np.ndarray, y: np.ndarray, init, epochs: int, losses: list[float]):
    """The same network, data and batching in PyTorch, from the same initial weights."""
    nn = torch.nn
    model = torch_mlp(torch, init, nn.Tanh)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    criterion = nn.MSELoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    n = len(X)
    gen = torch.Generator().manual_seed(SEED)

    def run():
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, BATCH):
                idx = perm[start : start + BATCH]
                xb = X.index_select(0, idx)
                yb = Y.index_select(0, idx)
                opt.zero_grad(set_to_none=True)
                loss = criterion(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
        losses.append(total / n)

    return run


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs per timed run (default 200; 20 with --quick)")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per side, median reported (default 3; 1 with --quick)"
    )
    args = p.parse_args()
    epochs = args.epochs or (20 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    torch = None if args.no_torch else _common.import_torch()

    config = config_from_dict(tiny_config(epochs))
    warm_config = config_from_dict(tiny_config(WARMUP_EPOCHS))
    check_matches_yaml(config)
    probe = build_experiment(config)
    split = probe.splits["train"]
    x, y = split.x, split.y  # float32, (500, 2) and (500, 1)
    init = [
        (layer.params["weight"].copy(), layer.params["bias"].copy())
        for layer in probe.network.layers
        if "weight" in layer.params
    ]
    steps = epochs * math.ceil(len(x) / BATCH)

    losses: dict[str, list[float]] = {"nnctl": [], "torch": [], "warmup": []}
    steal = _common.StealMeter()
    warmup = {"nnctl": timed(nnctl_run(warm_config, losses["warmup"])[0])}
    if torch is not None:
        warmup["torch"] = timed(torch_run(torch, x, y, init, WARMUP_EPOCHS, losses["warmup"]))
    times: dict[str, list[float]] = {name: [] for name in warmup}
    for _ in range(repeats):  # interleaved, each run from scratch; building is not timed
        times["nnctl"].append(timed(nnctl_run(config, losses["nnctl"])[0]))
        if torch is not None:
            times["torch"].append(timed(torch_run(torch, x, y, init, epochs, losses["torch"])))

    result = {
        "benchmark": "tiny",
        "workload": {
            "layers": [2, 8, 8, 1],
            "activation": "tanh",
            "optimizer": f"sgd lr={LR}",
            "loss": "mse",
            "batch_size": BATCH,
            "samples": len(x),
            "epochs": epochs,
            "steps_per_run": steps,
            "repeats": repeats,
            "dtype": "float32",
            "method": f"one {WARMUP_EPOCHS}-epoch warm-up run per side, then timed runs interleaved; "
            "each run a fresh experiment/model from the same initial weights",
        },
        "machine": machine_info(torch),
        "steal_fraction": steal.fraction(),
    }
    for name in ("nnctl", "torch"):
        if name in times:
            res = summarize(times[name], warmup[name], train_loss=losses[name])
            res["us_per_step"] = res["median_s"] / steps * 1e6
            result[name] = res
        else:
            result[name] = None
    result["ratio_torch_over_nnctl"] = (
        None if result["torch"] is None else result["torch"]["median_s"] / result["nnctl"]["median_s"]
    )

    def line(label: str, res: dict | None) -> str:
        if res is None:
            return f"{label:<6} (torch not installed or --no-torch)"
        each = ", ".join(f"{t:.3f}" for t in res["times_s"])
        return (
            f"{label:<6} {res['median_s']:.3f} s total, {res['us_per_step']:.1f} us/step  (median of "
            f"{len(res['times_s'])}: {each}; final train loss {res['train_loss'][-1]:.2e})"
        )

    m = result["machine"]
    steal_txt = "n/a" if result["steal_fraction"] is None else f"{100 * result['steal_fraction']:.0f} %"
    lines = [
        f"tiny 2-8-8-1 tanh, sgd {LR}, batch {BATCH}, {len(x)} points, {epochs} epochs = {steps} steps, float32, "
        f"{m['threads']} threads  [{m['cpu']}; numpy {m['numpy']}, torch {m['torch']}; CPU steal during timing "
        f"{steal_txt}]",
        line("nnctl", result["nnctl"]),
        line("torch", result["torch"]),
        f"ratio torch/nnctl: {fmt_ratio(result['ratio_torch_over_nnctl'])}  (>1: nnctl faster)",
    ]
    emit(result, args.json, lines)

    if args.profile:
        run, _ = nnctl_run(config, [])
        print(f"--- cProfile of one nnctl run ({epochs} epochs) ---\n{profile_top(run)}", file=sys.stderr)


if __name__ == "__main__":
    main()
