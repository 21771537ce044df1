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


def _frozen_state(layer: Layer):
    """A function that restores the layer's (and its children's) buffers and random state.

    Every forward of a check then sees the same state: the same dropout mask, the same running
    statistics, so finite differences measure the gradient of one training step."""
    from nnctl.nn.network import walk

    saved = []
    for _, sub in walk(layer, ""):
        if sub.stochastic and sub.rng is None:
            sub.rng = np.random.default_rng(0)
        rng_state = sub.rng.bit_generator.state if sub.rng is not None else None
        saved.append((sub, {k: v.copy() for k, v in sub.buffers.items()}, rng_state))

    def restore() -> None:
        for sub, buffers, rng_state in saved:
            for key, value in buffers.items():
                sub.buffers[key][...] = value
            if rng_state is not None:
                sub.rng.bit_generator.state = rng_state

    return restore


def check_layer(layer: Layer, x: np.ndarray, rng: np.random.Generator, max_elems: int = 60) -> dict[str, float]:
    """Relative error of d(sum(y * dy))/d(input) and /d(each parameter) for a built float64 layer."""
    layer.needs_input_grad = True
    restore = _frozen_state(layer)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    restore()
    dx = layer.backward(dy)
    from nnctl.nn.network import walk

    # Every parameter, a container's inner layers' included ("layers.0.weight").
    owned = {f"{prefix}{key}": (sub, key) for prefix, sub in walk(layer, "") for key in sub.params}
    analytic = {name: sub.grads[key].copy() for name, (sub, key) in owned.items()}

    def objective() -> float:
        restore()
        out = layer.forward(x, training=True)
        return float(np.sum(out * dy))

    errors = {}
    positions = _sample(x.size, max_elems, rng)
    errors["input"] = rel_error(dx.reshape(-1)[positions], numeric_grad(objective, x, positions))
    for name, (sub, key) in owned.items():
        param = sub.params[key]
        positions = _sample(param.size, max_elems, rng)
        errors[name] = rel_error(analytic[name].reshape(-1)[positions], numeric_grad(objective, param, positions))
    return errors


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
    restores = [_frozen_state(layer) for layer in network.layers]
    out = network.forward(x, training=True)
    loss.forward(out, y)
    network.backward(loss.backward())
    analytic = network.flat_grads.copy()

    def objective() -> float:
        for restore in restores:
            restore()
        value = loss.forward(network.forward(x, training=True), y)
        loss._cache = None
        return value

    positions = _sample(network.flat_params.size, max_elems, rng)
    return rel_error(analytic[positions], numeric_grad(objective, network.flat_params, positions))


def check_penalty(regularizer, w: np.ndarray) -> float:
    """Relative error of the penalty's gradient against central differences of its value."""
    analytic = np.zeros_like(w)
    regularizer.add_grad(w, analytic)
    positions = np.arange(w.size)
    return rel_error(analytic.reshape(-1), numeric_grad(lambda: regularizer.value(w), w, positions))
