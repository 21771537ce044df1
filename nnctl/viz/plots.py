"""`nnctl plot`: PNG pictures of one run, drawn with matplotlib's Agg backend (no display needed).

Kinds (file RUN_DIR/plots/<kind>.png):
  curves         train/val loss, every validation metric and the learning rate against epoch
  playground     2-D inputs: the network's output over the input plane with the decision boundary and
                 the training (white edge) and test (black edge) points, and beside it every input
                 feature's and hidden neuron's own map over the same plane, as the TensorFlow Playground draws
  fit            1-D regression: the fitted curve over the data (and the noise-free function), the
                 overfitting picture
  confusion      classification: the confusion matrix on the test split
  misclassified  image classification: a grid of misclassified test images, true and predicted labels
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnctl.errors import NnctlError

KINDS = ("curves", "playground", "fit", "confusion", "misclassified")
DPI = 100
# Figure sizes in pixels (width, height); every PNG of a kind has exactly this size.
SIZES = {
    "curves": (1000, 800),
    "playground": (1300, 650),
    "fit": (900, 600),
    "confusion": (800, 700),
    "misclassified": (1000, 1100),
    "compare": (1200, 500),
    "sweep": (1200, 450),
}
MISSING_MATPLOTLIB = (
    'plots need matplotlib, which is not installed. Install the optional extra: pip install -e ".[plot]" '
    "in a checkout of nnctl, or pip install 'nnctl[plot]' (or pip install matplotlib)."
)
# The TensorFlow Playground's colours: orange for -1 (class 0), near-white for 0, blue for +1 (class 1).
PLAYGROUND_COLORS = ("#f59322", "#e8eaeb", "#0877bd")
PLAYGROUND_DOMAIN = (-6.0, 6.0)  # the Playground draws x1, x2 in [-6, 6]
MAX_NEURONS = 8  # per column of neuron maps, as the Playground's widest layer
SAMPLE_GRID = 100  # points per axis of the output surface


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear NnctlError naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NnctlError(MISSING_MATPLOTLIB) from None
    return plt


def figure(kind: str):
    plt = pyplot()
    width, height = SIZES[kind]
    return plt, plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)


def save(fig, path: Path) -> Path:
    """Write a PNG atomically (a reader never sees half a file) and close the figure."""
    import io

    from nnctl.runs.files import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    pyplot().close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())
    return path


def playground_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("playground", PLAYGROUND_COLORS)


# --- reading a run -------------------------------------------------------------------------------


def read_rows(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv as floats (empty cells dropped)."""
    from nnctl.runs.rundir import read_metrics

    rows = []
    for row in read_metrics(Path(run_dir)):
        rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


@dataclass
class Run:
    """A run directory and, opened on demand, its experiment with the checkpoint's weights."""

    path: Path
    checkpoint: str = "best"
    allow_plugins: bool = False
    rows: list[dict[str, float]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    _experiment: object = None

    @classmethod
    def open(cls, path: str | Path, checkpoint: str = "best", allow_plugins: bool = False) -> Run:
        from nnctl.runs.lock import as_seen_now
        from nnctl.runs.rundir import RunDir

        run = RunDir.open(path)
        summary = as_seen_now(run.read_summary(), run.path)  # a killed session's 'running' reads as failed
        return cls(run.path, checkpoint, allow_plugins, read_rows(run.path), summary)

    @property
    def experiment(self):
        if self._experiment is None:
            from nnctl.runs.reopen import open_run

            self._experiment = open_run(self.path, self.checkpoint, self.allow_plugins).experiment()
        return self._experiment

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.path.parent.name)


def _playground_source(experiment) -> bool:
    source = experiment.config.data.source
    from nnctl.data.playground import GENERATORS

    return source.type in GENERATORS and hasattr(source, "features")


