"""GPU benchmark: nnctl on CUDA (CuPy) against PyTorch CUDA on the same GPU, seconds per epoch.

Workloads (the CPU benchmarks' own, from bench_mlp.py and bench_cnn.py, same data and initial weights):
  mlp-128   784-256-128-10 ReLU MLP, Adam, batch 128, 60,000 samples
  mlp-1024  the same at batch 1024
  cnn       conv32-pool-conv64-pool-fc128-fc10, SGD momentum, batch 64, 10,000 28x28 images

nnctl trains through its own trainer on `device: cuda` (batches moved to the GPU once per step, the loss
read back once per step); PyTorch keeps its data on the GPU and reads its loss once per step too. One
warm-up epoch per side, then --epochs timed epochs interleaved; the median is reported, each side
synchronized before its clock stops. slowdown = nnctl seconds / PyTorch seconds (the issue's targets:
mlp-1024 <= 1.5, cnn <= 2.0). Float32, TF32 off on both sides (CuPy's default; torch's set here).

    python benchmarks/bench_gpu.py [--epochs 3] [--json] [--quick] [--no-torch] [--only mlp-1024,cnn]

Without a GPU (or without CuPy) it says which is missing and exits with status 2.
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy (or torch) is loaded
from _common import emit, machine_info, parser, summarize, timed

import os
import sys
import tempfile
import time

import numpy as np

import bench_cnn
import bench_mlp
from nnctl.build import build_experiment
from nnctl.config import config_from_dict
from nnctl.device import resolve_device
from nnctl.errors import ConfigError
from nnctl.train.trainer import train
# isort: on

TARGETS = {"mlp-1024": 1.5, "cnn": 2.0}  # nnctl seconds / PyTorch seconds, at most


def workloads(quick: bool) -> dict[str, dict]:
    mlp_n, cnn_n = (4096, 1024) if quick else (60_000, 10_000)
    return {
        "mlp-128": {"bench": bench_mlp, "samples": mlp_n, "batch": 128},
        "mlp-1024": {"bench": bench_mlp, "samples": mlp_n, "batch": 1024},
        "cnn": {"bench": bench_cnn, "samples": cnn_n, "batch": bench_cnn.BATCH},
    }


def gpu_or_exit(name: str = "cuda"):
    """The CUDA device, or a clear message on stderr and exit status 2."""
    try:
        return resolve_device(name)
    except ConfigError as exc:
        print(f"bench_gpu: nothing to measure on this machine: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build(bench, samples: int, batch: int, device):
    """The workload's experiment on `device`, built from the CPU benchmark's config and data."""
    x, y = bench.make_data(samples)
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-gpu-") as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=x, y=y)
        raw = bench.mlp_config(path) if bench is bench_mlp else bench.cnn_config(path)
        raw["train"]["batch_size"] = batch
        experiment = build_experiment(config_from_dict(raw), device=device)
    return experiment, x, y


def nnctl_side(experiment, losses: list[float]):
    def one_epoch() -> None:
        result = train(experiment)
        experiment.device.synchronize()
        assert result.status == "completed", result.status
        losses.append(result.final["train_loss"])

    return one_epoch


def torch_side(torch, bench, experiment, x, y, batch: int, losses: list[float]):
    if bench is bench_mlp:
        inner = bench_mlp.torch_epoch(
            torch, x, y, bench_mlp.initial_weights(experiment), losses, False, device="cuda", batch=batch
        )
    else:
        inner = bench_cnn.torch_epoch(torch, x, y, experiment.network.layers, losses, device="cuda")

    def one_epoch() -> None:
        inner()
        torch.cuda.synchronize()

    return one_epoch


def measure(name: str, spec: dict, device, torch, epochs: int) -> dict:
    t0 = time.perf_counter()
    experiment, x, y = build(spec["bench"], spec["samples"], spec["batch"], device)
    build_s = time.perf_counter() - t0
    losses: dict[str, list[float]] = {"nnctl": [], "torch": []}
    sides = {"nnctl": nnctl_side(experiment, losses["nnctl"])}
    if torch is not None:
        sides["torch"] = torch_side(torch, spec["bench"], experiment, x, y, spec["batch"], losses["torch"])
    warmup = {side: timed(fn) for side, fn in sides.items()}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(epochs):
        for side, fn in sides.items():
            times[side].append(timed(fn))
    out = {"workload": name, "samples": spec["samples"], "batch_size": spec["batch"], "build_s": build_s}
    for side in ("nnctl", "torch"):
        out[side] = summarize(times[side], warmup[side], train_loss=losses[side]) if side in sides else None
    if out["torch"] is not None:
        out["slowdown_nnctl_over_torch"] = out["nnctl"]["median_s"] / out["torch"]["median_s"]
        if name in TARGETS:
            out["target"] = TARGETS[name]
            out["meets_target"] = out["slowdown_nnctl_over_torch"] <= TARGETS[name]
    return out


def import_torch_cuda():
    torch = _common.import_torch()
    if torch is None or not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False  # as nnctl: float32 GEMMs, no TensorFloat-32
    torch.backends.cudnn.allow_tf32 = False
    return torch


def run(quick: bool = False, epochs: int = 3, use_torch: bool = True, only: list[str] | None = None) -> dict:
    """Every workload's figures (exits with status 2 when there is no GPU)."""
    device = gpu_or_exit()
    torch = import_torch_cuda() if use_torch else None
    chosen = {k: v for k, v in workloads(quick).items() if not only or k in only}
    result = {
        "benchmark": "gpu",
        "device": device.name,
        "gpu": _gpu_name(device),
        "machine": machine_info(torch),
        "cupy": getattr(device.xp, "__version__", None),
        "torch_cuda": torch is not None,
        "timed_epochs": 1 if quick else epochs,
        "workloads": [measure(name, spec, device, torch, 1 if quick else epochs) for name, spec in chosen.items()],
    }
    return result


def _gpu_name(device) -> str | None:
    try:
        props = device.xp.cuda.runtime.getDeviceProperties(device.index)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a name is a nicety
        return None


def report_lines(result: dict) -> list[str]:
    lines = [f"nnctl on {result['device']} ({result['gpu']}; CuPy {result['cupy']}) vs PyTorch CUDA, s/epoch"]
    for w in result["workloads"]:
        torch_s = f"{w['torch']['median_s']:.3f}" if w["torch"] else "n/a (no torch CUDA)"
        line = f"  {w['workload']:<9} nnctl {w['nnctl']['median_s']:.3f}  torch {torch_s}"
        if "slowdown_nnctl_over_torch" in w:
            line += f"  nnctl/torch {w['slowdown_nnctl_over_torch']:.2f}x"
            if "target" in w:
                line += f" (target <= {w['target']}x: {'met' if w['meets_target'] else 'NOT met'})"
        lines.append(line)
    return lines


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per side after one warm-up epoch")
    p.add_argument("--only", default=None, help="comma-separated workloads: mlp-128, mlp-1024, cnn")
    args = p.parse_args()
    only = args.only.split(",") if args.only else None
    result = run(args.quick, max(1, args.epochs), not args.no_torch, only)
    emit(result, args.json, report_lines(result))


if __name__ == "__main__":
    main()
