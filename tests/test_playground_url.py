"""`nnctl playground URL`: TensorFlow Playground links -> configs that train the same experiment."""

import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.config import config_from_dict, load_config
from nnctl.errors import ConfigError
from nnctl.playground_url import DEFAULT_URL, config_from_url, parse_url, seed_from_string

runner = CliRunner()
# The Playground's spiral with all seven of its visible input features and a 8-8-5 tanh network.
SPIRAL_URL = (
    DEFAULT_URL.replace("dataset=circle", "dataset=spiral")
    .replace("networkShape=4,2", "networkShape=8,8,5")
    .replace("xTimesY=false&xSquared=false&ySquared=false", "xTimesY=true&xSquared=true&ySquared=true")
    .replace("sinX=false", "sinX=true")
    .replace("sinY=false", "sinY=true")
)


def with_(key, value, url=DEFAULT_URL):
    """The default link with one setting changed (or added)."""
    parts = [p for p in url.split("#", 1)[1].split("&") if not p.startswith(f"{key}=")]
    return "https://playground.tensorflow.org/#" + "&".join([*parts, f"{key}={value}"])


def test_default_link_converts_to_a_valid_config():
    config = config_from_dict(config_from_url(DEFAULT_URL))
    assert config.name == "playground_circle"
    source = config.data.source
    assert (source.type, source.samples, source.noise, list(source.features)) == ("circle", 500, 0, ["x1", "x2"])
    assert (config.data.split.train, config.data.split.val, config.data.split.test) == (0.5, 0.5, 0.0)
    assert config.data.normalize.method == "none"
    assert [(layer.units, layer.activation) for layer in config.model.layers] == [(4, "tanh"), (2, "tanh"), (1, None)]
    assert all(layer.init == "playground" and layer.bias_init == 0.1 for layer in config.model.layers)
    assert (config.loss.type, config.loss.output) == ("playground_mse", "tanh")
    opt = config.optimizer
    assert (opt.type, opt.lr, opt.regularization, opt.regularization_rate) == ("playground_sgd", 0.03, "none", 0.0)
    assert (config.train.batch_size, config.train.shuffle) == (10, False)


# One case per converted field: (hash key, value, dotted path into the config dict, expected value).
FIELDS = [
    ("dataset", "xor", "data.source.type", "xor"),
    ("dataset", "gauss", "data.source.type", "gauss"),
    ("dataset", "spiral", "data.source.type", "spiral"),
    ("noise", "35", "data.source.noise", 35),
    ("percTrainData", "70", "data.split.train", 0.7),
    ("percTrainData", "70", "data.split.val", 0.3),
    ("batchSize", "25", "train.batch_size", 25),
    ("learningRate", "0.3", "optimizer.lr", 0.3),
    ("regularization", "L1", "optimizer.regularization", "l1"),
    ("regularization", "L2", "optimizer.regularization", "l2"),
    ("regularizationRate", "0.003", "optimizer.regularization_rate", 0.003),
    ("activation", "relu", "model.layers.0.activation", "relu"),
    ("activation", "sigmoid", "model.layers.1.activation", "sigmoid"),
    ("activation", "linear", "model.layers.0.activation", "linear"),
    ("networkShape", "3", "model.layers.0.units", 3),
    ("networkShape", "", "model.layers.0.units", 1),  # no hidden layer: the output unit alone
    ("initZero", "true", "model.layers.0.init", "zeros"),
    ("seed", "0.12345", "seed", seed_from_string("0.12345")),
    ("problem", "regression", "data.source.type", "plane"),
    ("problem", "regression", "data.source.samples", 1200),
    ("problem", "regression", "loss.output", "linear"),
    ("xSquared", "true", "data.source.features", ["x1", "x2", "x1_squared"]),
    ("ySquared", "true", "data.source.features", ["x1", "x2", "x2_squared"]),
    ("xTimesY", "true", "data.source.features", ["x1", "x2", "x1_x2"]),
    ("sinX", "true", "data.source.features", ["x1", "x2", "sin_x1"]),
    ("sinY", "true", "data.source.features", ["x1", "x2", "sin_x2"]),
    ("x", "false", "data.source.features", ["x2"]),
    ("y", "false", "data.source.features", ["x1"]),
    ("showTestData", "true", "name", "playground_circle"),  # display-only settings change nothing
]


def _get(node, dotted):
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("key, value, path, expected", FIELDS, ids=[f"{k}={v}->{p}" for k, v, p, _ in FIELDS])
def test_each_field_converts(key, value, path, expected):
    raw = config_from_url(with_(key, value))
    assert _get(raw, path) == expected
    config_from_dict(raw)  # and the result is a valid config


def test_regression_dataset_and_multi_gauss():
    raw = config_from_url(with_("regDataset", "reg-gauss", with_("problem", "regression")))
    assert raw["data"]["source"]["type"] == "multi_gauss" and raw["metrics"] == ["mse", "r2"]
    config_from_dict(raw)


