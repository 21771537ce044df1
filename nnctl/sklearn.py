"""scikit-learn estimators: `NNClassifier` and `NNRegressor`, an nnctl experiment behind fit / predict.

    from nnctl.sklearn import NNClassifier
    clf = NNClassifier("configs/penguins.yaml", epochs=50)      # a config file or dict, plus overrides
    clf.fit(X_train, y_train).score(X_test, y_test)
    GridSearchCV(clf, {"optimizer__lr": [0.001, 0.01]}, cv=5)  # any config path, `__` for `.`

The config gives the network, loss, optimizer, training settings and (for a table source) the
column declarations: `columns`, `drop`, `features` apply to a DataFrame's columns by name. Its data
source is replaced by the X, y given to fit, all of which trains (no validation split). The last
dense layer's units are set from the data (classes, or regression targets). Short overrides:
`epochs`, `batch_size`, `lr`, `seed`; any other `section__key=value` sets `section.key`.

The fitted model is a Checkpoint (arrays and JSON, as on disk), so the estimator pickles without
the engine's objects. scikit-learn is an optional extra (`pip install 'nnctl[sklearn]'`); nothing
else in nnctl imports this module.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("nnctl.sklearn needs scikit-learn, an optional extra: pip install 'nnctl[sklearn]'") from exc

SHORT = {"epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optimizer.lr", "seed": "seed"}


def _default_config(task: str) -> dict:
    """A small MLP: 64 ReLU units, Adam; standardized inputs (and regression targets)."""
    return {
        "name": "sklearn",
        # float64: a row's prediction then does not depend on the rows batched with it beyond 1e-12
        # (float32 GEMMs round differently per batch shape; scikit-learn checks invariance at 1e-7).
        "dtype": "float64",
        "data": {
            "source": {"type": "csv", "path": "<fit>", "target": "y"},
            "normalize": "standard",
            **({"target_normalize": "standard"} if task == "regression" else {}),
        },
        "model": {
            "layers": [
                {"type": "dense", "units": 64, "activation": "relu", "init": "he_uniform"},
                {"type": "dense", "units": 1},
            ]
        },
        "loss": "cross_entropy" if task == "classification" else "mse",
        "optimizer": {"type": "adam", "lr": 0.01},
        "train": {"epochs": 100, "batch_size": 32},
    }


def _set(raw: dict, dotted: str, value: Any) -> None:
    from nnctl.config import parse_path
    from nnctl.errors import ConfigError

    path = parse_path(dotted)
    node: Any = raw
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[part]
        else:
            if isinstance(node.get(part), str):  # `loss: mse` shorthand -> {type: mse}
                node[part] = {"type": node[part]}
            node = node.setdefault(part, {})
    if isinstance(node, list) and not (isinstance(path[-1], int) and path[-1] < len(node)):
        raise ConfigError(f"{dotted}: index {path[-1]} is out of range.")
    node[path[-1]] = value


class _NNEstimator(BaseEstimator):
    _task = "classification"

    def __init__(
        self, config: str | Path | dict | None = None, *, epochs=None, batch_size=None, lr=None, seed=0, **overrides
    ):
        self.config = config
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self._overrides = overrides  # section__key=value; reported by get_params like the named ones

    # --- parameters: the named ones and any config path ---

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep=False), **self._overrides}

    def set_params(self, **params: Any) -> _NNEstimator:
        named = set(super().get_params(deep=False))
        for key, value in params.items():
            if key in named:
                setattr(self, key, value)
            else:
                self._overrides[key] = value
        return self

    # --- the experiment ---

    def _raw_config(self) -> dict:
        from nnctl.errors import ConfigError
        from nnctl.yamlio import read_yaml

        if self.config is None:
            raw = _default_config(self._task)
        elif isinstance(self.config, dict):
            raw = copy.deepcopy(self.config)
        else:
            raw, _ = read_yaml(Path(self.config))
            if not isinstance(raw, dict):
                raise ConfigError(f"{self.config}: the top level must be a mapping of sections.")
        for key, path in SHORT.items():
            if getattr(self, key) is not None:
                _set(raw, path, getattr(self, key))
        for key, value in self._overrides.items():
            _set(raw, key.replace("__", "."), value)
        raw.setdefault("data", {})
        raw["data"]["split"] = {"train": 1.0, "val": 0.0, "test": 0.0}  # fit trains on all of X
        return raw

    def _fit(self, X, y, sample_weight=None):
        from nnctl.build import build_experiment
        from nnctl.config import config_from_dict
        from nnctl.data.dataset import Dataset
        from nnctl.errors import NnctlError
        from nnctl.runs.checkpoint import Checkpoint
        from nnctl.train.trainer import train

        raw = self._raw_config()
        source = raw["data"].get("source")
        table_params = source if isinstance(source, dict) else {}
        self._as_table = _is_table(X) or bool(
            table_params.get("columns") or table_params.get("drop") or table_params.get("features")
        )
        if self._as_table:
            X, y = validate_data(
                self, X, y, dtype=None, ensure_all_finite=False, multi_output=True, y_numeric=self._task == "regression"
            )
        else:
            X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=self._task == "regression")
        y = np.asarray(y)
        if self._task == "classification":
            if y.ndim == 2 and y.shape[1] == 1:
                from sklearn.utils.validation import column_or_1d

                y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            targets = len(self.classes_)
            target, class_names = codes.astype(np.int64), [str(c) for c in self.classes_]
        else:
            target, class_names = y.astype(np.float64).reshape(len(y), -1), None
            targets = target.shape[1]
            self._y_1d = y.ndim == 1
        loss = raw.get("loss")
        loss_type = loss if isinstance(loss, str) else (loss or {}).get("type")
        layers = raw.get("model", {}).get("layers") or []
        if layers and isinstance(layers[-1], dict) and layers[-1].get("type") == "dense":
            layers[-1]["units"] = 1 if loss_type == "binary_cross_entropy" else targets
        try:
            config = config_from_dict(raw)
            names = [f"x{j}" for j in range(X.shape[1])]
            if hasattr(self, "feature_names_in_"):
                names = [str(n) for n in self.feature_names_in_]
            weight = None
            if sample_weight is not None:
                weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
                if len(weight) != len(X):
                    raise ValueError(f"sample_weight has {len(weight)} values for {len(X)} samples.")
                if np.any(weight < 0) or not np.all(np.isfinite(weight)):
                    raise ValueError("sample_weight must be finite and >= 0.")
                if not np.any(weight > 0):
                    raise ValueError("sample_weight is zero for every sample; at least one must be positive.")
                if np.all(weight == weight[0]):
                    weight = None  # equal weights are no weights: sum(w l) / sum(w) is the plain mean
            task = self._task
            if self._as_table:
                table = self._table(X, names, config.data.source)
                dataset = Dataset(
                    np.zeros((len(X), 0)), target, task, [], class_names, ["y"], table=table, sample_weight=weight
                )
            else:
                dataset = Dataset(X, target, task, names, class_names, ["y"], sample_weight=weight)
            experiment = build_experiment(config, dataset=dataset)
            result = train(experiment, None)
        except NnctlError as exc:
            raise ValueError(str(exc)) from None
        if result.status != "completed":
            raise RuntimeError(f"training {result.status} after {result.epochs} epochs (loss became NaN or Inf)")
        meta = {
            "config": _dump(config),
            "task": task,
            "feature_names": experiment.feature_names,
            "class_names": class_names,
            "target_names": ["y"],
        }
        ex = experiment
        self.checkpoint_ = Checkpoint.capture(
            ex.network, ex.normalizer, ex.target_normalizer, meta, table=ex.table
        ).copy()
        self.n_epochs_ = result.epochs
        self.loss_ = result.final.get("train_loss")
        self._predictor = _predictor(self.checkpoint_)
        return self

    @staticmethod
    def _table(X, names, source):
        from nnctl.data.tabular import RawTable, TableParams, select_columns

        params = source if isinstance(source, TableParams) else TableParams()
        # X is often given without the columns a config drops (the target's twin): nothing to drop then.
        params = params.model_copy(update={"drop": [c for c in params.drop if c in names]})
        keep = select_columns(names, [], params, "X") if params.declares_table() else names
        columns = {n: X[:, names.index(n)] for n in keep}
        table = RawTable.from_columns(columns, "X")
        return RawTable(table.names, table.cells, "X", None, dict(params.columns))

    # --- predicting ---

    def _outputs(self, X) -> np.ndarray:
        from nnctl.errors import NnctlError

        check_is_fitted(self, "checkpoint_")
        if self._as_table:
            X = validate_data(self, X, reset=False, dtype=None, ensure_all_finite=False)
        else:
            X = validate_data(self, X, reset=False, dtype=np.float64)
        predictor = self._predictor
        try:
            if self._as_table:
                names = [str(n) for n in getattr(self, "feature_names_in_", [f"x{j}" for j in range(X.shape[1])])]
                raw = predictor.from_columns({n: X[:, j] for j, n in enumerate(names)}, "X")
            else:
                raw = predictor.from_array(X, "X")
            return predictor, predictor.outputs(raw, "X")
        except NnctlError as exc:
            raise ValueError(str(exc)) from None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_predictor", None)  # the engine's objects stay out of a pickle: rebuilt from checkpoint_
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "checkpoint_" in state:
            self._predictor = _predictor(self.checkpoint_)


class NNClassifier(ClassifierMixin, _NNEstimator):
    """An nnctl network as a scikit-learn classifier: predict gives the labels of y, predict_proba (N, K)
    in the order of classes_."""

    _task = "classification"

    def fit(self, X, y, sample_weight=None) -> NNClassifier:
        return self._fit(X, y, sample_weight)

    def predict(self, X) -> np.ndarray:
        predictor, out = self._outputs(X)
        return self.classes_[predictor.loss.predict(out)]

    def predict_proba(self, X) -> np.ndarray:
        predictor, out = self._outputs(X)
        return predictor.probabilities(out).astype(np.float64)


class NNRegressor(RegressorMixin, _NNEstimator):
    """An nnctl network as a scikit-learn regressor: y of shape (N,) or (N, T)."""

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # several regression targets: one output unit each
        return tags

    def fit(self, X, y, sample_weight=None) -> NNRegressor:
        return self._fit(X, y, sample_weight)

    def predict(self, X) -> np.ndarray:
        predictor, out = self._outputs(X)
        values = predictor.labels(out)
        return values[:, 0] if self._y_1d else values


def _is_table(X) -> bool:
    """A DataFrame with a non-numeric column, or an array holding text (or blanks) that is not all numbers:
    typed and encoded as a table. Other objects (a dict in a cell) fail in the numeric path, as they should."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None:
        return any(getattr(d, "kind", "O") not in "biuf" for d in dtypes)
    X = np.asarray(X)
    if X.dtype.kind in "US":
        return True
    if X.dtype.kind != "O":
        return False
    try:
        X.astype(np.float64)
    except ValueError:
        return True  # text such as 'male'
    except TypeError:
        return False
    return any(v is None for v in X.reshape(-1))


