"""Weight initialisers: (fan_in, fan_out, rng) -> array of shape (fan_in, fan_out)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Init = Literal["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "normal", "zeros", "playground"]


def initialize(kind: str, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "glorot_uniform":  # Glorot & Bengio 2010: keeps activation variance for tanh
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)
    if kind == "glorot_normal":
        return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if kind == "he_uniform":  # He et al. 2015: variance 2/fan_in for ReLU
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)
    if kind == "he_normal":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    if kind == "normal":
        return rng.normal(0.0, 0.05, size=shape)
    if kind == "playground":  # the TensorFlow Playground's Math.random() - 0.5, whatever the fan-in
        return rng.uniform(-0.5, 0.5, size=shape)
    if kind == "zeros":
        return np.zeros(shape)
    raise ValueError(f"unknown initialiser {kind!r}")
