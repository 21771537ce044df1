import numpy as np
import pytest
from pydantic import ValidationError

from nnctl.data.function import TARGETS, FunctionSource


@pytest.mark.parametrize(
    "target, x, expected",
    [
        ("sine", [0.0, 0.25, 0.5], [0.0, 1.0, 0.0]),
        ("abs", [-2.0, 3.0], [2.0, 3.0]),
        ("step", [-0.1, 0.0, 0.2], [0.0, 1.0, 1.0]),
        ("sawtooth", [0.0, 0.25, 0.75], [0.0, 0.5, -0.5]),
        ("gaussian_bump", [0.0, 0.2], [1.0, np.exp(-0.5)]),
    ],
)
def test_targets_without_noise(target, x, expected):
    params = FunctionSource.Params(target=target)
    np.testing.assert_allclose(TARGETS[target](np.array(x), params), expected, atol=1e-12)


def test_grid_spacing_and_shapes():
    data = FunctionSource(target="sine", samples=5, x_range=(0, 1), spacing="grid").load(np.random.default_rng(0))
    np.testing.assert_allclose(data.x[:, 0], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(data.y[:, 0], [0, 1, 0, -1, 0], atol=1e-12)
    assert data.feature_names == ["x"] and data.target_names == ["y"]


def test_polynomial_and_noise():
    src = FunctionSource(target="polynomial", coefficients=[1, 0, 2], samples=5, x_range=(-1, 1), spacing="grid")
    data = src.load(np.random.default_rng(0))
    np.testing.assert_allclose(data.y[:, 0], 1 + 2 * data.x[:, 0] ** 2)
    noisy = FunctionSource(target="polynomial", coefficients=[0], samples=20000, noise=0.3).load(
        np.random.default_rng(1)
    )
    assert noisy.y.std() == pytest.approx(0.3, rel=0.05)
    assert data.task == "regression" and data.y.shape == (5, 1)


def test_bad_parameters():
    with pytest.raises(ValidationError, match="needs coefficients"):
        FunctionSource.Params(target="polynomial")
    with pytest.raises(ValidationError, match="low < high"):
        FunctionSource.Params(x_range=(1, 0))
    with pytest.raises(ValidationError):
        FunctionSource.Params(noise=-1)
