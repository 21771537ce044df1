"""Tables as users have them: typed columns (numeric, category, binary), missing values, unknown levels.

A `RawTable` is the text of a CSV's feature columns. A `TablePreprocessor` infers the column types
it was not told, and fits imputation values and category levels, on the *training rows only*; it
then encodes any rows (train, val, test, new data at predict time) into a float64 matrix:

    numeric   the number (blank -> the imputed value)
    binary    true/false, yes/no, t/f, y/n, 1/0 -> 1/0
    category  one-hot over the training levels (the `max_levels` most frequent) plus `other`, which
              takes rarer levels and levels never seen in training (counted, with a warning);
              `encoding: embedding`: one column holding the level's id (0..levels-1, `other` last),
              placed after every other feature, for the network's `category_embedding` layer
    ignore    not used
    + `indicator: true`: a 0/1 column `<name>_missing` after the column's own

Its state is arrays only (`schema`: JSON text; `fill`: float64), stored in the checkpoint under
`table/`, so eval, predict and the Python API encode exactly as training did.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from nnctl.config.messages import dotted_path
from nnctl.errors import ConfigError, DataError, keyed
from nnctl.registry import Params, suggest

ColumnType = Literal["numeric", "category", "binary", "ignore"]
Impute = Literal["none", "mean", "median", "most_frequent", "constant"]
TRUE_TEXT = frozenset({"true", "yes", "t", "y", "1", "1.0"})
FALSE_TEXT = frozenset({"false", "no", "f", "n", "0", "0.0"})
OTHER = "other"
COLUMNS = ("data", "source", "columns")  # the config key of the column declarations, for error lines


class UnknownCategoryWarning(UserWarning):
    """Category levels not seen in training were encoded as 'other'."""


class ColumnSpec(Params):
    type: ColumnType | None = Field(
        None,
        description="numeric, category (one-hot or embedding), binary (true/false, yes/no, 1/0) or ignore; inferred if unset.",
    )
    encoding: Literal["onehot", "embedding"] = Field(
        "onehot",
        description="How a category reaches the network: onehot (a 0/1 column per level), or embedding (its level "
        "id, turned into a learned vector of `dim` numbers by a first layer `category_embedding`; for many levels).",
    )
    dim: int | None = Field(
        None,
        ge=1,
        description="encoding: embedding: the length of each level's vector (default min(50, round(1.6 * levels "
        "** 0.56)), fastai's rule).",
    )
    max_levels: int = Field(
        30, ge=1, description="Category: keep the N most frequent training levels; rarer ones are folded into 'other'."
    )
    impute: Impute = Field(
        "none",
        description="Fill blank cells with a statistic of the training rows: mean, median (numbers), most_frequent, "
        "or constant (fill_value); none: a blank cell is an error naming its row.",
    )
    fill_value: float | str | None = Field(
        None, description="The value for impute: constant (default 0 for numbers, 'missing' for categories)."
    )
    indicator: bool = Field(False, description="Add a 0/1 column <name>_missing that marks the blank cells.")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type not in (None, "category") and (self.encoding != "onehot" or self.dim is not None):
            raise ValueError(f"encoding and dim apply to category columns, but the type is {self.type}")
        if self.dim is not None and self.encoding != "embedding":
            raise ValueError("dim is the length of an embedding's vectors; it needs encoding: embedding")
        if self.fill_value is not None and self.impute != "constant":
            raise ValueError(f"fill_value is used only with impute: constant (impute is {self.impute})")
        return self


class TableParams(Params):
    """The fields a table source adds to its own: column types, selection and imputation."""

    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict,
        description="Per column: {type, encoding, max_levels, impute, fill_value, indicator}; unlisted columns are "
        "inferred (`nnctl validate` prints the inferred schema to paste and edit).",
    )
    drop: list[str] = Field(default_factory=list, description="Columns not to use (e.g. one that repeats the target).")
    features: list[str] | None = Field(
        None, description="Use only these columns as features, in this order (default: every column but the target)."
    )
    sample_weight: str | None = Field(
        None, description="A numeric column of per-row training weights (not a feature; metrics stay unweighted)."
    )

    def declares_table(self) -> bool:
        return bool(self.columns or self.drop or self.features is not None or self.sample_weight)


@dataclass(frozen=True, eq=False)
class RawTable:
    """The feature columns of a table as text: cells (N, C), column names, and where each row came from."""

    names: list[str]
    cells: np.ndarray  # (N, C) str
    where_file: str = "input"
    lines: list[int] | None = None  # each row's line in the file, for messages
    specs: dict[str, ColumnSpec] | None = None

    def where(self, i: int, column: str) -> str:
        """ "CSV file 'x.csv': line 4, column 'age'" (or "row 3" for data that has no lines)."""
        return f"{self.where_file}: {self.row(i)}, column '{column}'"

    def row(self, i: int) -> str:
        return f"line {self.lines[i]}" if self.lines else f"row {i}"

    def rows(self, idx: np.ndarray) -> RawTable:
        lines = [self.lines[i] for i in idx] if self.lines else None
        return RawTable(self.names, self.cells[idx], self.where_file, lines, self.specs)

    @classmethod
    def from_columns(cls, columns: dict[str, Sequence], where: str = "input") -> RawTable:
        """Named columns of any values; None and NaN become blank cells."""
        names = list(columns)
        data = [[_text(v) for v in np.asarray(columns[n], dtype=object).reshape(-1)] for n in names]
        cells = np.array(data, dtype=str).T if data else np.zeros((0, 0), dtype=str)
        return cls(names, cells.reshape(len(data[0]) if data else 0, len(names)), where)


def _text(value: object) -> str:
    """A cell as text: None, NaN (any float type) and pandas' NA / NaT are blank."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _parse_numbers(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, NaN where blank, not finite (nan, inf: missing) or not a number; mask of text cells)."""
    values = np.full(len(text), np.nan)
    bad = np.zeros(len(text), dtype=bool)
    for i, cell in enumerate(text.tolist()):
        if cell == "":
            continue
        try:
            value = float(cell)
        except ValueError:
            bad[i] = True
            continue
        if np.isfinite(value):
            values[i] = value
    return values, bad


