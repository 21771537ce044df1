"""Sequence sources: the synthetic tasks and the NPZ / CSV sources that keep a sample's shape."""

import numpy as np
import pytest

from nnctl.data.sequences import AddingProblem, SequenceCsv, SequenceNpz, SineWave, TemporalOrder
from nnctl.errors import DataError

RNG = np.random.default_rng(0)


def test_adding_problem_layout_and_baseline():
    data = AddingProblem(samples=4000, length=30).load(np.random.default_rng(1))
    assert data.x.shape == (4000, 30, 2) and data.y.shape == (4000, 1) and data.task == "regression"
    markers = data.x[:, :, 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    assert markers[:, :15].sum(axis=1).min() == 1  # one marker in each half
    np.testing.assert_allclose(data.y[:, 0], (data.x[:, :, 0] * markers).sum(axis=1))
    assert np.mean((data.y - 1) ** 2) == pytest.approx(1 / 6, abs=0.01)  # what "always 1" scores


def test_adding_problem_is_a_function_of_the_generator():
    a = AddingProblem(samples=10, length=8).load(np.random.default_rng(5))
    b = AddingProblem(samples=10, length=8).load(np.random.default_rng(5))
    np.testing.assert_array_equal(a.x, b.x)


def test_sine_wave_target_continues_the_wave():
    data = SineWave(samples=50, length=12).load(RNG)
    assert data.x.shape == (50, 12, 1) and data.y.shape == (50, 1)
    # a sine sampled at equal steps obeys s[t+1] = 2 cos(w) s[t] - s[t-1]; fit 2 cos(w) on the inputs
    x = data.x[:, :, 0]
    c = (x[:, 2:] + x[:, :-2]).sum(axis=1) / x[:, 1:-1].sum(axis=1)
    np.testing.assert_allclose(data.y[:, 0], c * x[:, -1] - x[:, -2], atol=1e-6)


def test_sine_wave_periods_must_be_ordered():
    with pytest.raises(ValueError, match="min_period"):
        SineWave(min_period=10, max_period=5)


@pytest.mark.parametrize("encoding", ["tokens", "one_hot"])
def test_temporal_order_class_is_the_order_of_the_two_symbols(encoding):
    data = TemporalOrder(samples=400, length=10, distractors=3, encoding=encoding).load(RNG)
    ids = data.x if encoding == "tokens" else data.x.argmax(axis=2)
    assert data.x.shape == ((400, 10) if encoding == "tokens" else (400, 10, 5))
    relevant = ids < 2  # X = 0, Y = 1
    np.testing.assert_array_equal(relevant.sum(axis=1), 2)
    first = ids[:, :5][relevant[:, :5]]
    second = ids[:, 5:][relevant[:, 5:]]
    np.testing.assert_array_equal(data.y, 2 * first + second)
    assert data.class_names == ["XX", "XY", "YX", "YY"] and set(np.bincount(data.y)) != {0}


def test_sequence_npz_keeps_or_sets_the_sample_shape(tmp_path):
    path = tmp_path / "seq.npz"
    x = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    np.savez(path, x=x, y=np.array([0, 1, 1, 0]))
    data = SequenceNpz(path=str(path)).load(RNG)
    assert data.sample_shape == (5, 3) and data.x.dtype == np.float64
    np.testing.assert_array_equal(data.x, x)
    assert SequenceNpz(path=str(path), shape=[15, 1]).load(RNG).sample_shape == (15, 1)
    with pytest.raises(DataError, match="do not fit shape"):
        SequenceNpz(path=str(path), shape=[4, 4]).load(RNG)


def test_sequence_npz_tokens_and_predefined_splits(tmp_path):
    path = tmp_path / "tok.npz"
    np.savez(
        path, x_train=np.ones((3, 6)), y_train=np.array([0, 1, 0]), x_test=np.zeros((2, 6)), y_test=np.array([1, 1])
    )
    data = SequenceNpz(path=str(path)).load(RNG)
    assert data.x.shape == (5, 6) and list(data.splits["test"]) == [3, 4]


def test_sequence_csv_reshapes_rows_time_major(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("a0,b0,a1,b1,a2,b2,label\n1,2,3,4,5,6,up\n6,5,4,3,2,1,down\n")
    data = SequenceCsv(path=str(path), target="label", shape=[3, 2]).load(RNG)
    assert data.x.shape == (2, 3, 2) and data.class_names == ["down", "up"]
    np.testing.assert_array_equal(data.x[0, :, 1], [2, 4, 6])
    with pytest.raises(DataError, match=r"6 values per sample, which do not fit shape \[4, 2\]"):
        SequenceCsv(path=str(path), target="label", shape=[4, 2]).load(RNG)
    with pytest.raises(ValueError, match="positive"):
        SequenceCsv(path=str(path), target="label", shape=[0, 2])
