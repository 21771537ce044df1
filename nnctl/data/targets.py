"""Turn a raw target column (text or numbers) into class indices or regression values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from nnctl.errors import DataError

TaskChoice = Literal["auto", "classification", "regression"]
TableTask = Literal["auto", "classification", "regression", "multilabel"]  # the csv source's; multilabel: 0/1 columns
Where = Callable[[int], str]  # row index -> "line 12 of data.csv", for messages


def is_number(text: str) -> bool:
    """True if float() accepts the text (as numpy's str -> float conversion does)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode_target(
    raw: np.ndarray,
    task: TaskChoice,
    name: str,
    where: Where,
    class_names: list[str] | None = None,
) -> tuple[np.ndarray, str, list[str] | None]:
    """(y, task, class_names) from a raw target array (N,) or (N, T) of text or numbers.

    Text labels are classes named by their sorted unique values (or by `class_names`, in that
    order). Numbers are classes when task is classification, or when task is auto and all are
    integers; classes are then the sorted unique values (or, with `class_names`, the indices
    0..K-1 themselves). Otherwise numbers are a regression target of shape (N, T).
    """
    if task == "multilabel":
        return _encode_multilabel(raw, name, where), "multilabel", None
    if raw.dtype.kind in "US":
        text = np.char.strip(raw.astype(str))
        blank = np.flatnonzero(text == "")
        if blank.size:
            raise DataError(f"target '{name}' is empty at {where(int(blank[0]))}; every row needs a target value.")
        try:
            values = text.astype(np.float64)
        except ValueError:
            return _encode_text(text, task, name, where, class_names)
    elif raw.dtype.kind in "biuf":
        values = raw.astype(np.float64)
    else:
        raise DataError(f"target '{name}' has dtype {raw.dtype}; use numbers or text labels.")

    bad = np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(axis=1))
    if bad.size:
        raise DataError(
            f"target '{name}' is not a finite number at {where(int(bad[0]))}; remove the row or fill in the value."
        )
    integral = bool(np.all(values == np.round(values)))
    if task == "regression" or (task == "auto" and (not integral or (values.ndim == 2 and values.shape[1] > 1))):
        return values.reshape(len(values), -1), "regression", None

    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(
            f"target '{name}' has shape {values.shape}, but classification needs one class label per row, "
            "shape (N,). For one-hot targets store y.argmax(axis=1)."
        )
    if not integral:
        i = int(np.flatnonzero(values != np.round(values))[0])
        raise DataError(
            f"target '{name}' holds the non-integer value {float(values[i])!r} at {where(i)}, so it cannot be a "
            "class label. For a real-valued target use task: regression or a regression loss (mse, mae)."
        )
    if class_names is not None:
        out_of_range = np.flatnonzero((values < 0) | (values >= len(class_names)))
        if out_of_range.size:
            i = int(out_of_range[0])
            raise DataError(
                f"target '{name}' has label {int(values[i])} at {where(i)}, but there are "
                f"{len(class_names)} class names, so labels must be 0..{len(class_names) - 1}."
            )
        return values.astype(np.int64), "classification", list(class_names)
    classes, y = np.unique(values, return_inverse=True)
    return y.astype(np.int64), "classification", [str(int(c)) for c in classes]


def _encode_text(
    text: np.ndarray, task: TaskChoice, name: str, where: Where, class_names: list[str] | None
) -> tuple[np.ndarray, str, list[str] | None]:
    """Class indices for text labels; fails for regression or a numbers-with-typos column."""
    if text.ndim != 1:
        raise DataError(f"target '{name}' holds text of shape {text.shape}; text labels must be one per row.")
    numeric = np.array([is_number(t) for t in text.tolist()])  # only reached when some value is text
    first_text = int(np.flatnonzero(~numeric)[0])
    if task == "regression":
        raise DataError(
            f"target '{name}' holds the text {str(text[first_text])!r} at {where(first_text)}, "
            "but regression needs numbers. Fix the value, or use task: classification for text labels."
        )
    if task == "auto" and numeric.any():
        first_number = int(np.flatnonzero(numeric)[0])
        raise DataError(
            f"target '{name}' mixes numbers ({str(text[first_number])!r} at {where(first_number)}) and text "
            f"({str(text[first_text])!r} at {where(first_text)}). Fix the values that are typos, or set "
            "task: classification to treat every value as a text label."
        )
    if class_names is None:
        classes, y = np.unique(text, return_inverse=True)
        return y.astype(np.int64), "classification", [str(c) for c in classes]
    unknown = np.flatnonzero(~np.isin(text, class_names))
    if unknown.size:
        i = int(unknown[0])
        raise DataError(
            f"target '{name}' has the label {str(text[i])!r} at {where(i)}, which is not one of the "
            f"classes {', '.join(class_names)}."
        )
    names = np.array(class_names)
    sorter = np.argsort(names)
    y = sorter[np.searchsorted(names, text, sorter=sorter)]  # position of each label in class_names
    return y.astype(np.int64), "classification", list(class_names)


_TRUE = {"1", "1.0", "true", "yes", "t", "y"}
_FALSE = {"0", "0.0", "false", "no", "f", "n"}


def _encode_multilabel(raw: np.ndarray, name: str, where: Where) -> np.ndarray:
    """(N, T) float64 0/1 from T label columns of 0/1 or true/false, yes/no (any case); one column is (N, 1)."""
    text = np.char.lower(np.char.strip(raw.astype(str))).reshape(len(raw), -1)
    ones, zeros = np.isin(text, list(_TRUE)), np.isin(text, list(_FALSE))
    bad = np.argwhere(~(ones | zeros))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        cell = str(raw.reshape(len(raw), -1)[i, j])
        what = "is empty" if not cell.strip() else f"holds {cell!r}"
        raise DataError(
            f"target '{name}' {what} at {where(i)} (label {j + 1}); multilabel targets are 0/1 (or true/false, "
            "yes/no) in every row."
        )
    return ones.astype(np.float64)
