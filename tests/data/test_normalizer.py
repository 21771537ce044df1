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


def test_minmax_to_symmetric_range_and_over_all_values():
    x = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]])
    sym = Normalizer("minmax", value_range=(-1.0, 1.0)).fit(x)
    np.testing.assert_allclose(sym.transform(x), [[-1, -1], [0, 0], [1, 1]])
    pixels = Normalizer("minmax", per="all").fit(x)  # one min and max over every value: 0 and 30
    np.testing.assert_allclose(pixels.transform(x), x / 30)
    assert pixels.state()["shift"].shape == ()
    std_all = Normalizer("standard", per="all").fit(x)
    assert std_all.transform(x).mean() == pytest.approx(0) and std_all.transform(x).std() == pytest.approx(1)


def test_normalize_config_forms(write_yaml, minimal_text):
    from nnctl.config import load_config
    from nnctl.errors import ConfigError

    text = minimal_text.replace(
        "source: {type: xor, samples: 100}",
        "source: {type: xor, samples: 100}\n  normalize: {method: minmax, range: [-1, 1], per: all}",
    )
    cfg = load_config(write_yaml(text))
    assert cfg.data.normalize.range == (-1.0, 1.0) and cfg.data.normalize.per == "all"
    short = load_config(write_yaml(minimal_text), ["data.normalize=standard"])
    assert short.data.normalize.method == "standard"
    with pytest.raises(ConfigError, match="low < high"):
        load_config(write_yaml(minimal_text), ["data.normalize={method: minmax, range: [1, 0]}"])