@dataclass
class Column:
    """One fitted column: what it is and the statistics learned from the training rows."""

    name: str
    type: ColumnType
    impute: Impute = "none"
    indicator: bool = False
    levels: list[str] | None = None  # category: kept levels (an 'other' slot follows)
    rare: list[str] | None = None  # category: training levels folded into 'other' (not "unseen")
    fill: float | str | None = None  # the imputed value (a number, or a level)
    encoding: str = "onehot"  # category: onehot, or embedding (one id column, after every other feature)
    dim: int | None = None  # embedding: the vector length

    @property
    def embedded(self) -> bool:
        return self.type == "category" and self.encoding == "embedding"

    def feature_names(self) -> list[str]:
        """The column's features; an embedded column's id comes after every column's (TablePreprocessor.feature_names)."""
        if self.type == "ignore":
            return []
        if self.embedded:
            own = []
        elif self.type == "category":
            own = [f"{self.name}={lv}" for lv in [*self.levels, OTHER]]
        else:
            own = [self.name]
        return own + ([f"{self.name}_missing"] if self.indicator else [])

    def describe(self) -> dict:
        out: dict = {"type": self.type}
        if self.impute != "none":
            out["impute"] = self.impute
        if self.impute == "constant":
            out["fill_value"] = self.fill
        if self.indicator:
            out["indicator"] = True
        if self.embedded:
            out |= {"encoding": "embedding", "dim": self.dim}
        return out


