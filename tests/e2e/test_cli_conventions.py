"""Conventions users of click/typer and git-style CLIs expect: -h, python -m, --version, completion, help text."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner()
COMMANDS = sorted(c.name for c in app.registered_commands if c.name) + [
    c.callback.__name__ for c in app.registered_commands if not c.name
]


def help_text(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_dash_h_is_help(command):
    args = [command] if command else []
    long = help_text(*args, "--help")
    assert help_text(*args, "-h") == long
    assert "Usage:" in long and "-h" in long


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_type_labels_after_flags_or_lists(command):
    text = help_text(command, "--help")
    assert not re.search(r"<bool>|<list\[", text), text


def test_set_and_arguments_read_cleanly():
    text = help_text("train", "--help")
    assert re.search(r"--set\s+-s\s+KEY=VALUE", text) and "[CONFIG]" in text
    assert "{RUN_DIR}" in help_text("eval", "--help")


def test_python_dash_m_nnctl():
    version = subprocess.run([sys.executable, "-m", "nnctl", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"nnctl \d+\.\d+\.\d+\S*\n", version.stdout)
    usage = subprocess.run([sys.executable, "-m", "nnctl", "-h"], capture_output=True, text=True)
    assert usage.returncode == 0 and "python -m nnctl" in usage.stdout


def test_shell_completion_is_available():
    assert "--install-completion" in help_text("--help")
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="nnctl")
    assert script.exit_code == 0 and "complete -o default -F _nnctl_completion nnctl" in script.output


def test_completion_answers_the_shell():
    nnctl = Path(sys.executable).with_name("nnctl")  # the console script next to this interpreter
    if not nnctl.exists():
        pytest.skip("no nnctl console script next to the interpreter")
    env = {**os.environ, "_NNCTL_COMPLETE": "complete_bash", "COMP_WORDS": "nnctl tr", "COMP_CWORD": "1"}
    proc = subprocess.run([str(nnctl)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split() == ["train"], proc.stdout + proc.stderr


HEAVY = ("matplotlib", "optuna", "dask", "distributed", "PIL", "torch", "scipy", "pandas")


def imported_by(args: list[str], cwd: Path) -> set[str]:
    """Top-level modules a real process imports to run `nnctl ARGS`."""
    code = (
        "import sys\nfrom nnctl.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def test_plain_commands_import_nothing_heavy(tmp_path):
    from tests.conftest import CONFIGS

    args = ["train", str(CONFIGS / "iris.yaml"), "--runs-dir", str(tmp_path / "runs"), "--set", "train.epochs=1"]
    trained = runner.invoke(app, [*args, "--quiet", "--json"])
    run = json.loads(trained.stdout)["run_dir"]
    (tmp_path / "x.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    commands = [
        ["validate", str(CONFIGS / "iris.yaml")],
        ["list", "layers"],
        ["eval", run],
        ["predict", run, "x.csv"],
        ["runs", "runs"],
    ]
    for args in commands:
        heavy = imported_by(args, tmp_path) & set(HEAVY)
        assert not heavy, f"nnctl {' '.join(args)} imported {heavy}"
    for args in (["init"], ["runs", "runs"]):  # copying files, reading summary.json: no engine needed
        assert "numpy" not in imported_by(args, tmp_path), args
