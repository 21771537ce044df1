"""GRU benchmark: sequences of length 40 with 1 feature, GRU, dense 10, Adam 1e-3, batch 100, 4,000 samples.

Two cases (--case, default both): `gru64`, GRU(64), where the recurrent GEMMs carry the work, and
`bigru6`, a bidirectional GRU(6), where the per-step Python and element-wise work decide.

nnctl is driven through its own trainer (config -> build_experiment -> train) on a continued
experiment: one warm-up epoch, then --epochs timed epochs (train.epochs = 1 per call); the figure is
the median seconds per epoch. Data generation and build are not timed.

If torch is importable, the same network (torch.nn.GRU + Linear with nnctl's initial weights copied
in; nnctl follows PyTorch's gate order and reset-gate convention, so they compute the same function),
data and batching run in PyTorch CPU.

    python benchmarks/bench_rnn.py [--case gru64|bigru6] [--epochs 5] [--json] [--quick] [--no-torch] [--profile]

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
LENGTH, FEATURES, CLASSES = 40, 1, 10
BATCH, LR = 100, 1e-3
# case -> (units, bidirectional), with each case's target for torch seconds / nnctl seconds
CASES = {"gru64": (64, False), "bigru6": (6, True)}
TARGETS = {"gru64": 1.0, "bigru6": 1 / 1.2}  # gru64: stay ahead; bigru6: at most 1.2x PyTorch's time


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine waves, class k = frequency k + 1 cycles per sequence, random phase: learnable, balanced."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    t = np.arange(LENGTH) / LENGTH
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t + phase) + 0.3 * rng.standard_normal((n, LENGTH))
    return x[:, :, None].astype(np.float32), y.astype(np.int64)


def rnn_config(path: str, case: str = "gru64") -> dict:
    units, bidirectional = CASES[case]
    return {
        "name": "bench_rnn",
        "seed": SEED,
        "dtype": "float32",
        "data": {
            "source": {"type": "sequence_npz", "path": path, "task": "classification"},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        },
        "model": {
            "layers": [
                {"type": "gru", "units": units, "bidirectional": bidirectional},
                {"type": "dense", "units": CLASSES},
            ]
        },
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": LR},
        "train": {"epochs": 1, "batch_size": BATCH, "shuffle": True, "monitor": "train_loss"},
        "output": {"checkpoint_every": 1_000_000},
    }


def torch_model(torch, experiment):
    """torch.nn.GRU (+ Linear) with nnctl's initial weights copied in: the same function from the same start."""
    nn = torch.nn
    gru_layer, dense_layer = experiment.network.layers
    g, d = gru_layer.params, dense_layer.params
    units, bidirectional = gru_layer.units, gru_layer.bidirectional

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(FEATURES, units, batch_first=True, bidirectional=bidirectional)
            self.fc = nn.Linear(units * (2 if bidirectional else 1), CLASSES)

        def forward(self, xb):
            _, h = self.gru(xb)  # h_n: (directions, N, units), forward direction first
            return self.fc(torch.cat(list(h), dim=1) if bidirectional else h[0])

    def copy(name, array):
        getattr(model.gru, name).copy_(torch.from_numpy(np.ascontiguousarray(array)))

    model = Model()
    with torch.no_grad():  # nnctl's bias = torch's b_ih + [b_hr, b_hz, 0]; bias_hn = torch's b_hn
        for sfx, torch_sfx in [("", "")] + ([("_reverse", "_reverse")] if bidirectional else []):
            copy("weight_ih_l0" + torch_sfx, g["weight_ih" + sfx].T)
            copy("weight_hh_l0" + torch_sfx, g["weight_hh" + sfx].T)
            copy("bias_ih_l0" + torch_sfx, g["bias" + sfx])
            b_hh = np.zeros(3 * units, dtype=np.float32)
            b_hh[2 * units :] = g["bias_hn" + sfx]
            copy("bias_hh_l0" + torch_sfx, b_hh)
        model.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(d["weight"].T)))
        model.fc.bias.copy_(torch.from_numpy(d["bias"].copy()))
    return model


