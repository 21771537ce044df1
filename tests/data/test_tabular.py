"""Typed table columns: inference, imputation and levels fitted on the training rows only, unknown levels."""

import warnings

import numpy as np
import pytest

from nnctl.build import build_experiment
from nnctl.config import config_from_dict
from nnctl.data.sources import Csv
from nnctl.data.tabular import ColumnSpec, RawTable, TablePreprocessor, UnknownCategoryWarning
from nnctl.errors import ConfigError, DataError


def table(columns: dict, specs=None) -> RawTable:
    t = RawTable.from_columns(columns, "test table")
    return RawTable(t.names, t.cells, t.where_file, None, {k: ColumnSpec(**v) for k, v in (specs or {}).items()})


def test_types_are_inferred():
    t = table(
        {"n": ["1", "2.5", "-3"], "b": ["yes", "no", "YES"], "t": ["True", "False", "True"], "c": ["a", "b", "a"]}
    )
    prep = TablePreprocessor().fit(t)
    assert [c.type for c in prep.columns] == ["numeric", "binary", "binary", "category"]
    assert prep.feature_names == ["n", "b", "t", "c=a", "c=b", "c=other"]
    x = prep.encode(t)
    np.testing.assert_array_equal(x, [[1, 1, 1, 1, 0, 0], [2.5, 0, 0, 0, 1, 0], [-3, 1, 1, 1, 0, 0]])


def test_numbers_mixed_with_text_name_the_row_and_column():
    t = RawTable(["a"], np.array([["1"], ["2"], ["x3"]]), "CSV file 'd.csv'", [2, 3, 4])
    with pytest.raises(DataError, match=r"CSV file 'd.csv': line 4, column 'a' holds 'x3', which is not a number"):
        TablePreprocessor().fit(t)


def test_blank_without_impute_is_an_error_naming_row_and_column():
    t = RawTable(["a", "b"], np.array([["1", "u"], ["", "v"]]), "CSV file 'd.csv'", [2, 3])
    prep = TablePreprocessor().fit(t)
    with pytest.raises(DataError, match=r"line 3, column 'a' is empty.*impute"):
        prep.encode(t)


def test_imputation_and_indicator():
    specs = {"a": {"impute": "median", "indicator": True}, "c": {"impute": "most_frequent"}}
    t = table({"a": ["1", "", "10", "4"], "c": ["x", "y", "y", ""]}, specs)
    prep = TablePreprocessor(t.specs).fit(t)
    assert prep.feature_names == ["a", "a_missing", "c=x", "c=y", "c=other"]
    x = prep.encode(t)
    np.testing.assert_array_equal(x[:, 0], [1, 4, 10, 4])  # median of 1, 10, 4
    np.testing.assert_array_equal(x[:, 1], [0, 1, 0, 0])
    np.testing.assert_array_equal(x[3, 2:], [0, 1, 0])  # blank -> y, the most frequent


def test_rare_levels_fold_into_other_and_unknown_levels_warn_with_a_count():
    t = table({"c": ["a", "a", "a", "b", "b", "z"]}, {"c": {"max_levels": 2}})
    prep = TablePreprocessor(t.specs).fit(t)
    assert prep.columns[0].levels == ["a", "b"] and prep.columns[0].rare == ["z"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rare training level is not "unseen": no warning
        np.testing.assert_array_equal(prep.encode(table({"c": ["z"]}))[0], [0, 0, 1])
    with pytest.warns(UnknownCategoryWarning, match=r"'c': 3 row\(s\), level\(s\) 'new', 'newer'"):
        x = prep.encode(table({"c": ["new", "a", "newer", "new"]}))
    np.testing.assert_array_equal(x, [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 1]])


