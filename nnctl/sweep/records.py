"""Trial records as tables: the best one, the leaderboard order, trials.csv and leaderboard.csv rows.

Plain functions of the records, shared by the runner (which writes them), the live view and plots."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from nnctl.sweep.spec import SweepSpec


def best_record(records: list[dict], goal: str) -> dict | None:
    done = [r for r in records if r["status"] == "completed" and _finite(r.get("objective"))]
    if not done:
        return None
    pick = max if goal == "max" else min
    return pick(done, key=lambda r: r["objective"])


def leaderboard(records: list[dict], goal: str) -> list[dict]:
    """Completed trials best first, then pruned, then the rest (failed, interrupted)."""
    sign = -1 if goal == "max" else 1
    rank = {"completed": 0, "pruned": 1}

    def key(r: dict):
        value = r.get("objective")
        return (rank.get(r["status"], 2), sign * value if _finite(value) else math.inf, r["trial"])

    return sorted(records, key=key)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def table_columns(spec: SweepSpec, records: list[dict]) -> list[str]:
    metrics: list[str] = []
    for split in ("val", "test", "train"):
        for r in records:
            for name in (r.get("metrics") or {}).get(split, {}):
                if f"{split}_{name}" not in metrics:
                    metrics.append(f"{split}_{name}")
    return ["trial", "status", *spec.space, "objective", *metrics, "epochs", "seconds", "seed", "run_dir", "error"]


def table_row(record: dict) -> dict[str, Any]:
    row = {
        "trial": record["trial"],
        "status": record["status"],
        "objective": record.get("objective"),
        "epochs": record.get("epochs"),
        "seconds": record.get("seconds"),
        "seed": record.get("seed"),
        "run_dir": record.get("run_dir"),
        "error": (record.get("error") or "").splitlines()[0] if record.get("error") else "",
    }
    for key, value in (record.get("labels") or {}).items():
        row[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    for split, values in (record.get("metrics") or {}).items():
        for name, value in values.items():
            row[f"{split}_{name}"] = value
    return row


def table_csv(spec: SweepSpec, records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=table_columns(spec, records), restval="", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in table_row(record).items()})
    return buf.getvalue()
