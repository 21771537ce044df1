"""The Playground's input features, computed from raw 2-D points (x1, x2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

FeatureName = Literal["x1", "x2", "x1_squared", "x2_squared", "x1_x2", "sin_x1", "sin_x2"]

FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1_squared": lambda x1, x2: x1**2,
    "x2_squared": lambda x1, x2: x2**2,
    "x1_x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: np.sin(x1),
    "sin_x2": lambda x1, x2: np.sin(x2),
}
assert set(FEATURES) == set(get_args(FeatureName))


def compute_features(points: np.ndarray, names: list[str]) -> np.ndarray:
    """(N, 2) points -> (N, len(names)) float64, one column per named feature, in the given order."""
    x1, x2 = points[:, 0], points[:, 1]
    columns = [FEATURES[name](x1, x2) for name in names]
    return np.stack(columns, axis=1).astype(np.float64, copy=False).reshape(len(points), len(names))
