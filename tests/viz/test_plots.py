"""`nnctl plot` and `nnctl compare`: every kind gives a PNG of its stated size that is not blank."""

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from tests.viz.conftest import png_stats

pytest.importorskip("matplotlib")

from nnctl.viz import plots  # noqa: E402

runner = CliRunner()

# run -> the kinds `nnctl plot` draws for it by default
EXPECTED = {
    "spiral": ["curves", "playground", "confusion"],
    "plane": ["curves", "playground"],
    "sine": ["curves", "fit"],
    "digits": ["curves", "confusion", "misclassified"],
}


def assert_picture(path, kind):
    height, width, spread = png_stats(path)
    assert (width, height) == plots.SIZES[kind], path
    assert spread > 0.05, f"{path} looks blank (pixel std {spread:.3f})"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_kind_that_fits_the_run_is_drawn(trained, name):
    run = trained(name)
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    written = sorted(p.stem for p in (run / "plots").glob("*.png"))
    assert written == sorted(EXPECTED[name])
    for kind in EXPECTED[name]:
        assert_picture(run / "plots" / f"{kind}.png", kind)


def test_kind_and_output_folder(trained, tmp_path):
    result = runner.invoke(app, ["plot", str(trained("spiral")), "--kind", "playground", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["playground.png"]


def test_a_kind_that_does_not_fit_is_a_usage_error(trained):
    result = runner.invoke(app, ["plot", str(trained("sine")), "--kind", "confusion"])
    assert result.exit_code == 2
    assert "classification" in result.output
    result = runner.invoke(app, ["plot", str(trained("sine")), "--kind", "curve"])
    assert result.exit_code == 2 and "did you mean 'curves'" in result.output.lower()


def test_playground_picture_draws_points_where_the_network_sees_them(trained):
    """The recovered 2-D points, turned into features and normalized, are exactly the split's inputs, and
    the surface's sign is the predicted class."""
    experiment = plots.Run.open(trained("spiral")).experiment
    points = plots.playground_points(experiment)
    for name, split in experiment.splits.items():
        _, x = plots._plane_inputs(experiment, points[name])
        np.testing.assert_allclose(x, split.x, atol=1e-5)
    out = experiment.network.predict(experiment.splits["train"].x)
    value, _ = plots._signed_value(experiment, out)
    assert np.array_equal(value > 0, experiment.predictions(out) == 1)


def test_hidden_neuron_maps_follow_the_layers(trained):
    experiment = plots.Run.open(trained("spiral")).experiment
    x = experiment.splits["train"].x[:5]
    stages = plots._stages(experiment.network, x)
    assert [h.shape for _, h in stages] == [(5, 8), (5, 8)]  # the two hidden layers of configs/spiral.yaml


def test_confusion_matrix_counts():
    counts = plots.confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_compare_overlays_runs(trained, tmp_path):
    out = tmp_path / "cmp.png"
    result = runner.invoke(app, ["compare", str(trained("spiral")), str(trained("plane")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert_picture(out, "compare")


def test_compare_labels_say_what_differs(tmp_path):
    from nnctl.viz.compare import run_labels

    for name, lr in (("a", 0.1), ("b", 0.01)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(f"name: x\noptimizer: {{type: adam, lr: {lr}}}\nseed: 1\n")
    assert run_labels([tmp_path / "a", tmp_path / "b"]) == ["optimizer.lr=0.1", "optimizer.lr=0.01"]


def test_without_matplotlib_the_message_names_the_extra(trained, monkeypatch):
    run = trained("sine")
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 2
    assert ".[plot]" in result.output and "matplotlib" in result.output
