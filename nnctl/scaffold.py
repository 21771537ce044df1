"""`nnctl init`: copy a shipped example config (and a small input file for `predict`) into a folder.

The examples are the package's `examples/` folder (the repository's `configs/`): every experiment
`NAME.yaml` and every sweep `sweeps/NAME.yaml`. A sweep is written next to the experiment it
builds on, with its `base:` path rewritten to match.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from nnctl.errors import NnctlError
from nnctl.resources import dataset_catalog, datasets_dir, examples_dir

PLAYGROUND_SOURCES = ("circle", "xor", "gauss", "spiral", "plane", "multi_gauss")
# Points for a Playground example's input file: the centre, the four quadrants, the edges.
PLAYGROUND_POINTS = [(0.0, 0.0), (2.5, 2.5), (-2.5, 2.5), (-2.5, -2.5), (2.5, -2.5), (4.5, 0.0), (0.0, -4.5)]
INPUT_ROWS = 6  # rows of a shipped data set copied (without the target) into the input file
_BASE = re.compile(r"^(base:\s*)(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    kind: str  # "experiment" or "sweep"
    summary: str  # the first comment line of the file
    source: str | None  # the data source type (experiments)
    base: str | None  # the experiment a sweep builds on (file name)


def examples() -> dict[str, Example]:
    """Every shipped example by name, experiments first."""
    root = examples_dir()
    out: dict[str, Example] = {}
    for kind, folder in (("experiment", root), ("sweep", root / "sweeps")):
        for path in sorted(folder.glob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text) or {}
            comment = _first_sentence(text)
            source = (data.get("data") or {}).get("source")
            source = source.get("type") if isinstance(source, dict) else source
            base = Path(data["base"]).name if kind == "sweep" and data.get("base") else None
            out.setdefault(path.stem, Example(path.stem, path, kind, comment, source, base))
    return out


def _first_sentence(text: str, limit: int = 100) -> str:
    """The first sentence of the file's leading comment block (links left out), at most `limit` characters."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words = " ".join(w for w in " ".join(lines).split() if "://" not in w)
    end = re.search(r"\.(\s+[A-Z`(]|$)", words)
    words = words[: end.start() + 1] if end else words
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def example_table():
    """The examples as a rich table (`nnctl init` without a name)."""
    from rich.table import Table

    shipped = dataset_catalog()
    table = Table(title="examples (nnctl init NAME [DIR])")
    for column in ("name", "data", "what it shows"):
        table.add_column(column)
    for ex in examples().values():
        if ex.kind == "sweep":
            data = f"sweep over {ex.base}"
        else:
            data = f"{ex.source} (shipped)" if ex.source in shipped else str(ex.source)
        table.add_row(ex.name, data, ex.summary)
    return table


def init_example(name: str, folder: str | Path = ".", force: bool = False) -> tuple[Example, list[Path]]:
    """Write example NAME (and what it needs) into FOLDER; return it and the files written (config first)."""
    from nnctl.runs.files import atomic_write

    known = examples()
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise NnctlError(f"unknown example '{name}'.{hint} Run `nnctl init` to list them: {', '.join(known)}.")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NnctlError(f"cannot write into {folder}: it is a file, not a folder.")
    ex = known[name]
    files: dict[Path, bytes] = {}
    if ex.kind == "sweep":
        text = ex.path.read_text(encoding="utf-8")
        files[folder / ex.path.name] = _BASE.sub(lambda m: m.group(1) + ex.base, text, count=1).encode("utf-8")
        base = known.get(Path(ex.base).stem)
        if base is not None and not (folder / base.path.name).exists():
            files[folder / base.path.name] = base.path.read_bytes()
    else:
        files[folder / ex.path.name] = ex.path.read_bytes()
        inputs = input_file(ex)
        if inputs is not None:
            files[folder / f"{ex.name}_new.csv"] = inputs.encode("utf-8")
    clash = [str(p) for p in files if p.exists()]
    if clash and not force:
        verb = "exists" if len(clash) == 1 else "exist"
        raise NnctlError(f"{' and '.join(clash)} already {verb}; pass --force to overwrite, or choose another DIR.")
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        atomic_write(path, data)
    return ex, list(files)


def input_file(ex: Example) -> str | None:
    """A small CSV of raw inputs for `nnctl predict`: rows of the shipped data set without its
    target, or a few Playground points (x1, x2). None for other sources (write your own .npz)."""
    catalogue = dataset_catalog()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if ex.source in PLAYGROUND_SOURCES:
        writer.writerow(["x1", "x2"])
        writer.writerows(PLAYGROUND_POINTS)
        return buf.getvalue()
    entry = catalogue.get(ex.source or "")
    if entry is None:
        return None
    path = datasets_dir() / entry["file"]
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            header, *rows = list(csv.reader(fh))
    except OSError as exc:
        raise NnctlError(f"cannot read the shipped data file {path}: {exc}") from None
    keep = [i for i, column in enumerate(header) if column != entry["target"]]
    step = max(1, len(rows) // INPUT_ROWS)
    writer.writerow([header[i] for i in keep])
    writer.writerows([row[i] for i in keep] for row in rows[::step][:INPUT_ROWS])
    return buf.getvalue()
