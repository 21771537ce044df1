"""What `nnctl train --resume` checks before it continues a run (see also runs/integrity.py).

- A run that already completed (summary.json says so, or last.npz holds its final epoch, e.g. a
  SIGKILL fell between the last checkpoint and the summary) is a no-op success that says so.
- config.yaml must still say what the checkpoint was trained with: a resumed run continues exactly
  the run it was, so an edited config.yaml is refused, naming the keys that differ.
"""

from __future__ import annotations

from nnctl.config import dump_config, validate
from nnctl.errors import ConfigError, NnctlError
from nnctl.runs.integrity import config_differences
from nnctl.train.trainer import TrainResult

ALREADY_COMPLETED = "already_completed"  # TrainResult.stop_reason of a resume that had nothing to do


def already_completed(opened, state: dict, write: bool = True) -> TrainResult | None:
    """A result for a run with nothing left to train (summary.json is brought up to date when `write`:
    under MPI only rank 0 writes), or None."""
    run = opened.run
    summary = run.read_summary()
    epochs = opened.config.train.epochs
    if summary.get("status") != "completed" and state["epoch"] < epochs:
        return None
    if summary.get("status") != "completed" and write:  # killed after its final checkpoint, before its summary
        best = {"monitor": (summary.get("best") or {}).get("monitor"), **(state.get("best") or {})}
        summary.update(status="completed", epochs=state["epoch"], steps=state["step"], best=best)
        run.write_summary(summary)
    best = {k: v for k, v in (summary.get("best") or {}).items() if k != "monitor"}
    return TrainResult(
        "completed",
        run.path,
        int(summary.get("epochs") or state["epoch"]),
        int(summary.get("steps") or state["step"]),
        float(summary.get("seconds") or 0.0),
        dict(summary.get("final") or {}),
        best,
        stop_reason=ALREADY_COMPLETED,
    )


def check_config_unchanged(opened) -> None:
    """Refuse a config.yaml that differs from the config stored in the checkpoint, naming the keys."""
    stored = opened.checkpoint.meta.get("config")
    source = opened.checkpoint.source
    if not isinstance(stored, dict):
        raise NnctlError(f"checkpoint {source} holds no config; the run cannot be resumed.")
    try:
        trained = dump_config(validate(stored, source=f"{source} (its config)"))
    except ConfigError as exc:
        raise NnctlError(f"checkpoint {source}: its stored config is not valid ({exc}).") from None
    differing = config_differences(trained, dump_config(opened.config))
    if differing:
        shown = ", ".join(differing[:10]) + (f" and {len(differing) - 10} more" if len(differing) > 10 else "")
        raise NnctlError(
            f"{opened.run.config_path} differs from the config the run was trained with ({source}) at: {shown}. "
            "A resumed run continues exactly the run it was: restore config.yaml, or train a new run from "
            "the edited file (nnctl train FILE)."
        )
