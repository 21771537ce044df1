import numpy as np
import pytest

from nnctl.data.transforms import Normalizer
from nnctl.errors import DataError

TRAIN = np.array([[0.0, 10.0, 5.0], [2.0, 20.0, 5.0], [4.0, 60.0, 5.0]])  # last column is constant
TEST = np.array([[8.0, 0.0, 7.0]])


def test_minmax_maps_train_to_unit_range():
    norm = Normalizer("minmax").fit(TRAIN)
    x = norm.transform(TRAIN)
    np.testing.assert_allclose(x.min(axis=0), [0, 0, 0])
    np.testing.assert_allclose(x.max(axis=0), [1, 1, 0])  # constant column: (5 - 5) / 1
    np.testing.assert_allclose(x[:, 0], [0, 0.5, 1])


def test_standard_gives_mean_zero_std_one():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 5.0, (200, 4))
    x = Normalizer("standard").fit(train).transform(train)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-12)


def test_statistics_come_from_the_training_rows_only():
    norm = Normalizer("minmax").fit(TRAIN)
    np.testing.assert_allclose(norm.transform(TEST), [[2.0, -0.2, 2.0]])  # outside [0, 1] is expected
    np.testing.assert_allclose(norm.state()["shift"], [0, 10, 5])


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_zero_variance_column_gets_scale_one(method):
    train = np.column_stack([np.full(7, 0.1), np.arange(7.0)])  # 0.1 * 7 / 7 != 0.1 in floating point
    norm = Normalizer(method).fit(train)
    assert norm.state()["scale"][0] == 1.0
    assert np.isfinite(norm.transform(train)).all()
    np.testing.assert_allclose(norm.transform(train)[:, 0], 0, atol=1e-15)


def test_none_is_identity():
    norm = Normalizer("none").fit(TRAIN)
    assert norm.transform(TEST) is TEST
    np.testing.assert_array_equal(norm.state()["scale"], np.ones(3))
    empty = Normalizer.from_state("none", {})
    assert empty.transform(TEST) is TEST
    np.testing.assert_array_equal(TEST * empty.scale + empty.shift, TEST)  # statistics broadcast as identity


@pytest.mark.parametrize("method", ["none", "minmax", "standard"])
def test_state_round_trip(method):
    norm = Normalizer(method).fit(TRAIN)
    again = Normalizer.from_state(method, norm.state())
    np.testing.assert_array_equal(again.transform(TEST), norm.transform(TEST))
    assert set(norm.state()) == {"shift", "scale"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_input_dtype(dtype):
    norm = Normalizer("standard").fit(TRAIN)
    assert norm.transform(TEST.astype(dtype)).dtype == dtype


def test_errors():
    with pytest.raises(ValueError, match="unknown normalization"):
        Normalizer("zscore")
    with pytest.raises(DataError, match="at least one row"):
        Normalizer("minmax").fit(np.zeros((0, 3)))
    with pytest.raises(DataError, match=r"samples of shape \(3,\) but got data of shape \(2,\)"):
        Normalizer("minmax").fit(TRAIN).transform(np.zeros((1, 2)))
    with pytest.raises(DataError, match="missing"):
        Normalizer.from_state("standard", {"shift": np.zeros(3)})
    with pytest.raises(RuntimeError, match="before fit"):
        Normalizer("standard").transform(TEST)