def torch_epoch(torch, x: np.ndarray, y: np.ndarray, experiment, losses: list[float]):
    """One epoch of the same network in PyTorch: randperm per epoch, index_select batches, Adam."""
    model = torch_model(torch, experiment)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
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


def build(case: str, samples: int):
    """(experiment, data seconds, build seconds) for one case: data written to a temporary npz, then built."""
    t0 = time.perf_counter()
    x, y = make_data(samples)
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        path = os.path.join(tmp, "rnn.npz")
        np.savez(path, x=x, y=y)
        config = config_from_dict(rnn_config(path, case))
        t1 = time.perf_counter()
        experiment = build_experiment(config)
        build_s = time.perf_counter() - t1
    return experiment, time.perf_counter() - t0 - build_s, build_s


def run_case(case: str, samples: int, epochs: int, torch) -> dict:
    experiment, data_s, build_s = build(case, samples)
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
    units, bidirectional = CASES[case]
    result = {
        "case": case,
        "layers": f"{'bidirectional ' if bidirectional else ''}gru({units}) -> dense({CLASSES})",
        "target_ratio": TARGETS[case],
        "steal_fraction": steal.fraction(),
        "data_s": data_s,
        "build_s": build_s,
        "experiment": experiment,
    }
    add_sides(result, ("nnctl", "torch"), times, warmup, losses, sides)
    return result


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--case", choices=sorted(CASES), action="append", help="run only this case (repeatable)")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per side after one warm-up epoch (median)")
    p.add_argument("--samples", type=int, default=None, help="number of samples (default 4000; 400 with --quick)")
    args = p.parse_args()
    samples = args.samples or (400 if args.quick else 4000)
    epochs = 1 if args.quick else max(1, args.epochs)
    torch = None if args.no_torch else _common.import_torch()
    cases = args.case or list(CASES)

    results = {case: run_case(case, samples, epochs, torch) for case in cases}
    experiments = {case: res.pop("experiment") for case, res in results.items()}
    result = {
        "benchmark": "rnn",
        "workload": {
            "length": LENGTH,
            "features": FEATURES,
            "optimizer": f"adam lr={LR}",
            "loss": "cross_entropy",
            "batch_size": BATCH,
            "samples": samples,
            "timed_epochs": epochs,
            "dtype": "float32",
            "method": "per case: one warm-up epoch per side, then timed epochs interleaved round-robin; nnctl on a "
            "continued experiment with train.epochs=1 per train() call",
        },
        "machine": machine_info(torch),
        "cases": results,
    }

    m = result["machine"]
    lines = [
        f"GRU on T={LENGTH} F={FEATURES} -> dense({CLASSES}), adam {LR}, batch {BATCH}, {samples} samples, "
        f"float32, {m['threads']} threads  [{m['cpu']}; numpy {m['numpy']}, torch {m['torch']}; "
        f"load average {m.get('load_avg_1m', 'n/a')}]",
    ]
    for case, res in results.items():
        steal_txt = "n/a" if res["steal_fraction"] is None else f"{100 * res['steal_fraction']:.0f} %"
        lines += [
            f"{case}: {res['layers']}  (data {res['data_s']:.2f} s, build {res['build_s']:.2f} s, not timed; "
            f"CPU steal during timing {steal_txt})",
            "  " + epoch_line("nnctl", res["nnctl"]),
            "  " + epoch_line("torch", res["torch"]),
            f"  ratio torch/nnctl: {fmt_ratio(res['ratio_torch_over_nnctl'])}  "
            f"(>1: nnctl faster; target >= {res['target_ratio']:.2f})",
        ]
    emit(result, args.json, lines)

    if args.profile:
        for case, experiment in experiments.items():
            print(
                f"--- {case}: cProfile of one nnctl epoch (continued experiment) ---\n"
                f"{profile_top(lambda experiment=experiment: train(experiment))}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
