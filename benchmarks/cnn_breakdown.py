"""Where the benchmark CNN's training step goes: each matrix product's rate, and each layer's time.

    BENCH_THREADS=1 python benchmarks/cnn_breakdown.py [--steps 60] [--split N]

Part 1 times numpy's products at the shapes one step of bench_cnn.py multiplies (batch 64), against a
1024x1024x1024 product as the BLAS kernel's yardstick, in GFLOP/s: what the step would cost if it were
products alone. Part 2 trains --steps steps of bench_cnn.py's network through its layers' own
forward/backward (no trainer) and prints each layer's ms per step. Run it with one thread
(BENCH_THREADS=1) to read costs rather than parallelism, and once more under
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` where the environment forces OpenBLAS's kernel.
`--split N` runs part 2 as training with `threads: N` does on this network: BLAS on one thread, each
large layer's batch split over N Python threads (nnctl/batchsplit.py).
"""

from __future__ import annotations

# isort: off
from _common import machine_info  # first: sets the BLAS/OpenMP thread counts before numpy is loaded

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench_cnn import BATCH, cnn_config, make_data
from nnctl import batchsplit
from nnctl.build import build_experiment
from nnctl.config import config_from_dict
# isort: on


def best_seconds(fn, repeats: int = 20) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def product_rates() -> list[tuple[str, float, float]]:
    """(name, ms, GFLOP/s) of the step's products at batch 64, after the 1024^3 yardstick."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    rows1, rows2 = BATCH * 28 * 28, BATCH * 14 * 14  # output positions of conv1, conv2
    a, b = r(1024, 1024), r(1024, 1024)
    p1, w1, y1 = r(rows1, 9), r(9, 32), r(rows1, 32)
    p2, w2, y2 = r(rows2, 288), r(288, 64), r(rows2, 64)
    taps = w2.reshape(9, 32, 64).transpose(0, 2, 1)  # conv.py's per-offset view of the weight
    x, wd, z = r(BATCH, 3136), r(3136, 128), r(BATCH, 128)
    cases = [
        ("yardstick 1024x1024x1024", lambda: a @ b, 1024**3),
        ("conv1 forward (50176x9)(9x32)", lambda: p1 @ w1, rows1 * 9 * 32),
        ("conv1 dW (9x50176)(50176x32)", lambda: p1.T @ y1, rows1 * 9 * 32),
        ("conv2 forward (12544x288)(288x64)", lambda: p2 @ w2, rows2 * 288 * 64),
        ("conv2 dW (288x12544)(12544x64)", lambda: p2.T @ y2, rows2 * 288 * 64),
        ("conv2 dpatches 9 x (12544x64)(64x32)", lambda: np.matmul(y2, taps), rows2 * 288 * 64),
        ("dense forward (64x3136)(3136x128)", lambda: x @ wd, BATCH * 3136 * 128),
        ("dense dW (3136x64)(64x128)", lambda: x.T @ z, BATCH * 3136 * 128),
        ("dense dx (64x128)(128x3136)", lambda: z @ wd.T, BATCH * 3136 * 128),
    ]
    out = []
    for name, fn, macs in cases:
        seconds = best_seconds(fn)
        out.append((name, seconds * 1e3, 2 * macs / seconds / 1e9))
    return out


def layer_times(steps: int, split: int = 1) -> tuple[dict[str, float], float]:
    """Each layer's forward and backward ms per step, and the whole step's, over `steps` steps (batches
    split over `split` threads, BLAS on one, when split > 1)."""
    folder = Path(tempfile.mkdtemp())
    x, y = make_data(BATCH * 20)
    np.savez(folder / "cnn.npz", x=x, y=y)
    config = cnn_config(str(folder / "cnn.npz"))
    config["train"]["threads"] = 1
    experiment = build_experiment(config_from_dict(config))
    net, loss, optimizer = experiment.network, experiment.loss, experiment.optimizer
    spent: dict[str, float] = defaultdict(float)
    for index, layer in net.all_layers():
        for method in ("forward", "backward"):
            inner, key = getattr(layer, method), f"{index} {layer.describe()} {method}"

            def timed(*args, _inner=inner, _key=key, **kwargs):
                start = time.perf_counter()
                result = _inner(*args, **kwargs)
                spent[_key] += time.perf_counter() - start
                return result

            setattr(layer, method, timed)
    if split > 1:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        batchsplit.configure(split)
    xs, ys = experiment.splits["train"].x, experiment.splits["train"].y
    batches = [(xs[s : s + BATCH], ys[s : s + BATCH]) for s in range(0, len(xs), BATCH)]
    for xb, yb in batches[:2]:  # warm-up: buffers allocated, pages touched
        loss.forward(net.forward(xb, training=True), yb)
        net.backward(loss.backward())
    spent.clear()
    start = time.perf_counter()
    for k in range(steps):
        xb, yb = batches[k % len(batches)]
        loss.forward(net.forward(xb, training=True), yb)
        net.backward(loss.backward())
        optimizer.step(0.01)
    total = time.perf_counter() - start
    batchsplit.configure(None)
    return {key: seconds / steps * 1e3 for key, seconds in spent.items()}, total / steps * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--split", type=int, default=1, help="split each large layer's batch over N threads")
    args = ap.parse_args()
    print(", ".join(f"{k} {v}" for k, v in machine_info().items()))
    rates = product_rates()
    for name, ms, gflops in rates:
        print(f"  {name:40s} {ms:8.3f} ms  {gflops:7.1f} GFLOP/s")
    products = sum(ms for name, ms, _ in rates if not name.startswith("yardstick"))
    per_layer, step = layer_times(args.steps, args.split)
    print(f"products of one step alone: {products:.1f} ms; a training step: {step:.1f} ms")
    for key, ms in sorted(per_layer.items(), key=lambda item: -item[1]):
        print(f"  {key:50s} {ms:8.3f} ms/step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
