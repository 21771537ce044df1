"""Train every shipped example config, export it to ONNX, and compare onnxruntime with `nnctl predict`.

    OPENBLAS_NUM_THREADS=1 python benchmarks/export_compare.py [--epochs N] [--runs-dir DIR] [configs/x.yaml ...]

Per config: train (as shipped, or with --epochs N), `nnctl export` (onnx.checker with full_check), then on
the run's test split: onnxruntime fed the raw inputs as float32 against nnctl's predict path fed them as
float64. Prints a markdown table: max |difference| of the network outputs (logits, or regression output in
normalized units), of the probabilities, class agreement, and for regression of the values in the data's
units. Needs the `onnx` extra. Exit 1 when any config misses 1e-5 on outputs or disagrees on a class.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path)
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: as shipped)")
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()

    from nnctl.export.onnx_model import export_run
    from nnctl.export.registry import ExportError
    from nnctl.export.verify import compare_run
    from nnctl.session import run_training

    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="nnctl-export-"))
    print(
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; runs in {runs_dir}", file=sys.stderr
    )
    rows, failed, refused = [], [], []
    for config in configs:
        started = time.perf_counter()
        overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
        result = run_training(config, overrides, runs_dir)
        try:
            export = export_run(result.run_dir)
        except ExportError as exc:  # e.g. a plugin layer without an exporter
            refused.append(config.stem)
            print(f"{config.stem}: not exported: {exc}", file=sys.stderr)
            continue
        split = next(name for name in ("test", "val", "train") if _split_size(result.run_dir, name))
        check = compare_run(result.run_dir, export.path, split)
        seconds = time.perf_counter() - started
        if check["task"] == "classification":
            out = check["max_abs_diff_logits"]
            ulps = f"{check['max_ulp_diff_logits']:.0f} (max abs {check['max_abs_logits']:.3g})"
            cells = [f"{out:.2e}", ulps, f"{check['max_abs_diff_probabilities']:.2e}"]
            cells += [f"{check['class_agreement']:.0%} ({check['class_disagreements']} differ)", "-"]
            ok = out <= TOLERANCE and check["class_disagreements"] == 0
        else:
            out = check["max_abs_diff_output"]
            values = f"{check['max_abs_diff_values']:.2e} (max |value| {check['max_abs_values']:.3g})"
            ulps = f"{check['max_ulp_diff_output']:.0f} (max abs {check['max_abs_output']:.3g})"
            cells = [f"{out:.2e}", ulps, "-", "-", values]
            ok = out <= TOLERANCE
        layers = sorted({spec.type for spec in _layers(result)})
        rows.append(
            [config.stem, check["task"], ", ".join(layers), f"{split} {check['samples']}", *cells, f"{seconds:.1f}"]
        )
        if not ok:
            failed.append(config.stem)
        print(f"{config.stem}: {'ok' if ok else 'MISSED'} ({seconds:.1f} s)", file=sys.stderr)

    header = [
        "config",
        "task",
        "layers",
        "split, samples",
        "max abs diff outputs",
        "in float32 ulp of the sample's largest output (max abs output)",
    ]
    header += ["max abs diff probabilities"]
    header += ["classes agree", "max abs diff values (data units)", "s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{len(rows) - len(failed)}/{len(rows)} configs within {TOLERANCE:g} with identical classes; onnx.checker "
        "(full_check) passed for every export."
        + (f" Missed: {', '.join(failed)}" if failed else "")
        + (f" Not exportable (refused with a message): {', '.join(refused)}." if refused else "")
    )
    return 1 if failed else 0


def _split_size(run_dir: Path, split: str) -> int:

    from nnctl.config import load_config

    config = load_config(run_dir / "config.yaml")
    return getattr(config.data.split, split) > 0


def _layers(result):
    from nnctl.config import load_config

    config = load_config(result.run_dir / "config.yaml")

    def walk(specs):
        for spec in specs:
            yield spec
            inner = getattr(spec, "layers", None)
            if inner:
                yield from walk(inner)

    return list(walk(config.model.layers))


if __name__ == "__main__":
    sys.exit(main())
