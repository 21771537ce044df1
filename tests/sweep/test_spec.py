"""The sweep file, the search space and the strategies: no training here."""

import pytest

from nnctl.errors import ConfigError
from nnctl.sweep.runner import plan, prepare_sweep
from nnctl.sweep.spec import parse_sweep
from nnctl.sweep.strategies import grid_trials, random_trials, trial_seed
from tests.conftest import ROOT

SPACE = {
    "optimizer.lr": {"loguniform": [1e-4, 0.1]},
    "model.layers[0].units": {"int_uniform": [2, 16]},
    "model.layers[0].activation": {"choice": ["tanh", "relu"]},
    "train.batch_size": {"quniform": [8, 64, 8]},
    "optimizer.type": ["sgd", "adam"],  # a bare list is `values`
}


def spec(**fields):
    return parse_sweep({"name": "s", "config": {}, **fields})


def test_grid_is_every_combination_in_order():
    s = spec(space={"a.x": {"values": [1, 2, 3]}, "a.y": {"choice": ["p", "q"]}, "a.z": {"int_uniform": [0, 1]}})
    trials = grid_trials(s)
    assert len(trials) == 12
    assert trials[0].params == {"a.x": 1, "a.y": "p", "a.z": 0}
    assert trials[-1].params == {"a.x": 3, "a.y": "q", "a.z": 1}
    assert [t.index for t in trials] == list(range(12))


def test_random_is_reproducible_from_the_seed_and_stays_in_the_space():
    a, b = (
        random_trials(spec(strategy="random", trials=20, seed=3, space=SPACE)),
        random_trials(spec(strategy="random", trials=20, seed=3, space=SPACE)),
    )
    assert [t.params for t in a] == [t.params for t in b]
    other = random_trials(spec(strategy="random", trials=20, seed=4, space=SPACE))
    assert [t.params for t in a] != [t.params for t in other]
    for t in a:
        assert 1e-4 <= t.params["optimizer.lr"] <= 0.1
        assert 2 <= t.params["model.layers[0].units"] <= 16
        assert t.params["train.batch_size"] in {8, 16, 24, 32, 40, 48, 56, 64}
        assert type(t.params["train.batch_size"]) is int  # whole-number quniform: integers, not 48.0
        assert t.params["optimizer.type"] in ("sgd", "adam")
    # more trials extend the list: trial i depends only on (seed, i)
    longer = random_trials(spec(strategy="random", trials=25, seed=3, space=SPACE))
    assert [t.params for t in longer[:20]] == [t.params for t in a]


def test_trial_seed_depends_on_sweep_seed_and_parameters_only():
    assert trial_seed(0, {"a": 1, "b": 0.5}) == trial_seed(0, {"b": 0.5, "a": 1})
    assert trial_seed(0, {"a": 1}) != trial_seed(1, {"a": 1})
    assert trial_seed(0, {"a": 1}) != trial_seed(0, {"a": 2})
    trial = grid_trials(spec(space={"optimizer.lr": [0.5]}))[0]
    assert trial.overrides() == ["optimizer.lr=0.5", f"seed={trial_seed(0, {'optimizer.lr': 0.5})}"]


def test_a_seed_axis_wins_over_the_derived_seed():
    trials = grid_trials(spec(space={"seed": [7, 8]}))
    assert [t.overrides() for t in trials] == [["seed=7"], ["seed=8"]]


