"""Hostile and careless experiment files: each is refused with exit 2, a message saying what and where,
no traceback, and no run directory; parsing cost stays bounded (issue 12, items 2, 4, 6, 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINIMAL
from tests.reliability.harness import cli, expect

ROOT = Path(__file__).resolve().parents[2]
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
)


def with_(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


# (id, config text, fragments the message must hold)
CASES = [
    ("plugin-path", MINIMAL + 'plugins: ["../x"]\n', ["plugins[0]", "'../x' is not a Python module name", "line 12"]),
    ("plugin-empty", MINIMAL + 'plugins: [""]\n', ["plugins[0]", "is not a Python module name"]),
    ("plugin-string", MINIMAL + "plugins: os\n", ["plugins must be a list", "line 12"]),
    ("plugin-missing", MINIMAL + "plugins: [no_such_module_xyz]\n", ["cannot import module 'no_such_module_xyz'"]),
    ("units-huge", with_("units: 4,", "units: 1000000000000,"), ["model.layers[0]", "units"]),
    ("int-5000-digits", with_("seed: 0", "seed: " + "7" * 5000), ["line 2", "5000 digits"]),
    ("complex-key", MINIMAL + "? [a, b]\n: 1\n", ["line 12", "complex key"]),
    ("lr-inf", with_("lr: 0.01", "lr: .inf"), ["optimizer.lr", "line 10", "finite"]),
    ("lr-nan", with_("lr: 0.01", "lr: .nan"), ["optimizer.lr", "finite"]),
    (
        "x-range-nan",
        with_("{type: xor, samples: 100}", "{type: function, target: sine, x_range: [.nan, 1]}")
        .replace("loss: cross_entropy", "loss: mse")
        .replace("units: 2}", "units: 1}"),
        ["data.source.x_range", "finite"],
    ),
    ("name-dotdot", with_("name: t", "name: '..'"), ["name", "line 1"]),
    ("name-dot", with_("name: t", "name: '.'"), ["name"]),
    ("name-slash", with_("name: t", "name: a/b"), ["name"]),
    ("billion-laughs", MINIMAL + LAUGHS, ["holds more than 20,000 values"]),
    ("recursive-alias", MINIMAL + "x: &x [1, *x]\n", ["recursive alias"]),
    ("recursive-map", MINIMAL + "x: &x {y: *x}\n", ["recursive alias"]),
    ("deep-nesting", MINIMAL + "x: " + "[" * 500 + "]" * 500 + "\n", ["x"]),
    ("deep-block-nesting", MINIMAL + "".join("  " * i + f"k{i}:\n" for i in range(80)), ["nested more than"]),
    ("python-tag", MINIMAL + "x: !!python/object/apply:os.system [echo hi]\n", ["line 12", "not valid YAML"]),
    ("bad-timestamp", MINIMAL + "x: 2020-13-45\n", ["cannot be read"]),
    ("duplicate-key", MINIMAL + "seed: 1\n", ["duplicate key 'seed'", "line 12"]),
    ("bad-merge", MINIMAL + "x: {<<: 3}\n", ["merging"]),
    ("top-level-list", "- 1\n- 2\n", ["top level must be a mapping"]),
    ("top-level-scalar", "hello\n", ["top level must be a mapping"]),
    ("set-value", with_("name: t", "name: !!set {a, b}"), ["name"]),
    ("nul-byte", MINIMAL + "x: 'a\x00b'\n", ["not valid YAML"]),
    ("tab-indent", MINIMAL + "x:\n\t- 1\n", ["not valid YAML"]),
    ("huge-float", with_("lr: 0.01", "lr: 1e400"), ["optimizer.lr", "finite"]),
    ("batch-negative", with_("batch_size: 10", "batch_size: -1"), ["train.batch_size"]),
    ("epochs-bool-list", with_("epochs: 2", "epochs: [true]"), ["train.epochs"]),
    ("monitor-unknown", with_("batch_size: 10}", "batch_size: 10, monitor: val_x}"), ["train.monitor", "val_x"]),
    (
        "early-stop-monitor-unknown",
        with_("batch_size: 10}", "batch_size: 10, early_stopping: {monitor: val_y}}"),
        ["train.early_stopping.monitor", "val_y"],
    ),
    ("callback-loop-owned", MINIMAL + "callbacks: [{type: checkpoint}]\n", ["callbacks[0]", "run by the loop itself"]),
]


@pytest.mark.parametrize("text,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_clear_message(tmp_path, text, fragments):
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    outcome = cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet", runs_root=tmp_path / "runs")
    assert time.perf_counter() - started < 5
    expect("configs: hostile files (list)", outcome, *fragments)


def test_merge_keys_are_supported(tmp_path):
    text = MINIMAL.replace("optimizer: {type: adam, lr: 0.01}", "optimizer: {<<: *opt, lr: 0.02}")
    path = tmp_path / "exp.yaml"
    path.write_text("defaults:\n  opt: &opt {type: adam, lr: 0.01}\n" + text)
    outcome = cli("validate", path)
    # `defaults:` is not a config key: the merge itself worked, and the unknown key is reported by name.
    expect("configs: hostile files (list)", outcome, "unknown key 'defaults'")
    path.write_text(text.replace("{<<: *opt, lr: 0.02}", "{<<: {type: adam, lr: 0.01}, lr: 0.02}"))
    outcome = cli("validate", path)
    expect("configs: hostile files (list)", outcome, "lr: 0.02", codes=(0,))


def test_encodings(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(MINIMAL.encode("utf-16"))
    expect("configs: hostile files (list)", cli("validate", path), "cannot read config file")
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())  # a UTF-8 byte-order mark is fine
    expect("configs: hostile files (list)", cli("validate", path), "config OK", codes=(0,))


def test_a_config_over_a_megabyte_is_refused_quickly(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(MINIMAL + "x:\n" + "  - 1\n" * 300_000)
    started = time.perf_counter()
    expect("configs: hostile files (list)", cli("validate", path), "at most 1,048,576 bytes")
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("metrics:\n" + "  - accuracy\n" * 70_000, "holds more than 20,000 values"),  # ~1 MB of list items
        ("metrics:\n" + "  - {type: nonsense_metric, k: 1}\n" * 3_000, "more problems like these"),  # 3,000 errors
        ("metrics:\n" + "  - accuracy\n" * 6_000, "listed twice"),
        ("dtype: '" + "x" * 1_000_000 + "'\n", "characters)"),  # one huge value, quoted short
    ],
    ids=["70k-items", "3k-errors", "6k-items", "1MB-string"],
)
def test_a_large_config_under_a_megabyte_validates_or_is_refused_within_a_second(tmp_path, body, fragment):
    path = tmp_path / "exp.yaml"
    path.write_text(MINIMAL + body)
    assert path.stat().st_size < 1 << 20
    started = time.perf_counter()
    outcome = cli("validate", path)
    assert time.perf_counter() - started < 1.5  # (1 s on a quiet machine; this one is shared)
    expect("configs: hostile files (list)", outcome, fragment)
    assert len(outcome.output) < 20_000  # a short answer, not one line per problem


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_config_does_not_hang(tmp_path):
    fifo = tmp_path / "exp.yaml"
    os.mkfifo(fifo)
    expect("configs: hostile files (list)", cli("validate", fifo), "not a regular file")


def test_a_folder_as_config(tmp_path):
    expect("configs: hostile files (list)", cli("validate", tmp_path), "is a folder")


SHADOWS = ("gzip", "pickle", "ctypes", "zipfile", "json", "csv", "numpy", "yaml", "pydantic", "typing_extensions")


@pytest.mark.parametrize("plugins", [False, True], ids=["no-plugins", "with-plugin"])
def test_files_beside_a_config_never_shadow_modules(tmp_path, plugins):
    """A downloaded config's folder holds gzip.py, pickle.py ...: `nnctl validate` (a fresh process, so the
    modules are imported for the first time) must run none of them; only a named plugin runs."""
    marker = tmp_path / "ran.txt"
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}\\n')\n")
    text = MINIMAL
    if plugins:
        (tmp_path / "my_plugin.py").write_text(
            f"import gzip, pickle\nopen({str(marker)!r}, 'a').write('my_plugin\\n')\n"
        )
        text += "plugins: [my_plugin]\n"
    (tmp_path / "exp.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "nnctl.cli", "validate", str(tmp_path / "exp.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ran = marker.read_text().split() if marker.exists() else []
    assert ran == (["my_plugin"] if plugins else [])
