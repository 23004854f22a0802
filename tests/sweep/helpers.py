"""A small SYNTHETIC data set and config for sweep tests: 3,000 seeded one-minute candles, the shipped SMA crossover."""

from __future__ import annotations

import textwrap
from pathlib import Path

from botkit.backtest.sample import SAMPLE_MARKETS, SAMPLE_START_MS, generate_candles, write_candles_csv

ROOT = Path(__file__).resolve().parents[2]


def make_config(folder: Path, rows: int = 3000, seed: int = 7, params: str = "fast = 10, slow = 40") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "BTC_USDT_1m.csv"
    if not data.exists():
        rules = SAMPLE_MARKETS["BTC_USDT"].rules
        series = generate_candles("BTC_USDT", start_ms=SAMPLE_START_MS, count=rows, seed=seed)
        write_candles_csv(series, data, rules.money_prec, rules.stock_prec)
    cfg = folder / "sweepme.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [strategy]
        plugin = "{ROOT / 'strategies' / 'sma_cross.py'}:SmaCross"
        params = {{ {params}, fraction = "0.95" }}

        [markets.BTC_USDT]
        stock_prec = 6
        money_prec = 2
        min_amount = "0.00001"
        min_total = "1"

        [balances]
        USDT = "10000"

        [data]
        files = {{ BTC_USDT = "{data}" }}

        [backtest]
        progress = false
        """), encoding="utf-8")
    return cfg
