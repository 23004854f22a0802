"""The seeded generator: byte-identical output, the committed sample matches it, and the data gives strategies work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from botkit.backtest.data import load_candles
from botkit.backtest.sample import (
    SAMPLE_DAYS,
    SAMPLE_MARKETS,
    SAMPLE_START_MS,
    generate_candles,
    write_candles_csv,
    write_sample,
)

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "backtests" / "sample"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_sample(tmp_path_factory.mktemp("sample"), seed=7)


def test_committed_sample_is_what_the_generator_makes(fresh: list[Path]) -> None:
    names = sorted(p.name for p in fresh)
    assert names == sorted([*(m.file_name for m in SAMPLE_MARKETS.values()), "README.md"])
    for p in fresh:
        committed = SAMPLE / p.name
        assert committed.read_bytes() == p.read_bytes(), f"{committed} differs from a fresh `botkit data sample`"


def test_same_seed_same_bytes_other_seed_other_data(fresh: list[Path], tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again", seed=7)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in fresh]
    other = write_sample(tmp_path / "other", seed=8)
    assert other[0].read_bytes() != fresh[0].read_bytes()
    assert "--seed 8" in other[-1].read_text()


def test_sample_is_small_labelled_and_well_formed(fresh: list[Path]) -> None:
    readme = (SAMPLE / "README.md").read_text()
    assert "SYNTHETIC" in readme and "synthetic" in readme
    for name, spec in SAMPLE_MARKETS.items():
        path = SAMPLE / spec.file_name
        assert path.stat().st_size < 1_500_000
        text = path.read_text()
        assert text.startswith("time_ms,open,high,low,close,volume\n")
        first = text.split("\n")[1].split(",")
        assert all(re.fullmatch(rf"\d+\.\d{{{spec.rules.money_prec}}}", x) for x in first[1:5]), first
        assert re.fullmatch(rf"\d+\.\d{{{spec.rules.stock_prec}}}", first[5]), first
        s = load_candles(path, name)  # validates OHLC consistency, order, gaps, alignment
        assert len(s) == SAMPLE_DAYS * 1440 and int(s.time_ms[0]) == SAMPLE_START_MS
        assert bool((s.volume > 0).all())
        assert s.repairs == ()


def test_generator_is_deterministic_and_market_specific() -> None:
    a = generate_candles("BTC_USDT", start_ms=SAMPLE_START_MS, count=3000, seed=1)
    b = generate_candles("BTC_USDT", start_ms=SAMPLE_START_MS, count=3000, seed=1)
    c = generate_candles("ETH_USDT", start_ms=SAMPLE_START_MS, count=3000, seed=1)
    assert np.array_equal(a.close, b.close) and np.array_equal(a.volume, b.volume)
    assert not np.array_equal(a.close, c.close)
    assert a.source == "synthetic(seed=1)"
    assert a.open[0] == 30_000.0 and np.array_equal(a.open[1:], a.close[:-1])
    assert np.array_equal(np.round(a.close, 2), a.close)
    assert bool((a.high >= np.maximum(a.open, a.close)).all()) and bool((a.low <= np.minimum(a.open, a.close)).all())


def test_generator_other_timeframe_and_precision(tmp_path: Path) -> None:
    s = generate_candles(
        "XRP_ETH", start_ms=SAMPLE_START_MS, count=500, timeframe_ms=300_000, start_price=0.0015, price_decimals=8
    )
    assert bool((np.diff(s.time_ms) == 300_000).all()) and bool((s.low > 0).all())
    p = tmp_path / "x.csv"
    write_candles_csv(s, p, 8, 2)
    back = load_candles(p, "XRP_ETH")
    assert back.timeframe_ms == 300_000 and np.allclose(back.close, s.close, rtol=0, atol=5e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": 0}, "count"),
        ({"start_ms": SAMPLE_START_MS + 1}, "grid"),
        ({"start_price": -1.0}, "start_price"),
        ({"start_price": 0.001}, "too small"),
        ({"timeframe_ms": 0}, "timeframe_ms"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"start_ms": SAMPLE_START_MS, "count": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_candles("BTC_USDT", **args)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(np.insert(x, 0, 0.0))
    return np.asarray((c[n:] - c[:-n]) / n, dtype=np.float64)


@pytest.mark.parametrize("name", list(SAMPLE_MARKETS))
def test_sample_gives_every_kind_of_strategy_something_to_do(name: str) -> None:
    s = load_candles(SAMPLE / SAMPLE_MARKETS[name].file_name, name)
    close = s.close
    # crossover: a 20/60 moving-average pair crosses many times, and trends run far enough to pay for fees
    fast, slow = sma(close, 20)[40:], sma(close, 60)
    crosses = int((np.diff(np.sign(fast - slow)) != 0).sum())
    assert 40 <= crosses <= 2000, crosses
    six_h = close[360:] / close[:-360] - 1
    assert six_h.max() > 0.02 and six_h.min() < -0.02  # both up and down trends of >2 % in 6 hours
    # mean reversion: closes leave 2-sigma bands of a 60-bar window, but not all the time
    win = np.lib.stride_tricks.sliding_window_view(close, 60)
    z = (close[59:] - win.mean(axis=1)) / win.std(axis=1)
    outside = float((np.abs(z) > 2).mean())
    assert 0.01 < outside < 0.25, outside
    # grid: price crosses 0.5 % grid levels (around the start price) hundreds of times
    level = np.floor(np.log(close / close[0]) / np.log(1.005))
    assert int((np.diff(level) != 0).sum()) > 300
    # regimes: hourly volatility varies by a wide factor (calm spells and bursts)
    r = np.diff(np.log(close))
    hourly = r[: len(r) // 60 * 60].reshape(-1, 60).std(axis=1)
    assert np.percentile(hourly, 95) / np.percentile(hourly, 5) > 3


def test_cli_sample_says_synthetic(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "botkit.backtest.data_cli", "data", "sample", "--out", str(tmp_path), "--seed", "7"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "SYNTHETIC" in out.stdout
    assert (tmp_path / "BTC_USDT_1m.csv").read_bytes() == (SAMPLE / "BTC_USDT_1m.csv").read_bytes()
