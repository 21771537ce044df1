"""The in-memory data set every source returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nnctl.errors import DataError

Task = Literal["classification", "regression", "multilabel"]  # multilabel: y (N, T) of 0/1, one logit each


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value, compare by identity
class Dataset:
    """Raw features x (N, ...) float64 and targets y: (N,) int64 class indices or (N, T) float64.
    (A float32 .npy keeps float32, mapped or read whole: build normalizes its rows in float64 all the same.)

    x is (N, F) for tabular data; sources of images or sequences give (N, C, H, W), (N, T, F) ...;
    feature_names then name the values of one sample only where that is meaningful (may be empty)."""

    x: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: list[str]
    class_names: list[str] | None = None  # classification only, index -> name
    target_names: list[str] | None = None  # e.g. ["y"] or the CSV target column name
    splits: dict[str, np.ndarray] | None = None  # predefined "train"/"val"/"test" indices, else None
    # What `nnctl predict` takes, when that is not x: the 2-D points of a Playground source (x holds
    # the features computed from them). None: x itself.
    raw: np.ndarray | None = None
    # A table whose columns are encoded only after the split (types, imputation and levels are fitted on
    # the training rows; nnctl/data/tabular.py); x is then (N, 0) until build encodes it.
    table: object | None = None
    sample_weight: np.ndarray | None = None  # (N,) per-row training weights, or None

    def __post_init__(self) -> None:
        # Sources written as plugins construct this too, so say precisely what does not fit.
        if self.task not in ("classification", "regression", "multilabel"):
            raise DataError(f"dataset task must be 'classification', 'regression' or 'multilabel', got {self.task!r}.")
        if self.x.ndim < 2:
            raise DataError(f"dataset features must be an array (N, ...) of samples, got shape {self.x.shape}.")
        if len(self.y) != len(self.x):
            raise DataError(f"dataset has {len(self.x)} feature rows but {len(self.y)} targets; they must match.")
        if self.x.ndim == 2 and len(self.feature_names) != self.x.shape[1]:
            raise DataError(
                f"dataset has {self.x.shape[1]} feature columns but {len(self.feature_names)} feature names."
            )
        if self.task == "classification" and self.y.ndim != 1:
            raise DataError(f"classification targets must be class indices of shape (N,), got {self.y.shape}.")
        if self.task != "classification" and self.y.ndim != 2:
            raise DataError(f"{self.task} targets must have shape (N, T), got {self.y.shape}.")

    @property
    def num_classes(self) -> int | None:
        """K for classification (from class_names, else max label + 1); None for regression."""
        if self.task != "classification":
            return None
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.y.max()) + 1 if len(self.y) else 0

    @property
    def num_features(self) -> int:
        """Values per sample (F for flat features, C*H*W for images)."""
        return int(np.prod(self.x.shape[1:]))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample without the batch axis: (F,), (C, L), (C, H, W), (T, F) ..."""
        return tuple(int(d) for d in self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)
