"""From a validated config to a finished backtest: load data, build the strategy, run, write the report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from botkit.auth.grants import Grant
from botkit.backtest.data import CandleSeries, load_candles
from botkit.backtest.engine import Backtest, BacktestResult
from botkit.config import BotConfig
from botkit.plugins import build_strategy


def _ms(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def load_series(cfg: BotConfig) -> list[CandleSeries]:
    """Candles for every market in [data] files, in config order of [markets]."""
    out = []
    for market in cfg.markets:
        path = cfg.data.files.get(market)
        if path is None:
            continue
        out.append(
            load_candles(
                path,
                market,
                fmt=cfg.data.format,
                timeframe=cfg.data.timeframe,
                repair=cfg.data.repair,
                start_ms=_ms(cfg.data.start),
                end_ms=_ms(cfg.data.end),
            )
        )
    return out


@dataclass
class ProgressBar:
    """A progress line on stderr for runs longer than a second: a bar on a terminal, a few lines otherwise."""

    stream: TextIO | None = None  # None: whatever sys.stderr is when the bar draws
    started: float = 0.0
    last_pct: int = -1

    def __call__(self, done: int, total: int) -> None:
        out = self.stream or sys.stderr
        now = time.perf_counter()
        if not self.started:
            self.started = now
            return
        elapsed = now - self.started
        if elapsed < 1.0 and done < total:
            return
        pct = int(done * 100 / max(total, 1))
        rate = done / elapsed if elapsed > 0 else 0.0
        if out.isatty():
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            end = "\n" if done >= total else ""
            out.write(f"\r  [{bar}] {pct:3d}%  {done:,}/{total:,} candles  {rate:,.0f}/s{end}")
            out.flush()
        elif pct // 25 > self.last_pct // 25 or done >= total:
            out.write(f"  {pct:3d}%  {done:,}/{total:,} candles  {rate:,.0f}/s\n")
        self.last_pct = pct


def run_backtest(
    cfg: BotConfig, progress: Callable[[int, int], None] | None = None
) -> BacktestResult:
    strategy = build_strategy(cfg.strategy.plugin, cfg.strategy.params)
    series = load_series(cfg)
    bt = Backtest(
        strategy,
        series,
        cfg.market_rules(),
        dict(cfg.balances),
        grant=Grant.of(cfg.grant.scopes, "config"),
        risk=cfg.risk_limits(),
        fill_model=cfg.fill_model(),
        progress=progress,
        on_error=cfg.strategy.on_error,
    )
    return bt.run()

