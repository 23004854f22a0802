"""The README's tour must work as written."""

import re
from pathlib import Path

from botkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_tour_strategy_backtests(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "my_first.py").write_text(code)
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    cfg = cfg.replace('plugin = "strategies/sma_cross.py:SmaCross"', f'plugin = "{tmp_path}/my_first.py:BuyTheDip"')
    cfg = re.sub(r"params = \{[^}]*\}", "params = { period = 60 }", cfg, count=1)
    (tmp_path / "my_first.toml").write_text(cfg)
    monkeypatch.chdir(ROOT)
    assert main(["backtest", str(tmp_path / "my_first.toml"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "BuyTheDip" in out
    assert (tmp_path / "out" / "trades.csv").read_text().count("\n") > 1
