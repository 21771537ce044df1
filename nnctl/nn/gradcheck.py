"""Finite-difference gradient checks (central differences, float64, random upstream gradient).

A check with an all-ones upstream gradient can pass with a broken softmax backward; a random one can't.
"""

from __future__ import annotations

import numpy as np

from nnctl.nn.layer import Layer

EPS = 1e-6
TOLERANCE = 1e-6


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / max(||a|| + ||n||, tiny): scale-free, 0 for identical arrays."""
    num = np.linalg.norm(analytic - numeric)
    den = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(num / den) if den > 1e-300 else float(num)


def _sample(size: int, max_elems: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(size) if size <= max_elems else rng.choice(size, max_elems, replace=False)


def numeric_grad(f, array: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """d f / d array at the flat positions, by central differences; `array` is restored."""
    flat = array.reshape(-1)  # a view: arrays checked here are contiguous
    out = np.empty(len(positions))
    for k, pos in enumerate(positions):
        old = flat[pos]
        flat[pos] = old + EPS
        plus = f()
        flat[pos] = old - EPS
        minus = f()
        flat[pos] = old
        out[k] = (plus - minus) / (2 * EPS)
    return out


def check_layer(layer: Layer, x: np.ndarray, rng: np.random.Generator, max_elems: int = 60) -> dict[str, float]:
    """Relative error of d(sum(y * dy))/d(input) and /d(each parameter) for a built float64 layer."""
    layer.needs_input_grad = True
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    analytic = {name: g.copy() for name, g in layer.grads.items()}

    def objective() -> float:
        out = layer.forward(x, training=True)
        layer._cache = None
        _clear_caches(layer)
        return float(np.sum(out * dy))

    errors = {}
    positions = _sample(x.size, max_elems, rng)
    errors["input"] = rel_error(dx.reshape(-1)[positions], numeric_grad(objective, x, positions))
    for name, param in layer.params.items():
        positions = _sample(param.size, max_elems, rng)
        errors[name] = rel_error(analytic[name].reshape(-1)[positions], numeric_grad(objective, param, positions))
    return errors


def _clear_caches(layer: Layer) -> None:
    for _, child in getattr(layer, "children", list)():
        child._cache = None
        _clear_caches(child)
    for attr in ("activation",):
        sub = getattr(layer, attr, None)
        if isinstance(sub, Layer):
            sub._cache = None


def check_loss(loss, out: np.ndarray, y: np.ndarray) -> float:
    """Relative error of d loss / d out."""
    loss.forward(out, y)
    analytic = loss.backward().copy()

    def objective() -> float:
        value = loss.forward(out, y)
        loss._cache = None
        return value

    positions = np.arange(out.size)
    return rel_error(analytic.reshape(-1), numeric_grad(objective, out, positions))


def check_network(network, loss, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, max_elems: int = 200) -> float:
    """Relative error of d loss / d (all parameters) through the whole network (a sample of entries)."""
    for layer in network.layers:
        layer.needs_input_grad = True
    out = network.forward(x, training=True)
    loss.forward(out, y)
    network.backward(loss.backward())
    analytic = network.flat_grads.copy()

    def objective() -> float:
        value = loss.forward(network.forward(x, training=True), y)
        loss._cache = None
        for layer in network.layers:
            layer._cache = None
            _clear_caches(layer)
        return value

    positions = _sample(network.flat_params.size, max_elems, rng)
    return rel_error(analytic[positions], numeric_grad(objective, network.flat_params, positions))
