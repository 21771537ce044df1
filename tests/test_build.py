"""build_experiment: splits, train_fraction, input shapes."""

import numpy as np

from nnctl.build import build_experiment
from nnctl.config import load_config
from tests.conftest import CONFIGS


def test_train_fraction_is_stratified_and_leaves_val_test_whole():
    full = build_experiment(load_config(CONFIGS / "digits.yaml"))
    part = build_experiment(load_config(CONFIGS / "digits.yaml", ["data.train_fraction=0.2"]))
    assert (
        len(part.splits["train"]) == round(0.2 * len(full.splits["train"]))
        or abs(len(part.splits["train"]) - 0.2 * len(full.splits["train"])) <= 10
    )
    assert len(part.splits["val"]) == len(full.splits["val"]) and len(part.splits["test"]) == len(full.splits["test"])
    np.testing.assert_array_equal(
        part.splits["test"].y, full.splits["test"].y
    )  # same samples (x differs: minmax refit)
    assert set(np.unique(part.splits["train"].y)) == set(range(10))
    again = build_experiment(load_config(CONFIGS / "digits.yaml", ["data.train_fraction=0.2"]))
    np.testing.assert_array_equal(again.splits["train"].x, part.splits["train"].x)


def test_normalization_uses_training_split_only():
    exp = build_experiment(load_config(CONFIGS / "iris.yaml"))
    x = exp.splits["train"].x
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-5)
    assert not np.allclose(exp.splits["test"].x.mean(axis=0), 0, atol=1e-5)
