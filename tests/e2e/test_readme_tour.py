"""The README's "A first tour", command by command, in order, as on a fresh clone (issue 13).

`runs/NAME/<stamp>` stands for the newest run of NAME made so far; a command that names a run
before the tour has made one fails, as it would for a reader. Every command runs as written (the
whole tour takes a few seconds); plot and report are left out only where matplotlib is missing.
"""

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from nnctl.cli import app
from tests.conftest import ROOT

STAMP = re.compile(r"runs/([\w.-]+)/<stamp>")
NEEDS_MATPLOTLIB = ("plot", "report")


def tour_commands() -> list[str]:
    """Every `nnctl ...` line of the first bash block under '## A first tour', in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A first tour", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands and all(c.startswith("nnctl ") for c in commands), commands
    return commands


def test_readme_tour_in_order(tmp_path, monkeypatch):
    try:
        import matplotlib  # noqa: F401

        skip = ()
    except ImportError:
        skip = NEEDS_MATPLOTLIB
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the checkout's example configs, as on a clone
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = []
    for line in tour_commands():
        args = shlex.split(line, comments=True)[1:]
        output = None
        if ">" in args:
            at = args.index(">")
            args, output = args[:at], args[at + 1]
        if args[0] in skip:
            continue

        def newest(match: re.Match, line: str = line) -> str:
            runs = sorted((tmp_path / "runs" / match.group(1)).glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
            assert runs, f"README tour: `{line}` names a {match.group(1)} run before the tour has made one"
            return str(runs[-1].parent.relative_to(tmp_path))

        args = [STAMP.sub(newest, a) for a in args]
        result = runner.invoke(app, args, env={"NO_COLOR": "1"})
        assert result.exit_code == 0, f"README tour: `{line}` exited {result.exit_code}:\n{result.output}"
        if output:
            Path(output).write_text(result.stdout)
        ran.append(args[0])
    assert {"train", "eval", "init", "predict", "validate", "playground"} <= set(ran)
    assert (tmp_path / "predictions.csv").read_text().startswith("prediction")
    assert (tmp_path / "mine" / "iris.yaml").is_file() and (tmp_path / "nnctl.schema.json").stat().st_size > 1000