def test_labels_name_structured_values():
    s = spec(space={"model.layers": {"values": [[{"type": "dense", "units": 2}], []], "labels": ["linear", "none"]}})
    trials = grid_trials(s)
    assert [t.labels["model.layers"] for t in trials] == ["linear", "none"]
    assert trials[0].params["model.layers"] == [{"type": "dense", "units": 2}]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"space": {"a.b": {"uniform": [0, 1]}}}, "a grid needs finite axes"),
        ({"strategy": "random", "space": {"a.b": [1]}}, "needs trials"),
        ({"space": {"a.b": {"value": [1]}}}, "unknown key 'value'. Did you mean 'values'?"),
        ({"space": {"a.b": {"uniform": [1, 0]}}, "strategy": "random", "trials": 2}, "low must be below high"),
        ({"space": {"a.b": {"loguniform": [0, 1]}}, "strategy": "random", "trials": 2}, "low must be > 0"),
        ({"space": {"a.b": {"values": [1], "choice": [2]}}}, "exactly one of"),
        ({"space": {"a.b": [1]}, "pruning": {}}, "pruning works with strategy: tpe"),
        ({"space": {"a.b": [1]}, "strategy": "grd"}, "strategy"),
    ],
)
def test_sweep_file_mistakes_are_named(fields, message):
    with pytest.raises(ConfigError, match="(?s)" + message.replace("(", r"\(").replace("?", r"\?")):
        spec(**fields)


def test_every_trial_is_validated_before_anything_runs(sweep_file, tmp_path):
    path = sweep_file("space:\n  optimizer.lr: [0.01, -1]\n  model.layers[0].units: [4, 0]\n")
    with pytest.raises(ConfigError) as err:
        prepare_sweep(path, tmp_path / "runs")
    text = str(err.value)
    assert "3 trial config(s) are invalid; nothing was run" in text
    assert "trial 1 (optimizer.lr=0.01, model.layers[0].units=0)" in text
    assert "--set optimizer.lr=-1" in text
    assert not (tmp_path / "runs").exists()


def test_unknown_objective_metric_fails_before_running(sweep_file, tmp_path):
    path = sweep_file("objective: {metric: acuracy}\nspace: {optimizer.lr: [0.01]}\n")
    with pytest.raises(ConfigError, match="Did you mean 'accuracy'"):
        prepare_sweep(path, tmp_path / "runs")


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_validate(path, tmp_path):
    from nnctl.sweep.spec import load_sweep

    if load_sweep(path).strategy == "tpe":
        pytest.importorskip("optuna")
    sweep = prepare_sweep(path, tmp_path)
    assert (sweep.path / "sweep.yaml").exists()
    if sweep.spec.strategy != "tpe":
        assert plan(sweep.spec)


def test_tpe_proposals_are_reproducible_from_the_seed():
    pytest.importorskip("optuna")
    from nnctl.sweep.strategies import tpe_batch

    space = {"x": {"uniform": [-2, 2]}, "k": {"choice": ["a", "b", "c"]}}

    def run(seed):
        s = spec(strategy="tpe", trials=12, batch=3, startup_trials=3, seed=seed, space=space)
        records, proposed = [], []
        for k, first in enumerate(range(0, 12, 3)):
            for t in tpe_batch(s, k, records, first, 3):
                value = (t.params["x"] - 0.5) ** 2 + {"a": 0, "b": 1, "c": 2}[t.params["k"]]
                records.append({"trial": t.index, "status": "completed", "objective": value, "point": t.point})
                proposed.append(t.params)
        return proposed

    first, again = run(5), run(5)
    assert first == again
    assert run(6) != first
    assert len({p["x"] for p in first}) == 12


def test_quniform_is_integer_only_when_low_high_and_step_are_whole():
    assert spec(space={"a": {"quniform": [8, 32, 8]}}).space["a"].grid() == [8, 16, 24, 32]
    assert all(type(v) is int for v in spec(space={"a": {"quniform": [8, 32, 8]}}).space["a"].grid())
    assert spec(space={"a": {"quniform": [0, 1, 0.25]}}).space["a"].grid() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert type(spec(space={"a": {"quniform": [0.5, 2.5, 1]}}).space["a"].grid()[0]) is float


def test_tpe_proposes_integers_for_a_whole_number_quniform():
    pytest.importorskip("optuna")
    from nnctl.sweep.strategies import distributions

    dist = distributions(spec(strategy="tpe", trials=4, space={"train.batch_size": {"quniform": [8, 64, 8]}}))
    assert dist["train.batch_size"].__class__.__name__ == "IntDistribution"
    assert (dist["train.batch_size"].low, dist["train.batch_size"].high, dist["train.batch_size"].step) == (8, 64, 8)
