"""Image and signal sources: shapes kept, layouts, declared CSV shapes, image folders and their errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.errors import DataError
from nnctl.registry import DATA_SOURCES

runner = CliRunner()


def load(spec):
    return DATA_SOURCES.create(spec).load(np.random.default_rng(0))


def test_digits_images_are_the_flat_digits_reshaped():
    images, flat = load({"type": "digits_images"}), load({"type": "digits"})
    assert images.sample_shape == (1, 8, 8) and len(images) == 1797
    np.testing.assert_array_equal(images.x.reshape(1797, 64), flat.x)
    np.testing.assert_array_equal(images.y, flat.y)
    assert images.class_names == flat.class_names


@pytest.mark.parametrize(
    "layout, stored, expect",
    [
        ("auto", (5, 2, 4, 3), (2, 4, 3)),
        ("nhwc", (5, 4, 3, 2), (2, 4, 3)),
        ("nhw", (5, 4, 3), (1, 4, 3)),
        ("auto", (5, 2, 9), (2, 9)),
        ("nlc", (5, 9, 2), (2, 9)),
        ("nl", (5, 9), (1, 9)),
    ],
)
def test_image_npz_keeps_the_sample_shape(tmp_path, layout, stored, expect):
    x = np.arange(np.prod(stored), dtype=np.float64).reshape(stored)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.array([0, 1, 0, 1, 2]))
    data = load({"type": "image_npz", "path": str(path), "layout": layout})
    assert data.sample_shape == expect
    if layout == "nhwc":
        np.testing.assert_array_equal(data.x, x.transpose(0, 3, 1, 2))
    if layout == "nlc":
        np.testing.assert_array_equal(data.x, x.transpose(0, 2, 1))


def test_image_npz_with_predefined_splits(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 1, 3, 3)), y_train=[0, 1, 0, 1], x_test=np.ones((2, 1, 3, 3)), y_test=[0, 1])
    data = load({"type": "image_npz", "path": str(path)})
    assert data.sample_shape == (1, 3, 3) and len(data.splits["test"]) == 2


def test_image_npz_wrong_layout_says_what_fits(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 6)), y=[0, 1, 0, 1])
    with pytest.raises(DataError, match="use the `npz` source"):
        load({"type": "image_npz", "path": str(path)})
    with pytest.raises(DataError, match="layout 'nhwc' needs x with 4 axes"):
        load({"type": "image_npz", "path": str(path), "layout": "nhwc"})


def test_image_csv_reshapes_rows_to_the_declared_shape(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,a,b,c,d,e,f\n0,1,2,3,4,5,6\n1,6,5,4,3,2,1\n")
    data = load({"type": "image_csv", "path": str(path), "target": "label", "shape": [1, 2, 3]})
    assert data.sample_shape == (1, 2, 3)
    np.testing.assert_array_equal(data.x[0, 0], [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(DataError, match="6 feature columns, but shape \\[2, 2\\] needs 4"):
        load({"type": "image_csv", "path": str(path), "target": "label", "shape": [2, 2]})


def test_signal_shapes_is_balanced_and_deterministic():
    a = load({"type": "signal_shapes", "samples": 200, "length": 64})
    b = load({"type": "signal_shapes", "samples": 200, "length": 64})
    assert a.sample_shape == (1, 64) and np.bincount(a.y).tolist() == [50] * 4
    np.testing.assert_array_equal(a.x, b.x)


# --- image folders (Pillow) ------------------------------------------------------------------------


def write_image(path, size=(6, 5), mode="L", value=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def folder_config(tmp_path, folder, extra=""):
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"""name: f
data:
  source: {{type: image_folder, path: '{folder}'{extra}}}
  split: {{train: 0.5, val: 0.25, test: 0.25}}
model:
  layers: [{{type: conv2d, filters: 2, kernel_size: 3}}, {{type: flatten}}, {{type: dense, units: 2}}]
loss: cross_entropy
train: {{epochs: 1}}
"""
    )
    return path


def invoke_train(config, tmp_path):
    return runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet"])


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_image_folder_reads_classes_and_trains(tmp_path):
    pytest.importorskip("PIL")
    for i in range(4):
        write_image(tmp_path / "img" / "cats" / f"{i}.png", value=10 * i)
        write_image(tmp_path / "img" / "dogs" / f"{i}.jpg", mode="RGB", value=(200, 100, 50 + i))
    data = load({"type": "image_folder", "path": str(tmp_path / "img")})
    assert data.sample_shape == (3, 5, 6) and data.class_names == ["cats", "dogs"]  # a colour image: rgb
    gray = load({"type": "image_folder", "path": str(tmp_path / "img"), "color": "grayscale", "size": [4, 4]})
    assert gray.sample_shape == (1, 4, 4) and gray.x.max() <= 255
    result = invoke_train(folder_config(tmp_path, tmp_path / "img"), tmp_path)
    assert result.exit_code == 0, result.output


def test_image_folder_with_mixed_sizes(tmp_path):
    pytest.importorskip("PIL")
    write_image(tmp_path / "img" / "a" / "1.png", size=(6, 5))
    write_image(tmp_path / "img" / "b" / "2.png", size=(8, 8))
    result = invoke_train(folder_config(tmp_path, tmp_path / "img"), tmp_path)
    assert_user_error(result, "different sizes", "2.png is 8x8", "size: [height, width]")
    assert not (tmp_path / "runs").exists()


def test_image_folder_with_an_empty_class(tmp_path):
    pytest.importorskip("PIL")
    write_image(tmp_path / "img" / "a" / "1.png")
    (tmp_path / "img" / "b").mkdir()
    (tmp_path / "img" / "b" / "notes.txt").write_text("no images here")
    assert_user_error(invoke_train(folder_config(tmp_path, tmp_path / "img"), tmp_path), "has no image files", "b")


def test_image_folder_with_an_unreadable_file(tmp_path):
    pytest.importorskip("PIL")
    write_image(tmp_path / "img" / "a" / "1.png")
    (tmp_path / "img" / "b").mkdir(parents=True)
    (tmp_path / "img" / "b" / "broken.png").write_bytes(b"this is not a PNG")
    assert_user_error(
        invoke_train(folder_config(tmp_path, tmp_path / "img"), tmp_path), "cannot read image file", "broken.png"
    )


def test_image_folder_without_pillow_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    (tmp_path / "img" / "a").mkdir(parents=True)
    assert_user_error(invoke_train(folder_config(tmp_path, tmp_path / "img"), tmp_path), "pip install 'nnctl[images]'")


def test_missing_image_folder(tmp_path):
    pytest.importorskip("PIL")
    assert_user_error(invoke_train(folder_config(tmp_path, tmp_path / "nope"), tmp_path), "does not exist")
