"""Data that loads fine but cannot give a meaningful backtest: found once at load, said before the run starts.

A file can be valid on its own and still not fit the run: markets whose windows do not overlap never trade together,
mixed timeframes interleave candles at different rates, and prices far below the market's price step round every
order to nothing. Each check looks at the loaded numpy columns once (medians over at most `_SAMPLE` values), never
per candle, and returns plain sentences naming the markets, the numbers and the config key or flag that fixes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from botkit.backtest.data import F64, CandleSeries, format_timeframe, iso_time
from botkit.market.rules import MarketRules

_SAMPLE = 100_000  # values a median is taken over at most (evenly strided): plenty for a typical price
_MAX_PREC = 18  # the largest money_prec a config accepts
_COARSE_TICK = 0.01  # a price step above 1 % of the price rounds limit prices too far to mean anything
_TYPICAL_DIGITS = 4  # a suggested step is at most 1e-4 of the price (exchanges list about 5 significant digits)
_PARTLY = 0.01  # a market with more than 1 % of its span outside the common window gets a warning


def data_warnings(series: Sequence[CandleSeries], rules: dict[str, MarketRules]) -> list[str]:
    """Every mismatch between the loaded candles and each other or the markets' rules, as sentences."""
    out = _overlap(series) + _timeframes(series)
    for s in series:
        rule = rules.get(s.market)
        if rule is not None and len(s):
            out += _price_step(s, rule)
    return out


# ---- windows --------------------------------------------------------------------------------------------------------


def _span(s: CandleSeries) -> tuple[int, int]:
    """[first open, last close) in ms: the time the file has candles for."""
    return int(s.time_ms[0]), int(s.time_ms[-1]) + s.timeframe_ms


def _overlap(series: Sequence[CandleSeries]) -> list[str]:
    spans = {s.market: _span(s) for s in series if len(s)}
    if len(spans) < 2:
        return []
    start = max(a for a, _ in spans.values())
    end = min(b for _, b in spans.values())
    listed = ", ".join(f"{m} {iso_time(a)} .. {iso_time(b)}" for m, (a, b) in spans.items())
    if start >= end:
        return [
            f"the markets' data windows do not overlap ({listed}): they never trade at the same time, so the "
            "backtest runs one market after the other. Use files that cover the same period."
        ]
    outside = []
    for m, (a, b) in spans.items():
        out_ms = (b - a) - (end - start)
        if out_ms > _PARTLY * (b - a):
            outside.append(f"{m} {out_ms / (b - a):.0%} of its {_duration(b - a)} ({_duration(out_ms)})")
    if not outside:
        return []
    return [
        f"the markets' data windows overlap only partly: all have candles from {iso_time(start)} to "
        f"{iso_time(end)} ({_duration(end - start)}); outside that: {', '.join(outside)}, where fewer markets "
        f"trade. To use only the common window pass --from {iso_time(start)} --to {iso_time(end)} "
        "(or set [data] start/end)."
    ]


def _duration(ms: int) -> str:
    """86_400_000 * 2 + 3_600_000 -> '2 d 1 h'; minutes below an hour."""
    minutes = ms // 60_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min" if mins else f"{ms / 1000:g} s"


# ---- timeframes -----------------------------------------------------------------------------------------------------


def _timeframes(series: Sequence[CandleSeries]) -> list[str]:
    frames = {s.market: s.timeframe_ms for s in series}
    if len(set(frames.values())) < 2:
        return []
    listed = ", ".join(f"{m} {format_timeframe(tf)}" for m, tf in frames.items())
    return [
        f"mixed timeframes across markets ({listed}): the slower markets get a new candle only every few callbacks "
        "of the faster ones, and indicator periods count different spans of time. Use files of one timeframe "
        "if the strategy compares markets candle by candle."
    ]


# ---- prices against the price step ----------------------------------------------------------------------------------


def _sampled(col: F64, limit: int = _SAMPLE) -> F64:
    """At most `limit` values spread evenly over the column (a strided view, no copy)."""
    step = max(1, math.ceil(len(col) / limit))
    return col[::step]


def median(x: F64) -> float:
    """`float(np.median(x))` of a 1-d float array, the same value, without np.median's check for masked arrays:
    that check imports numpy.ma, ~10 ms of every backtest's start."""
    n = len(x)
    if n == 0 or bool(np.isnan(x).any()):
        return float(np.median(x))
    half = n // 2
    if n % 2:
        return float(np.partition(x, half)[half])
    part = np.partition(x, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)  # np.median's mean of the two middle values


def _price_step(s: CandleSeries, rule: MarketRules) -> list[str]:
    step = 10.0 ** -rule.money_prec
    close = _sampled(s.close)
    median_close = median(close)
    median_range = median(_sampled(s.high) - _sampled(s.low))
    coarse = step / median_close > _COARSE_TICK
    flat = 0 < median_range < step
    quoted = _decimals(np.concatenate([_sampled(c, 500) for c in (s.open, s.high, s.low, s.close)]))
    finer = quoted is None or quoted > rule.money_prec  # the data's own prices do not fit on this step
    if not (coarse or (flat and finer)):
        return []
    key = f"[markets.{s.market}] money_prec"
    facts = [f"median close {median_close:.6g} is {median_close / step:.3g} price steps of {step:g} ({key} = "
             f"{rule.money_prec})"]
    if step / median_close >= 0.5:
        facts.append("order prices round to 0 or to a price far from the market, so every order would be rejected")
    elif coarse:
        facts.append(f"order prices round by up to {step / 2 / median_close:.1%}")
    if flat:
        facts.append(f"a typical candle's range (high - low, median) of {median_range:.3g} is less than one step")
    prec, why = _suggest_prec(quoted, median_close, median_range, rule.money_prec)
    return [f"{s.market}: {'; '.join(facts)}. Set {key} = {prec} ({why}) or to the precision the exchange lists."]


def _suggest_prec(quoted: int | None, median_close: float, median_range: float, current: int) -> tuple[int, str]:
    """The decimals the data itself is quoted in, when they fix the problem; else enough for ~5 significant digits."""
    need = median_close * 10.0**-_TYPICAL_DIGITS
    if median_range > 0:
        need = min(need, median_range / 10)
    wanted = min(_MAX_PREC, max(current + 1, math.ceil(-math.log10(need))))
    if quoted is not None and current < quoted <= _MAX_PREC:
        coarse = 10.0**-quoted / median_close > _COARSE_TICK or 0 < median_range < 10.0**-quoted
        if not coarse:
            return quoted, f"the data's prices have {quoted} decimals"
    return wanted, "a step of about 1/10,000 of the price and 1/10 of a typical candle's range"


def _decimals(values: F64) -> int | None:
    """Fewest decimals (up to _MAX_PREC) that hold every value exactly, within float rounding; None if more."""
    for prec in range(_MAX_PREC + 1):
        scaled = values * 10.0**prec
        if bool(np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled)))):
            return prec
    return None
