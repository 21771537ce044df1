"""The device seam's cases: every registered layer, loss, optimizer, regularizer and metric, from the same
tables as the gradient checks and the component tests, plus variants that reach more code paths (weighted
losses, momentum and clipping). Used by tests/test_device.py (strict stand-in vs NumPy) and by
benchmarks/gpu_checks.py (CUDA vs CPU in float64)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.nn.test_gradients import LAYER_CASES, LOSS_CASES, REGULARIZER_CASES
from tests.test_components import METRIC_CASES, OPTIMIZER_CASES

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))
import nnctl_test_plugin  # noqa: E402, F401  (its layer is registered, so it needs a case like any other)

# More paths through the loss and optimizer code than their first cases take.
LOSS_VARIANTS = {
    "cross_entropy": [({"class_weight": {"c1": 3.0}}, False), ({}, True)],
    "binary_cross_entropy": [({"class_weight": "balanced"}, True)],
    "mse": [({}, True)],
    "mae": [({}, True)],
    "huber": [({"delta": 0.5}, True)],
}
OPTIMIZER_VARIANTS = {
    "sgd": [{"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "clip_norm": 0.5}, {"lr": 0.1, "momentum": 0.5, "clip_value": 0.3}],
    "adam": [{"lr": 0.01, "clip_norm": 1.0}],
    "playground_sgd": [{"lr": 0.1, "regularization": "l1", "regularization_rate": 0.5}],
}  # fmt: skip

TABLES = {
    "layers": LAYER_CASES,
    "losses": LOSS_CASES,
    "optimizers": OPTIMIZER_CASES,
    "regularizers": REGULARIZER_CASES,
    "metrics": METRIC_CASES,
}


def device_cases() -> dict[str, list[tuple[str, str, tuple]]]:
    """kind -> [(registered name, case id, runner arguments after the name)] for nnctl.devicecheck."""
    cases: dict[str, list] = {kind: [] for kind in TABLES}
    for name, items in LAYER_CASES.items():
        cases["layers"] += [(name, f"{name}-{i}", (params, shape)) for i, (params, shape) in enumerate(items)]
    for name, items in LOSS_CASES.items():
        cases["losses"] += [(name, f"{name}-{i}", (params,)) for i, params in enumerate(items)]
        for j, (params, weighted) in enumerate(LOSS_VARIANTS.get(name, [])):
            cases["losses"].append((name, f"{name}-weighted-{j}", (params, weighted)))
    for name, (params, _) in OPTIMIZER_CASES.items():
        cases["optimizers"].append((name, name, (params,)))
        cases["optimizers"] += [(name, f"{name}-{j}", (p,)) for j, p in enumerate(OPTIMIZER_VARIANTS.get(name, []))]
    cases["regularizers"] = [(name, name, (params,)) for name, params in REGULARIZER_CASES.items()]
    cases["metrics"] = [(name, name, (params,)) for name, (params, _) in METRIC_CASES.items()]
    return cases
