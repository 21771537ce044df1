import gzip
from pathlib import Path

import numpy as np
import pytest

from nnctl.data.csvfile import load_csv
from nnctl.data.sources import Csv
from nnctl.errors import DataError

RNG = np.random.default_rng(0)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(path: str, target: str = "label", **kwargs):
    return Csv(path=path, target=target, **kwargs).load(RNG)


def test_string_labels_are_sorted_classes(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,dog\n3,4,cat\n5,6,dog\n")
    data = load(path)
    assert data.task == "classification"
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    assert data.y.tolist() == [1, 0, 1] and data.y.dtype == np.int64
    assert data.feature_names == ["a", "b"] and data.target_names == ["label"]
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4], [5, 6]])
    assert data.x.dtype == np.float64 and data.splits is None


def test_integer_labels_map_to_indices(tmp_path):
    path = write(tmp_path, "label,a\n5,0.1\n1,0.2\n3,0.3\n5,0.4\n")
    data = load(path)
    assert data.task == "classification"
    assert data.class_names == ["1", "3", "5"]
    assert data.y.tolist() == [2, 0, 1, 2]
    assert data.feature_names == ["a"]


def test_real_valued_target_is_regression(tmp_path):
    path = write(tmp_path, "a,b,price\n1,2,0.5\n3,4,1.25\n")
    data = load(path, target="price")
    assert data.task == "regression" and data.num_classes is None
    assert data.y.shape == (2, 1) and data.y.dtype == np.float64
    np.testing.assert_array_equal(data.y[:, 0], [0.5, 1.25])


def test_task_regression_keeps_integer_targets_as_numbers(tmp_path):
    path = write(tmp_path, "a,y\n1,10\n2,20\n")
    data = load(path, target="y", task="regression")
    assert data.task == "regression" and data.y[:, 0].tolist() == [10.0, 20.0]


def test_gzip_semicolon_and_blank_lines(tmp_path):
    path = tmp_path / "data.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("a;b;label\n1;2;x\n\n3;4;y\n")
    data = load(str(path), delimiter=";")
    assert data.x.shape == (2, 2) and data.class_names == ["x", "y"]


def test_quoted_fields_and_line_numbers_as_in_the_file(tmp_path):
    path = write(tmp_path, '\na,label\n1,"big, red"\n2,"multi\nline"\n3,x\n\n4,\n')
    with pytest.raises(DataError, match="is empty at line 8"):  # the quoted newline spans lines 4-5
        load(path)
    data = load(write(tmp_path, 'a,label\n1,"big, red"\n2,x\n'))
    assert data.class_names == ["big, red", "x"]


def test_class_names_fix_the_order(tmp_path):
    path = write(tmp_path, "a,label\n1,benign\n2,malignant\n")
    data = load_csv(path, "label", class_names=["malignant", "benign"])
    assert data.y.tolist() == [1, 0] and data.class_names == ["malignant", "benign"]
    with pytest.raises(DataError, match="'other' at line 2 .* not one of the classes malignant, benign"):
        load_csv(write(tmp_path, "a,label\n1,other\n"), "label", class_names=["malignant", "benign"])


# --- errors: each says what, where, and how to fix it -------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="cannot read CSV file .*nope.csv.*No such file"):
        load(str(tmp_path / "nope.csv"))


def test_relative_path_shows_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        load("sub/nope.csv")
    assert "'sub/nope.csv' (resolved to " in str(err.value) and str(tmp_path) in str(err.value)


def test_nan_feature_names_line_column_and_text(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,x\n3,NaN,y\n")
    with pytest.raises(DataError, match=r"line 3, column 'b' holds 'NaN'.*impute"):
        load(path)


def test_empty_feature_value(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,x\n\n3,,y\n")  # the blank line still counts: the bad row is line 4
    with pytest.raises(DataError, match=r"data.csv.*line 4, column 'b' is empty"):
        load(path)


def test_non_numeric_feature(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,x\n3,abc,y\n")
    with pytest.raises(DataError, match=r"line 3, column 'b' holds 'abc', which is not a number"):
        load(path)


def test_ragged_row(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,x\n3,4,5,y\n")
    with pytest.raises(DataError, match=r"line 3 has 4 fields, but the header row has 3"):
        load(path)


def test_unknown_target_lists_columns_and_suggests(tmp_path):
    path = write(tmp_path, "sepal,petal,species\n1,2,x\n")
    expected = r"'specie' is not in .*Did you mean 'species'\?.*Columns: sepal, petal, species"
    with pytest.raises(DataError, match=expected):
        load(path, target="specie")


def test_wrong_delimiter_hint(tmp_path):
    path = write(tmp_path, "a;b;label\n1;2;x\n")
    with pytest.raises(DataError, match="set delimiter"):
        load(path)


def test_missing_header_hint(tmp_path):
    path = write(tmp_path, "1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="needs a first row naming the columns"):
        load(path)


def test_classification_on_real_targets(tmp_path):
    path = write(tmp_path, "a,y\n1,0\n2,2.5\n")
    with pytest.raises(DataError, match=r"non-integer value 2.5 at line 3 .*use task: regression or a regression loss"):
        load(path, target="y", task="classification")


def test_regression_on_text_targets(tmp_path):
    path = write(tmp_path, "a,y\n1,0.5\n2,high\n")
    with pytest.raises(DataError, match=r"'high' at line 3 .*regression needs numbers"):
        load(path, target="y", task="regression")


def test_numbers_mixed_with_text_in_auto(tmp_path):
    path = write(tmp_path, "a,y\n1,0.5\n2,O.7\n")
    with pytest.raises(DataError, match=r"mixes numbers \('0.5' at line 2 .*\) and text \('O.7' at line 3"):
        load(path, target="y")
    assert load(path, target="y", task="classification").class_names == ["0.5", "O.7"]


def test_empty_target(tmp_path):
    path = write(tmp_path, "a,y\n1,cat\n2,\n")
    with pytest.raises(DataError, match=r"target 'y' is empty at line 3"):
        load(path, target="y")


def test_non_finite_target(tmp_path):
    path = write(tmp_path, "a,y\n1,0.5\n2,inf\n")
    with pytest.raises(DataError, match=r"target 'y' is not a finite number at line 3"):
        load(path, target="y")


def test_empty_file_header_only_and_target_only(tmp_path):
    with pytest.raises(DataError, match="is empty; it needs a header row"):
        load(write(tmp_path, ""))
    with pytest.raises(DataError, match="no data rows"):
        load(write(tmp_path, "a,label\n"))
    with pytest.raises(DataError, match="only the target column"):
        load(write(tmp_path, "label\nx\n"))


def test_duplicate_column_name(tmp_path):
    with pytest.raises(DataError, match="names column 'a' twice"):
        load(write(tmp_path, "a,a,label\n1,2,x\n"))


def test_not_gzip(tmp_path):
    path = write(tmp_path, "a,label\n1,x\n", name="data.csv.gz")
    with pytest.raises(DataError, match="cannot read CSV file .*data.csv.gz"):
        load(path)
