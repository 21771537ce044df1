"""TensorFlow Playground links -> nnctl configs (`nnctl playground URL`).

The Playground keeps its whole state in the URL's `#...` hash (its `state.ts`): `key=value` pairs
joined by `&`. A key that is absent keeps the Playground's default. Every value is checked against
what the Playground's controls offer; an unknown key or value is an error that says what is allowed,
because a silently dropped setting would train a different experiment.

With `compat=True` (the default) the config uses the Playground's own choices where they differ from
nnctl's defaults (see README, "TensorFlow Playground links"):

- output and loss: one output unit, tanh for classification (labels -1/+1) and linear for regression,
  trained on the square error 0.5 (out - t)^2: loss `playground_mse`;
- initialisation: weights uniform in [-0.5, 0.5] (`init: playground`), biases 0.1 (`bias_init: 0.1`);
  with initZero, weights 0;
- update: plain SGD, then the regularization step on the weights (optimizer `playground_sgd`);
- data: the same generator, 500 points (1200 for regression), raw inputs (no normalization),
  percTrainData % for training and the rest as the validation split, scored after every epoch so
  its loss shows live as the Playground's test loss does (no separate test split); the training
  order fixed (the Playground shuffles its data once).

With `compat=False` the same experiment uses nnctl's idiomatic pieces: binary_cross_entropy on one
logit (mse for regression), default initialisation, `sgd` with an `l1`/`l2` regularizer, shuffling.

What cannot match: the Playground's random numbers (JavaScript's seedrandom): the seed string is
hashed into nnctl's integer seed, so the points and initial weights differ while their distributions
are the same. The Playground carries a partial last batch over into the next epoch; nnctl applies it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from urllib.parse import unquote

from nnctl.errors import ConfigError

DATASETS = {"circle": "circle", "xor": "xor", "gauss": "gauss", "spiral": "spiral"}
REG_DATASETS = {"reg-plane": "plane", "reg-gauss": "multi_gauss"}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
REGULARIZATIONS = {"none": "none", "L1": "l1", "L2": "l2"}
PROBLEMS = ("classification", "regression")
# The Playground's input features, in the order of its input column, and nnctl's names for them.
FEATURES = {
    "x": "x1",
    "y": "x2",
    "xSquared": "x1_squared",
    "ySquared": "x2_squared",
    "xTimesY": "x1_x2",
    "sinX": "sin_x1",
    "sinY": "sin_x2",
}
UNSUPPORTED_FEATURES = {"cosX": "cos(X1)", "cosY": "cos(X2)"}
# Display-only settings: they change what the Playground shows, not what it trains.
DISPLAY_KEYS = ("showTestData", "discretize", "collectStats", "hideText", "tutorial")
SAMPLES = {"classification": 500, "regression": 1200}  # NUM_SAMPLES_CLASSIFY / NUM_SAMPLES_REGRESS
MAX_LAYERS, MAX_UNITS = 6, 8  # the Playground's +/- buttons stop there
DEFAULT_URL = (
    "https://playground.tensorflow.org/#activation=tanh&batchSize=10&dataset=circle&regDataset=reg-plane"
    "&learningRate=0.03&regularizationRate=0&noise=0&networkShape=4,2&seed=0.80&showTestData=false"
    "&discretize=false&percTrainData=50&x=true&y=true&xTimesY=false&xSquared=false&ySquared=false"
    "&cosX=false&sinX=false&cosY=false&sinY=false&collectStats=false&problem=classification"
    "&initZero=false&hideText=false"
)


@dataclass
class PlaygroundState:
    """The training-relevant part of the Playground's state, with its defaults (state.ts)."""

    activation: str = "tanh"
    regularization: str = "none"  # none | l1 | l2
    batch_size: int = 10
    dataset: str = "circle"  # nnctl source names
    reg_dataset: str = "plane"
    learning_rate: float = 0.03
    regularization_rate: float = 0.0
    noise: float = 0.0
    network_shape: list[int] = field(default_factory=lambda: [4, 2])
    seed: str = ""
    perc_train_data: float = 50.0
    features: list[str] = field(default_factory=lambda: ["x1", "x2"])
    problem: str = "classification"
    init_zero: bool = False

    @property
    def source(self) -> str:
        return self.dataset if self.problem == "classification" else self.reg_dataset


