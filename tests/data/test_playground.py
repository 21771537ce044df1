import numpy as np
import pytest

from nnctl.data import playground
from nnctl.data.playground import GENERATORS

CLASSIFIERS = ["circle", "xor", "gauss", "spiral"]
REGRESSORS = ["plane", "multi_gauss"]


def make(name: str, n: int = 400, noise: float = 0.0, seed: int = 0):
    return GENERATORS[name](n, noise, np.random.default_rng(seed))


@pytest.mark.parametrize("name", CLASSIFIERS + REGRESSORS)
@pytest.mark.parametrize("n", [2, 7, 400])
def test_shapes_and_dtypes(name, n):
    points, labels = make(name, n, noise=0.3)
    assert points.shape == (n, 2) and points.dtype == np.float64
    assert labels.shape == (n,) and labels.dtype == np.float64
    assert np.isfinite(points).all() and np.isfinite(labels).all()


@pytest.mark.parametrize("name", CLASSIFIERS + REGRESSORS)
def test_same_seed_same_data_other_seed_other_data(name):
    a, b, c = make(name, noise=0.2, seed=3), make(name, noise=0.2, seed=3), make(name, noise=0.2, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", ["circle", "gauss", "spiral"])
def test_two_group_sets_are_exactly_balanced(name):
    _, labels = make(name, 401)
    assert set(np.unique(labels)) == {-1.0, 1.0}
    assert (labels == 1).sum() == 201 and (labels == -1).sum() == 200


def test_xor_is_roughly_balanced():
    _, labels = make("xor", 4000)
    assert 0.45 < (labels == 1).mean() < 0.55


def test_circle_clean_geometry():
    points, labels = make("circle", 1000)
    r = np.hypot(points[:, 0], points[:, 1])
    assert (r[labels == 1] <= 2.5).all()
    assert ((r[labels == -1] >= 3.5) & (r[labels == -1] <= 5)).all()


def test_xor_clean_sign_rule_and_padding():
    points, labels = make("xor", 1000)
    np.testing.assert_array_equal(labels, np.where(points[:, 0] * points[:, 1] >= 0, 1.0, -1.0))
    assert (np.abs(points) >= 0.3).all() and (np.abs(points) <= 5.3).all()


def test_gauss_centres_and_spread_grow_with_noise():
    points, labels = make("gauss", 4000)
    np.testing.assert_allclose(points[labels == 1].mean(axis=0), [2, 2], atol=0.1)
    np.testing.assert_allclose(points[labels == -1].mean(axis=0), [-2, -2], atol=0.1)
    np.testing.assert_allclose(points[labels == 1].std(axis=0), np.sqrt(0.5), rtol=0.1)  # variance 0.5
    noisy, _ = make("gauss", 4000, noise=0.5)
    np.testing.assert_allclose(noisy[labels == 1].std(axis=0), 2.0, rtol=0.1)  # variance 4


def test_spiral_clean_arms():
    points, labels = make("spiral", 400)
    r = np.hypot(points[:, 0], points[:, 1])
    assert r.max() <= 5
    # Arm point i has radius 5 i / 200, and the -1 arm is the +1 arm rotated by pi.
    np.testing.assert_allclose(r[labels == 1], np.arange(200) / 200 * 5, atol=1e-12)
    np.testing.assert_allclose(points[labels == -1], -points[labels == 1], atol=1e-12)


def test_spiral_noise_jitters_points():
    clean, _ = make("spiral", 400)
    noisy, _ = make("spiral", 400, noise=0.5)
    offset = np.abs(noisy - clean)
    assert offset.max() <= 0.5 and offset.max() > 0.4


def test_plane_clean_target():
    points, y = make("plane", 500)
    np.testing.assert_allclose(y, points.sum(axis=1) / 10)
    assert (np.abs(points) <= 6).all()


def _multi_gauss_reference(x: float, y: float) -> float:
    """Line-by-line port of regressGaussian's getLabel, as a reference."""
    label = 0.0
    for cx, cy, sign in [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]:
        d = ((x - cx) ** 2 + (y - cy) ** 2) ** 0.5
        new = sign * min(max(1 - d / 2, 0.0), 1.0)
        if abs(new) > abs(label):
            label = new
    return label


def test_multi_gauss_matches_reference():
    points, y = make("multi_gauss", 300)
    expected = [_multi_gauss_reference(px, py) for px, py in points]
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert (np.abs(y) <= 1).all() and (y != 0).any()


@pytest.mark.parametrize(
    ("name", "clean_rule"),
    [
        ("circle", lambda p: np.where(np.hypot(p[:, 0], p[:, 1]) < 2.5, 1.0, -1.0)),
        ("xor", lambda p: np.where(p[:, 0] * p[:, 1] >= 0, 1.0, -1.0)),
    ],
    ids=["circle", "xor"],
)
def test_noise_flips_labels(name, clean_rule):
    points, labels = make(name, 2000, noise=0.5)
    flipped = (labels != clean_rule(points)).mean()
    assert 0.05 < flipped < 0.5
    points, labels = make(name, 2000, noise=0.0)
    assert (labels == clean_rule(points)).all()


@pytest.mark.parametrize("name", REGRESSORS)
def test_noise_perturbs_regression_targets(name):
    clean_points, clean_y = make(name, 1000, noise=0.0, seed=1)
    points, y = make(name, 1000, noise=0.5, seed=1)
    np.testing.assert_array_equal(points, clean_points)  # noise moves where the label is read, not the point
    assert np.abs(y - clean_y).mean() > 0.05


def test_generators_are_module_functions():
    assert GENERATORS["circle"] is playground.circle
    assert set(GENERATORS) == set(CLASSIFIERS + REGRESSORS)
