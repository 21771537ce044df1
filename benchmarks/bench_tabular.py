"""Tables as users have them: nnctl's 5-fold cv accuracy beside scikit-learn's on the same folds.

For each example config (configs/penguins.yaml, configs/titanic.yaml) `nnctl cv` trains the folds as
shipped; the folds (train + val pooled, cut by nnctl's stratified k-fold; the config's test split
untouched) are then handed to two scikit-learn models given the same raw feature columns:

- HistGradientBoostingClassifier(categorical_features="from_dtype"), text columns as pandas categories
  (it handles the empty cells itself);
- an MLPClassifier pipeline: ColumnTransformer(numbers: SimpleImputer(median) + StandardScaler;
  text/booleans: SimpleImputer(most_frequent) + OneHotEncoder(handle_unknown="ignore")) -> MLP(32).

Accuracy on each held-out fold; mean ± std (numpy's, ddof 0) over the folds, and wall seconds.
Needs scikit-learn and pandas (pip install 'nnctl[sklearn]' pandas).

    python benchmarks/bench_tabular.py [--folds 5] [--json] [--quick]
"""

from __future__ import annotations

# isort: off
import _common  # first: sets the BLAS/OpenMP thread counts before numpy is loaded
from _common import ROOT, emit, machine_info, parser

import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = ("penguins", "titanic")


def fold_rows(config_path: Path, folds: int, fold: int):
    """(train rows, held-out rows, feature columns, target column) of one fold, as `nnctl cv` cut them."""
    from nnctl.build import load_dataset
    from nnctl.config import load_config
    from nnctl.train.crossval import fold_overrides
    from nnctl.data.split import fold_indices, split_indices
    from nnctl.rng import STREAM_SPLIT, rng_for

    config = load_config(config_path, fold_overrides(folds, fold, 0))
    dataset = load_dataset(config)
    s = config.data.split
    idx = split_indices(dataset, {"train": s.train, "val": s.val, "test": s.test}, rng_for(config.seed, STREAM_SPLIT))
    idx = fold_indices(dataset, idx, s, config.seed)
    return idx["train"], idx["val"], dataset.table.names, dataset.target_names[0]


def sklearn_models():
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                make_column_selector(dtype_include="number"),
            ),
            (
                "categories",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    return {
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=0
        ),
        "MLPClassifier pipeline": lambda: make_pipeline(
            columns, MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=0)
        ),
    }


def frame(name: str, features: list[str], for_hgb: bool):
    import pandas as pd

    df = pd.read_csv(Path(ROOT) / "datasets" / f"{name}.csv", keep_default_na=False, na_values=[""])
    x = df[features].copy()
    for c in x.columns:
        if not pd.api.types.is_numeric_dtype(x[c]):
            x[c] = x[c].astype("category" if for_hgb else object)
            if not for_hgb:  # SimpleImputer wants np.nan for the blanks of a text column
                x[c] = x[c].where(x[c].notna(), np.nan)
    return df, x


def run(name: str, folds: int, epochs: int | None) -> dict:
    from nnctl.cv import run_cv

    config = Path(ROOT) / "configs" / f"{name}.yaml"
    overrides = [f"train.epochs={epochs}"] if epochs else []
    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        cv = run_cv(config, overrides, folds=folds, runs_dir=runs)
        nnctl_seconds = time.perf_counter() - t0
    scores = {"nnctl": [f["metrics"]["val_accuracy"] for f in cv.folds]}
    seconds = {"nnctl": nnctl_seconds}
    cuts = [fold_rows(config, folds, k) for k in range(folds)]
    features, target = cuts[0][2], cuts[0][3]
    for label, make in sklearn_models().items():
        df, x = frame(name, features, for_hgb=label.startswith("Hist"))
        y = df[target].astype(str).to_numpy()
        t0 = time.perf_counter()
        scores[label] = []
        for train, held_out, _, _ in cuts:
            model = make().fit(x.iloc[train], y[train])
            scores[label].append(float((model.predict(x.iloc[held_out]) == y[held_out]).mean()))
        seconds[label] = time.perf_counter() - t0
    return {
        "config": f"configs/{name}.yaml",
        "folds": folds,
        "rows": {"pooled": int(sum(len(c[1]) for c in cuts))},
        "accuracy": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "folds": v} for k, v in scores.items()},
        "seconds": seconds,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args()
    epochs = 3 if args.quick else None
    results = [run(name, args.folds, epochs) for name in CONFIGS]
    import sklearn

    lines = [
        f"{args.folds}-fold cv accuracy on the same folds (mean ± std over folds; wall seconds for all folds); "
        f"{_common.THREADS} BLAS thread(s), scikit-learn {sklearn.__version__}",
        "",
        f"| config | {' | '.join(results[0]['accuracy'])} |",
        "| --- |" + " --- |" * len(results[0]["accuracy"]),
    ]
    for r in results:
        cells = [f"{a['mean']:.3f} ± {a['std']:.3f} ({r['seconds'][k]:.1f} s)" for k, a in r["accuracy"].items()]
        lines.append(f"| `{r['config']}` | {' | '.join(cells)} |")
    emit({"results": results, "machine": machine_info(), "quick": args.quick}, args.json, lines)


if __name__ == "__main__":
    main()