def split_hash(url: str) -> dict[str, str]:
    """'https://playground.tensorflow.org/#a=1&b=2' (or '#a=1&b=2', or 'a=1&b=2') -> {'a': '1', 'b': '2'}."""
    text = url.strip()
    if "#" in text:
        text = text.split("#", 1)[1]
    elif "=" not in text:
        raise ConfigError(
            f"'{url}' holds no Playground state: copy the whole address from the Playground, the part after '#' "
            "included (it looks like https://playground.tensorflow.org/#activation=tanh&batchSize=10&...)."
        )
    pairs: dict[str, str] = {}
    for item in text.split("&"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"Playground link: '{item}' is not a key=value pair.")
        pairs[unquote(name)] = unquote(value)
    return pairs


def _choice(key: str, value: str, allowed) -> str:
    if value not in allowed:
        from nnctl.registry import suggest

        raise ConfigError(
            f"Playground link: {key}={value} is not a value the Playground knows.{suggest(value, list(allowed))} "
            f"Allowed: {', '.join(allowed)}."
        )
    return value


def _number(key: str, value: str, low: float, high: float, integer: bool = False, low_open: bool = False) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"Playground link: {key}={value} is not a number.") from None
    if not math.isfinite(number) or number < low or number > high or (low_open and number == low):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ConfigError(
            f"Playground link: {key}={value} is out of range; the Playground's control allows {interval}."
        )
    if integer and number != int(number):
        raise ConfigError(f"Playground link: {key}={value} must be a whole number.")
    return int(number) if integer else number


