"""From a validated config to a finished backtest: load data, build the strategy, run, write the report."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from botkit.auth.grants import Grant
from botkit.backtest.checks import data_warnings
from botkit.backtest.data import CandleSeries, DataError, load_candles
from botkit.backtest.engine import Backtest, BacktestError, BacktestResult
from botkit.config import BotConfig
from botkit.plugins import build_strategy

_log = logging.getLogger("botkit.backtest")


def _ms(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def load_series(cfg: BotConfig) -> list[CandleSeries]:
    """Candles for every market in [data] files, in config order of [markets].

    A bad [data] option (timeframe "5x", fill_gaps with allow_gaps) is a DataError naming the key, like bad data.
    """
    out = []
    for market in cfg.markets:
        path = cfg.data.files.get(market)
        if path is None:
            continue
        try:
            series = load_candles(
                path,
                market,
                fmt=cfg.data.format,
                timeframe=cfg.data.timeframe,
                repair=cfg.data.repair,
                start_ms=_ms(cfg.data.start),
                end_ms=_ms(cfg.data.end),
            )
        except DataError:
            raise
        except ValueError as exc:  # the options, not the file: load_candles checks them before reading
            key = "timeframe" if "timeframe" in str(exc) else "repair" if "repair" in str(exc) else "format"
            where = " (or the --repair flags)" if key == "repair" else ""
            raise DataError(f"[data] {key}", None, str(exc), f"Fix [data] {key} in the config{where}.") from None
        out.append(series)
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


def series_warnings(cfg: BotConfig, series: list[CandleSeries]) -> list[str]:
    """Data that loaded but does not fit the run (windows, timeframes, price steps): sentences for the user."""
    return data_warnings(series, cfg.market_rules())


def run_backtest(
    cfg: BotConfig,
    progress: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Load, check, run. Each data warning goes to `on_warning` before the first candle (default: the log)."""
    if not cfg.balances:
        raise BacktestError("[balances] is empty: a backtest needs starting balances, e.g. [balances] USDT = \"10000\"")
    strategy = build_strategy(cfg.strategy.plugin, cfg.strategy.params)
    series = load_series(cfg)
    warnings = series_warnings(cfg, series)
    for text in warnings:
        (on_warning or _log.warning)(text)
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
    result = bt.run()
    result.warnings = warnings
    return result

