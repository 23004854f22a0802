"""`python3 dev.py demo` is the README's main job: a sandbox bot whose orders and fills show as they happen, then a
backtest, then where the outputs are. Run here with this environment's botkit (no new venv) and a shorter run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_a_sandbox_bot_then_a_backtest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("botkit_dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    work = tmp_path / "clone"
    for part in ("configs", "strategies", "backtests/sample"):
        (work / part).parent.mkdir(parents=True, exist_ok=True)
        __import__("shutil").copytree(ROOT / part, work / part)
    monkeypatch.setattr(dev, "ROOT", work)
    monkeypatch.setattr(dev, "BIN", Path(sys.executable).parent)
    monkeypatch.setattr(dev, "ensure_venv", lambda extras: None)
    monkeypatch.setattr(dev, "DEMO_RUN_SECONDS", 5)
    dev.demo()
    out = capfd.readouterr().out
    assert "running SmaCross in sandbox mode" in out
    assert "status " in out and "feed lag" in out  # the status line (order lines: tests/run/test_run_core.py)
    assert "run sandbox: SmaCross" in out and "Backtest sma_cross" in out
    assert "out/sandbox_sma/sandbox/" in out and "Try next" in out
    assert (work / "out" / "sandbox_sma" / "sandbox" / "trades.csv").read_text().startswith("time,time_ms,market")
    assert (work / "out" / "sma_cross" / "report.json").is_file()