def test_no_compat_uses_nnctls_own_choices():
    raw = config_from_url(with_("regularizationRate", "0.01", with_("regularization", "L2")), compat=False)
    assert raw["loss"] == "binary_cross_entropy" and raw["optimizer"] == {"type": "sgd", "lr": 0.03}
    assert raw["regularizers"] == [{"type": "l2", "rate": 0.01}] and raw["train"]["shuffle"] is True
    assert "init" not in raw["model"]["layers"][0]
    config_from_dict(raw)


def test_seed_strings_map_to_fixed_integers():
    assert seed_from_string("0.80") == seed_from_string("0.80") != seed_from_string("0.81")
    assert 0 <= seed_from_string("anything") < 2**31


def test_hash_alone_and_hide_keys_are_accepted():
    assert parse_url("#dataset=xor&networkShape=2&percTrainData_hide=true").dataset == "xor"
    assert parse_url("dataset=spiral&noise=10").noise == 10


@pytest.mark.parametrize(
    "url, message",
    [
        (with_("dataset", "moons"), "dataset=moons is not a value the Playground knows"),
        (with_("regDataset", "plane"), "Did you mean 'reg-plane'"),
        (with_("activation", "softmax"), "Allowed: relu, tanh, sigmoid, linear"),
        (with_("regularization", "l2"), "Allowed: none, L1, L2"),
        (with_("learningRate", "fast"), "learningRate=fast is not a number"),
        (with_("learningRate", "0"), "out of range"),
        (with_("learningRate", "nan"), "out of range"),
        (with_("noise", "80"), "noise=80 is out of range; the Playground's control allows [0, 50]"),
        (with_("percTrainData", "95"), "[10, 90]"),
        (with_("batchSize", "0"), "batchSize=0 is out of range"),
        (with_("batchSize", "2.5"), "whole number"),
        (with_("networkShape", "4,9"), "networkShape=9 is out of range"),
        (with_("networkShape", "1,1,1,1,1,1,1"), "at most 6"),
        (with_("cosX", "true"), "cos(X1), which nnctl does not compute"),
        (with_("x", "yes"), "must be true or false"),
        (with_("problem", "clustering"), "Allowed: classification, regression"),
        (with_("learningrate", "0.1"), "unknown setting 'learningrate'. Did you mean 'learningRate'?"),
        (with_("x", "false", with_("y", "false")), "no input feature is selected"),
        ("https://playground.tensorflow.org/", "holds no Playground state"),
    ],
)
def test_bad_links_give_clear_errors(url, message):
    with pytest.raises(ConfigError) as info:
        parse_url(url)
    assert message in str(info.value)


def test_cli_writes_a_trainable_config(tmp_path):
    out = tmp_path / "pg.yaml"
    result = runner.invoke(app, ["playground", DEFAULT_URL, "-o", str(out), "--epochs", "5"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Converted by `nnctl playground`")
    assert load_config(out).train.epochs == 5
    printed = runner.invoke(app, ["playground", DEFAULT_URL])
    assert printed.exit_code == 0 and yaml.safe_load(printed.stdout)["loss"]["type"] == "playground_mse"
    bad = runner.invoke(app, ["playground", with_("dataset", "moons")])
    assert bad.exit_code == 2 and "moons" in bad.output


def _test_accuracy(url, epochs, tmp_path):
    from nnctl.session import run_training
    from nnctl.train.evaluate import evaluate_run

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_from_url(url, epochs=epochs)))
    result = run_training(path, runs_dir=tmp_path / "runs")
    assert "val_loss" in result.history[-1]  # the Playground's test loss, shown live
    return evaluate_run(result.run_dir, "val", "last")["metrics"]


def test_default_link_trains_to_the_playgrounds_accuracy(tmp_path):
    # The Playground separates its circle with this 4-2 tanh network: test loss ~0.00x, every point right.
    metrics = _test_accuracy(DEFAULT_URL, 200, tmp_path)
    assert metrics["accuracy"] == 1.0 and metrics["loss"] < 0.01


def test_spiral_link_with_all_seven_features_trains(tmp_path):
    # The Playground separates both arms with it (test loss about 0.01 after several hundred epochs);
    # nnctl: accuracy 0.996, test loss 0.0098 after 600 epochs (3-4 s).
    metrics = _test_accuracy(SPIRAL_URL, 600, tmp_path)
    assert metrics["accuracy"] >= 0.98 and metrics["loss"] < 0.03


def test_shipped_playground_configs_are_the_converters_output():
    from tests.conftest import CONFIGS

    assert yaml.safe_load((CONFIGS / "playground_circle.yaml").read_text()) == config_from_url(DEFAULT_URL, epochs=200)
    assert yaml.safe_load((CONFIGS / "playground_spiral.yaml").read_text()) == config_from_url(SPIRAL_URL, epochs=600)
