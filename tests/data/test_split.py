import numpy as np
import pytest

from nnctl.data.dataset import Dataset
from nnctl.data.split import split_counts, split_indices

RATIOS = {"train": 0.7, "val": 0.2, "test": 0.1}


def classification(counts: list[int]) -> Dataset:
    y = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    return Dataset(np.zeros((len(y), 1)), y, "classification", ["a"])


def regression(n: int) -> Dataset:
    return Dataset(np.arange(n, dtype=np.float64)[:, None], np.zeros((n, 1)), "regression", ["a"])


def test_split_counts_keep_the_total():
    assert split_counts(10, np.array([0.7, 0.2, 0.1])).tolist() == [7, 2, 1]
    assert split_counts(7, np.array([1 / 3, 1 / 3, 1 / 3])).tolist() == [3, 2, 2]
    assert split_counts(5, np.array([0.5, 0.5, 0.0])).tolist() == [3, 2, 0]


def test_splits_are_disjoint_and_cover_everything():
    data = classification([50, 30, 20])
    parts = split_indices(data, RATIOS, np.random.default_rng(0))
    assert set(parts) == {"train", "val", "test"}
    joined = np.concatenate(list(parts.values()))
    assert joined.dtype == np.int64
    assert sorted(joined.tolist()) == list(range(100))


def test_ratios_and_stratified_class_counts():
    data = classification([50, 30, 20])
    parts = split_indices(data, RATIOS, np.random.default_rng(0))
    assert [len(parts[k]) for k in ("train", "val", "test")] == [70, 20, 10]
    assert np.bincount(data.y[parts["train"]]).tolist() == [35, 21, 14]
    assert np.bincount(data.y[parts["val"]]).tolist() == [10, 6, 4]
    assert np.bincount(data.y[parts["test"]]).tolist() == [5, 3, 2]


def test_each_split_is_shuffled_not_grouped_by_class():
    data = classification([100, 100])
    train = split_indices(data, RATIOS, np.random.default_rng(0))["train"]
    assert not np.all(np.diff(data.y[train]) >= 0)


def test_zero_ratio_gives_an_empty_split():
    parts = split_indices(regression(10), {"train": 0.8, "val": 0.2, "test": 0.0}, np.random.default_rng(0))
    assert parts["test"].dtype == np.int64 and parts["test"].shape == (0,)
    assert len(parts["train"]) == 8 and len(parts["val"]) == 2


def test_regression_is_a_plain_shuffle():
    parts = split_indices(regression(101), RATIOS, np.random.default_rng(1))
    assert [len(parts[k]) for k in ("train", "val", "test")] == [71, 20, 10]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(101))
    assert not np.array_equal(np.sort(parts["train"]), np.arange(71))


def test_deterministic_for_the_same_seed():
    data = classification([40, 60])
    a = split_indices(data, RATIOS, np.random.default_rng(7))
    b = split_indices(data, RATIOS, np.random.default_rng(7))
    c = split_indices(data, RATIOS, np.random.default_rng(8))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train"], c["train"])


def test_predefined_splits_are_honoured():
    y = np.array([0, 1, 0, 1, 0])
    data = Dataset(np.zeros((5, 1)), y, "classification", ["a"], splits={"train": np.array([4, 0, 1]), "test": [2, 3]})
    parts = split_indices(data, RATIOS, np.random.default_rng(0))
    assert parts["train"].tolist() == [4, 0, 1] and parts["test"].tolist() == [2, 3]
    assert parts["val"].dtype == np.int64 and len(parts["val"]) == 0


def test_bad_ratios_are_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        split_indices(regression(5), {"train": 1.0, "valid": 0.1}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative"):
        split_indices(regression(5), {"train": 1.0, "val": -0.1}, np.random.default_rng(0))
