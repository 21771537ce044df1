"""Which trials to run: grid (every combination), random (seeded draws) and tpe (Optuna, in batches).

A trial's *point* holds one raw coordinate per axis (an item index for values/choice, a number
otherwise); its *params* are the config values. Everything here is a pure function of the sweep
spec, its seed and (for tpe) the results of earlier batches, so a sweep is reproducible whatever
the number of workers, and a resumed sweep proposes exactly the trials the first run would have.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from nnctl.errors import ConfigError
from nnctl.sweep.spec import Dimension, SweepSpec

SEED_PATH = "seed"


@dataclass
class Trial:
    index: int
    point: dict[str, Any]  # axis -> raw coordinate (item index for values/choice)
    params: dict[str, Any] = field(default_factory=dict)  # axis -> config value
    labels: dict[str, Any] = field(default_factory=dict)  # axis -> what tables and plots show
    seed: int = 0

    def overrides(self) -> list[str]:
        """The trial as `--set` overrides: exactly what `nnctl train base.yaml --set ...` would take."""
        out = [f"{key}={json.dumps(value)}" for key, value in self.params.items()]
        if SEED_PATH not in self.params:
            out.append(f"{SEED_PATH}={self.seed}")
        return out


def make_trial(spec: SweepSpec, index: int, point: dict[str, Any]) -> Trial:
    params = {key: dim.value(point[key]) for key, dim in spec.space.items()}
    labels = {key: dim.label(point[key]) for key, dim in spec.space.items()}
    return Trial(index, dict(point), params, labels, trial_seed(spec.seed, params))


def trial_seed(sweep_seed: int, params: dict[str, Any]) -> int:
    """A stable hash of (sweep seed, parameters): the same trial gets the same seed on any worker."""
    text = json.dumps({"seed": sweep_seed, "params": params}, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % (2**31 - 1)


def grid_trials(spec: SweepSpec) -> list[Trial]:
    try:
        axes = {key: dim.grid() for key, dim in spec.space.items()}
    except ValueError as exc:
        raise ConfigError(f"sweep {spec.name}: {exc}") from None
    keys = list(axes)
    return [
        make_trial(spec, i, dict(zip(keys, combo, strict=True)))
        for i, combo in enumerate(itertools.product(*axes.values()))
    ]


def random_trials(spec: SweepSpec) -> list[Trial]:
    from nnctl.rng import rng_for

    trials = []
    for i in range(spec.trials or 0):
        rng = rng_for(spec.seed, i)  # trial i depends on (seed, i) only
        trials.append(make_trial(spec, i, {key: _draw(dim, rng) for key, dim in spec.space.items()}))
    return trials


def _draw(dim: Dimension, rng) -> Any:
    kind = dim.kind
    if kind in ("values", "choice"):
        return int(rng.integers(len(dim.items)))
    if kind == "uniform":
        return float(rng.uniform(*dim.uniform))
    if kind == "loguniform":
        low, high = dim.loguniform
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if kind == "int_uniform":
        return int(rng.integers(dim.int_uniform[0], dim.int_uniform[1] + 1))
    return dim.grid()[int(rng.integers(len(dim.grid())))]  # quniform


def corner_trials(spec: SweepSpec) -> list[Trial]:
    """For tpe (trials unknown in advance): every axis at each extreme, the others at their first."""
    first = {key: dim.corners()[0] for key, dim in spec.space.items()}
    points = [first]
    for key, dim in spec.space.items():
        points += [{**first, key: c} for c in dim.corners()[1:]]
    return [make_trial(spec, -1 - i, p) for i, p in enumerate(points)]


# --- tpe through Optuna --------------------------------------------------------------------------


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "strategy tpe and pruning need Optuna: pip install 'nnctl[tune]' (or pip install optuna)."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(spec: SweepSpec) -> dict:
    optuna = require_optuna()
    d = optuna.distributions
    out = {}
    for key, dim in spec.space.items():
        kind = dim.kind
        if kind in ("values", "choice"):
            out[key] = d.CategoricalDistribution(list(range(len(dim.items))))  # items may be lists or maps
        elif kind == "uniform":
            out[key] = d.FloatDistribution(*dim.uniform)
        elif kind == "loguniform":
            out[key] = d.FloatDistribution(*dim.loguniform, log=True)
        elif kind == "int_uniform":
            out[key] = d.IntDistribution(*dim.int_uniform)
        elif dim.integral:
            out[key] = d.IntDistribution(dim.grid()[0], dim.grid()[-1], step=int(dim.quniform[2]))
        else:
            low, high, q = dim.quniform
            out[key] = d.FloatDistribution(low, dim.grid()[-1], step=q)
    return out


def tpe_batch(spec: SweepSpec, batch_index: int, finished: list[dict], first_index: int, count: int) -> list[Trial]:
    """Propose `count` trials from the results of the finished ones (records in trial order).

    A fresh study per batch, seeded from (sweep seed, batch): the proposals depend on the seed and
    the earlier batches only, not on timing, worker count or an interruption in between."""
    optuna = require_optuna()
    dists = distributions(spec)
    sampler = optuna.samplers.TPESampler(
        seed=trial_seed(spec.seed, {"batch": batch_index}), n_startup_trials=spec.startup_trials
    )
    study = optuna.create_study(direction=direction(spec), sampler=sampler)
    for record in finished:
        study.add_trial(frozen_trial(optuna, record, dists))
    trials = []
    for i in range(count):
        asked = study.ask(dists)
        trials.append(make_trial(spec, first_index + i, {key: asked.params[key] for key in spec.space}))
    return trials


def frozen_trial(optuna, record: dict, dists: dict):
    state = optuna.trial.TrialState
    status = record["status"]
    value = record.get("objective")
    curve = {i + 1: v for i, v in enumerate(record.get("curve") or []) if v is not None and math.isfinite(v)}
    if status == "completed" and value is not None and math.isfinite(value):
        kwargs = {"state": state.COMPLETE, "value": value}
    elif status == "pruned":
        kwargs = {"state": state.PRUNED}
    else:
        kwargs = {"state": state.FAIL}
    return optuna.trial.create_trial(
        params={k: record["point"][k] for k in dists},
        distributions=dists,
        intermediate_values=curve,
        **kwargs,
    )


def direction(spec: SweepSpec) -> str:
    return "maximize" if goal(spec) == "max" else "minimize"


def goal(spec: SweepSpec) -> str:
    if spec.objective.goal:
        return spec.objective.goal
    if spec.objective.metric == "loss":
        return "min"
    from nnctl import registry
    from nnctl.metrics import higher_is_better

    better = higher_is_better(spec.objective.metric)  # metric names and columns such as top3_accuracy
    if better is None:
        from nnctl.registry import suggest

        known = registry.METRICS.names()
        raise ConfigError(
            f"objective.metric: unknown metric '{spec.objective.metric}'.{suggest(spec.objective.metric, known)} "
            f"Known: loss, {', '.join(known)}."
        )
    return "max" if better else "min"
