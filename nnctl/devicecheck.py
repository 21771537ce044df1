"""Run every kind of engine component on a device and bring the results home, to compare two devices.

One harness for the device seam: the same component, built from the same seed, fed the same host
inputs, run on device A and on device B; every array it produces (outputs, input and parameter
gradients, buffers, optimizer state, metric values) comes back as NumPy, and `compare` gives the
relative error per array. The CPU tests use it with a strict stand-in device (equal to NumPy, and
failing on any direct `numpy` call on a device array); benchmarks/gpu_checks.py with CUDA in float64.

Cases are `(params, ...)` tables keyed by registered name, the same tables the gradient checks use
(tests/nn/test_gradients.py, tests/test_components.py); `missing_cases` names registered components
that have none, so a new component cannot skip the check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from nnctl import registry
from nnctl.device import CPU, Device

Results = dict[str, np.ndarray]


def missing_cases(kind: str, cases: Iterable[str]) -> list[str]:
    """Registered names of a registry kind (layers, losses, ...) without a case."""
    return sorted(set(registry.ALL[kind].names()) - set(cases))


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / max(||a|| + ||b||, tiny) in float64; inf when the shapes differ or the non-finite values
    differ (one side finite where the other is not, or NaN against an infinity, or +inf against -inf)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    odd = ~np.isfinite(a)
    if not np.array_equal(a[odd], b[odd], equal_nan=True):
        return float("inf")
    a, b = np.where(np.isfinite(a), a, 0.0), np.where(np.isfinite(b), b, 0.0)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    num = np.linalg.norm(a - b)
    return float(num / den) if den > 1e-300 else float(num)


def compare(a: Results, b: Results) -> dict[str, float]:
    """Relative error per result key (inf for a key only one side has)."""
    return {key: rel_error(a[key], b[key]) if key in a and key in b else float("inf") for key in sorted({*a, *b})}


def _host(device: Device, value) -> np.ndarray:
    return np.array(device.to_host(value))


# --- layers -----------------------------------------------------------------------------------------


def run_layer(name: str, params: dict, shape: tuple[int, ...], *, device: Device = CPU, dtype=np.float64) -> Results:
    """A training forward and backward (random upstream gradient), then an eval forward, of one layer case.

    `params` may hold `_buffers` (state set after build, e.g. running statistics)."""
    params = dict(params)
    buffers = params.pop("_buffers", {})
    layer = registry.LAYERS.create({"type": name, **params})
    layer.build(shape, np.random.default_rng(0), dtype, device)
    for key, value in buffers.items():
        layer.buffers[key][...] = device.to_device(np.full(layer.buffers[key].shape, value))
    if layer.stochastic:
        layer.rng = np.random.default_rng(0)
    layer.needs_input_grad = True
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4,) + tuple(shape)).astype(dtype) * 2 + 0.5
    if hasattr(layer, "example_input"):  # layers that need valid inputs (embedding: token ids)
        x = layer.example_input(4, rng)
    from nnctl.nn.network import walk

    out: Results = {}
    y = layer.forward(device.to_device(x), training=True)
    out["forward"] = _host(device, y)
    dy = rng.standard_normal(out["forward"].shape).astype(out["forward"].dtype)
    out["input_grad"] = _host(device, layer.backward(device.to_device(dy)))
    for prefix, sub in walk(layer, ""):
        for key in sub.params:
            out[f"grad:{prefix}{key}"] = _host(device, sub.grads[key])
        for key, value in sub.buffers.items():
            out[f"buffer:{prefix}{key}"] = _host(device, value)
    out["eval"] = _host(device, layer.forward(device.to_device(x), training=False))
    return out


# --- losses ------------------------------------------------------------------------------------------


def loss_inputs(name: str, rng: np.random.Generator, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(network outputs, targets) of a loss's task, on the host."""
    if name == "cross_entropy":
        return rng.standard_normal((6, 4)).astype(dtype), rng.integers(0, 4, 6)
    if name in ("binary_cross_entropy", "playground_mse"):
        return (rng.standard_normal((6, 1)) * 3).astype(dtype), rng.integers(0, 2, 6)
    return rng.standard_normal((6, 2)).astype(dtype), rng.standard_normal((6, 2)).astype(dtype)


def run_loss(
    name: str, params: dict, sample_weight: bool = False, *, device: Device = CPU, dtype=np.float64
) -> Results:
    """Value, gradient, predictions (and probabilities) of one loss case; class weights are fitted on the
    case's labels, sample weights (when asked) travel with the targets."""
    from nnctl.nn.losses import with_sample_weight

    loss = registry.LOSSES.create({"type": name, **params}).to(device)
    rng = np.random.default_rng(2)
    task_like = "mse" if params.get("output") == "linear" else name  # playground_mse's regression form
    out, y = loss_inputs(task_like, rng, dtype)
    if getattr(loss, "class_weight", None) is not None:
        k = out.shape[1] if out.shape[1] > 1 else 2
        loss.fit_class_weight(y, [f"c{i}" for i in range(k)], k)
    if sample_weight:
        loss.sample_weighted = True
        y = with_sample_weight(y, rng.uniform(0.1, 3.0, len(y)))
    value = loss.forward(device.to_device(out), device.to_device(y))
    results = {"value": np.array(value), "grad": _host(device, loss.backward())}
    results["predict"] = _host(device, loss.predict(device.to_device(out)))
    if hasattr(loss, "probabilities"):
        results["probabilities"] = _host(device, loss.probabilities(device.to_device(out)))
    return results


