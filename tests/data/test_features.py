import numpy as np
import pytest

from nnctl.data.features import FEATURES, compute_features

POINTS = np.array([[1.0, 2.0], [-0.5, 0.0], [np.pi / 2, -3.0]])

EXPECTED = {
    "x1": [1.0, -0.5, np.pi / 2],
    "x2": [2.0, 0.0, -3.0],
    "x1_squared": [1.0, 0.25, np.pi**2 / 4],
    "x2_squared": [4.0, 0.0, 9.0],
    "x1_x2": [2.0, -0.0, -1.5 * np.pi],
    "sin_x1": [np.sin(1.0), np.sin(-0.5), 1.0],
    "sin_x2": [np.sin(2.0), 0.0, np.sin(-3.0)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_feature_by_hand(name):
    np.testing.assert_allclose(compute_features(POINTS, [name])[:, 0], EXPECTED[name], atol=1e-15)


def test_every_feature_has_a_hand_case():
    assert set(FEATURES) == set(EXPECTED)


def test_columns_follow_the_requested_order():
    x = compute_features(POINTS, ["x2_squared", "x1"])
    assert x.shape == (3, 2) and x.dtype == np.float64
    np.testing.assert_allclose(x, np.column_stack([EXPECTED["x2_squared"], EXPECTED["x1"]]))
