"""Input normalization whose statistics come from the training split only."""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.errors import ConfigError, DataError, keyed

Method = Literal["none", "minmax", "standard"]
METHODS = ("none", "minmax", "standard")


Per = Literal["feature", "all"]


class Normalizer:
    """x' = (x - shift) / scale: minmax maps [min, max] onto `value_range` ([0, 1] by default), standard
    gives mean 0 and std 1, none is the identity. Statistics per feature (each value of a sample) or over
    all values (one shift and scale for every pixel)."""

    def __init__(
        self, method: Method = "standard", per: Per = "feature", value_range: tuple[float, float] = (0.0, 1.0)
    ):
        if method not in METHODS:
            raise ValueError(f"unknown normalization {method!r}; expected one of {', '.join(METHODS)}")
        self.method = method
        self.per = per
        self.low, self.high = value_range
        self.shift: np.ndarray | None = None  # float64, shape of one sample; set by fit or from_state
        self.scale: np.ndarray | None = None

    def fit(self, x_train: np.ndarray) -> Normalizer:
        """Learn shift and scale per value of a sample from the training rows (N, ...); a constant one gets scale 1."""
        x = np.asarray(x_train, dtype=np.float64)
        if x.ndim < 2 or len(x) == 0:
            raise DataError(
                f"cannot fit '{self.method}' normalization on a training split of shape {x.shape}; "
                "it needs at least one row of features. Give the train split a larger ratio."
            )
        axis = 0 if self.per == "feature" else None  # None: one statistic over all values
        lo, hi = x.min(axis=axis), x.max(axis=axis)
        if self.method == "minmax":
            span = (hi - lo) / (self.high - self.low)
            shift, scale = lo - self.low * np.where(hi == lo, 1.0, span), span
        elif self.method == "standard":
            shift, scale = x.mean(axis=axis), x.std(axis=axis)
        else:
            shift, scale = np.zeros(x.shape[1:]), np.ones(x.shape[1:])
        # Test "constant" with max == min, not std == 0: the std of a constant column can come out
        # as 1e-17 from rounding in the mean, and dividing by it would blow the column up.
        self.shift, self.scale = np.asarray(shift), np.asarray(np.where(hi == lo, 1.0, scale))
        return self

    def keep_last(self, k: int, key: str) -> Normalizer:
        """Leave the last k features as they are (shift 0, scale 1): category ids for an embedding."""
        if self.method == "none" or k == 0:
            return self
        if self.per != "feature" or self.shift is None or self.shift.ndim != 1:
            raise keyed(
                ConfigError(
                    f"{key}.per: all would shift and scale the category ids of encoding: embedding columns with the "
                    "other features; use per: feature (the default) or normalize: none."
                ),
                *key.split("."),
                "per",
            )
        self.shift[-k:], self.scale[-k:] = 0.0, 1.0
        return self

    def fit_chunks(self, chunks) -> Normalizer:
        """fit() by one streaming pass over chunks of the training rows (data bigger than memory): minimum,
        maximum and, for standard, mean and variance merged chunk by chunk with Chan's pairwise update
        (Welford's for whole chunks), in float64. Equals fit() on the concatenated rows up to rounding."""
        return self.fit_stats(self.partial_stats(chunks))

    def partial_stats(self, chunks) -> dict | None:
        """The running statistics of some training rows (None for none): what fit_chunks accumulates, and
        what data-parallel ranks, each over its part of the rows, merge with merge_stats."""
        stats = None
        axis = 0 if self.per == "feature" else None
        for chunk in chunks:
            x = np.asarray(chunk, dtype=np.float64)
            if len(x) == 0:
                continue
            c_mean = x.mean(axis=axis)
            part = {
                "n": x.shape[0] if axis == 0 else x.size,
                "mean": c_mean,
                "m2": ((x - c_mean) ** 2).sum(axis=axis),
                "lo": x.min(axis=axis),
                "hi": x.max(axis=axis),
                "shape": x.shape[1:],
            }
            stats = merge_stats(stats, part)
        return stats

    def fit_stats(self, stats: dict | None) -> Normalizer:
        """Shift and scale from (merged) partial_stats, as fit() computes them."""
        if stats is None:
            raise DataError(
                f"cannot fit '{self.method}' normalization on an empty training split; give the train split a larger ratio."
            )
        n, mean, m2, lo, hi = (stats[k] for k in ("n", "mean", "m2", "lo", "hi"))
        if self.method == "minmax":
            span = (hi - lo) / (self.high - self.low)
            shift, scale = lo - self.low * np.where(hi == lo, 1.0, span), span
        elif self.method == "standard":
            shift, scale = mean, np.sqrt(m2 / n)
        else:
            shift, scale = np.zeros(stats["shape"]), np.ones(stats["shape"])
        self.shift, self.scale = np.asarray(shift), np.asarray(np.where(hi == lo, 1.0, scale))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - shift) / scale, in x's float dtype (non-float input comes back float64)."""
        if self.shift is None or self.scale is None:
            raise RuntimeError("Normalizer.transform called before fit() or from_state()")
        if self.method == "none":
            return x
        if self.shift.ndim and x.shape[1:] != self.shift.shape:  # 0-d statistics fit any shape
            raise DataError(
                f"normalization was fitted on samples of shape {self.shift.shape} but got data of shape {x.shape[1:]}; "
                "the data must have the same columns as the training data."
            )
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        # Cast the statistics, not the result, so float32 data is computed in float32.
        return (x.astype(dtype, copy=False) - self.shift.astype(dtype)) / self.scale.astype(dtype)

    def state(self) -> dict[str, np.ndarray]:
        """{"shift", "scale"} as float64 arrays, for a checkpoint."""
        if self.shift is None or self.scale is None:
            raise RuntimeError("Normalizer.state called before fit() or from_state()")
        return {"shift": self.shift.copy(), "scale": self.scale.copy()}

    @classmethod
    def from_state(cls, method: Method, state: dict[str, np.ndarray]) -> Normalizer:
        """Rebuild a fitted normalizer from state(); 'none' accepts an empty state."""
        norm = cls(method)
        if method == "none" and not state:
            # 0-d statistics broadcast as the identity against data of any width.
            norm.shift, norm.scale = np.array(0.0), np.array(1.0)
            return norm
        missing = {"shift", "scale"} - set(state)
        if missing:
            raise DataError(f"normalization state is missing {sorted(missing)}; the checkpoint is incomplete.")
        shift = np.asarray(state["shift"], dtype=np.float64)  # shape of one sample (or 0-d)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if shift.shape != scale.shape:
            raise DataError(f"normalization state has shift {shift.shape} but scale {scale.shape}; they must match.")
        norm.shift, norm.scale = shift, scale
        return norm


def merge_stats(a: dict | None, b: dict | None) -> dict | None:
    """Two parts' (count, mean, sum of squared deviations, min, max) as one: Chan's pairwise update."""
    if a is None or b is None:
        return b if a is None else a
    total = a["n"] + b["n"]
    delta = b["mean"] - a["mean"]
    return {
        "n": total,
        "mean": a["mean"] + delta * (b["n"] / total),
        "m2": a["m2"] + b["m2"] + delta**2 * (a["n"] * b["n"] / total),
        "lo": np.minimum(a["lo"], b["lo"]),
        "hi": np.maximum(a["hi"], b["hi"]),
        "shape": a["shape"],
    }