class TablePreprocessor:
    """Column types, imputation values and category levels fitted on training rows; encodes any rows."""

    def __init__(self, specs: dict[str, ColumnSpec] | None = None):
        self.specs = dict(specs or {})
        self.columns: list[Column] = []
        self.missing: dict[str, int] = {}  # blank cells per column in the fitted rows (for the schema print)
        self.counts: dict[str, int] = {}  # levels per category column before folding

    # --- fitting ---

    def fit(self, table: RawTable) -> TablePreprocessor:
        unknown = [n for n in self.specs if n not in table.names]
        if unknown:
            raise keyed(
                DataError(
                    f"data.source.columns.{unknown[0]}: there is no column '{unknown[0]}' among the features of "
                    f"{table.where_file}.{suggest(unknown[0], table.names)} Feature columns: {', '.join(table.names)}."
                ),
                *COLUMNS,
                unknown[0],
            )
        if len(table.cells) == 0:
            raise DataError(f"cannot fit the column types of {table.where_file} on an empty training split.")
        self.columns = [self._fit_column(table, j, name) for j, name in enumerate(table.names)]
        return self

    def _fit_column(self, table: RawTable, j: int, name: str) -> Column:
        spec = self.specs.get(name) or ColumnSpec()
        text = np.char.strip(table.cells[:, j])
        blank = text == ""
        self.missing[name] = int(blank.sum())
        kind = spec.type or _infer(text[~blank], name, table, np.flatnonzero(~blank))
        column = Column(name, kind, spec.impute, spec.indicator, encoding=spec.encoding)
        if kind != "category" and spec.encoding == "embedding":
            raise keyed(
                ConfigError(
                    f"data.source.columns.{name}.encoding: embedding applies to category columns, but '{name}' is "
                    f"{kind}{'' if spec.type else ' (inferred)'}; declare {{type: category, encoding: embedding}} "
                    "to embed its values as levels."
                ),
                *COLUMNS,
                name,
                "encoding",
            )
        if kind == "ignore":
            return column
        if kind in ("numeric", "binary"):
            try:
                values = self._numbers(column, text, table)
            except DataError as exc:
                if spec.type is None:
                    raise
                raise keyed(
                    DataError(f"data.source.columns.{name}.type: '{name}' is declared {kind}, but {exc}"),
                    *COLUMNS,
                    name,
                    "type",
                ) from None
            if spec.impute in ("mean", "median", "most_frequent") and np.isnan(values).all():
                raise keyed(
                    DataError(f"column '{name}' has no values in the training rows to compute its {spec.impute}."),
                    *COLUMNS,
                    name,
                    "impute",
                )
            if spec.impute == "mean":
                column.fill = float(np.nanmean(values))
            elif spec.impute == "median":
                column.fill = float(np.nanmedian(values))
            elif spec.impute == "most_frequent":
                kept = values[~np.isnan(values)]
                uniq, counts = np.unique(kept, return_counts=True)
                column.fill = float(uniq[np.argmax(counts)])  # ties: the smallest value, as scikit-learn
            elif spec.impute == "constant":
                fill = spec.fill_value if spec.fill_value is not None else 0.0
                if kind == "binary" and str(fill).strip().lower() in TRUE_TEXT | FALSE_TEXT:
                    fill = 1.0 if str(fill).strip().lower() in TRUE_TEXT else 0.0
                try:
                    column.fill = float(fill)
                except ValueError:
                    raise keyed(
                        DataError(
                            f"data.source.columns.{name}.fill_value: {spec.fill_value!r} is not a number, but "
                            f"'{name}' is {kind}."
                        ),
                        *COLUMNS,
                        name,
                        "fill_value",
                    ) from None
            return column
        # category
        if spec.impute in ("mean", "median"):
            raise keyed(
                DataError(
                    f"data.source.columns.{name}.impute: {spec.impute} needs numbers, but '{name}' is a category "
                    "column; use most_frequent or constant."
                ),
                *COLUMNS,
                name,
                "impute",
            )
        present = text[~blank].tolist()
        counts = Counter(present)
        if spec.impute == "most_frequent":
            if not counts:
                raise keyed(
                    DataError(f"column '{name}' has no values in the training rows to find its most frequent one."),
                    *COLUMNS,
                    name,
                    "impute",
                )
            column.fill = min(counts, key=lambda lv: (-counts[lv], lv))
        elif spec.impute == "constant":
            column.fill = str(spec.fill_value) if spec.fill_value is not None else "missing"
        if column.fill is not None and blank.any():
            counts[column.fill] += int(blank.sum())  # an imputed level is a level the network sees in training
        self.counts[name] = len(counts)
        ranked = sorted(counts, key=lambda lv: (-counts[lv], lv))
        column.levels, column.rare = sorted(ranked[: spec.max_levels]), sorted(ranked[spec.max_levels :])
        if column.embedded:
            column.dim = spec.dim or min(50, round(1.6 * (len(column.levels) + 1) ** 0.56))
        return column

    def _numbers(self, column: Column, text: np.ndarray, table: RawTable) -> np.ndarray:
        """Numeric or binary cells as float64, NaN where blank (or NaN/Inf); DataError for text that is neither."""
        if column.type == "binary":
            lower = np.char.lower(text)
            values = np.where(
                np.isin(lower, list(TRUE_TEXT)), 1.0, np.where(np.isin(lower, list(FALSE_TEXT)), 0.0, np.nan)
            )
            bad = np.flatnonzero(np.isnan(values) & (text != ""))
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{table.where(i, column.name)} holds {str(text[i])!r}, which is not a binary value "
                    "(true/false, yes/no, t/f, y/n, 1/0). Declare the column as category if it has other values."
                )
            return values
        values, bad = _parse_numbers(text)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{table.where(i, column.name)} holds {str(text[i])!r}, which is not a number. "
                f"Fix the value, or declare the column `{column.name}: {{type: category}}` under columns."
            )
        return values

    # --- encoding ---

    @property
    def feature_names(self) -> list[str]:
        """Every encoded feature: one-hot, numbers, indicators, then one id column per embedded category."""
        return [f for c in self.columns for f in c.feature_names()] + [f"{c.name}#id" for c in self.embedded]

    @property
    def embedded(self) -> list[Column]:
        """The category columns encoded as ids (the last len(embedded) features), in column order."""
        return [c for c in self.columns if c.embedded]

    def embedding_sizes(self) -> tuple[list[int], list[int]]:
        """(ids per embedded column: its levels + 'other', vector length per column) for `category_embedding`."""
        return [len(c.levels) + 1 for c in self.embedded], [c.dim for c in self.embedded]

    @property
    def input_names(self) -> list[str]:
        """The raw columns encode() reads."""
        return [c.name for c in self.columns if c.type != "ignore"]

    def encode(self, table: RawTable, warn: bool = True) -> np.ndarray:
        """(N, features) float64 from raw rows, with the fitted statistics; DataError names a bad cell's row."""
        index = {n: j for j, n in enumerate(table.names)}
        missing = [n for n in self.input_names if n not in index]
        if missing:
            raise DataError(
                f"{table.where_file} lacks the column(s) {', '.join(missing)} that the run was trained on."
                f"{suggest(missing[0], table.names)} Needed: {', '.join(self.input_names)}."
            )
        parts, ids, unknown = [], [], {}
        for column in self.columns:
            if column.type == "ignore":
                continue
            text = np.char.strip(table.cells[:, index[column.name]]) if len(table.cells) else np.zeros(0, str)
            if column.type == "category":
                blank = text == ""
                text = self._filled(column, text, blank, table)
                levels = np.array(column.levels)
                known = np.isin(text, levels)
                code = np.where(known, np.searchsorted(levels, text), len(levels))  # levels are sorted; other last
                if column.embedded:
                    ids.append(code.astype(np.float64)[:, None])
                else:
                    onehot = np.zeros((len(text), len(levels) + 1))
                    onehot[np.arange(len(text)), code] = 1.0
                    parts.append(onehot)
                unseen = set(text[~known].tolist()) - set(column.rare or [])
                if unseen:
                    unknown[column.name] = (sorted(unseen), int(np.isin(text, list(unseen)).sum()))
            else:
                values = self._numbers(column, text, table)
                blank = np.isnan(values)
                if blank.any():
                    if column.fill is None:
                        self._blank_error(column, text, blank, table)
                    values = np.where(blank, column.fill, values)
                parts.append(values[:, None])
            if column.indicator:
                parts.append(blank.astype(np.float64)[:, None])
        if warn and unknown:
            said = "; ".join(
                f"'{n}': {rows} row(s), level(s) {', '.join(repr(x) for x in v[:5])}{' ...' if len(v) > 5 else ''}"
                for n, (v, rows) in unknown.items()
            )
            warnings.warn(
                f"{table.where_file}: categories not seen in training were encoded as '{OTHER}': {said}.",
                UnknownCategoryWarning,
                stacklevel=2,
            )
        parts += ids  # the id columns last, where category_embedding takes them
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(table.cells), 0))

    def _filled(self, column: Column, text: np.ndarray, blank: np.ndarray, table: RawTable) -> np.ndarray:
        if not blank.any():
            return text
        if column.fill is None:
            self._blank_error(column, text, blank, table)
        return np.where(blank, column.fill, text)

    @staticmethod
    def _blank_error(column: Column, text: np.ndarray, blank: np.ndarray, table: RawTable) -> None:
        i = int(np.flatnonzero(blank)[0])
        what = "is empty" if text[i] == "" else f"holds {str(text[i])!r}, which is not a finite number"
        raise keyed(
            DataError(
                f"{table.where(i, column.name)} {what}. Missing values are an error unless the column says "
                f"how to fill them: columns: {{{column.name}: {{impute: "
                + ("median" if column.type == "numeric" else "most_frequent")
                + "}} (fitted on the training split), or drop the column or the row."
            ),
            *COLUMNS,
            column.name,
        )

    # --- checkpoint state ---

    def state(self) -> dict[str, np.ndarray]:
        """{"schema": JSON text of every column, "fill": float64 imputed numbers (NaN where none)}."""
        schema = [
            {
                "name": c.name,
                "type": c.type,
                "impute": c.impute,
                "indicator": c.indicator,
                "levels": c.levels,
                "rare": c.rare,
            }
            | ({"fill": c.fill} if isinstance(c.fill, str) else {})
            | ({"encoding": c.encoding, "dim": c.dim} if c.embedded else {})
            for c in self.columns
        ]
        fill = np.array([c.fill if isinstance(c.fill, float) else np.nan for c in self.columns], dtype=np.float64)
        return {"schema": np.array(json.dumps(schema)), "fill": fill}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> TablePreprocessor:
        missing = {"schema", "fill"} - set(state)
        if missing:
            raise DataError(f"table state is missing {sorted(missing)}; the checkpoint is incomplete.")
        schema = json.loads(str(state["schema"]))
        fill = np.asarray(state["fill"], dtype=np.float64)
        prep = cls()
        for entry, number in zip(schema, fill, strict=True):
            value = entry.get("fill", None if np.isnan(number) else float(number))
            prep.columns.append(
                Column(
                    entry["name"],
                    entry["type"],
                    entry["impute"],
                    entry["indicator"],
                    entry["levels"],
                    entry["rare"],
                    value,
                    entry.get("encoding", "onehot"),
                    entry.get("dim"),
                )
            )
        return prep

    def input_columns(self) -> dict[str, dict]:
        """Each raw input column: type, imputation, indicator, embedding, and a category's levels (others are
        encoded as other); what a client of `nnctl serve` or an exported model needs to know to send a row."""
        return {
            c.name: c.describe() | ({"levels": c.levels} if c.type == "category" else {})
            for c in self.columns
            if c.type != "ignore"
        }

    # --- what `nnctl validate` prints ---

    def schema_yaml(self) -> str:
        """The fitted schema as a `columns:` block to paste into a config, with levels and missing counts."""
        lines = ["columns:   # fitted on the training split (missing: blank cells there); paste under data.source"]
        for c in self.columns:
            fields = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in c.describe().items())
            note = f"missing {self.missing.get(c.name, 0)}"
            if c.type == "category":
                total = self.counts.get(c.name, len(c.levels or []))
                shown = ", ".join(c.levels[:8]) + (" ..." if len(c.levels) > 8 else "")
                note += f"; {total} levels: {shown}" + (
                    f" (+{total - len(c.levels)} folded into other)" if total > len(c.levels) else ""
                )
            lines.append(f"  {c.name}: {{{fields}}}".ljust(40) + f"  # {note}")
        return "\n".join(lines)