def test_state_is_plain_arrays_and_round_trips(tmp_path):
    specs = {"a": {"impute": "mean"}, "c": {"impute": "constant", "fill_value": "none"}, "b": {"type": "binary"}}
    t = table({"a": ["1", "", "2"], "b": ["1", "0", "1"], "c": ["x", "", "y"]}, specs)
    prep = TablePreprocessor(t.specs).fit(t)
    np.savez(tmp_path / "s.npz", **prep.state())
    with np.load(tmp_path / "s.npz", allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    assert all(v.dtype != object for v in state.values())
    again = TablePreprocessor.from_state(state)
    np.testing.assert_array_equal(again.encode(t), prep.encode(t))
    assert again.feature_names == prep.feature_names


# --- through the csv source and the build: statistics from the training split only ---------------

ROWS = 60


def leaky_csv(tmp_path):
    """rowid identifies each row; age and town differ wildly by row, so a statistic over all rows differs
    from one over the training rows; every 5th age is blank."""
    rng = np.random.default_rng(3)
    lines = ["rowid,age,town,label"]
    for i in range(ROWS):
        age = "" if i % 5 == 0 else f"{rng.uniform(0, 100):.3f}"
        lines.append(f"{i},{age},t{i % 7},{'ab'[i % 2]}")
    path = tmp_path / "leaky.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def leaky_config(path, **source):
    return config_from_dict(
        {
            "data": {
                "source": {"type": "csv", "path": str(path), "target": "label", **source},
                "split": {"train": 0.5, "val": 0.25, "test": 0.25},
            },
            "model": {"layers": [{"type": "dense", "units": 2}]},
            "loss": "cross_entropy",
        }
    )


def test_imputation_and_levels_are_fitted_on_the_training_rows_only(tmp_path):
    path = leaky_csv(tmp_path)
    config = leaky_config(path, columns={"age": {"impute": "mean"}, "town": {"max_levels": 3}})
    experiment = build_experiment(config)
    train_rows = experiment.splits["train"].x[:, 0].astype(int)  # rowid, unnormalized
    ages = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=1)
    expected = np.nanmean(ages[train_rows])
    assert experiment.table.columns[1].fill == pytest.approx(expected)
    assert expected != pytest.approx(np.nanmean(ages))  # the data make leakage visible
    town = np.array([f"t{i % 7}" for i in range(ROWS)])
    levels, counts = np.unique(town[train_rows], return_counts=True)
    top = sorted(levels[np.lexsort((levels, -counts))][:3])
    assert experiment.table.columns[2].levels == top
    blank_in_train = train_rows[train_rows % 5 == 0]
    x_train = experiment.splits["train"].x
    assert np.allclose(x_train[np.isin(train_rows, blank_in_train), 1], expected)


def test_declarations_name_what_is_wrong(tmp_path):
    path = leaky_csv(tmp_path)
    with pytest.raises(ConfigError, match=r"data.source.columns.agee: there is no column 'agee'.*Did you mean 'age'"):
        Csv(path=str(path), target="label", columns={"agee": {"impute": "mean"}}).load(None)
    with pytest.raises(ConfigError, match=r"data.source.drop\[0\]: there is no column 'twn'"):
        Csv(path=str(path), target="label", drop=["twn"]).load(None)
    with pytest.raises(ConfigError, match=r"data.source.columns.label: 'label' is the target, so it is no feature"):
        Csv(path=str(path), target="label", columns={"label": {"type": "category"}}).load(None)
    with pytest.raises(ConfigError, match=r"data.source.columns.town: 'town' is in drop"):
        Csv(path=str(path), target="label", drop=["town"], columns={"town": {"type": "category"}}).load(None)
    with pytest.raises(DataError, match=r"line 2, column 'town' holds 't0', which is not a number"):
        Csv(path=str(path), target="label", columns={"town": {"type": "numeric"}}).load(None)
    with pytest.raises(DataError, match=r"columns.town.impute: mean needs numbers"):
        Csv(path=str(path), target="label", columns={"town": {"impute": "mean"}}).load(None)
    with pytest.raises(DataError, match=r"line 2, column 'age' is empty"):
        Csv(path=str(path), target="label").load(None)


