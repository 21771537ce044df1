"""A 1-D regression source: samples of a named function plus Gaussian noise (universality and overfitting demos)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from nnctl.data.dataset import Dataset
from nnctl.registry import DATA_SOURCES, Component, Params

TARGETS = {
    "sine": lambda x, p: np.sin(2 * np.pi * x),  # one period on [0, 1]
    "abs": lambda x, p: np.abs(x),
    "step": lambda x, p: (x >= 0).astype(np.float64),
    "sawtooth": lambda x, p: 2 * (x - np.floor(x + 0.5)),  # period 1, values in [-1, 1)
    "gaussian_bump": lambda x, p: np.exp(-0.5 * (x / p.width) ** 2),
    "polynomial": lambda x, p: np.polynomial.polynomial.polyval(x, p.coefficients),
}


@DATA_SOURCES.register("function")
class FunctionSource(Component):
    """y = f(x) + N(0, noise^2) for a named f: sine (sin 2 pi x), abs, step, sawtooth, gaussian_bump, polynomial."""

    class Params(Params):
        target: Literal["sine", "abs", "step", "sawtooth", "gaussian_bump", "polynomial"] = Field(
            "sine", description="The function to learn."
        )
        coefficients: list[float] = Field(
            default_factory=list, description="polynomial only: c0, c1, c2, ... for y = c0 + c1 x + c2 x^2 + ..."
        )
        width: float = Field(
            0.2, gt=0, description="gaussian_bump only: standard deviation of the bump exp(-x^2 / 2 width^2)."
        )
        samples: int = Field(100, ge=2, le=1_000_000, description="Number of (x, y) points.")
        x_range: tuple[float, float] = Field((0.0, 1.0), description="[low, high] interval of x.")
        spacing: Literal["random", "grid"] = Field(
            "random", description="x drawn uniformly at random, or evenly spaced."
        )
        noise: float = Field(0.0, ge=0, description="Standard deviation of the Gaussian noise added to y.")

        @model_validator(mode="after")
        def _consistent(self):
            if self.x_range[0] >= self.x_range[1]:
                raise ValueError(f"x_range must be [low, high] with low < high, got {list(self.x_range)}")
            if not math.isfinite(self.x_range[1] - self.x_range[0]):
                raise ValueError(f"x_range is too wide to sample from, got {list(self.x_range)}")
            if self.target == "polynomial" and not self.coefficients:
                raise ValueError("target: polynomial needs coefficients: [c0, c1, ...]")
            return self

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        low, high = p.x_range
        x = np.linspace(low, high, p.samples) if p.spacing == "grid" else rng.uniform(low, high, p.samples)
        y = TARGETS[p.target](x, p) + rng.normal(0.0, p.noise, p.samples) * (p.noise > 0)
        return Dataset(x=x[:, None], y=y[:, None], task="regression", feature_names=["x"], target_names=["y"])


def clean_target(params: FunctionSource.Params, x: np.ndarray) -> np.ndarray:
    """The noise-free function, for plots of the fitted curve."""
    return TARGETS[params.target](x, params)
