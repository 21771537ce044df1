"""Read a NumPy .npz archive into a Dataset; never unpickles (allow_pickle=False, always)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nnctl.data.csvfile import describe_path
from nnctl.data.dataset import Dataset
from nnctl.data.targets import TaskChoice, encode_target
from nnctl.errors import DataError
from nnctl.npzcheck import npz_problem

SPLITS = ("train", "val", "test")
LAYOUT = (
    "An .npz data file holds arrays x (N, ...) and y (N,) or (N, T), optionally with class_names, "
    "feature_names and index arrays train_idx/val_idx/test_idx; or x_train/y_train (and x_val/y_val, "
    "x_test/y_test) for predefined splits."
)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array in the archive, loaded without pickle; DataError if that is impossible."""
    where_file = describe_path(path)
    problem = npz_problem(path)
    if problem:
        raise DataError(f"cannot read .npz file {where_file}: {problem}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError:  # numpy's answer for a file that is no .npy/.npz, i.e. would be unpickled
        raise DataError(f"{where_file} is not a NumPy .npz archive (loading it would need pickle). {LAYOUT}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(
            f"cannot read .npz file {where_file}: {reason}. Check the path (relative paths are resolved "
            "against the current working directory)."
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{where_file} holds a single array (.npy), not an .npz archive. {LAYOUT}")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError:
                raise DataError(
                    f"array '{key}' in {where_file} holds Python objects (dtype=object), which nnctl does "
                    "not load because that would need pickle. Save it with a numeric or string dtype, e.g. "
                    "np.asarray(values, dtype=np.float64) or dtype=str."
                ) from None
            except (OSError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
                raise DataError(f"cannot read array '{key}' from {where_file}: {exc}.") from None
    return arrays


def load_npz(path: str | Path, task: TaskChoice = "auto") -> Dataset:
    """The Dataset in an .npz file; x is flattened to (N, F)."""
    where_file = describe_path(path)
    arrays = read_npz(path)
    has_parts = [s for s in SPLITS if f"x_{s}" in arrays or f"y_{s}" in arrays]
    if "x" in arrays and has_parts:
        raise DataError(f"{where_file} holds both 'x' and 'x_{has_parts[0]}'; keep one layout. {LAYOUT}")

    if has_parts:
        for s in has_parts:
            for key in (f"x_{s}", f"y_{s}"):
                if key not in arrays:
                    raise DataError(
                        f"{where_file} has arrays for the '{s}' split but no '{key}'; x_{s} and y_{s} come in "
                        f"pairs. {LAYOUT}"
                    )
            _check_features(arrays[f"x_{s}"], f"x_{s}", where_file)
            _check_lengths(arrays[f"x_{s}"], arrays[f"y_{s}"], f"x_{s}", f"y_{s}", where_file)
        shapes = {arrays[f"x_{s}"].shape[1:] for s in has_parts}
        if len(shapes) > 1:
            raise DataError(f"the x_* arrays in {where_file} have different sample shapes {sorted(shapes)}.")
        x = np.concatenate([arrays[f"x_{s}"] for s in has_parts])
        y_raw = np.concatenate([arrays[f"y_{s}"] for s in has_parts])
        sizes = [len(arrays[f"x_{s}"]) for s in has_parts]
        starts = np.cumsum([0, *sizes])
        splits = {s: np.arange(starts[k], starts[k + 1], dtype=np.int64) for k, s in enumerate(has_parts)}
        splits = {s: splits.get(s, np.zeros(0, dtype=np.int64)) for s in SPLITS}

        def where(i: int) -> str:
            k = int(np.searchsorted(starts, i, side="right")) - 1
            return f"y_{has_parts[k]}[{i - starts[k]}] in {where_file}"
    else:
        for key in ("x", "y"):
            if key not in arrays:
                found = ", ".join(arrays) or "no arrays"
                raise DataError(f"{where_file} has no array '{key}' (it holds: {found}). {LAYOUT}")
        x, y_raw = arrays["x"], arrays["y"]
        _check_features(x, "x", where_file)
        _check_lengths(x, y_raw, "x", "y", where_file)
        splits = _index_splits(arrays, len(x), where_file)

        def where(i: int) -> str:
            return f"y[{i}] in {where_file}"

    if len(x) == 0:
        raise DataError(f"{where_file} holds no samples (x has 0 rows); a data file needs at least one per split.")
    x = x.reshape(len(x), -1).astype(np.float64)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise DataError(f"sample {i}, feature {j} of x in {where_file} is {x[i, j]}; features must be finite numbers.")

    class_names = _names(arrays, "class_names", where_file)
    y, task_out, class_names = encode_target(y_raw, task, "y", where, class_names)
    feature_names = _names(arrays, "feature_names", where_file) or [f"f{j}" for j in range(x.shape[1])]
    if len(feature_names) != x.shape[1]:
        raise DataError(
            f"{where_file} has {len(feature_names)} feature_names but x has {x.shape[1]} features per sample."
        )
    width = 1 if y.ndim == 1 else y.shape[1]
    return Dataset(
        x=x,
        y=y,
        task=task_out,  # type: ignore[arg-type]
        feature_names=feature_names,
        class_names=class_names,
        target_names=["y"] if width == 1 else [f"y{j}" for j in range(width)],
        splits=splits,
    )


def _check_features(x: np.ndarray, key: str, where_file: str) -> None:
    if x.ndim == 0:
        raise DataError(f"array '{key}' in {where_file} is a scalar; it must hold one row per sample.")
    if 0 in x.shape[1:]:
        raise DataError(
            f"array '{key}' in {where_file} has shape {x.shape}: each sample holds no values; "
            "every axis after the first (samples) needs a size of at least 1."
        )
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"array '{key}' in {where_file} has dtype {x.dtype}; features must be numeric "
            "(bool, integer or float). Encode text as numbers first."
        )


def _check_lengths(x: np.ndarray, y: np.ndarray, xk: str, yk: str, where_file: str) -> None:
    if y.ndim == 0 or len(y) != len(x):
        n_y = "a scalar" if y.ndim == 0 else f"{len(y)} rows"
        raise DataError(f"in {where_file}, '{xk}' has {len(x)} samples but '{yk}' has {n_y}; they must match.")


def _names(arrays: dict[str, np.ndarray], key: str, where_file: str) -> list[str] | None:
    if key not in arrays:
        return None
    names = arrays[key]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"'{key}' in {where_file} must be a 1-D array of strings, got {names.dtype} {names.shape}.")
    return [str(n) for n in names.tolist()]


def _index_splits(arrays: dict[str, np.ndarray], n: int, where_file: str) -> dict[str, np.ndarray] | None:
    """Predefined splits from train_idx/val_idx/test_idx, checked to be in range and disjoint."""
    present = [s for s in SPLITS if f"{s}_idx" in arrays]
    if not present:
        return None
    splits = {}
    for s in SPLITS:
        idx = arrays.get(f"{s}_idx", np.zeros(0, dtype=np.int64))
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise DataError(f"'{s}_idx' in {where_file} must be a 1-D integer array, got {idx.dtype} {idx.shape}.")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"'{s}_idx' in {where_file} has indices outside 0..{n - 1} (x has {n} samples).")
        splits[s] = idx.astype(np.int64)
    everything = np.concatenate(list(splits.values()))
    if len(np.unique(everything)) != len(everything):
        raise DataError(
            f"the index arrays {', '.join(f'{s}_idx' for s in present)} in {where_file} overlap or repeat "
            "indices; a sample must be in at most one split."
        )
    return splits