def applicable(run: Run) -> dict[str, str | None]:
    """{kind: None if it can be drawn for this run, else why not}."""
    out: dict[str, str | None] = {"curves": None if run.rows else "needs epochs in metrics.csv; there are none yet"}
    try:
        exp = run.experiment
    except NnctlError as exc:  # no checkpoint yet, a plugin not allowed ...: the curves can still be drawn
        return out | {kind: f"needs the trained network, which cannot be loaded ({exc})" for kind in KINDS[1:]}
    shape = exp.splits["train"].x.shape[1:]
    two_d = _playground_source(exp) or shape == (2,)
    out["playground"] = None if two_d else f"needs 2-D inputs (a playground data set); the inputs have shape {shape}"
    if exp.task == "regression" and shape == (1,):
        out["fit"] = None
    else:
        out["fit"] = f"needs 1-D regression data; this is {exp.task} with inputs of shape {shape}"
    out["confusion"] = None if exp.task == "classification" else "needs a classification task"
    if exp.task != "classification":
        out["misclassified"] = "needs an image classification task"
    elif len(shape) != 3:
        out["misclassified"] = f"needs images (C, H, W); the inputs have shape {shape}"
    else:
        out["misclassified"] = None
    return out


def write_plots(
    run_dir: str | Path,
    kinds: list[str] | None = None,
    out_dir: str | Path | None = None,
    checkpoint: str = "best",
    allow_plugins: bool = False,
) -> list[Path]:
    """Draw the requested kinds (default: every kind that fits the run) into out_dir (default RUN_DIR/plots)."""
    pyplot()  # fail early, before the run is opened, when matplotlib is missing
    for kind in kinds or []:
        if kind not in KINDS:
            from nnctl.registry import suggest

            raise NnctlError(f"unknown plot kind '{kind}'.{suggest(kind, list(KINDS))} Kinds: {', '.join(KINDS)}.")
    run = Run.open(run_dir, checkpoint, allow_plugins)
    possible = applicable(run)
    if kinds:
        for kind in kinds:
            if possible[kind]:
                raise NnctlError(f"plot kind '{kind}' does not fit {run.path}: it {possible[kind]}.")
    chosen = list(dict.fromkeys(kinds)) if kinds else [k for k in KINDS if possible[k] is None]
    from nnctl.runs.rundir import RunDir

    return [DRAW[kind](run, RunDir(run.path).plot_path(kind, out_dir)) for kind in chosen]


# --- learning curves -----------------------------------------------------------------------------


