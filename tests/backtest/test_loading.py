"""The backtest command loads its candle files on a second thread while it imports the rest and builds the strategy:
what it reports must not change — the same errors, in the same order, with the file and line."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from botkit.backtest.background import Background
from botkit.backtest.loading import load_series, load_series_in_background
from botkit.cli import main
from botkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "backtests" / "sample" / "BTC_USDT_1m.csv"


def _config(tmp_path: Path, data: Path, *, plugin: str = "strategies/sma_cross.py:SmaCross") -> Path:
    text = (ROOT / "configs" / "sma_cross.toml").read_text()
    text = text.replace('"strategies/sma_cross.py:SmaCross"', f'"{ROOT / plugin.split(":")[0]}:{plugin.split(":")[1]}"')
    text = text.replace("backtests/sample/BTC_USDT_1m.csv", str(data))
    cfg = tmp_path / "bot.toml"
    cfg.write_text(text)
    return cfg


def test_background_returns_the_value_and_raises_the_error_in_the_callers_thread() -> None:
    seen: list[str] = []

    def work(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x * 2

    assert Background("t-ok", work, 21).result() == 42 and seen == ["t-ok"]

    def boom() -> None:
        raise ValueError("line 7: bad price")

    job = Background("t-err", boom)
    job.wait()  # waits without raising
    with pytest.raises(ValueError, match="line 7: bad price"):
        job.result()


def test_loaded_in_the_background_equals_loaded_here(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, SAMPLE), {})
    loading = load_series_in_background(cfg)
    assert loading is not None
    (a,), (b,) = loading.result(), load_series(cfg)
    assert a.market == b.market and len(a) == len(b) > 1000
    assert (a.close == b.close).all() and (a.time_ms == b.time_ms).all()


def test_only_plain_candle_files_are_loaded_ahead(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, SAMPLE), {"backtest": {"fills": "trades"}})
    assert load_series_in_background(cfg) is None


def test_a_bad_line_is_named_by_file_and_line_through_the_background_load(tmp_path: Path, capsys) -> None:
    lines = SAMPLE.read_text().splitlines()[:400]
    lines[250] = lines[250].replace(",", ",x", 1)
    data = tmp_path / "BTC_USDT_1m.csv"
    data.write_text("\n".join(lines) + "\n")
    assert main(["backtest", str(_config(tmp_path, data)), "-q", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{data}:251: open 'x" in err, err
    assert not (tmp_path / "out").exists()


def test_a_bad_plugin_is_still_reported_before_bad_data(tmp_path: Path, capsys) -> None:
    data = tmp_path / "BTC_USDT_1m.csv"
    data.write_text("time_ms,open,high,low,close,volume\n1,2,3\n")
    cfg = _config(tmp_path, data, plugin="strategies/sma_cross.py:NoSuchStrategy")
    assert main(["backtest", str(cfg), "-q", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "NoSuchStrategy" in err and ":2:" not in err, err
