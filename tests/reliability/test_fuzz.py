"""Property-based fuzzing (slow): configs generated from the JSON Schema (`nnctl schema`) with junk spliced
in, raw-YAML mutations of the shipped configs (aliases, bombs, recursion, nesting, huge numbers, tags,
encodings), mutated data files and mutated checkpoints. Every case must end in exit 0 or 2, with no
traceback, no run directory after a refusal, and within a time bound (issue 12, "What it must show").

    pytest -m slow tests/reliability/test_fuzz.py            # NNCTL_FUZZ_EXAMPLES=N for a longer run
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.reliability.harness import cli, record  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("NNCTL_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run (CI); raise NNCTL_FUZZ_EXAMPLES to explore further
    suppress_health_check=list(HealthCheck),
)
SHIPPED = sorted(p for p in (ROOT / "configs").glob("*.yaml"))


def check(category: str, outcome, seconds: float, limit: float = 5.0) -> None:
    ok = record(category, outcome, (0, 2))
    assert ok, outcome.describe()
    assert seconds < limit, f"took {seconds:.1f} s"


# --- configs from the JSON Schema ----------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "..", "../x", "/etc/passwd", "nan", "1e999", "-0", "\x00", "dense", "relu", "${HOME}"]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["type", "units", "x", "lr"]), st.integers(-2, 5), max_size=2),
)


def _schema():
    from nnctl.config import experiment_model

    return experiment_model().model_json_schema()


def from_schema(node: dict, defs: dict, depth: int = 0) -> st.SearchStrategy:
    """A strategy for values the schema describes (numbers kept small so data and networks stay tiny)."""
    if "$ref" in node:
        return from_schema(defs[node["$ref"].split("/")[-1]], defs, depth)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return st.one_of([from_schema(sub, defs, depth) for sub in node[key]])
    kind = node.get("type")
    if kind == "object" and depth < 6:
        props = node.get("properties", {})
        required = {k: from_schema(v, defs, depth + 1) for k, v in props.items() if k in node.get("required", [])}
        optional = {k: from_schema(v, defs, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        if "prefixItems" in node:
            return st.tuples(*[from_schema(s, defs, depth + 1) for s in node["prefixItems"]]).map(list)
        low = node.get("minItems", 0)
        items = from_schema(node.get("items", {}), defs, depth + 1) if depth < 6 else st.nothing()
        return st.lists(items, min_size=low, max_size=max(low, min(node.get("maxItems", 3), 3)))
    if kind == "integer":
        low = node.get("minimum", node.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in node else 0)
        high = node.get("maximum", node.get("exclusiveMaximum", 10**9) - 1 if "exclusiveMaximum" in node else 10**9)
        return st.integers(int(low), int(max(low, min(high, low + 12))))
    if kind == "number":
        low = node.get("minimum", node.get("exclusiveMinimum", -2.0))
        high = node.get("maximum", node.get("exclusiveMaximum", low + 3.0))
        return st.floats(
            float(low),
            float(max(low, min(high, low + 3.0))),
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(lambda s: len(s) < 20)
        return st.sampled_from(["x", "val_loss", "train_loss", "val_accuracy", "data.csv", "relu", ""])
    return JUNK


@st.composite
def schema_configs(draw):
    schema = _schema()
    config = draw(from_schema(schema, schema["$defs"]))
    # Splice junk into a few places: a value of the wrong kind, an unknown key, a deleted required key.
    for _ in range(draw(st.integers(0, 3))):
        node, path = config, []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node))))
            path.append(key)
            parent, node = node, node[key]
        if path:
            action = draw(st.sampled_from(["junk", "delete", "unknown"]))
            if action == "junk":
                parent[path[-1]] = draw(JUNK)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(["unts", "typ", "lr_", "x"]))] = draw(JUNK)
    config.setdefault("train", {}) if isinstance(config.get("train"), dict) else None
    return config


@FUZZ
@given(config=schema_configs())
def test_configs_from_the_schema(tmp_path_factory, config):
    folder = tmp_path_factory.mktemp("schema")
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    outcome = cli("validate", path, runs_root=folder)
    check("fuzz: configs from the JSON Schema", outcome, time.perf_counter() - started)


TRAINABLE = [
    "xor.yaml",
    "iris.yaml",
    "plane.yaml",
    "signals_conv1d.yaml",
    "gru_order.yaml",
]  # one epoch in well under a second
SECTIONS = ["optimizer", "schedule", "train", "regularizers", "metrics", "output", "callbacks", "dtype", "seed"]


@st.composite
def trainable_configs(draw):
    """A shipped config whose optimizer, schedule, train, metrics ... sections come from the schema: most
    of these train, so the loop, callbacks and checkpoints see generated settings."""
    schema = _schema()
    config = yaml.safe_load((ROOT / "configs" / draw(st.sampled_from(TRAINABLE))).read_text())
    for key in draw(st.lists(st.sampled_from(SECTIONS), min_size=1, max_size=4, unique=True)):
        config[key] = draw(from_schema(schema["properties"][key], schema["$defs"]))
    return config


@FUZZ
@given(config=trainable_configs())
def test_generated_settings_train_or_are_refused(tmp_path_factory, config):
    """`train` (one epoch, capped data) with schema-generated sections: exit 0, 2 or 3 (diverged), nothing
    left behind on a refusal."""
    if isinstance(config.get("train"), dict):
        config["train"]["epochs"] = 1
        config["train"].pop("max_seconds", None)
    if isinstance(config.get("data"), dict) and isinstance(config["data"].get("source"), dict):
        config["data"]["source"].pop("samples", None)
    folder = tmp_path_factory.mktemp("train")
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    outcome = cli("train", path, "--runs-dir", folder / "runs", "--quiet", runs_root=folder / "runs")
    ok = record("fuzz: generated settings, trained", outcome, (0, 2, 3), rejected=outcome.code == 2)
    assert ok, outcome.describe()
    assert time.perf_counter() - started < 60  # generous: a generated batch_size: 1 is slow, not wrong


# --- raw YAML mutations --------------------------------------------------------------------------

LAUGHS = "lol0: &l0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
    f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)
)
SNIPPETS = [
    LAUGHS,
    "x: &x [1, *x]\n",
    "x: &x {a: *x}\n",
    "x: " + "[" * 300 + "]" * 300 + "\n",
    "x: " + "{a: " * 120 + "1" + "}" * 120 + "\n",
    "x: " + "9" * 5000 + "\n",
    "x: 1e99999\n",
    "x: -.inf\n",
    "x: !!python/object/apply:os.system ['echo pwned']\n",
    "x: !!python/name:os.system\n",
    "x: !!binary aGVsbG8=\n",
    "x: !!set {a, b}\n",
    "x: !!omap [{a: 1}]\n",
    "x: !!timestamp 2020-13-45\n",
    "x: !custom 3\n",
    "x: !!float nan\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "<<: {seed: 3}\n",
    "<<: [*undefined]\n",
    "x: *undefined\n",
    "x: &a 1\ny: &a 2\n",
    "x: 'unterminated\n",
    "x:\n\t- tab\n",
    "x: \x00\n",
    "x: \ud7ff\U0001f600\u202e\n",
    "%YAML 1.2\n---\n",
    "--- !!map\n",
    "---\n---\n",
    "...\n",
    "x: {a: 1, a: 2}\n",
    "x: [" + ", ".join(["1"] * 5000) + "]\n",
]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1", "bytes"]


@st.composite
def mutated_yaml(draw):
    text = draw(st.sampled_from(SHIPPED)).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["snippet", "snippet", "delete", "duplicate", "char", "indent", "anchor"]))
        at = draw(st.integers(0, len(lines)))
        if what == "snippet":
            lines.insert(at, draw(st.sampled_from(SNIPPETS)))
        elif what == "delete" and lines:
            del lines[min(at, len(lines) - 1)]
        elif what == "duplicate" and lines:
            lines.insert(at, lines[min(at, len(lines) - 1)])
        elif what == "char" and lines:
            i = min(at, len(lines) - 1)
            pos = draw(st.integers(0, max(0, len(lines[i]) - 1)))
            lines[i] = (
                lines[i][:pos]
                + draw(
                    st.sampled_from(
                        [
                            ":",
                            "-",
                            "[",
                            "]",
                            "{",
                            "}",
                            "&a ",
                            "*a",
                            "!",
                            "#",
                            "'",
                            '"',
                            "|",
                            ">",
                            "%",
                            "@",
                            "`",
                            "\t",
                            " ",
                        ]
                    )
                )
                + lines[i][pos + 1 :]
            )
        elif what == "indent" and lines:
            i = min(at, len(lines) - 1)
            lines[i] = draw(st.sampled_from(["", " ", "   ", "\t"])) + lines[i].lstrip()
        elif what == "anchor" and lines:  # anchor a section and alias it elsewhere
            i = min(at, len(lines) - 1)
            m = re.match(r"^(\w+):(.*)$", lines[i].rstrip("\n"))
            if m:
                lines[i] = f"{m.group(1)}: &sec{m.group(2)}\n"
                lines.append(f"again_{m.group(1)}: *sec\n")
    text = "".join(lines)
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding == "bytes":
        data = bytearray(text.encode("utf-8", "surrogatepass"))
        for _ in range(draw(st.integers(1, 5))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return text.encode(encoding, "replace") if encoding != "utf-8" else text.encode("utf-8", "surrogatepass")


@FUZZ
@given(data=mutated_yaml())
def test_raw_yaml_mutations(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("yaml")
    path = folder / "exp.yaml"
    path.write_bytes(data)
    started = time.perf_counter()
    outcome = cli("validate", path, runs_root=folder)
    check("fuzz: raw YAML mutations", outcome, time.perf_counter() - started, limit=3.0)


# --- data files and checkpoints, byte-mutated ----------------------------------------------------


def _mutate(data: bytes, draw) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "zero" and data:
            data[i : i + draw(st.integers(1, 64))] = b"\0" * len(data[i : i + 64])
    return bytes(data)


CSV = "a,b,label\n" + "".join(f"{i % 7 * 0.5},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(40))


def _npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(40, 2)), y=np.arange(40) % 2)
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_mutated_data_files(tmp_path_factory, data):
    kind = data.draw(st.sampled_from(["csv", "npz", "csv.gz", "sequence_npz", "image_npz"]))
    folder = tmp_path_factory.mktemp("data")
    if kind == "csv.gz":
        import gzip

        original = gzip.compress(CSV.encode())
    else:
        original = CSV.encode() if kind == "csv" else _npz_bytes()
    path = folder / f"d.{'npz' if 'npz' in kind else kind}"
    path.write_bytes(_mutate(original, data.draw))
    source = {
        "csv": f"{{type: csv, path: '{path}', target: label}}",
        "csv.gz": f"{{type: csv, path: '{path}', target: label}}",
        "npz": f"{{type: npz, path: '{path}'}}",
        "sequence_npz": f"{{type: sequence_npz, path: '{path}', shape: [2, 1]}}",
        "image_npz": f"{{type: image_npz, path: '{path}', layout: nl}}",
    }[kind]
    layers = "[{type: flatten}, {type: dense, units: 2}]" if kind != "csv" else "[{type: dense, units: 2}]"
    (folder / "exp.yaml").write_text(
        f"name: f\ndata: {{source: {source}}}\nmodel: {{layers: {layers}}}\nloss: cross_entropy\ntrain: {{epochs: 1}}\n"
    )
    started = time.perf_counter()
    outcome = cli("train", folder / "exp.yaml", "--runs-dir", folder / "runs", "--quiet", runs_root=folder / "runs")
    ok = record("fuzz: mutated data files", outcome, (0, 2), rejected=outcome.code == 2)
    assert ok, outcome.describe()
    assert time.perf_counter() - started < 10


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from nnctl.session import run_training

    folder = tmp_path_factory.mktemp("run")
    (folder / "c.yaml").write_text(
        "name: r\ndata: {source: {type: circle, samples: 100}, normalize: standard}\n"
        "model: {layers: [{type: dense, units: 4, activation: tanh}, {type: dense, units: 2}]}\n"
        "loss: cross_entropy\ntrain: {epochs: 3}\n"
    )
    return Path(run_training(folder / "c.yaml", runs_dir=folder / "runs").run_dir)


@FUZZ
@given(data=st.data())
def test_mutated_checkpoints_and_run_files(tmp_path_factory, finished_run, data):
    run = tmp_path_factory.mktemp("tampered") / "run"
    shutil.copytree(finished_run, run)
    target = data.draw(
        st.sampled_from(["checkpoints/best.npz", "checkpoints/last.npz", "config.yaml", "summary.json", "metrics.csv"])
    )
    (run / target).write_bytes(_mutate((run / target).read_bytes(), data.draw))
    command = data.draw(
        st.sampled_from(
            [
                ["eval", run],
                ["eval", run, "--checkpoint", "last"],
                ["train", "--resume", run, "--quiet"],
                ["runs", run.parent],
            ]
        )
    )
    started = time.perf_counter()
    outcome = cli(*command)
    ok = record("fuzz: mutated run directories", outcome, (0, 2), rejected=False)
    assert ok, outcome.describe()
    assert time.perf_counter() - started < 10
