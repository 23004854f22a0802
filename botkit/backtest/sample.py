"""Seeded SYNTHETIC candles: the sample data a fresh clone backtests on, and big files for benchmarks.

A fresh clone must be able to backtest with nothing downloaded, and the sample must exercise every kind of strategy,
so the price path switches between regimes: trends (crossover strategies trade), mean-reverting ranges
(mean-reversion and grid strategies trade), volatility bursts and calm spells. Returns are fat-tailed (Student t,
4 degrees of freedom), volatility and volume follow a daily cycle, and volume rises with the size of the move.

The data is synthetic and says so: the CLI prints it and backtests/sample/README.md states it. The same seed gives
byte-identical files (a test checks the committed sample against a fresh run), because every random draw comes from
one numpy Generator seeded by (seed, market) and files are written with fixed decimals and '\\n' line ends.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from botkit.backtest.data import CandleSeries, format_timeframe
from botkit.market.rules import MarketRules

F64 = npt.NDArray[np.float64]

# Regime kinds, in the order the generator numbers them.
REGIMES: tuple[str, ...] = ("trend", "range", "burst", "calm")
_REGIME_P = np.array([0.40, 0.35, 0.10, 0.15])
_MINUTE_SIGMA = 0.6 / math.sqrt(365 * 24 * 60)  # ~60 % annualised volatility, a typical large-cap crypto figure
_T_DF = 4.0
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SampleMarket:
    """One market of the committed sample: the exchange rules its data needs and how it is generated."""

    rules: MarketRules
    timeframe_ms: int
    start_price: float

    @property
    def file_name(self) -> str:
        return f"{self.rules.name}_{format_timeframe(self.timeframe_ms)}.csv"


# WhiteBIT-shaped rules for the sample markets (BTC_USDT as docs/whitebit.md §5 shows it; ETH_USDT alike).
SAMPLE_MARKETS: Mapping[str, SampleMarket] = MappingProxyType(
    {
        "BTC_USDT": SampleMarket(
            rules=MarketRules(
                name="BTC_USDT",
                stock="BTC",
                money="USDT",
                stock_prec=6,
                money_prec=2,
                min_amount=Decimal("0.00001"),
                min_total=Decimal("1"),
                max_total=Decimal("10000000000"),
            ),
            timeframe_ms=60_000,
            start_price=30_000.0,
        ),
        "ETH_USDT": SampleMarket(
            rules=MarketRules(
                name="ETH_USDT",
                stock="ETH",
                money="USDT",
                stock_prec=4,
                money_prec=2,
                min_amount=Decimal("0.0001"),
                min_total=Decimal("1"),
                max_total=Decimal("10000000000"),
            ),
            timeframe_ms=60_000,
            start_price=2_000.0,
        ),
    }
)
SAMPLE_START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday
SAMPLE_DAYS = 14


def generate_candles(
    market: str,
    *,
    start_ms: int,
    count: int,
    timeframe_ms: int = 60_000,
    seed: int = 7,
    start_price: float = 30_000.0,
    price_decimals: int = 2,
) -> CandleSeries:
    """`count` synthetic candles from `start_ms`; deterministic in (market, seed, arguments)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, got {timeframe_ms}")
    if _DAY_MS % timeframe_ms == 0 and start_ms % timeframe_ms:
        raise ValueError(f"start_ms {start_ms} is not on the {format_timeframe(timeframe_ms)} grid: round it down")
    if not start_price > 0 or not math.isfinite(start_price):
        raise ValueError(f"start_price must be a positive number, got {start_price}")
    if not 0 <= price_decimals <= 12:
        raise ValueError(f"price_decimals must be between 0 and 12, got {price_decimals}")
    tick = 10.0**-price_decimals
    if start_price < 100 * tick:
        raise ValueError(f"start_price {start_price} is too small for {price_decimals} price decimals: use more")

    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(market.encode())]))
    minutes = timeframe_ms / 60_000
    sigma0 = _MINUTE_SIGMA * math.sqrt(minutes)
    time_ms = start_ms + np.arange(count, dtype=np.int64) * timeframe_ms

    kind, drift, vol_mult, kappa = _regimes(rng, count, minutes)
    hour = (time_ms % _DAY_MS) / 3_600_000
    season = 1.0 + 0.35 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)  # busiest around 15:00 UTC
    sigma = sigma0 * vol_mult * season
    eps = rng.standard_t(_T_DF, size=count) / math.sqrt(_T_DF / (_T_DF - 2.0))
    log_close = _path(math.log(start_price), drift, sigma, kappa, kind, eps)

    close: F64 = np.asarray(np.maximum(np.round(np.exp(log_close), price_decimals), tick), dtype=np.float64)
    open_ = np.empty(count)
    open_[0] = round(start_price, price_decimals)
    open_[1:] = close[:-1]
    wick_hi = np.abs(rng.standard_normal(count)) * sigma * 0.8
    wick_lo = np.abs(rng.standard_normal(count)) * sigma * 0.8
    body_hi = np.maximum(open_, close)
    body_lo = np.minimum(open_, close)
    high = np.maximum(np.round(body_hi * np.exp(wick_hi), price_decimals), body_hi)
    low = np.minimum(np.round(body_lo * np.exp(-wick_lo), price_decimals), body_lo)
    low = np.maximum(low, tick)

    move = np.abs(np.log(close / open_)) / sigma0
    notional = 250_000.0 * minutes  # quote volume per candle on an average minute
    volume = (
        (notional / start_price)
        * season
        * np.sqrt(vol_mult)
        * (0.5 + 0.5 * move)
        * rng.lognormal(mean=-0.125, sigma=0.5, size=count)
    )
    return CandleSeries(
        market=market,
        timeframe_ms=timeframe_ms,
        time_ms=time_ms,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        source=f"synthetic(seed={seed})",
    )


