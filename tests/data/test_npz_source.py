from pathlib import Path

import numpy as np
import pytest

from nnctl.data.sources import Npz
from nnctl.data.split import split_indices
from nnctl.errors import DataError

RNG = np.random.default_rng(0)


def save(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def load(path: str, **kwargs):
    return Npz(path=path, **kwargs).load(RNG)


def test_plain_classification_flattens_x(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    data = load(save(tmp_path, x=x, y=np.array([0, 1, 1, 0])))
    assert data.x.shape == (4, 6) and data.x.dtype == np.float64
    np.testing.assert_array_equal(data.x[1], np.arange(6, 12))
    assert data.task == "classification" and data.class_names == ["0", "1"]
    assert data.feature_names == [f"f{j}" for j in range(6)] and data.splits is None


def test_class_names_and_feature_names(tmp_path):
    path = save(
        tmp_path,
        x=np.zeros((3, 2)),
        y=np.array([2, 0, 1]),
        class_names=np.array(["a", "b", "c"]),
        feature_names=np.array(["u", "v"]),
    )
    data = load(path)
    assert data.class_names == ["a", "b", "c"] and data.y.tolist() == [2, 0, 1]
    assert data.feature_names == ["u", "v"]


def test_regression_targets(tmp_path):
    data = load(save(tmp_path, x=np.zeros((3, 2)), y=np.array([[0.5, 1.0], [1.5, 2.0], [0.0, 0.0]])))
    assert data.task == "regression" and data.y.shape == (3, 2) and data.target_names == ["y0", "y1"]
    data = load(save(tmp_path, x=np.zeros((3, 2)), y=np.array([0.5, 1.5, 2.0])))
    assert data.y.shape == (3, 1) and data.target_names == ["y"]


def test_predefined_split_arrays_are_concatenated(tmp_path):
    path = save(
        tmp_path,
        x_train=np.ones((4, 2)),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.zeros((2, 2)),
        y_test=np.array([1, 0]),
    )
    data = load(path)
    assert data.x.shape == (6, 2) and data.y.tolist() == [0, 1, 0, 1, 1, 0]
    parts = split_indices(data, {"train": 0.5, "val": 0.5}, np.random.default_rng(0))
    assert parts["train"].tolist() == [0, 1, 2, 3] and parts["test"].tolist() == [4, 5]
    assert len(parts["val"]) == 0


def test_predefined_index_arrays(tmp_path):
    path = save(
        tmp_path, x=np.zeros((5, 1)), y=np.arange(5.0) / 2, train_idx=np.array([0, 2, 4]), val_idx=np.array([1])
    )
    data = load(path)
    assert data.task == "regression"
    assert data.splits["train"].tolist() == [0, 2, 4] and data.splits["val"].tolist() == [1]
    assert data.splits["test"].dtype == np.int64 and len(data.splits["test"]) == 0


# --- errors ----------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read .npz file .*nope.npz"):
        load(str(tmp_path / "nope.npz"))


def test_missing_x_or_y(tmp_path):
    with pytest.raises(DataError, match=r"no array 'x' \(it holds: features, y\)"):
        load(save(tmp_path, features=np.zeros((2, 2)), y=np.zeros(2)))
    with pytest.raises(DataError, match="no array 'y'"):
        load(save(tmp_path, x=np.zeros((2, 2))))
    with pytest.raises(DataError, match="no 'y_val'; x_val and y_val come in pairs"):
        load(save(tmp_path, x_train=np.zeros((2, 2)), y_train=np.zeros(2), x_val=np.zeros((1, 2))))


def test_length_mismatch(tmp_path):
    with pytest.raises(DataError, match="'x' has 3 samples but 'y' has 2 rows"):
        load(save(tmp_path, x=np.zeros((3, 2)), y=np.zeros(2)))


def test_non_numeric_features(tmp_path):
    with pytest.raises(DataError, match=r"array 'x' .* has dtype <U1; features must be numeric"):
        load(save(tmp_path, x=np.array([["a", "b"]]), y=np.zeros(1)))


def test_object_array_is_rejected_without_unpickling(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))  # needs pickle to load
    with pytest.raises(DataError, match=r"array 'y' .* holds Python objects \(dtype=object\)"):
        load(str(path))


def test_pickle_file_is_rejected(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"\x80\x04\x95not really a pickle")
    with pytest.raises(DataError, match="not a NumPy .npz archive"):
        load(str(path))


def test_npy_file_is_rejected(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(DataError, match=r"single array \(.npy\)"):
        load(str(path))


def test_non_finite_features(tmp_path):
    with pytest.raises(DataError, match="sample 1, feature 0 of x .* is nan"):
        load(save(tmp_path, x=np.array([[0.0], [np.nan]]), y=np.zeros(2)))


def test_bad_index_arrays(tmp_path):
    with pytest.raises(DataError, match="outside 0..2"):
        load(save(tmp_path, x=np.zeros((3, 1)), y=np.zeros(3), train_idx=np.array([0, 3])))
    with pytest.raises(DataError, match="overlap"):
        load(save(tmp_path, x=np.zeros((3, 1)), y=np.zeros(3), train_idx=np.array([0, 1]), test_idx=np.array([1])))


def test_label_outside_class_names(tmp_path):
    path = save(tmp_path, x=np.zeros((2, 1)), y=np.array([0, 2]), class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"label 2 at y\[1\] .* labels must be 0..1"):
        load(path)


def test_classification_on_real_targets(tmp_path):
    path = save(tmp_path, x=np.zeros((2, 1)), y=np.array([0.0, 0.5]))
    with pytest.raises(DataError, match="use task: regression or a regression loss"):
        load(path, task="classification")