def _log_scale_helps(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 20


def draw_curves(run: Run, path: Path) -> Path:
    rows = run.rows
    if not rows:
        raise NnctlError(f"{run.path} has no epochs to plot yet (metrics.csv is empty).")
    plt, fig = figure("curves")
    epochs = [r["epoch"] for r in rows]
    metrics = [k for k in rows[-1] if k.startswith("val_") and k != "val_loss"]
    bottom = [*metrics, "lr"]
    grid = fig.add_gridspec(2, len(bottom), height_ratios=[3, 2])
    ax = fig.add_subplot(grid[0, :])
    for key, style in (("train_loss", "-"), ("val_loss", "-"), ("train_penalty", ":")):
        if any(key in r for r in rows):
            ax.plot([r["epoch"] for r in rows if key in r], [r[key] for r in rows if key in r], style, label=key)
    values = [r[k] for r in rows for k in ("train_loss", "val_loss") if k in r]
    if _log_scale_helps(values):
        ax.set_yscale("log")
    best = (run.summary.get("best") or {}).get("epoch")
    if best:
        ax.axvline(best, color="gray", linestyle="--", linewidth=1, label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    status = run.summary.get("status", "")
    ax.set_title(f"{run.name}: learning curves ({status}, {len(rows)} epochs)")
    from matplotlib.ticker import MaxNLocator

    for i, key in enumerate(bottom):
        sub = fig.add_subplot(grid[1, i])
        values = [r.get(key, math.nan) for r in rows]
        sub.plot(epochs, values, color="C2" if key == "lr" else "C1")
        sub.set_xlabel("epoch")
        sub.set_title("learning rate" if key == "lr" else key)
        sub.grid(True, alpha=0.3)
        finite = [v for v in values if math.isfinite(v)]
        if key == "lr" and finite and min(finite) == max(finite):
            sub.set_ylim(0, 2 * finite[0] or 1)  # a constant rate: a flat line in the middle, not offset ticks
        elif key == "lr" and _log_scale_helps(values):
            sub.set_yscale("log")
    for axis in fig.axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return save(fig, path)


# --- the Playground picture ----------------------------------------------------------------------


def playground_points(experiment) -> dict[str, np.ndarray]:
    """The raw 2-D points of each split: a Playground source's points (the features the network sees may
    not include x1 and x2 themselves), otherwise the two input columns before normalization."""
    return {name: np.asarray(experiment.raw_inputs(name), dtype=np.float64) for name in experiment.splits}


def _grid_inputs(experiment, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw feature values, normalized network inputs) at every grid point, row-major over (ys, xs)."""
    gx, gy = np.meshgrid(xs, ys)
    return _plane_inputs(experiment, np.stack([gx.ravel(), gy.ravel()], axis=1))


def _plane_inputs(experiment, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw feature values, normalized network inputs) of 2-D points (N, 2)."""
    if _playground_source(experiment):
        from nnctl.data.features import compute_features

        raw = compute_features(points, list(experiment.config.data.source.features))
    else:
        raw = points
    x = np.ascontiguousarray(experiment.normalizer.transform(raw), dtype=experiment.splits["train"].x.dtype)
    return raw, x


def _stages(network, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The hidden representations: the input of every parameterised layer after the first, (label, (N, units))."""
    layers = network.layers
    out = []
    for i, layer in enumerate(layers[:-1]):
        x = layer.forward(x, training=False)
        if layers[i + 1].params and x.ndim == 2:
            out.append((f"{i}: {layer.describe()}", x))
    return out


def _signed_value(experiment, out: np.ndarray) -> tuple[np.ndarray, str]:
    """The output as one number per point: 2 P(class 1) - 1 in [-1, 1] for two classes (the Playground's
    tanh output), the predicted class for more, the prediction for regression."""
    if experiment.task == "regression":
        return experiment.predictions(out)[:, 0].astype(np.float64), "prediction"
    if experiment.num_classes == 2 and hasattr(experiment.loss, "probabilities"):
        return 2 * experiment.loss.probabilities(out)[:, 1].astype(np.float64) - 1, "output: 2 P(class 1) - 1"
    return experiment.predictions(out).astype(np.float64), "predicted class"


def draw_playground(run: Run, path: Path) -> Path:
    experiment = run.experiment
    points = playground_points(experiment)
    if _playground_source(experiment):
        low, high = PLAYGROUND_DOMAIN
        xlim = ylim = (low, high)
    else:
        every = np.concatenate([p for p in points.values() if len(p)])
        pad = 0.05 * (every.max(axis=0) - every.min(axis=0) + 1e-9)
        xlim = (every[:, 0].min() - pad[0], every[:, 0].max() + pad[0])
        ylim = (every[:, 1].min() - pad[1], every[:, 1].max() + pad[1])
    xs, ys = np.linspace(*xlim, SAMPLE_GRID), np.linspace(*ylim, SAMPLE_GRID)
    raw, x = _grid_inputs(experiment, xs, ys)
    network = experiment.network
    out = network.predict(x)
    value, meaning = _signed_value(experiment, out)
    surface = value.reshape(SAMPLE_GRID, SAMPLE_GRID)

    plt, fig = figure("playground")
    cmap = playground_cmap()
    columns = [("inputs", raw, experiment.feature_names)]
    columns += [(label, h, [f"{j}" for j in range(h.shape[1])]) for label, h in _stages(network, x)]
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 1], left=0.05, right=0.98, top=0.92, bottom=0.07, wspace=0.2)
    ax = fig.add_subplot(outer[0])
    extent = (*xlim, *ylim)
    classify = experiment.task == "classification"
    if classify and experiment.num_classes != 2:
        vmin, vmax, surface_cmap = -0.5, experiment.num_classes - 0.5, "tab10"
    elif classify:
        vmin, vmax, surface_cmap = -1.0, 1.0, cmap
    else:
        targets = np.concatenate([s.y_true.ravel() for s in experiment.splits.values()])
        bound = float(max(np.abs(targets).max(), np.abs(surface).max(), 1e-9))
        vmin, vmax, surface_cmap = -bound, bound, cmap
    image = ax.imshow(surface, origin="lower", extent=extent, cmap=surface_cmap, vmin=vmin, vmax=vmax, aspect="auto", alpha=0.85,
                      interpolation="bilinear")  # fmt: skip
    if classify and experiment.num_classes == 2:
        ax.contour(xs, ys, surface, levels=[0.0], colors="black", linewidths=1.5)
    elif classify:
        ax.contour(xs, ys, surface, levels=np.arange(experiment.num_classes - 1) + 0.5, colors="black", linewidths=1)
    for name, edge, size in (("train", "white", 22), ("test", "black", 22)):
        if len(points.get(name, [])) == 0:
            continue
        labels = experiment.splits[name].y_true
        if classify and experiment.num_classes == 2:
            colors = np.where(labels == 1, 1.0, -1.0)
        else:
            colors = np.asarray(labels, dtype=np.float64).ravel()
        ax.scatter(*points[name].T, c=colors, cmap=surface_cmap, vmin=vmin, vmax=vmax, s=size, edgecolors=edge,
                   linewidths=0.8, label=f"{name} ({len(labels)})")  # fmt: skip
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).set_label(meaning)
    scores = _scores(experiment)
    ax.set_title(f"{run.name}: network output{scores}", fontsize=11)

    right = outer[1].subgridspec(MAX_NEURONS, len(columns), hspace=0.15, wspace=0.1)
    for c, (label, values, names) in enumerate(columns):
        shown = values.shape[1]
        for r in range(min(shown, MAX_NEURONS)):
            sub = fig.add_subplot(right[r, c])
            unit = values[:, r].reshape(SAMPLE_GRID, SAMPLE_GRID)
            bound = float(np.abs(unit).max()) or 1.0
            sub.imshow(unit, origin="lower", extent=extent, cmap=cmap, vmin=-bound, vmax=bound, aspect="equal")
            sub.set_xticks([])
            sub.set_yticks([])
            sub.set_ylabel(names[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0:
                more = f" (+{shown - MAX_NEURONS})" if shown > MAX_NEURONS else ""
                sub.set_title(label + more, fontsize=7)
    return save(fig, path)


def _scores(experiment) -> str:
    split = _eval_split(experiment)
    if split is None:
        return ""
    results = experiment.evaluate(split)
    parts = [f"{split} loss {results.pop('loss'):.4g}"] + [f"{k} {v:.4g}" for k, v in results.items()]
    return " — " + ", ".join(parts[:3])


def _eval_split(experiment) -> str | None:
    for name in ("test", "val", "train"):
        if len(experiment.splits[name]):
            return name
    return None


# --- 1-D regression: the fitted curve ------------------------------------------------------------


def draw_fit(run: Run, path: Path) -> Path:
    experiment = run.experiment
    splits = {name: s for name, s in experiment.splits.items() if len(s)}
    raw = {name: np.asarray(experiment.raw_inputs(name), dtype=np.float64)[:, 0] for name in splits}
    every = np.concatenate(list(raw.values()))
    pad = 0.05 * (every.max() - every.min() + 1e-9)
    grid = np.linspace(every.min() - pad, every.max() + pad, 500)
    x = np.ascontiguousarray(experiment.normalizer.transform(grid[:, None]), dtype=splits["train"].x.dtype)
    fitted = experiment.predictions(experiment.network.predict(x))[:, 0]

    plt, fig = figure("fit")
    ax = fig.add_subplot(1, 1, 1)
    styles = {
        "test": dict(s=10, color="0.6", label="test", zorder=1),
        "val": dict(s=18, facecolors="none", edgecolors="C1", label="val", zorder=2),
        "train": dict(s=36, color="C0", edgecolors="white", label="train", zorder=3),
    }
    for name in ("test", "val", "train"):
        if name in splits:
            ax.scatter(raw[name], splits[name].y_true[:, 0], **styles[name])
    source = experiment.config.data.source
    if source.type == "function":
        from nnctl.data.function import clean_target

        ax.plot(grid, clean_target(source, grid), "--", color="0.3", label=f"true function ({source.target})")
    ax.plot(grid, fitted, color="C3", linewidth=2, label="network", zorder=4)
    ax.set_xlabel(experiment.feature_names[0])
    ax.set_ylabel((experiment.target_names or ["y"])[0])
    ax.grid(True, alpha=0.3)
    ax.legend()
    train_loss = experiment.evaluate("train")["loss"]
    split = "test" if "test" in splits else ("val" if "val" in splits else None)
    other = f", {split} loss {experiment.evaluate(split)['loss']:.4g}" if split else ""
    ax.set_title(f"{run.name}: fitted curve (train loss {train_loss:.4g}{other})")
    fig.tight_layout()
    return save(fig, path)


# --- classification: confusion matrix and misclassified images -----------------------------------


def _predicted(experiment, split: str) -> tuple[np.ndarray, np.ndarray]:
    data = experiment.splits[split]
    return np.asarray(data.y_true), experiment.predictions(experiment.network.predict(data.x))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """counts[i, j] = samples of class i predicted as j."""
    return np.bincount(
        y_true.astype(np.int64) * classes + y_pred.astype(np.int64), minlength=classes * classes
    ).reshape(classes, classes)


def _class_names(experiment) -> list[str]:
    names = experiment.class_names or [str(i) for i in range(experiment.num_classes)]
    return [str(n)[:14] for n in names]


def draw_confusion(run: Run, path: Path) -> Path:
    experiment = run.experiment
    split = _eval_split(experiment)
    y_true, y_pred = _predicted(experiment, split)
    k = experiment.num_classes
    counts = confusion_matrix(y_true, y_pred, k)
    names = _class_names(experiment)
    plt, fig = figure("confusion")
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        top = counts.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if counts[i, j] > top / 2 else "black")  # fmt: skip
    accuracy = float(np.trace(counts)) / max(1, counts.sum())
    ax.set_title(f"{run.name}: confusion matrix ({split}, {len(y_true)} samples, accuracy {accuracy:.3f})")
    fig.tight_layout()
    return save(fig, path)


def draw_misclassified(run: Run, path: Path, limit: int = 25) -> Path:
    experiment = run.experiment
    split = _eval_split(experiment)
    y_true, y_pred = _predicted(experiment, split)
    wrong = np.flatnonzero(y_true != y_pred)[:limit]
    names = _class_names(experiment)
    plt, fig = figure("misclassified")
    side = 5
    fig.suptitle(f"{run.name}: {len(np.flatnonzero(y_true != y_pred))} of {len(y_true)} {split} images misclassified "
                 "(true -> predicted)")  # fmt: skip
    if len(wrong) == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, f"no misclassified {split} images", ha="center", va="center", fontsize=20)
        ax.set_axis_off()
        return save(fig, path)
    images = np.asarray(experiment.raw_inputs(split)[wrong], dtype=np.float64)
    for n, (index, image) in enumerate(zip(wrong, images, strict=True)):
        ax = fig.add_subplot(side, side, n + 1)
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[0] == 3:
            ax.imshow(np.transpose(image, (1, 2, 0)))
        else:
            ax.imshow(image[0], cmap="gray")
        ax.set_title(f"{names[int(y_true[index])]} -> {names[int(y_pred[index])]}", fontsize=9, color="C3")
        ax.set_axis_off()
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return save(fig, path)


DRAW = {
    "curves": draw_curves,
    "playground": draw_playground,
    "fit": draw_fit,
    "confusion": draw_confusion,
    "misclassified": draw_misclassified,
}
