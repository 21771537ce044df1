import numpy as np
import pytest

from nnctl.data import sources
from nnctl.errors import DataError

RNG = np.random.default_rng(0)

CASES = [
    (sources.BUILTIN["iris"], 150, 4, 3),
    (sources.BUILTIN["wine"], 178, 13, 3),
    (sources.BUILTIN["breast_cancer"], 569, 30, 2),
    (sources.BUILTIN["digits"], 1797, 64, 10),
    (sources.BUILTIN["diabetes"], 442, 10, None),
]


@pytest.mark.parametrize(("cls", "rows", "features", "classes"), CASES, ids=[c[0].registered_name for c in CASES])
def test_builtin_shapes(cls, rows, features, classes):
    data = cls().load(RNG)
    assert data.x.shape == (rows, features) and data.x.dtype == np.float64
    assert len(data.y) == rows and len(data.feature_names) == features
    assert data.num_classes == classes
    if classes is None:
        assert data.task == "regression" and data.y.shape == (rows, 1)
    else:
        assert data.task == "classification" and data.y.dtype == np.int64
        assert np.bincount(data.y).min() > 0


def test_iris_names():
    data = sources.BUILTIN["iris"]().load(RNG)
    assert data.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert data.class_names == ["setosa", "versicolor", "virginica"] and data.target_names == ["species"]
    assert np.bincount(data.y).tolist() == [50, 50, 50]


def test_breast_cancer_keeps_source_class_order():
    data = sources.BUILTIN["breast_cancer"]().load(RNG)
    assert data.class_names == ["malignant", "benign"]
    assert np.bincount(data.y).tolist() == [212, 357]
    assert data.feature_names[0] == "mean_radius" and data.feature_names[-1] == "worst_fractal_dimension"


def test_wine_digits_diabetes_names():
    wine = sources.BUILTIN["wine"]().load(RNG)
    assert wine.feature_names[-2:] == ["od280_od315", "proline"]
    assert wine.class_names == ["class_0", "class_1", "class_2"]
    digits = sources.BUILTIN["digits"]().load(RNG)
    assert digits.feature_names[-1] == "pixel_63" and digits.class_names == [str(d) for d in range(10)]
    assert digits.x.min() == 0 and digits.x.max() == 16
    diabetes = sources.BUILTIN["diabetes"]().load(RNG)
    assert diabetes.feature_names == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert diabetes.target_names == ["progression"] and diabetes.y[0, 0] == 151.0


def test_datasets_folder_can_be_moved(tmp_path, monkeypatch):
    (tmp_path / "iris.csv").write_text("sepal_length,sepal_width,petal_length,petal_width,species\n1,2,3,4,setosa\n")
    monkeypatch.setenv("NNCTL_DATASETS", str(tmp_path))
    assert sources.BUILTIN["iris"]().load(RNG).x.shape == (1, 4)
    with pytest.raises(DataError, match=r"wine.csv is missing.*NNCTL_DATASETS"):
        sources.BUILTIN["wine"]().load(RNG)
