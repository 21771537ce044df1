"""`nnctl report`: one self-contained HTML file per run or sweep; it opens in headless Chromium."""

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from tests.viz.conftest import png_stats

pytest.importorskip("matplotlib")

runner = CliRunner()
EXTERNAL = re.compile(
    r"""(?:src|href|url)\s*[=(]\s*["']?(?!data:|#)[a-z]+:|(?:src|href)\s*=\s*["']?//""", re.IGNORECASE
)


def assert_self_contained(text):
    assert "http://" not in text and "https://" not in text
    assert not EXTERNAL.search(text), EXTERNAL.search(text).group(0)
    assert "<script" not in text and "<link" not in text


def test_run_report_is_self_contained(trained):
    run = trained("spiral")
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    text = (run / "report.html").read_text()
    assert_self_contained(text)
    assert text.count('src="data:image/png;base64,') == 3  # curves, playground, confusion
    for needle in ("Metrics", "Network", "Config", "completed", "accuracy", "dense(8, tanh)"):
        assert needle in text, needle
    assert (run / "plots" / "playground.png").is_file()


def test_report_without_matplotlib_still_writes_the_page(trained, tmp_path, monkeypatch):
    import sys

    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(trained("sine")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "data:image/png" not in text and ".[plot]" in text and "r2" in text


def test_sweep_report_has_leaderboard_and_parameter_plots(tmp_path):
    pytest.importorskip("nnctl.sweep")
    from nnctl.sweep.runner import Runner, prepare_sweep
    from tests.sweep.conftest import BASE

    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "s.yaml").write_text(
        "name: s\nbase: base.yaml\nset: [train.epochs=2]\nobjective: {metric: accuracy, split: val, goal: max}\n"
        "space:\n  optimizer.lr: {values: [0.003, 0.03, 0.3]}\n"
    )
    with ThreadPoolExecutor(1) as pool:  # trials in this process: no worker start-up
        outcome = Runner(prepare_sweep(tmp_path / "s.yaml", tmp_path / "runs"), pool).run()
    result = runner.invoke(app, ["report", str(outcome.path)])
    assert result.exit_code == 0, result.output
    text = (outcome.path / "report.html").read_text()
    assert_self_contained(text)
    assert "Leaderboard" in text and "optimizer.lr" in text and text.count("<tr>") >= 4
    assert text.count('src="data:image/png;base64,') >= 2  # parameters vs objective, the trials' curves
    height, width, spread = png_stats(outcome.path / "plots" / "parameters.png")
    assert spread > 0.05


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium(), reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_opens_in_headless_chromium(trained, tmp_path):
    run = trained("sine")
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1200,1600", (run / "report.html").as_uri()],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    height, width, spread = png_stats(shot)
    assert (width, height) == (1200, 1600)
    assert spread > 0.05, "the screenshot is blank"
