"""Data bigger than memory: memory-mapped .npy sources, shard directories from `nnctl convert`, the
streaming normalization fit; each against the in-memory path it replaces."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nnctl.data.convert
import nnctl.data.mapped
from nnctl.cli import app
from nnctl.data.convert import convert_csv
from nnctl.data.mapped import MappedArray, MappedRows
from nnctl.data.transforms import Normalizer, merge_stats
from nnctl.errors import DataError
from nnctl.session import run_training

runner = CliRunner()
RNG = np.random.default_rng(0)


def _params(run_dir) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / "checkpoints" / "last.npz") as npz:
        return {k: npz[k] for k in npz.files if k.startswith(("param/", "optim/"))}


def _assert_close(a: dict, b: dict, atol: float) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


CONFIG = """\
name: mapped
seed: 0
dtype: float64
data: {{source: {source}, normalize: {normalize}, split: {{train: 0.7, val: 0.3, test: 0.0}}}}
model: {{layers: [{{type: dense, units: 16, activation: tanh}}, {{type: dense, units: 3}}]}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 3, batch_size: 32}}
metrics: [accuracy, f1]
"""


@pytest.fixture(scope="module")
def arrays():
    x = RNG.normal(3, 2, (600, 7)).astype(np.float32)
    x[:, 3] = 5.0  # a constant column: scale 1 on both paths
    y = (x[:, 0] > 3).astype(np.int64) + (x[:, 1] > 4)
    return x, y


@pytest.mark.parametrize(
    "method, per", [("standard", "feature"), ("minmax", "feature"), ("standard", "all"), ("minmax", "all")]
)
def test_the_streaming_fit_equals_the_whole_array_fit(arrays, method, per):
    x = arrays[0].astype(np.float64) * 1e3 + 1e6  # a large offset: a naive sum of squares would cancel
    whole = Normalizer(method, per).fit(x)
    streamed = Normalizer(method, per).fit_chunks(x[i : i + 37] for i in range(0, len(x), 37))
    np.testing.assert_allclose(streamed.shift, whole.shift, rtol=1e-13)
    np.testing.assert_allclose(streamed.scale, whole.scale, rtol=1e-10)
    # as data-parallel ranks do it: each its part of the rows, the parts' statistics merged in rank order
    parts = [Normalizer(method, per).partial_stats([x[a:b]]) for a, b in ((0, 250), (250, 251), (251, 251), (251, 600))]
    merged = Normalizer(method, per).fit_stats(functools.reduce(merge_stats, parts, None))
    np.testing.assert_allclose(merged.shift, whole.shift, rtol=1e-13)
    np.testing.assert_allclose(merged.scale, whole.scale, rtol=1e-10)
    with pytest.raises(DataError, match="empty training split"):
        Normalizer(method, per).fit_chunks([])


def test_mapped_rows_read_only_their_batches_and_normalize_like_the_in_memory_split(tmp_path, arrays, monkeypatch):
    x = arrays[0]
    for k in range(3):  # three shards of 200 rows
        np.save(tmp_path / f"x{k}.npy", x[200 * k : 200 * (k + 1)])
    mapped = MappedArray([tmp_path / f"x{k}.npy" for k in range(3)])
    assert mapped.shape == x.shape and len(mapped) == 600 and mapped.dtype == np.float32
    index = np.array([599, 0, 200, 199, 401, 401])
    np.testing.assert_array_equal(mapped.rows(index), x[index])
    np.testing.assert_array_equal(mapped[10:13], x[10:13])
    released = []
    monkeypatch.setattr(nnctl.data.mapped, "RELEASE_BYTES", 1000)
    monkeypatch.setattr(MappedArray, "release", lambda self: released.append(1) or setattr(self, "_read", 0))
    mapped.rows(np.arange(100))  # 2,800 bytes read: the pages are handed back
    assert released
    norm = Normalizer("standard").fit(x[:300].astype(np.float64))
    split = MappedRows(mapped, np.arange(300), norm, np.float32)
    expected = np.ascontiguousarray(norm.transform(x[:300].astype(np.float64)), dtype=np.float32)
    np.testing.assert_array_equal(split.take(np.array([5, 2])), expected[[5, 2]])
    np.testing.assert_array_equal(split[3:9], expected[3:9])
    assert len(split) == 300 and split.shape == (300, 7)


def test_an_npy_source_trains_what_the_same_data_in_memory_trains(tmp_path, arrays):
    x, y = arrays
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    source = f"{{type: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}}}"
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(source=source, normalize="standard"))
    mapped = run_training(config, [], runs_dir=tmp_path / "a")
    in_memory = run_training(config, ["data.source.mmap=false"], runs_dir=tmp_path / "b")
    _assert_close(_params(mapped.run_dir), _params(in_memory.run_dir), atol=1e-12)  # the fit's rounding only
    assert mapped.final["val_accuracy"] == in_memory.final["val_accuracy"]


def test_convert_then_train_on_shards_equals_training_on_the_csv(tmp_path, arrays, monkeypatch):
    x, y = arrays
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    lines = ["a,b,c,species,d,e,f,g"] + [
        ",".join([*(f"{v:.6g}" for v in row[:3]), label, *(f"{v:.6g}" for v in row[3:])])
        for row, label in zip(x, names, strict=True)
    ]
    with gzip.open(tmp_path / "data.csv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    monkeypatch.setattr(nnctl.data.convert, "CHUNK_FIELDS", 8 * 25)  # 25 rows a chunk
    monkeypatch.setattr(nnctl.data.convert, "SHARD_BYTES", 100 * 7 * 4)  # 100 rows a shard
    result = runner.invoke(
        app, ["convert", str(tmp_path / "data.csv.gz"), "-o", str(tmp_path / "shards"), "--target", "species", "--json"]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "shards" / "meta.json").read_text())
    assert (
        meta["rows"] == 600
        and len(meta["shards"]) == 6
        and meta["class_names"] == ["setosa", "versicolor", "virginica"]
    )
    assert meta["feature_names"] == list("abcdefg")

    shards = tmp_path / "c1.yaml"
    shards.write_text(CONFIG.format(source=f"{{type: shards, path: {tmp_path / 'shards'}}}", normalize="minmax"))
    csv = tmp_path / "c2.yaml"
    csv.write_text(
        CONFIG.format(source=f"{{type: csv, path: {tmp_path / 'data.csv.gz'}, target: species}}", normalize="minmax")
    )
    a = run_training(shards, [], runs_dir=tmp_path / "a")
    b = run_training(csv, [], runs_dir=tmp_path / "b")
    # the shards hold float32 features, the csv source float64: the same up to float32 rounding of the text
    _assert_close(_params(a.run_dir), _params(b.run_dir), atol=1e-5)
    assert abs(a.final["val_loss"] - b.final["val_loss"]) < 1e-6


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,y\n1,2,0\n3,x,1\n", "line 3, column 'b' holds 'x', which is not a number"),
        ("a,b,y\n1,2,0\n3,4\n", "line 3 has 2 fields, but the header row has 3"),
        ("a,b,y\n1,2,0\n3,nan,1\n", "line 3, column 'b' holds 'nan', which is not a finite number"),
        ("a,b,y\n1,2,0\n3,4,\n", "target 'y' is empty at line 3"),
        ("a,b,y\n1,2,0\n3,4,1\n5,6,cat\n", "mixes numbers (line 2) and text (line 4)"),
        ("a,b,y\n", "has a header but no data rows"),
    ],
)
def test_convert_reports_bad_rows_with_line_and_column_and_leaves_nothing(tmp_path, monkeypatch, text, message):
    monkeypatch.setattr(nnctl.data.convert, "CHUNK_FIELDS", 3)  # one row a chunk: errors after shards exist
    monkeypatch.setattr(nnctl.data.convert, "SHARD_BYTES", 8)
    (tmp_path / "bad.csv").write_text(text)
    result = runner.invoke(app, ["convert", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "out"), "--target", "y"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_convert_numbers_become_classes_or_a_regression_target(tmp_path):
    (tmp_path / "c.csv").write_text("a,y\n1,7\n2,3\n3,7\n")
    meta = convert_csv(tmp_path / "c.csv", tmp_path / "c", "y")
    assert meta["task"] == "classification" and meta["class_names"] == ["3", "7"]
    assert np.load(tmp_path / "c" / "y-00000.npy").tolist() == [1, 0, 1]
    (tmp_path / "r.csv").write_text("a,y\n1,0.5\n2,3\n")
    meta = convert_csv(tmp_path / "r.csv", tmp_path / "r", "y")
    assert meta["task"] == "regression" and np.load(tmp_path / "r" / "y-00000.npy").tolist() == [[0.5], [3.0]]
    with pytest.raises(DataError, match="not an empty directory"):
        convert_csv(tmp_path / "r.csv", tmp_path / "r", "y")


def test_a_bad_shard_directory_is_a_clear_error(tmp_path):
    from nnctl.data.mapped import load_shards

    with pytest.raises(DataError, match="not found"):
        load_shards(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no meta.json"):
        load_shards(tmp_path / "empty")
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        MappedArray([tmp_path / "obj.npy"])


def test_a_nan_in_mapped_features_is_found_by_the_streaming_check(tmp_path, arrays):
    x, y = arrays
    x = x.copy()
    x[417, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    config = tmp_path / "c.yaml"
    config.write_text(
        CONFIG.format(source=f"{{type: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}}}", normalize="standard")
    )
    with pytest.raises(DataError, match="sample 417, feature f2 is nan"):
        run_training(config, [], runs_dir=tmp_path / "runs")


@pytest.mark.parametrize("normalize, bound", [("none", 2.4), ("minmax", 3.0)])
def test_an_npy_read_into_memory_is_held_once_and_normalized_without_float64_copies(tmp_path, normalize, bound):
    """mmap: false holds the float32 file once (not as float64) plus the engine's float32 splits; the splits are
    normalized a chunk at a time, so the peak stays near those two (it was 5x the file with normalize: none and
    8x with minmax: a float32 read, its float64 copy, a float64 gather per split and two float64 temporaries).
    minmax also gathers the training rows in float64 (2x) to fit on them as before."""
    import tracemalloc

    from nnctl.build import build_experiment
    from nnctl.config import load_config

    x = np.random.default_rng(0).normal(3, 2, (60_000, 200)).astype(np.float32)  # 48 MB
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(len(x)) % 3)  # three classes, as CONFIG's network
    source = f"{{type: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}, mmap: false}}"
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(source=source, normalize=normalize).replace("dtype: float64\n", ""))
    tracemalloc.start()
    try:
        experiment = build_experiment(load_config(config))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= bound * x.nbytes, peak / x.nbytes
    # the same values as normalizing the float64 rows of each split at once
    norm = experiment.normalizer
    for name in ("train", "val"):
        idx = experiment.indices[name]
        want = np.ascontiguousarray(norm.transform(x.astype(np.float64)[idx]), dtype=np.float32)
        np.testing.assert_array_equal(experiment.splits[name].x, want)
