"""Config loading: YAML traps, overrides, error messages with path, line and suggestion."""

import pytest
from pydantic import ValidationError

from nnctl.config import config_from_dict, load_config, load_config_detailed, value_sources
from nnctl.errors import ConfigError


def test_minimal_config_resolves_defaults(write_yaml, minimal_text):
    cfg = load_config(write_yaml(minimal_text))
    assert cfg.model.layers[0].units == 4 and cfg.model.layers[0].init == "glorot_uniform"
    assert cfg.optimizer.beta1 == 0.9
    assert cfg.data.split.train == 0.7


def test_exponent_without_dot_is_a_number(write_yaml, minimal_text):
    cfg = load_config(write_yaml(minimal_text.replace("lr: 0.01", "lr: 1e-3")))
    assert cfg.optimizer.lr == pytest.approx(0.001)


def test_duplicate_keys_are_rejected(write_yaml, minimal_text):
    path = write_yaml(minimal_text + "seed: 3\n")
    with pytest.raises(ConfigError, match=r"line 12: duplicate key 'seed' \(first given on line 2\)"):
        load_config(path)


def test_misspelt_key_names_path_line_and_suggestion(write_yaml, minimal_text):
    path = write_yaml(minimal_text.replace("- {type: dense, units: 2}", "- {type: dense, unts: 2}"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "line 8" in message and "model.layers[1].unts" in message and "Did you mean 'units'?" in message
    assert "required" not in message  # the misspelt key is not reported twice


def test_unknown_type_suggests_closest(write_yaml, minimal_text):
    path = write_yaml(minimal_text.replace("type: dense, units: 4", "type: dens, units: 4"))
    with pytest.raises(
        ConfigError, match=r"line 7: model.layers\[0\].type: unknown layer 'dens'. Did you mean 'dense'\?"
    ):
        load_config(path)


def test_unknown_optimizer_and_source(write_yaml, minimal_text):
    text = minimal_text.replace("type: adam", "type: adamm").replace("type: xor", "type: xorr")
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(text))
    assert "unknown optimizer 'adamm'. Did you mean 'adam'?" in str(info.value)
    assert "unknown data source 'xorr'. Did you mean 'xor'?" in str(info.value)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.layers[0].units=0", "model.layers[0].units: Input should be greater than 0"),
        ("optimizer.lr=-1", "optimizer.lr: Input should be greater than 0"),
        ("data.split.val=0.5", "must sum to 1"),
        ("train.epochs=0", "train.epochs"),
        ("metrics=[acuracy]", "Did you mean 'accuracy'?"),
        ("data.normalize=minmx", "Did you mean 'minmax'?"),
    ],
)
def test_out_of_range_values(write_yaml, minimal_text, override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(minimal_text), [override])
    assert fragment in str(info.value)
    assert f"--set {override}" in str(info.value)  # says where the bad value came from


def test_overrides_by_index_and_bracket(write_yaml, minimal_text):
    cfg = load_config(
        write_yaml(minimal_text), ["model.layers.0.units=7", "model.layers[1].units=2", "train.shuffle=false"]
    )
    assert cfg.model.layers[0].units == 7 and cfg.train.shuffle is False


def test_override_out_of_range_index(write_yaml, minimal_text):
    with pytest.raises(ConfigError, match="not an item of a list with 2 items"):
        load_config(write_yaml(minimal_text), ["model.layers[5].units=3"])


def test_override_needs_equals(write_yaml, minimal_text):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(write_yaml(minimal_text), ["optimizer.lr"])


def test_shorthand_component_names(write_yaml, minimal_text):
    text = minimal_text.replace("optimizer: {type: adam, lr: 0.01}", "optimizer: sgd")
    cfg = load_config(write_yaml(text), ["optimizer.momentum=0.9"])
    assert cfg.optimizer.type == "sgd" and cfg.optimizer.momentum == 0.9


def test_explain_marks_sources(write_yaml, minimal_text):
    loaded = load_config_detailed(write_yaml(minimal_text), ["optimizer.lr=0.5"])
    sources = value_sources(loaded)
    assert sources["optimizer.lr"] == "--set"
    assert sources["model.layers[0].units"] == "file"
    assert sources["optimizer.beta2"] == "default"


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="folder"):
        load_config(tmp_path)


def test_invalid_yaml_reports_line(write_yaml):
    with pytest.raises(ConfigError, match="line 2"):
        load_config(write_yaml("name: x\nmodel: [unclosed\n"))


def test_top_level_must_be_mapping(write_yaml):
    with pytest.raises(ConfigError, match="top level"):
        load_config(write_yaml("- 1\n- 2\n"))


def test_config_is_frozen(write_yaml, minimal_text):
    cfg = load_config(write_yaml(minimal_text))
    with pytest.raises(ValidationError, match="frozen"):
        cfg.seed = 3


def test_every_example_config_validates():
    from tests.conftest import CONFIGS

    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 9
    for path in paths:
        load_config(path)


def test_config_from_dict_round_trip(write_yaml, minimal_text):
    from nnctl.config import dump_config

    cfg = load_config(write_yaml(minimal_text))
    assert config_from_dict(dump_config(cfg)) == cfg
