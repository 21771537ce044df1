"""Small trained runs (a few epochs each) shared by the plot and report tests."""

import pytest

from nnctl.session import run_training
from tests.conftest import CONFIGS

# name -> (config, overrides): a 2-D classification (playground), a 2-D regression (playground),
# a 1-D regression (the overfitting demo) and an image classification (CNN on the digits).
RUNS = {
    "spiral": (CONFIGS / "spiral.yaml", ["train.epochs=3", "data.source.samples=300"]),
    "plane": (CONFIGS / "plane.yaml", ["train.epochs=3"]),
    "sine": (CONFIGS / "overfit_sine.yaml", ["train.epochs=40"]),
    "digits": (
        CONFIGS / "digits_cnn.yaml",
        ["train.epochs=1", "model.layers[0].filters=4", "model.layers[2].filters=4", "model.layers[6].units=16"],
    ),
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """{name: run directory}, trained once per test session, on first use."""
    folder = tmp_path_factory.mktemp("viz_runs")
    cache = {}

    def get(name):
        if name not in cache:
            config, overrides = RUNS[name]
            cache[name] = run_training(config, overrides, runs_dir=folder).run_dir
        return cache[name]

    return get


def png_stats(path):
    """(height, width, pixel standard deviation) of a PNG."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    return pixels.shape[0], pixels.shape[1], float(pixels[..., :3].std())