def _infer(text: np.ndarray, name: str, table: RawTable, rows: np.ndarray) -> ColumnType:
    """binary if every value is a boolean word (or 0/1), numeric if every value is a number, category if none is."""
    if len(text) == 0:
        raise keyed(
            DataError(
                f"column '{name}' is empty in every training row, so its type cannot be inferred; drop it "
                f"(drop: [{name}]) or declare columns: {{{name}: {{type: ignore}}}}."
            ),
            *COLUMNS,
            name,
        )
    lower = set(np.char.lower(text).tolist())
    if lower <= TRUE_TEXT | FALSE_TEXT and not (lower <= {"1", "1.0"} or lower <= {"0", "0.0"}):
        return "binary"
    _, bad = _parse_numbers(text)
    if not bad.any():
        return "numeric"
    if bad.all():
        return "category"
    i, k = int(np.flatnonzero(bad)[0]), int(np.flatnonzero(~bad)[0])
    raise keyed(
        DataError(
            f"{table.where(int(rows[i]), name)} holds {str(text[i])!r}, which is not a number, while other "
            f"rows hold numbers ({str(text[k])!r} at {table.row(int(rows[k]))}). Fix the typo, or declare "
            f"columns: {{{name}: {{type: category}}}} (or numeric with impute) to say what the column is."
        ),
        *COLUMNS,
        name,
    )


