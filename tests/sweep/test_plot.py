"""cells.csv and plot.png of a sweep with `plot:` (data_vs_model): cells averaged over repeats."""

import pytest

from nnctl.sweep.plot import plot_points, write_cells, write_plot
from nnctl.sweep.runner import prepare_sweep
from tests.conftest import ROOT


def records():
    out = []
    for i, (fraction, model, seed, acc) in enumerate(
        [(0.1, "small", 0, 0.6), (0.1, "small", 1, 0.7), (1.0, "small", 0, 0.8), (0.1, "large", 0, 0.65)]
        + [(1.0, "large", 0, 0.99), (1.0, "large", 1, float("nan"))]
    ):
        labels = {"seed": seed, "data.train_fraction": fraction, "model.layers": model}
        out.append(
            {
                "trial": i,
                "status": "completed",
                "labels": labels,
                "metrics": {"test": {"accuracy": acc}},
                "objective": acc,
            }
        )
    out.append({"trial": 9, "status": "failed", "labels": {"data.train_fraction": 0.5, "model.layers": "large"}})
    return out


@pytest.fixture
def spec(tmp_path):
    return prepare_sweep(ROOT / "configs" / "sweeps" / "data_vs_model.yaml", tmp_path).spec


def test_cells_average_repeats_and_skip_unfinished_trials(spec, tmp_path):
    lines = plot_points(spec, records())
    assert lines == {"small": [(0.1, pytest.approx(0.65), 2), (1.0, 0.8, 1)], "large": [(0.1, 0.65, 1), (1.0, 0.99, 1)]}
    text = write_cells(tmp_path, spec, records()).read_text().splitlines()
    assert text[0] == "model.layers,data.train_fraction,test_accuracy,trials"
    assert "large,1.0,0.99,1" in text


def test_plot_is_a_png(spec, tmp_path):
    pytest.importorskip("matplotlib")
    path = write_plot(tmp_path, spec, records())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
