"""Inference latency: nnctl's predict path vs onnxruntime on the exported model, one sample and a batch of 1024.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_export.py [--repeats 200]

Trains a few example configs briefly (digits MLP, digits CNN, GRU on temporal order), exports each, and
times in-process: nnctl = `Predictor.outputs` (normalization + network) plus labels and probabilities, on
float64 raw inputs as `nnctl predict` reads them; onnxruntime = `session.run` of the whole model (same
work inside the graph) on float32 raw inputs, with one intra-op thread (like OPENBLAS_NUM_THREADS=1) and
with onnxruntime's default. Median of --repeats calls after a warm-up; the batch of 1024 is the test
split repeated. Needs the onnx extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [("digits", "digits MLP", 5), ("digits_cnn", "digits CNN", 2), ("gru_order", "GRU (temporal order)", 2)]


def median_ms(fn, x, repeats: int) -> float:
    for _ in range(min(10, repeats)):
        fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    import onnxruntime

    import nnctl
    from nnctl.export.onnx_model import export_run
    from nnctl.session import run_training

    runs = Path(tempfile.mkdtemp(prefix="nnctl-latency-"))
    print(
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs, "
        f"onnxruntime {onnxruntime.__version__}; median of {args.repeats} calls, milliseconds\n"
    )
    print(
        "| model | batch | nnctl predict path | onnxruntime, 1 thread | onnxruntime, default threads | nnctl / ort (1 thread) |"
    )
    print("|---|---|---|---|---|---|")
    for config, label, epochs in CASES:
        run_dir = run_training(ROOT / "configs" / f"{config}.yaml", [f"train.epochs={epochs}"], runs).run_dir
        path = export_run(run_dir).path
        run = nnctl.load_run(run_dir)
        p = run.predictor
        x, _ = run.data("test")
        sessions = {}
        for threads in (1, 0):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            sessions[threads] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def nnctl_predict(raw, p=p):
            out = p.outputs(p.from_array(raw, "x"))
            return p.labels(out), p.probabilities(out)

        for batch in (1, 1024):
            raw = np.concatenate([x] * (-(-batch // len(x))))[:batch]
            raw32 = raw.astype(np.float32)
            repeats = args.repeats if batch == 1 else max(10, args.repeats // 10)
            t_nnctl = median_ms(nnctl_predict, raw, repeats)
            t_ort = {
                k: median_ms(lambda r, s=s: s.run(None, {"input": r}), raw32, repeats) for k, s in sessions.items()
            }
            print(
                f"| {label} | {batch} | {t_nnctl:.3f} | {t_ort[1]:.3f} | {t_ort[0]:.3f} | {t_nnctl / t_ort[1]:.1f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
