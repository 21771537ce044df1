"""Create and write run directories: runs/<name>/<YYYYMMDD-HHMMSS>-<id>/, every file written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.yamlio import dump_yaml


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def create_run_dir(runs_dir: str | Path, name: str) -> Path:
    """A new, empty run directory; two runs started in the same second never share one."""
    parent = Path(runs_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NnctlError(f"cannot create the runs folder {parent}: {exc.strerror}.") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = parent / f"{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()  # no exist_ok: the directory is ours only if we created it
        except FileExistsError:
            continue
        (path / "checkpoints").mkdir()
        return path
    raise NnctlError(f"could not create a unique run directory under {parent}.")


class RunDir:
    """Writer for one run directory."""

    METRICS_FILE = "metrics.csv"

    def __init__(self, path: Path):
        self.path = Path(path)
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] | None = None

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode("utf-8"))

    def write_config(self, config: dict) -> None:
        self.write_text(
            "config.yaml",
            "# resolved config: defaults filled in; `nnctl train` on it reproduces the run\n" + dump_yaml(config),
        )

    @classmethod
    def reopen(cls, path: Path, upto_epoch: int) -> RunDir:
        """An existing run directory, for resuming: metrics rows after `upto_epoch` (written after the
        checkpoint a resumed run starts from, e.g. before a SIGKILL) are dropped."""
        run = cls(path)
        rows = [r for r in read_metrics(path) if int(r["epoch"]) <= upto_epoch]
        if rows:
            run._columns = list(rows[0])
            run._rows = rows
            run.write_text(cls.METRICS_FILE, run._csv(rows, header=True))
        elif (run.path / cls.METRICS_FILE).exists():
            (run.path / cls.METRICS_FILE).unlink()
        return run

    def read_summary(self) -> dict:
        return read_summary(self.path)

    def write_summary(self, summary: dict) -> None:
        self.write_text("summary.json", json.dumps(summary, indent=2, allow_nan=True) + "\n")

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add an epoch row: appended as one line (cheap for long runs); the file is rewritten
        atomically only when the set of columns changes, i.e. for the first row."""
        self._rows.append(row)
        if self._columns is None or any(c not in self._columns for c in row):
            columns: list[str] = []
            for r in self._rows:
                columns += [c for c in r if c not in columns]
            self._columns = columns
            self.write_text(self.METRICS_FILE, self._csv(self._rows, header=True))
            return
        with open(self.path / self.METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(self._csv([row], header=False))

    def _csv(self, rows: list[dict[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        return buf.getvalue()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return value


def read_summary(path: Path) -> dict:
    try:
        return json.loads((Path(path) / "summary.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise NnctlError(f"{path}/summary.json is unreadable: {exc}") from None


def read_metrics(path: Path) -> list[dict[str, str]]:
    try:
        with open(Path(path) / RunDir.METRICS_FILE, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []
