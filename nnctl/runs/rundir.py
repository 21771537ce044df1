"""A run directory on disk: runs/<name>/<YYYYMMDD-HHMMSS>-<id>/. This class owns every file name in it.

    config.yaml   resolved config          summary.json   status, final and best metrics
    model.txt     the network summary      metrics.csv    one row per epoch
    checkpoints/  last.npz, best.npz, epoch-NNNN.npz (keep_last)
    eval/         <split>-<checkpoint>.json (+ -confusion.csv)   plots/   <kind>.png   report.html

Every file is written atomically (see files.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnctl.errors import NnctlError
from nnctl.runs.files import atomic_write, new_stamped_folder
from nnctl.runs.integrity import check_metrics_rows
from nnctl.yamlio import dump_yaml

if TYPE_CHECKING:  # numpy loads with it: `nnctl runs` reads JSON and needs none
    from nnctl.runs.checkpoint import Checkpoint

CHECKPOINT_NAMES = ("best", "last")


def create_run_dir(runs_dir: str | Path, name: str) -> Path:
    """A new, empty run directory; two runs started in the same second never share one."""
    path = new_stamped_folder(Path(runs_dir) / name)
    (path / RunDir.CHECKPOINTS).mkdir()
    return path


class RunDir:
    """One run directory: its files by name, read and written atomically."""

    CONFIG = "config.yaml"
    MODEL = "model.txt"
    SUMMARY = "summary.json"
    METRICS = "metrics.csv"
    CHECKPOINTS = "checkpoints"
    EVAL = "eval"
    PLOTS = "plots"
    REPORT = "report.html"
    TRIALS = "trials"  # a sweep folder's runs (read by listings and reports)
    EXPORT = "export"  # nnctl export's models
    TENSORBOARD = "tensorboard"  # the tensorboard callback's event files

    def __init__(self, path: Path):
        self.path = Path(path)
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] | None = None

    # --- finding and creating ---

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunDir:
        return cls(create_run_dir(runs_dir, name))

    @classmethod
    def create_at(cls, path: Path) -> RunDir:
        """A run directory at a path chosen by the caller (a sweep trial); it must not exist yet."""
        path = Path(path)
        path.mkdir(parents=True)
        (path / cls.CHECKPOINTS).mkdir()
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory (one with a config.yaml), or a user error saying what it is not."""
        path = Path(path)
        if not path.is_dir():
            raise NnctlError(f"run directory not found: {path}")
        if not cls.is_run(path):
            raise NnctlError(
                f"{path} is not a run directory (no {cls.CONFIG}); give a folder written by `nnctl train`."
            )
        return cls(path)

    @classmethod
    def is_run(cls, path: Path) -> bool:
        return (Path(path) / cls.CONFIG).is_file()

    @classmethod
    def has_epochs(cls, path: Path) -> bool:
        return (Path(path) / cls.METRICS).is_file()

    @classmethod
    def runs_in(cls, folder: Path) -> list[Path]:
        """The run directories under a folder: <name>/<stamp>/ or <stamp>/ (by their summary.json)."""
        folder = Path(folder)
        return sorted({p.parent for p in (*folder.glob(f"*/{cls.SUMMARY}"), *folder.glob(f"*/*/{cls.SUMMARY}"))})

    @classmethod
    def trials_of(cls, sweep_folder: Path) -> list[Path]:
        """A sweep folder's trial runs that have finished at least one epoch."""
        trials = Path(sweep_folder) / cls.TRIALS
        return sorted(p for p in trials.iterdir() if cls.has_epochs(p)) if trials.is_dir() else []

    @classmethod
    def resume(cls, path: Path, upto_epoch: int) -> RunDir:
        """An existing run directory, for resuming: metrics rows after `upto_epoch` (written after the
        checkpoint a resumed run starts from, e.g. before a SIGKILL) are dropped."""
        run = cls(path)
        rows = [r for r in run.read_metrics() if int(r["epoch"]) <= upto_epoch]
        if rows:
            run._columns = list(rows[0])
            run._rows = rows
            run.write_text(cls.METRICS, run._csv(rows, header=True))
        elif (run.path / cls.METRICS).exists():
            (run.path / cls.METRICS).unlink()
        return run

    # --- plain files ---

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode("utf-8"))

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    def write_config(self, config: dict) -> None:
        self.write_text(
            self.CONFIG,
            "# resolved config: defaults filled in; `nnctl train` on it reproduces the run\n" + dump_yaml(config),
        )

    def read_config_text(self) -> str:
        return self.config_path.read_text()

    def write_model(self, summary: str) -> None:
        self.write_text(self.MODEL, summary + "\n")

    def read_model(self) -> str | None:
        path = self.path / self.MODEL
        return path.read_text() if path.is_file() else None

    def read_summary(self) -> dict:
        try:
            summary = json.loads((self.path / self.SUMMARY).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise NnctlError(f"{self.path / self.SUMMARY} is unreadable: {exc}") from None
        if not isinstance(summary, dict):
            raise NnctlError(f"{self.path / self.SUMMARY} is not a JSON object.")
        return summary

    def write_summary(self, summary: dict) -> None:
        self.write_text(self.SUMMARY, json.dumps(summary, indent=2, allow_nan=True) + "\n")

    def mark_failed(self, error: str, only_if_running: bool = False) -> None:
        """Record a crash in summary.json, so a half-done directory never looks like a finished run."""
        try:
            summary = self.read_summary() or {"status": "running"}
            if only_if_running and summary.get("status") not in ("running", None):
                return
            summary.update(status="failed", error=error)
            self.write_summary(summary)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass

    # --- metrics.csv ---

    def read_metrics(self) -> list[dict[str, str]]:
        """The rows of metrics.csv; a damaged file is a user error naming it and the line."""
        path = self.path / self.METRICS
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                return check_metrics_rows(list(csv.DictReader(fh)), str(path))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise NnctlError(f"{path} is unreadable: {exc}") from None

    def start_metrics(self) -> None:
        """Write metrics.csv with the columns every run has, when it does not exist yet; the first
        row rewrites it with its full header (val_<metric> ... included)."""
        if not (self.path / self.METRICS).exists():
            self.write_text(self.METRICS, "epoch,step,lr,train_loss,seconds\n")

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add an epoch row: appended as one line (cheap for long runs); the file is rewritten
        atomically only when the set of columns changes, i.e. for the first row."""
        self._rows.append(row)
        if self._columns is None or any(c not in self._columns for c in row):
            columns: list[str] = []
            for r in self._rows:
                columns += [c for c in r if c not in columns]
            self._columns = columns
            self.write_text(self.METRICS, self._csv(self._rows, header=True))
            return
        with open(self.path / self.METRICS, "a", encoding="utf-8") as fh:
            fh.write(self._csv([row], header=False))

    def _csv(self, rows: list[dict[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        for r in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
        return buf.getvalue()

    # --- checkpoints ---

    def checkpoint_path(self, name: str | int) -> Path:
        """checkpoints/last.npz, best.npz, or epoch-NNNN.npz for an epoch number."""
        stem = f"epoch-{name:04d}" if isinstance(name, int) else name
        return self.path / self.CHECKPOINTS / f"{stem}.npz"

    def find_checkpoint(self, which: str) -> Path:
        """The file of checkpoint `which` (best or last). `best` falls back to last.npz: a run without a
        validation split and a run stopped before its first evaluation have no best."""
        if which not in CHECKPOINT_NAMES:
            raise NnctlError(f"--checkpoint must be best or last, got '{which}'.")
        path = self.checkpoint_path(which)
        if not path.exists() and which == "best":
            path = self.checkpoint_path("last")
        if not path.exists():
            raise NnctlError(
                f"{self.path} has no checkpoint '{which}' (looked for {path}); did the run finish an epoch?"
            )
        return path

    def default_checkpoint(self) -> tuple[str, str | None]:
        """(best or last, a note to show): best when the run monitors a validation value; otherwise last,
        since 'best' would mean the lowest training loss. An unreadable run gives best (loading it says why)."""
        try:
            summary = self.read_summary()
            # a finished run says it under "best"; a running or killed one only at the top level
            monitor = (summary.get("best") or {}).get("monitor") or summary["monitor"]
        except (NnctlError, KeyError, TypeError, AttributeError):
            return "best", None
        if str(monitor).startswith("val_"):
            return "best", None
        return "last", (
            f"using the last checkpoint: the run monitors {monitor}, not a validation value, so 'best' would "
            "mean the lowest training loss; pass --checkpoint best for that."
        )

    def default_eval_split(self) -> tuple[str, str | None]:
        """(test or val, a note to show): val when the config's test split is empty and val is not."""
        import yaml

        try:
            split = yaml.safe_load(self.read_config_text())["data"]["split"]
            empty_test, has_val = float(split["test"]) == 0, float(split["val"]) > 0
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            return "test", None  # not a readable run: loading it reports what is wrong
        if empty_test and has_val:
            return "val", "the run has no test split (data.split.test is 0): scoring its validation split."
        return "test", None

    def has_checkpoint(self, name: str | int) -> bool:
        return self.checkpoint_path(name).exists()

    def load_checkpoint(self, which: str) -> Checkpoint:
        from nnctl.runs.checkpoint import Checkpoint

        return Checkpoint.load(self.find_checkpoint(which))

    def save_checkpoint(self, name: str | int, checkpoint: Checkpoint) -> None:
        checkpoint.save(self.checkpoint_path(name))

    def prune_epoch_checkpoints(self, keep: int) -> None:
        """Keep the `keep` most recent epoch-NNNN.npz files."""
        for old in sorted((self.path / self.CHECKPOINTS).glob("epoch-*.npz"))[:-keep]:
            old.unlink()

    # --- outputs of eval, plot and report ---

    def eval_path(self, split: str, checkpoint: str, suffix: str = ".json") -> Path:
        folder = self.path / self.EVAL
        folder.mkdir(exist_ok=True)
        return folder / f"{split}-{checkpoint}{suffix}"

    def export_path(self, checkpoint: str, suffix: str = ".onnx") -> Path:
        folder = self.path / self.EXPORT
        folder.mkdir(exist_ok=True)
        return folder / f"model-{checkpoint}{suffix}"

    def plot_path(self, kind: str, folder: Path | None = None) -> Path:
        folder = Path(folder) if folder else self.path / self.PLOTS
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{kind}.png"

    @property
    def plots_dir(self) -> Path:
        return self.path / self.PLOTS

    @property
    def report_path(self) -> Path:
        return self.path / self.REPORT


def read_summary(path: Path) -> dict:
    return RunDir(path).read_summary()


def read_metrics(path: Path) -> list[dict[str, str]]:
    return RunDir(path).read_metrics()
