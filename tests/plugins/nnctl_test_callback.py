"""A user callback registered from a config's `plugins:` list (what a user's own callback looks like).

`stop_at` stops training once the monitored column has reached a target for `patience` epochs in a
row; the count is its state, saved in every checkpoint, so an interrupted run resumes exactly.
"""

from pydantic import Field

from nnctl.registry import CALLBACKS, Params
from nnctl.train.callbacks import Callback


@CALLBACKS.register("stop_at")
class StopAt(Callback):
    """Stop once `column` has reached `target` (<= for losses, >= otherwise) for `patience` epochs in a row."""

    class Params(Params):
        column: str = Field("val_accuracy", description="A column of metrics.csv.")
        target: float = Field(..., description="The value to reach.")
        patience: int = Field(1, ge=1, description="Epochs in a row at the target before stopping.")

    # No __init__: the fields above arrive validated as self.column, self.target, self.patience.
    def setup(self):
        self.streak = 0  # state derived at construction (saved by state_dict for exact resume)

    def on_epoch_end(self, loop, row):
        value = row[self.column]
        reached = value <= self.target if self.column.endswith("loss") else value >= self.target
        self.streak = self.streak + 1 if reached else 0
        return "target_reached" if self.streak >= self.patience else None

    def state_dict(self):
        return {"streak": self.streak}

    def load_state_dict(self, state):
        self.streak = int(state.get("streak", 0))