def _boolean(key: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise ConfigError(f"Playground link: {key}={value} must be true or false.")
    return value == "true"


def _shape(value: str) -> list[int]:
    if value.strip() == "":
        return []  # no hidden layers: the inputs feed the output directly
    units = [_number("networkShape", part, 1, MAX_UNITS, integer=True) for part in value.split(",")]
    if len(units) > MAX_LAYERS:
        raise ConfigError(
            f"Playground link: networkShape={value} has {len(units)} hidden layers; the Playground allows at most {MAX_LAYERS}."
        )
    return units


def parse_url(url: str) -> PlaygroundState:
    """Read and check a Playground link's state; absent keys keep the Playground's defaults."""
    state = PlaygroundState()
    pairs = split_hash(url)
    selected = dict.fromkeys(FEATURES, False) | {"x": True, "y": True}
    known = [
        "activation", "regularization", "batchSize", "dataset", "regDataset", "learningRate", "regularizationRate",
        "noise", "networkShape", "seed", "percTrainData", "problem", "initZero",
        *FEATURES, *UNSUPPORTED_FEATURES, *DISPLAY_KEYS,
    ]  # fmt: skip
    for key, value in pairs.items():
        if key.endswith("_hide") or key in DISPLAY_KEYS:
            continue  # which controls are hidden, what is displayed: nothing that trains
        if key == "activation":
            state.activation = _choice(key, value, ACTIVATIONS)
        elif key == "regularization":
            state.regularization = REGULARIZATIONS[_choice(key, value, REGULARIZATIONS)]
        elif key == "batchSize":
            state.batch_size = _number(key, value, 1, 30, integer=True)
        elif key == "dataset":
            state.dataset = DATASETS[_choice(key, value, DATASETS)]
        elif key == "regDataset":
            state.reg_dataset = REG_DATASETS[_choice(key, value, REG_DATASETS)]
        elif key == "learningRate":
            state.learning_rate = _number(key, value, 0, 10, low_open=True)
        elif key == "regularizationRate":
            state.regularization_rate = _number(key, value, 0, 10)
        elif key == "noise":
            state.noise = _number(key, value, 0, 50)
        elif key == "networkShape":
            state.network_shape = _shape(value)
        elif key == "seed":
            state.seed = value
        elif key == "percTrainData":
            state.perc_train_data = _number(key, value, 10, 90)
        elif key == "problem":
            state.problem = _choice(key, value, PROBLEMS)
        elif key == "initZero":
            state.init_zero = _boolean(key, value)
        elif key in FEATURES:
            selected[key] = _boolean(key, value)
        elif key in UNSUPPORTED_FEATURES:
            if _boolean(key, value):
                raise ConfigError(
                    f"Playground link: {key}=true selects the input {UNSUPPORTED_FEATURES[key]}, which nnctl does not "
                    "compute (the Playground's own page hides it too). Set it to false or drop it; nnctl's features "
                    f"are {', '.join(FEATURES.values())}."
                )
        else:
            from nnctl.registry import suggest

            raise ConfigError(
                f"Playground link: unknown setting '{key}'.{suggest(key, known)} nnctl reads the TensorFlow "
                f"Playground's settings: {', '.join(known)} (and *_hide)."
            )
    state.features = [FEATURES[key] for key, on in selected.items() if on]
    if not state.features:
        raise ConfigError("Playground link: no input feature is selected (x, y, xSquared, ...); select at least one.")
    return state


def seed_from_string(seed: str) -> int:
    """The Playground's seed is a string (e.g. '0.80'); nnctl's an integer: the first 31 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:4], "big") >> 1


def to_config(state: PlaygroundState, compat: bool = True, epochs: int = 500) -> dict:
    """An nnctl config dict (plain YAML types) that trains the Playground experiment `state` describes."""
    classify = state.problem == "classification"
    train = round(state.perc_train_data / 100, 6)
    dense_extra = {}
    if compat:
        dense_extra = {"init": "zeros" if state.init_zero else "playground", "bias_init": 0.1}
    elif state.init_zero:
        dense_extra = {"init": "zeros"}
    layers = [
        {"type": "dense", "units": units, "activation": state.activation, **dense_extra}
        for units in state.network_shape
    ]
    layers.append({"type": "dense", "units": 1, **dense_extra})  # one output node, as in the Playground
    config: dict = {
        "name": f"playground_{state.source}",
        "seed": seed_from_string(state.seed),
        "data": {
            "source": {
                "type": state.source,
                "samples": SAMPLES[state.problem],
                "noise": _plain(state.noise),
                "features": list(state.features),
            },
            # The Playground has train and test data only, and shows the test loss live: its test data is
            # nnctl's validation split, the one scored after every epoch.
            "split": {"train": train, "val": round(1 - train, 6), "test": 0.0},
            "normalize": "none",
        },
        "model": {"layers": layers},
    }
    regularizers = []
    if compat:
        config["loss"] = {"type": "playground_mse", "output": "tanh" if classify else "linear"}
        config["optimizer"] = {
            "type": "playground_sgd",
            "lr": state.learning_rate,
            "regularization": state.regularization,
            "regularization_rate": state.regularization_rate,
        }
    else:
        config["loss"] = "binary_cross_entropy" if classify else "mse"
        config["optimizer"] = {"type": "sgd", "lr": state.learning_rate}
        if state.regularization != "none" and state.regularization_rate > 0:
            regularizers = [{"type": state.regularization, "rate": state.regularization_rate}]
    if regularizers:
        config["regularizers"] = regularizers
    config["train"] = {
        "epochs": epochs,
        "batch_size": state.batch_size,
        "shuffle": not compat,  # the Playground visits its (once shuffled) training points in one fixed order
        "monitor": "train_loss",  # as the Playground: nothing is chosen on its test data
    }
    config["metrics"] = ["accuracy"] if classify else ["mse", "r2"]
    return config


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def config_from_url(url: str, compat: bool = True, epochs: int = 500) -> dict:
    return to_config(parse_url(url), compat, epochs)


def config_yaml(url: str, compat: bool = True, epochs: int = 500) -> str:
    """The config as commented YAML text, ready to save and `nnctl train`."""
    import yaml

    config = config_from_url(url, compat, epochs)
    mode = (
        "Playground compatibility: tanh output + playground_mse, init playground / bias 0.1, playground_sgd"
        if compat
        else "nnctl's own choices (nnctl playground --no-compat)"
    )
    header = (
        "# Converted by `nnctl playground` from the TensorFlow Playground link\n"
        f"#   {url.strip()}\n"
        f"# {mode}.\n"
        "# The Playground trains until you stop it: train.epochs is nnctl's choice (--epochs).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