def select_columns(header: list[str], target: list[str], params: TableParams, where_file: str) -> list[str]:
    """The feature columns: `features` (in that order) or every column but the targets, less `drop`."""
    known = list(header)

    def check(key: str, names: list[str], index: bool = True) -> None:
        for i, n in enumerate(names):
            if n not in known:
                path = ("data", "source", key) + ((i,) if index else (n,) if key == "columns" else ())
                raise keyed(
                    ConfigError(
                        f"{dotted_path(path)}: there is no column '{n}' in {where_file}.{suggest(n, known)} "
                        f"Columns: {', '.join(known)}."
                    ),
                    *path,
                )

    check("drop", params.drop)
    check("features", params.features or [])
    check("columns", list(params.columns), index=False)
    if params.sample_weight is not None:
        check("sample_weight", [params.sample_weight], index=False)
    skip = set(target) | set(params.drop) | ({params.sample_weight} if params.sample_weight else set())
    chosen = [n for n in (params.features if params.features is not None else header) if n not in skip]
    for n in params.columns:
        if n not in chosen:
            why = (
                "the target"
                if n in target
                else "in drop"
                if n in params.drop
                else "the sample_weight"
                if n == params.sample_weight
                else "not listed in features"
            )
            raise keyed(
                ConfigError(
                    f"data.source.columns.{n}: '{n}' is {why}, so it is no feature and its declaration would do "
                    "nothing; declare feature columns only."
                ),
                *COLUMNS,
                n,
            )
    clash = [n for n in (params.features or []) if n in target]
    if clash:
        i = params.features.index(clash[0])
        raise keyed(
            ConfigError(f"data.source.features[{i}]: '{clash[0]}' is the target; it cannot also be a feature."),
            "data",
            "source",
            "features",
            i,
        )
    if not chosen:
        raise keyed(
            ConfigError(f"data.source: no feature columns are left in {where_file} after target, drop and features."),
            "data",
            "source",
        )
    return chosen


def fit_table(dataset, train: np.ndarray, state: dict[str, np.ndarray] | None):
    """(dataset with x encoded, the preprocessor) for a table dataset; (dataset, None) for any other.

    Types, imputation values and levels come from `state` (a checkpoint's) or are fitted on the
    `train` rows only; every row is then encoded with them."""
    from dataclasses import replace

    table = getattr(dataset, "table", None)
    if table is None:
        return dataset, None
    prep = TablePreprocessor.from_state(state) if state else TablePreprocessor(table.specs).fit(table.rows(train))
    x = prep.encode(table)
    return replace(dataset, x=x, feature_names=prep.feature_names, raw=table.cells, table=None), prep