def test_features_drop_and_several_regression_targets(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b,c,y1,y2\n1,x,5,0.5,1.5\n2,y,6,1.5,2.5\n3,x,7,2.5,3.5\n")
    data = Csv(path=str(path), target=["y1", "y2"], drop=["c"]).load(None)
    assert data.task == "regression" and data.y.shape == (3, 2) and data.table.names == ["a", "b"]
    data = Csv(path=str(path), target="y1", features=["c", "a"]).load(None)
    assert data.table.names == ["c", "a"]


def test_blank_cells_from_python_values_and_a_binary_constant_fill():
    t = table({"b": [True, None, np.float32("nan"), False]}, {"b": {"impute": "constant", "fill_value": "yes"}})
    prep = TablePreprocessor(t.specs).fit(t)
    assert prep.columns[0].type == "binary"
    np.testing.assert_array_equal(prep.encode(t)[:, 0], [1, 1, 1, 0])


def test_inf_and_nan_text_are_missing_values():
    t = RawTable(["a"], np.array([["1"], ["inf"], ["nan"], ["3"]]), "CSV file 'd.csv'", [2, 3, 4, 5])
    with pytest.raises(DataError, match=r"line 3, column 'a' holds 'inf', which is not a finite number"):
        TablePreprocessor().fit(t).encode(t)
    prep = TablePreprocessor({"a": ColumnSpec(impute="mean")}).fit(t)
    np.testing.assert_array_equal(prep.encode(t)[:, 0], [1, 2, 2, 3])


def test_embedded_categories_become_level_ids_after_every_other_feature():
    specs = {"c": {"encoding": "embedding", "max_levels": 2, "dim": 3}, "d": {"type": "category"}}
    t = table({"c": ["a", "a", "a", "b", "b", "z"], "n": ["1", "2", "3", "4", "5", "6"], "d": list("xyxyxy")}, specs)
    prep = TablePreprocessor(t.specs).fit(t)
    assert prep.feature_names == ["n", "d=x", "d=y", "d=other", "c#id"]
    assert prep.embedding_sizes() == ([3], [3])  # a, b and other; the declared dim
    x = prep.encode(t)
    np.testing.assert_array_equal(x[:, -1], [0, 0, 0, 1, 1, 2])  # the rare level z is 'other', id 2
    np.testing.assert_array_equal(x[:, 0], [1, 2, 3, 4, 5, 6])
    with pytest.warns(UnknownCategoryWarning, match=r"'c': 1 row\(s\), level\(s\) 'new'"):
        assert prep.encode(table({"c": ["new"], "n": ["0"], "d": ["x"]}))[0, -1] == 2
    again = TablePreprocessor.from_state(prep.state())
    assert again.embedding_sizes() == ([3], [3]) and again.feature_names == prep.feature_names
    np.testing.assert_array_equal(again.encode(t), x)
    plain = TablePreprocessor({"c": ColumnSpec(encoding="embedding")}).fit(table({"c": list("abcdefgh")}))
    assert plain.embedding_sizes() == ([9], [5])  # default dim: round(1.6 * 9 ** 0.56)


def test_embedding_applies_to_category_columns_only():
    with pytest.raises(ValueError, match="encoding and dim apply to category columns, but the type is numeric"):
        ColumnSpec(type="numeric", encoding="embedding")
    with pytest.raises(ValueError, match="dim is the length of an embedding's vectors; it needs encoding: embedding"):
        ColumnSpec(dim=4)
    t = table({"n": ["1", "2"]}, {"n": {"encoding": "embedding"}})
    with pytest.raises(
        ConfigError,
        match=r"data.source.columns.n.encoding: embedding applies to category columns, "
        r"but 'n' is numeric \(inferred\)",
    ):
        TablePreprocessor(t.specs).fit(t)


def test_the_normalizer_leaves_level_ids_as_they_are(tmp_path):
    path = leaky_csv(tmp_path)
    config = leaky_config(path, columns={"age": {"impute": "mean"}, "town": {"encoding": "embedding"}})
    raw = config.model_dump()
    raw["model"]["layers"].insert(0, {"type": "category_embedding"})
    raw["data"]["normalize"]["method"] = "standard"
    experiment = build_experiment(config_from_dict(raw))
    x = experiment.splits["train"].x
    assert experiment.feature_names[-1] == "town#id"
    np.testing.assert_array_equal(np.unique(x[:, -1]), np.arange(7))  # ids of the 7 towns, unnormalized
    assert experiment.normalizer.shift[-1] == 0 and experiment.normalizer.scale[-1] == 1
    assert abs(x[:, 1].mean()) < 1e-5  # the other features are standardized
    assert experiment.network.layers[0].vocab_sizes == [8]  # 7 towns + other
