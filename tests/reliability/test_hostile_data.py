"""Bad data files of every supported kind: `nnctl train` refuses each with exit 2, a message naming the
file (and row/column where there is one), no traceback, and no run directory left behind."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.harness import cli, expect

HEAD = "name: d\nseed: 0\n"
CLASSIFY = """
model:
  layers: [{type: dense, units: 4, activation: tanh}, {type: dense, units: 2}]
loss: cross_entropy
train: {epochs: 2, batch_size: 8}
"""
SEQUENCE = """
model:
  layers: [{type: gru, units: 3}, {type: dense, units: 2}]
loss: cross_entropy
train: {epochs: 2, batch_size: 8}
"""
IMAGE = """
model:
  layers: [{type: flatten}, {type: dense, units: 2}]
loss: cross_entropy
train: {epochs: 2, batch_size: 8}
"""


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def header_bomb() -> bytes:
    """A ~1 KB .npz whose x.npy header declares (100000, 1000000) float64: 745 GiB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (100000, 1000000)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", header.getvalue() + b"\0" * 800)
        zf.writestr("y.npy", npz_member(np.zeros(3)))
    return buf.getvalue()


def npz_member(array) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array))
    return buf.getvalue()


def png_bomb() -> bytes:
    """A small PNG that declares 30000 x 30000 pixels (900 megapixels, a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    row = b"\0" + b"\0" * 30000
    idat = zlib.compress(row * 64, 9)  # truncated data: the header alone should stop the reader
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


GOOD_X = np.random.default_rng(0).normal(size=(40, 2))
GOOD_Y = np.arange(40) % 2

# (id, source YAML using {path}, model section, file name, file bytes (or a callable(path)), fragments)
CASES = [
    ("csv-empty", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"", ["empty"]),
    ("csv-header-only", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"a,b,y\n", ["d.csv"]),
    (
        "csv-nan",
        "{type: csv, path: '{path}', target: y}",
        CLASSIFY,
        "d.csv",
        b"a,y\n1,0\nnan,1\n" * 5,
        ["d.csv", "line"],
    ),
    ("csv-ragged", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"a,b,y\n1,2,0\n1,1\n", ["line 3"]),
    (
        "csv-text-feature",
        "{type: csv, path: '{path}', target: y}",
        CLASSIFY,
        "d.csv",
        b"a,y\n1,0\nzz,1\n",
        ["line 3", "a"],
    ),
    (
        "csv-huge-number",
        "{type: csv, path: '{path}', target: y}",
        CLASSIFY,
        "d.csv",
        b"a,y\n1,0\n1e999,1\n" * 4,
        ["d.csv"],
    ),
    ("csv-no-target", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"a,b\n1,2\n", ["'y'"]),
    ("csv-binary", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", bytes(range(256)) * 8, ["d.csv"]),
    (
        "csv-utf16",
        "{type: csv, path: '{path}', target: y}",
        CLASSIFY,
        "d.csv",
        "a,y\n1,0\n".encode("utf-16"),
        ["d.csv"],
    ),
    ("csv-nul", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"a,y\n1,0\n\x00,1\n", ["d.csv"]),
    ("csv-one-class", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", b"a,y\n" + b"1,0\n" * 15, ["class"]),
    (
        "csv-gz-corrupt",
        "{type: csv, path: '{path}', target: y}",
        CLASSIFY,
        "d.csv.gz",
        b"\x1f\x8b\x08\x00garbage",
        ["d.csv.gz"],
    ),
    ("csv-gz-empty", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv.gz", gzip.compress(b""), ["empty"]),
    ("csv-fifo", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", "fifo", ["not a regular file"]),
    ("csv-folder", "{type: csv, path: '{path}', target: y}", CLASSIFY, "d.csv", "folder", ["d.csv"]),
    (
        "npz-zero-rows",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=np.zeros((0, 2)), y=np.zeros(0)),
        ["d.npz", "no samples"],
    ),
    (
        "npz-one-row",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=np.zeros((1, 2)), y=np.zeros(1)),
        ["classes"],
    ),
    ("npz-header-bomb", "{type: npz, path: '{path}'}", CLASSIFY, "d.npz", header_bomb(), ["745", "GiB"]),
    (
        "npz-pickle",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=np.array([{}, {}], dtype=object), y=np.zeros(2)),
        ["pickle"],
    ),
    ("npz-not-zip", "{type: npz, path: '{path}'}", CLASSIFY, "d.npz", b"hello", ["d.npz"]),
    ("npz-npy", "{type: npz, path: '{path}'}", CLASSIFY, "d.npz", npz_member(np.zeros(3)), ["single array"]),
    (
        "npz-complex",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=np.zeros((4, 2), complex), y=np.zeros(4)),
        ["dtype"],
    ),
    (
        "npz-inf",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=np.full((4, 2), np.inf), y=np.zeros(4)),
        ["finite"],
    ),
    (
        "npz-mismatch",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=GOOD_X, y=GOOD_Y[:5]),
        ["must match"],
    ),
    ("npz-fifo", "{type: npz, path: '{path}'}", CLASSIFY, "d.npz", "fifo", ["not a regular file"]),
    ("npz-y-nan", "{type: npz, path: '{path}'}", CLASSIFY, "d.npz", npz_bytes(x=GOOD_X, y=np.full(40, np.nan)), ["y["]),
    (
        "npz-bad-idx",
        "{type: npz, path: '{path}'}",
        CLASSIFY,
        "d.npz",
        npz_bytes(x=GOOD_X, y=GOOD_Y, train_idx=np.array([0, 99])),
        ["train_idx"],
    ),
    (
        "seq-npz-T0",
        "{type: sequence_npz, path: '{path}'}",
        SEQUENCE,
        "d.npz",
        npz_bytes(x=np.zeros((40, 0, 2)), y=GOOD_Y),
        ["d.npz"],
    ),
    (
        "seq-npz-F0",
        "{type: sequence_npz, path: '{path}'}",
        SEQUENCE,
        "d.npz",
        npz_bytes(x=np.zeros((40, 3, 0)), y=GOOD_Y),
        ["d.npz"],
    ),
    (
        "seq-npz-0-rows",
        "{type: sequence_npz, path: '{path}'}",
        SEQUENCE,
        "d.npz",
        npz_bytes(x=np.zeros((0, 3, 2)), y=np.zeros(0)),
        ["no samples"],
    ),
    (
        "seq-npz-1d",
        "{type: sequence_npz, path: '{path}'}",
        SEQUENCE,
        "d.npz",
        npz_bytes(x=np.zeros(40), y=GOOD_Y),
        ["d.npz"],
    ),
    (
        "seq-npz-bad-shape",
        "{type: sequence_npz, path: '{path}', shape: [7, 1]}",
        SEQUENCE,
        "d.npz",
        npz_bytes(x=np.zeros((40, 5)), y=GOOD_Y),
        ["shape"],
    ),
    (
        "seq-csv-bad-shape",
        "{type: sequence_csv, path: '{path}', target: y, shape: [3, 1]}",
        SEQUENCE,
        "d.csv",
        b"a,b,y\n1,2,0\n",
        ["shape"],
    ),
    (
        "image-npz-0-rows",
        "{type: image_npz, path: '{path}'}",
        IMAGE,
        "d.npz",
        npz_bytes(x=np.zeros((0, 1, 4, 4)), y=np.zeros(0)),
        ["no samples"],
    ),
    (
        "image-npz-layout",
        "{type: image_npz, path: '{path}', layout: nchw}",
        IMAGE,
        "d.npz",
        npz_bytes(x=np.zeros((40, 4)), y=GOOD_Y),
        ["d.npz"],
    ),
    (
        "image-npz-zero-size",
        "{type: image_npz, path: '{path}'}",
        IMAGE,
        "d.npz",
        npz_bytes(x=np.zeros((40, 1, 0, 4)), y=GOOD_Y),
        ["d.npz"],
    ),
    (
        "image-csv-shape",
        "{type: image_csv, path: '{path}', target: y, shape: [1, 3, 3]}",
        IMAGE,
        "d.csv",
        b"a,b,y\n1,2,0\n",
        ["shape"],
    ),
    ("image-folder-bomb", "{type: image_folder, path: '{path}'}", IMAGE, "imgs", "png-bomb", ["bomb.png"]),
    ("image-folder-garbage", "{type: image_folder, path: '{path}'}", IMAGE, "imgs", "png-garbage", ["bomb.png"]),
    ("image-folder-empty", "{type: image_folder, path: '{path}'}", IMAGE, "imgs", "empty-folder", ["no sub-folders"]),
    (
        "function-nan-range",
        "{type: function, target: sine, x_range: [.nan, 1]}",
        "model: {layers: [{type: dense, units: 1}]}\nloss: mse\n",
        None,
        None,
        ["x_range", "finite"],
    ),
    (
        "function-huge-range",
        "{type: function, target: sine, x_range: [-1e308, 1e308]}",
        "model: {layers: [{type: dense, units: 1}]}\nloss: mse\n",
        None,
        None,
        ["x_range"],
    ),
]


def _make(tmp_path: Path, name: str | None, content) -> Path | None:
    if name is None:
        return None
    path = tmp_path / name
    if content == "fifo":
        os.mkfifo(path)
    elif content == "folder":
        path.mkdir()
    elif content in ("png-bomb", "png-garbage", "empty-folder"):
        path.mkdir()
        if content != "empty-folder":
            for cls in ("a", "b"):
                (path / cls).mkdir()
                (path / cls / "bomb.png").write_bytes(png_bomb() if content == "png-bomb" else b"\x89PNG\r\n\x1a\nzz")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("source,model,name,content,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_is_refused(tmp_path, source, model, name, content, fragments):
    if content in ("png-bomb", "png-garbage"):
        pytest.importorskip("PIL")
    path = _make(tmp_path, name, content)
    text = HEAD + "data:\n  source: " + source.replace("{path}", str(path)) + "\n" + model
    (tmp_path / "exp.yaml").write_text(text)
    outcome = cli(
        "train", tmp_path / "exp.yaml", "--runs-dir", tmp_path / "runs", "--quiet", runs_root=tmp_path / "runs"
    )
    expect("data: bad files, every kind", outcome, *fragments)
