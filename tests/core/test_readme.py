"""The README's tour must work as written: its files pass the project's own checks and write to their own folder."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from botkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tour(tmp_path: Path) -> Path:
    """The tour done literally in a copy of the project's layout: strategies/my_first.py, configs/my_first.toml."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    project = tmp_path / "project"
    (project / "strategies").mkdir(parents=True)
    (project / "configs").mkdir()
    shutil.copytree(ROOT / "backtests" / "sample", project / "backtests" / "sample")
    (project / "strategies" / "my_first.py").write_text(code)
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    assert 'plugin = "strategies/sma_cross.py:SmaCross"' in cfg
    cfg = cfg.replace('plugin = "strategies/sma_cross.py:SmaCross"', 'plugin = "strategies/my_first.py:BuyTheDip"')
    cfg = re.sub(r"params = \{[^}]*\}", "params = { period = 60 }", cfg, count=1)
    (project / "configs" / "my_first.toml").write_text(cfg)
    shutil.copy(ROOT / "configs" / "sma_cross.toml", project / "configs" / "sma_cross.toml")
    shutil.copy(ROOT / "strategies" / "sma_cross.py", project / "strategies" / "sma_cross.py")
    return project


def test_tour_files_pass_ruff_and_mypy(tmp_path):
    project = _tour(tmp_path)
    strat = project / "strategies" / "my_first.py"
    ruff = subprocess.run([BIN / "ruff", "check", "--config", ROOT / "pyproject.toml", strat],
                          capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # botkit as the project's own mypy run sees it
    mypy = subprocess.run([BIN / "mypy", "--config-file", ROOT / "pyproject.toml", "--cache-dir", tmp_path / "mc",
                           strat], capture_output=True, text=True, cwd=project, env=env)
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr


def test_tour_backtests_into_its_own_folder_without_rejections(tmp_path, monkeypatch, capsys):
    project = _tour(tmp_path)
    monkeypatch.chdir(project)
    assert main(["backtest", "configs/sma_cross.toml", "-q"]) == 0
    example = (project / "out" / "sma_cross" / "report.json").read_bytes()
    assert main(["backtest", "configs/my_first.toml"]) == 0
    out = capsys.readouterr().out
    assert "BuyTheDip" in out
    report = json.loads((project / "out" / "my_first" / "report.json").read_text())
    assert report["strategy"] == "BuyTheDip" and report["fills"] > 10
    # fee dust after a sell is not a position: the tour never tries to sell less than the market's minimum
    assert report["rejections"] == {}, report["rejections"]
    assert (project / "out" / "sma_cross" / "report.json").read_bytes() == example  # the example's outputs survive


def test_misspelt_param_is_an_error_for_every_strategy(tmp_path, monkeypatch, capsys):
    project = _tour(tmp_path)
    cfg = project / "configs" / "my_first.toml"
    cfg.write_text(cfg.read_text().replace("params = { period = 60 }", "params = { peroid = 60 }"))
    monkeypatch.chdir(project)
    assert main(["backtest", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "'peroid' (did you mean 'period'?)" in err
