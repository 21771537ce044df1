"""Train / validation / test index splits: stratified for classification, deterministic from the rng."""

from __future__ import annotations

import numpy as np

from nnctl.data.dataset import Dataset
from nnctl.errors import DataError
from nnctl.rng import STREAM_SPLIT, rng_for

SPLITS = ("train", "val", "test")


def split_counts(n: int, fractions: np.ndarray) -> np.ndarray:
    """Divide n items by fractions (summing to 1) with largest-remainder rounding, so counts sum to n."""
    exact = n * fractions
    counts = np.floor(exact).astype(np.int64)
    leftover = n - int(counts.sum())
    # Ties go to the earlier split (train before val before test): stable sort on -remainder.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:leftover]] += 1
    return counts


def split_indices(dataset: Dataset, ratios: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Index arrays for "train", "val", "test" in the proportions of `ratios` (normalised to sum 1).

    Classification: each class is shuffled and divided on its own, so every split keeps the class
    mix. Regression: one shuffle of all rows. A data set with predefined splits keeps them. Each
    split comes back shuffled (int64), so a split's rows are not grouped by class.
    """
    if dataset.splits is not None:
        empty = np.zeros(0, dtype=np.int64)
        return {name: np.asarray(dataset.splits.get(name, empty), dtype=np.int64) for name in SPLITS}

    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected some of {list(SPLITS)}")
    fractions = np.array([float(ratios.get(name, 0.0)) for name in SPLITS])
    if np.any(fractions < 0) or not np.isfinite(fractions).all() or fractions.sum() <= 0:
        raise ValueError(f"split ratios must be non-negative with a positive sum, got {ratios}")
    fractions = fractions / fractions.sum()

    if dataset.task == "classification":
        groups = [np.flatnonzero(dataset.y == k) for k in np.unique(dataset.y)]
    else:
        groups = [np.arange(len(dataset), dtype=np.int64)]

    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for group in groups:  # one iteration per class, not per sample
        shuffled = rng.permutation(group)
        bounds = np.cumsum(split_counts(len(group), fractions))[:-1]
        for name, piece in zip(SPLITS, np.split(shuffled, bounds), strict=True):
            parts[name].append(piece)
    return {name: rng.permutation(np.concatenate(parts[name])).astype(np.int64) for name in SPLITS}


def kfold(y: np.ndarray | None, n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """The fold (0 .. folds - 1) of each of n rows: stratified by class labels y (each class dealt round-robin
    over the folds after a shuffle, so fold sizes differ by at most one per class), or a plain shuffle."""
    fold = np.empty(n, dtype=np.int64)
    groups = [np.flatnonzero(y == k) for k in np.unique(y)] if y is not None else [np.arange(n)]
    start = 0
    for group in groups:  # one iteration per class
        shuffled = rng.permutation(group)
        fold[shuffled] = (start + np.arange(len(group))) % folds
        start += len(group)  # the next class continues the deal, so small classes do not all start at fold 0
    return fold


def fold_indices(dataset: Dataset, indices: dict[str, np.ndarray], split, seed: int) -> dict[str, np.ndarray]:
    """With split.folds set: train + val pooled, cut into stratified folds (from (seed, repeat)); fold
    split.fold becomes val and the others train. The test indices are kept as they are."""
    if getattr(split, "folds", None) is None:
        return indices
    pool = np.sort(np.concatenate([indices["train"], indices["val"]]))
    if len(pool) < split.folds:
        raise DataError(f"{split.folds} folds need at least {split.folds} samples outside the test split")
    labels = dataset.y[pool] if dataset.task == "classification" else None
    rng = rng_for(seed, STREAM_SPLIT, 2, split.repeat)  # [seed, 1, 2, repeat]: the cv folds
    which = kfold(labels, len(pool), split.folds, rng)
    val = pool[which == split.fold]
    train = rng.permutation(pool[which != split.fold])
    return {"train": train.astype(np.int64), "val": val.astype(np.int64), "test": indices["test"]}