# --- optimizers --------------------------------------------------------------------------------------


def run_optimizer(name: str, params: dict, *, device: Device = CPU, dtype=np.float64, steps: int = 3) -> Results:
    """`steps` updates on f(p) = 0.5 sum(c p^2) (gradient c p, computed on the device) from a random start,
    half of the entries masked out of weight decay; the parameters and the state after them."""
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(12).astype(dtype)
    curvature = device.to_device(np.linspace(0.5, 3.0, 12).astype(dtype))
    mask = device.to_device((np.arange(12) % 2).astype(dtype))
    p, g = device.to_device(p0), device.to_device(np.zeros_like(p0))
    opt = registry.OPTIMIZERS.create({"type": name, **params}).to(device).bind(p, g, mask)
    for k in range(steps):
        g[...] = curvature * p
        opt.step(None if k % 2 else float(params.get("lr", 0.01)) * 0.5)  # the schedule's rate, then the default
    results = {"params": _host(device, p)}
    for key, value in opt.state_dict().items():
        results[f"state:{key}"] = np.array(value)
    return results


# --- regularizers ------------------------------------------------------------------------------------


def run_regularizer(name: str, params: dict, *, device: Device = CPU, dtype=np.float64) -> Results:
    """A penalty's value and gradient (added to a gradient), or a constraint's projection."""
    reg = registry.REGULARIZERS.create({"type": name, **params}).to(device)
    w0 = np.random.default_rng(4).standard_normal((4, 3)).astype(dtype) * 2
    w = device.to_device(w0)
    if reg.is_constraint:
        reg.project(w)
        return {"projected": _host(device, w)}
    g = device.to_device(np.ones_like(w0))
    reg.add_grad(w, g)
    return {"value": np.array(reg.value(w)), "grad": _host(device, g)}


# --- metrics ------------------------------------------------------------------------------------------


def metric_inputs(task: str, rng: np.random.Generator, n: int = 12, k: int = 3):
    """(y, pred, proba) host batches of a metric's task."""
    if task == "classification":
        proba = rng.dirichlet(np.ones(k), n)
        return rng.integers(0, k, n), proba.argmax(axis=1), proba
    if task == "multilabel":
        return rng.integers(0, 2, (n, k)), rng.integers(0, 2, (n, k)), None
    y = rng.standard_normal((n, 2))
    return y, y + rng.standard_normal((n, 2)) * 0.3, None


def run_metric(name: str, params: dict, *, device: Device = CPU) -> Results:
    """The metric over two batches streamed on the device (its running sums on the host)."""
    from nnctl.metrics import ConfusionMatrix

    metric = registry.METRICS.create({"type": name, **params}).to(device)
    metric.prepare(metric.task, 3 if metric.task == "classification" else None)
    confusion = ConfusionMatrix(3, device)
    rng = np.random.default_rng(5)
    for _ in range(2):
        y, pred, proba = metric_inputs(metric.task, rng)
        proba = None if proba is None else device.to_device(proba)
        metric.update(device.to_device(y), device.to_device(pred), proba)
        if metric.task == "classification":
            confusion.update(device.to_device(y), device.to_device(pred))
    results = {"result": np.array(metric.result())}
    if metric.task == "classification":
        results["confusion"] = confusion.result()
    return results


# --- every case of every kind ------------------------------------------------------------------------

RUNNERS: dict[str, Callable[..., Results]] = {
    "layers": run_layer,
    "losses": run_loss,
    "optimizers": run_optimizer,
    "regularizers": run_regularizer,
    "metrics": run_metric,
}


def check_all(cases: dict[str, list[tuple[str, str, tuple]]], a: Device, b: Device, **options) -> list[dict]:
    """Run every case on devices `a` and `b`: one record per case {kind, case, errors (per array), max}.
    `cases` maps a kind to (name, case id, runner arguments after the name) triples; `options` go to
    the runners that take them (dtype)."""
    records = []
    for kind, items in cases.items():
        runner = RUNNERS[kind]
        extra = {k: v for k, v in options.items() if k in runner.__kwdefaults__}
        for name, case_id, args in items:
            errors = compare(runner(name, *args, device=a, **extra), runner(name, *args, device=b, **extra))
            records.append({"kind": kind, "case": case_id, "errors": errors, "max": max(errors.values(), default=0.0)})
    return records
