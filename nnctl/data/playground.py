"""The TensorFlow Playground data generators, ported from its `dataset.ts`, vectorised.

Each takes (n, noise, rng) where `noise` is the Playground's slider value / 100 (0..0.5) and
returns points (n, 2) float64 and labels (n,) float64 exactly as the Playground makes them:
+1 / -1 for the classifiers, a real number in about [-1, 1] for the regressors. Points come
ordered as the Playground generates them (positives first); splitting shuffles them.

Where `dataset.ts` loops `i < numSamples / 2` twice (2 * ceil(n / 2) points for odd n) we make
exactly n: the first group gets n - n // 2 points, the second n // 2.
"""

from __future__ import annotations

import numpy as np


def _uniform(rng: np.random.Generator, a: float, b: float, n: int) -> np.ndarray:
    """randUniform(a, b) n times."""
    return rng.uniform(a, b, n)


def _halves(n: int) -> tuple[int, int]:
    return n - n // 2, n // 2


def circle(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """classifyCircleData: +1 inside radius 2.5, -1 on a ring 3.5..5; label read at the noise-shifted point."""
    radius = 5.0
    n_in, n_out = _halves(n)
    r = np.concatenate([_uniform(rng, 0, radius * 0.5, n_in), _uniform(rng, radius * 0.7, radius, n_out)])
    angle = _uniform(rng, 0, 2 * np.pi, n)
    points = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    shift = _uniform(rng, -radius, radius, 2 * n).reshape(2, n).T * noise
    labels = np.where(np.hypot(*(points + shift).T) < radius * 0.5, 1.0, -1.0)
    return points, labels


def xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """classifyXORData: uniform in [-5, 5]^2 pushed 0.3 away from the axes; label sign(x1 * x2) of the noisy point."""
    padding = 0.3
    points = _uniform(rng, -5, 5, 2 * n).reshape(2, n).T
    points += np.where(points > 0, padding, -padding)
    shift = _uniform(rng, -5, 5, 2 * n).reshape(2, n).T * noise
    noisy = points + shift
    labels = np.where(noisy[:, 0] * noisy[:, 1] >= 0, 1.0, -1.0)
    return points, labels


def gauss(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """classifyTwoGaussData: +1 around (2, 2), -1 around (-2, -2); variance 0.5 + 7 * noise (0.5..4)."""
    variance = 0.5 + (4 - 0.5) * noise / 0.5  # d3 linear scale [0, .5] -> [0.5, 4]
    n_pos, n_neg = _halves(n)
    centers = np.repeat([[2.0, 2.0], [-2.0, -2.0]], [n_pos, n_neg], axis=0)
    points = centers + rng.normal(0.0, np.sqrt(variance), (n, 2))  # normalRandom(mean, variance)
    labels = np.repeat([1.0, -1.0], [n_pos, n_neg])
    return points, labels


def spiral(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """classifySpiralData: two interleaved arms r = 5 i / m, t = 1.75 * 2 pi i / m (+ pi for -1), jittered by noise."""
    parts = []
    for count, delta in zip(_halves(n), (0.0, np.pi), strict=True):  # two arms, not a loop over samples
        i = np.arange(count)
        r = i / count * 5
        t = 1.75 * i / count * 2 * np.pi + delta
        jitter = _uniform(rng, -1, 1, 2 * count).reshape(2, count).T * noise
        parts.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1) + jitter)
    points = np.concatenate(parts)
    labels = np.repeat([1.0, -1.0], _halves(n))
    return points, labels


def plane(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """regressPlane: y = (x1 + x2) / 10 read at the noise-shifted point; points uniform in [-6, 6]^2."""
    radius = 6.0
    points = _uniform(rng, -radius, radius, 2 * n).reshape(2, n).T
    shift = _uniform(rng, -radius, radius, 2 * n).reshape(2, n).T * noise
    noisy = points + shift
    labels = (noisy[:, 0] + noisy[:, 1]) / 10  # d3 linear scale [-10, 10] -> [-1, 1], not clamped
    return points, labels


# (cx, cy, sign) of the six bumps in regressGaussian.
_BUMPS = np.array([[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]])


def multi_gauss(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """regressGaussian: y = the bump value sign * max(0, 1 - d / 2) largest in |.|, at the noise-shifted point."""
    radius = 6.0
    points = _uniform(rng, -radius, radius, 2 * n).reshape(2, n).T
    shift = _uniform(rng, -radius, radius, 2 * n).reshape(2, n).T * noise
    noisy = points + shift
    d = np.hypot(noisy[:, :1] - _BUMPS[:, 0], noisy[:, 1:] - _BUMPS[:, 1])  # (n, 6)
    values = _BUMPS[:, 2] * np.clip(1 - d / 2, 0, 1)  # d3 scale [0, 2] -> [1, 0], clamped
    # The Playground keeps the first bump of largest |value| (strict >), which argmax also does.
    labels = values[np.arange(n), np.abs(values).argmax(axis=1)] + 0.0  # + 0.0 turns -0.0 into 0.0
    return points, labels


GENERATORS = {
    "circle": circle,
    "xor": xor,
    "gauss": gauss,
    "spiral": spiral,
    "plane": plane,
    "multi_gauss": multi_gauss,
}