def _regimes(rng: np.random.Generator, count: int, minutes: float) -> tuple[npt.NDArray[np.int8], F64, F64, F64]:
    """Per-bar regime kind, drift, volatility multiplier and mean-reversion speed."""
    kind = np.empty(count, dtype=np.int8)
    drift = np.zeros(count)
    vol = np.ones(count)
    kappa = np.zeros(count)
    sigma0 = _MINUTE_SIGMA * math.sqrt(minutes)
    i = 0
    while i < count:
        k = int(rng.choice(len(REGIMES), p=_REGIME_P))
        hours = float(np.clip(rng.lognormal(mean=math.log(6.0), sigma=0.7), 1.0, 72.0))
        n = max(1, round(hours * 60 / minutes))
        s = slice(i, min(count, i + n))
        kind[s] = k
        if REGIMES[k] == "trend":
            # Drift of 0.05..0.15 sigma per bar: over 6 hours about 1.5x the noise, so moving averages cross late
            # but surely; the sign is drawn at random each time.
            drift[s] = (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.05, 0.15) * sigma0
            vol[s] = rng.uniform(0.9, 1.3)
        elif REGIMES[k] == "range":
            kappa[s] = rng.uniform(0.01, 0.04) * minutes**0.5
            vol[s] = rng.uniform(0.7, 1.1)
        elif REGIMES[k] == "burst":
            vol[s] = rng.uniform(2.5, 4.0)
        else:
            vol[s] = rng.uniform(0.35, 0.6)
        i += n
    return kind, drift, vol, kappa


def _path(x0: float, drift: F64, sigma: F64, kappa: F64, kind: npt.NDArray[np.int8], eps: F64) -> F64:
    """Log close per bar. Ranges pull towards the level they started at (an AR(1) step), the rest is a random walk.

    A plain loop over Python floats: sequential by nature, about 0.5 s per million bars.
    """
    out = np.empty(len(eps))
    x = x0
    level = x0
    prev_kind = -1
    range_k = REGIMES.index("range")
    # Weak pull to the start price keeps long (benchmark) paths within a plausible band.
    home = x0
    for i, (k, mu, sd, kp, e) in enumerate(
        zip(kind.tolist(), drift.tolist(), sigma.tolist(), kappa.tolist(), eps.tolist(), strict=True)
    ):
        if k != prev_kind:
            level = x
            prev_kind = k
        step = mu + sd * e - 1e-5 * (x - home)
        if k == range_k:
            step -= kp * (x - level)
        x += step
        out[i] = x
    return out


def write_candles_csv(series: CandleSeries, path: Path, price_decimals: int, amount_decimals: int) -> None:
    """`time_ms,open,high,low,close,volume` with fixed decimals and '\\n' line ends, so output is byte-stable."""
    pf = f"{{:.{price_decimals}f}}"
    vf = f"{{:.{amount_decimals}f}}"
    row = f"{{}},{pf},{pf},{pf},{pf},{vf}"
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 100_000
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("time_ms,open,high,low,close,volume\n")
        for lo in range(0, len(series), chunk):
            s = slice(lo, lo + chunk)
            cols = zip(
                series.time_ms[s].tolist(),
                series.open[s].tolist(),
                series.high[s].tolist(),
                series.low[s].tolist(),
                series.close[s].tolist(),
                series.volume[s].tolist(),
                strict=True,
            )
            fh.write("\n".join(row.format(*r) for r in cols))
            fh.write("\n")


def write_sample(out_dir: Path, seed: int = 7) -> list[Path]:
    """Regenerate the committed sample (CSV files plus README.md) byte-identically for a given seed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines: list[str] = []
    for name, spec in SAMPLE_MARKETS.items():
        count = SAMPLE_DAYS * _DAY_MS // spec.timeframe_ms
        series = generate_candles(
            name,
            start_ms=SAMPLE_START_MS,
            count=count,
            timeframe_ms=spec.timeframe_ms,
            seed=seed,
            start_price=spec.start_price,
            price_decimals=spec.rules.money_prec,
        )
        path = out_dir / spec.file_name
        write_candles_csv(series, path, spec.rules.money_prec, spec.rules.stock_prec)
        written.append(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(
            f"| {spec.file_name} | {name} | {format_timeframe(spec.timeframe_ms)} | {count:,} | "
            f"{spec.start_price:g} | {spec.rules.money_prec} / {spec.rules.stock_prec} | `{digest[:16]}` |"
        )
    readme = out_dir / "README.md"
    readme.write_text(
        _README.format(seed=seed, days=SAMPLE_DAYS, rows="\n".join(lines)), encoding="utf-8", newline="\n"
    )
    written.append(readme)
    return written


_README = """\
# Sample candles: SYNTHETIC data

**These candles are synthetic.** No exchange produced them; they are not WhiteBIT prices and say nothing about any
real market. They exist so that a fresh clone can run every example backtest with nothing downloaded.

Made by `botkit data sample --seed {seed}` (code: `botkit/backtest/sample.py`), {days} days of candles per market
from 2026-01-05T00:00:00Z. The generator switches between regimes (trends, mean-reverting ranges, volatility bursts,
calm spells) with fat-tailed returns, a daily volatility and volume cycle, and volume that grows with the move, so
crossover, mean-reversion and grid strategies all find trades. The same seed gives byte-identical files; the test
suite regenerates them and compares.

Format: CSV `time_ms,open,high,low,close,volume`; `time_ms` is the candle open time in ms since the epoch (UTC),
prices in the quote currency with the market's price precision, volume in the base currency.

| file | market | timeframe | rows | start price | price / amount decimals | sha256 (first 16) |
|---|---|---|---:|---:|---|---|
{rows}
"""
