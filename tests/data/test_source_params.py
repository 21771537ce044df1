import inspect

import numpy as np
import pytest
from pydantic import ValidationError

from nnctl import registry
from nnctl.data import sources
from nnctl.data.dataset import Dataset
from nnctl.data.playground import GENERATORS
from nnctl.registry import DATA_SOURCES

PLAYGROUND = {
    "circle": sources.Circle,
    "xor": sources.Xor,
    "gauss": sources.Gauss,
    "spiral": sources.Spiral,
    "plane": sources.Plane,
    "multi_gauss": sources.MultiGauss,
}
ALL = {
    **PLAYGROUND,
    "csv": sources.Csv,
    "npz": sources.Npz,
    **sources.BUILTIN,  # one per entry of datasets/datasets.yaml
}


@pytest.fixture
def no_builtin_imports(monkeypatch):
    # DATA_SOURCES.get() would import every built-in module (layers, losses ...); these tests need only ours.
    monkeypatch.setattr(registry, "_builtins_loaded", True)


@pytest.mark.parametrize("name", sorted(ALL))
def test_registered_with_a_summary_and_documented_fields(name, no_builtin_imports):
    entry = DATA_SOURCES.get(name)
    assert entry.component is ALL[name]
    assert entry.summary and not entry.summary.startswith("Shared")
    for field, info in entry.params.model_fields.items():
        assert info.description, f"{name}.{field} has no description"
    assert "type" in entry.spec.model_fields


@pytest.mark.parametrize("name", sorted(PLAYGROUND))
def test_playground_source_uses_the_generator_with_noise_over_100(name):
    data = PLAYGROUND[name](samples=50, noise=30, features=["x2", "x1_x2"]).load(np.random.default_rng(5))
    points, labels = GENERATORS[name](50, 0.3, np.random.default_rng(5))
    assert isinstance(data, Dataset) and data.feature_names == ["x2", "x1_x2"]
    np.testing.assert_allclose(data.x, np.column_stack([points[:, 1], points[:, 0] * points[:, 1]]))
    if data.task == "classification":
        assert data.class_names == ["negative", "positive"]
        np.testing.assert_array_equal(data.y, (labels == 1).astype(np.int64))
    else:
        assert data.target_names == ["y"] and data.y.shape == (50, 1)
        np.testing.assert_array_equal(data.y[:, 0], labels)


def test_playground_defaults():
    data = sources.Circle().load(np.random.default_rng(0))
    assert data.x.shape == (500, 2) and data.feature_names == ["x1", "x2"]


@pytest.mark.parametrize(
    "bad",
    [
        {"features": ["x1", "x1"]},
        {"features": []},
        {"features": ["x3"]},
        {"noise": 51},
        {"noise": -1},
        {"samples": 1},
        {"sample": 10},
    ],
    ids=["duplicate", "empty", "unknown-feature", "noise-high", "noise-low", "samples", "typo"],
)
def test_playground_params_are_validated(bad):
    with pytest.raises(ValidationError):
        sources.Circle(**bad)


def test_duplicate_feature_message():
    with pytest.raises(ValidationError, match="'x1' listed more than once"):
        sources.Xor(features=["x1", "x2", "x1"])


def test_csv_params():
    with pytest.raises(ValidationError):
        sources.Csv(path="a.csv")  # target is required
    with pytest.raises(ValidationError):
        sources.Csv(path="a.csv", target="y", delimiter=";;")
    assert sources.Csv(path="a.csv", target="y").settings.task == "auto"


@pytest.mark.parametrize("name", sorted(ALL))
def test_constructor_accepts_every_params_field(name):
    cls = ALL[name]
    given = {k: v for k, v in {"path": "data.csv", "target": "y"}.items() if k in cls.Params.model_fields}
    fields = cls.Params(**given).model_dump()  # every field, defaults filled in, as the registry passes them
    assert cls(**fields).settings.model_dump() == fields
    assert list(inspect.signature(cls.load).parameters) == ["self", "rng"]