def _dump(config) -> dict:
    from nnctl.config import dump_config

    return dump_config(config)


def _predictor(ckpt):
    """A Predictor from an in-memory Checkpoint, as Predictor.load does from a run directory."""
    from nnctl import registry
    from nnctl.build import build_network
    from nnctl.config import config_from_dict
    from nnctl.data.tabular import TablePreprocessor
    from nnctl.data.transforms import Normalizer
    from nnctl.predict import Predictor

    config = config_from_dict(ckpt.meta["config"])
    normalizer = Normalizer.from_state(config.data.normalize.method, ckpt.norm)
    table = TablePreprocessor.from_state(ckpt.table) if ckpt.table else None
    width = len(table.feature_names) if table is not None else len(ckpt.meta["feature_names"])
    network = build_network(config, (width,), np.dtype(config.dtype), table)
    ckpt.apply(network)
    return Predictor(
        config=config,
        task=ckpt.meta["task"],
        feature_names=list(ckpt.meta["feature_names"]),
        class_names=ckpt.meta["class_names"],
        target_names=ckpt.meta["target_names"],
        input_shape=(width,),
        network=network,
        loss=registry.LOSSES.create(config.loss),
        normalizer=normalizer,
        target_normalizer=Normalizer.from_state(config.data.target_normalize, ckpt.target_norm),
        playground=False,
        table=table,
    )
