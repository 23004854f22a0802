"""What a report adds to the engine's metrics: lots, trade statistics both ways, buy-and-hold, per-market figures.

Computed once, after the run, from the result's fills, orders and candles; nothing here runs per candle.
Conventions: buy-and-hold of a market = its last close / its first close - 1 over the run; the combined buy-and-hold
splits the starting equity equally across the markets at their first close and holds. A market's exposure is the
share of the run's time during which its position differed from the starting one by at least one amount step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from botkit.backtest.metrics import ratio, system_quality
from botkit.backtest.replay import BacktestResult
from botkit.backtest.trades import Lot, RoundTrip, fill_reasons, lots, order_outcomes


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Statistics of closed trades (round trips or lots); None where undefined (no trades, one trade...)."""

    closed: int
    open: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    sqn: float | None
    avg_duration_ms: float | None
    max_duration_ms: int | None
    pnl: float  # closed and open (marked at the last close)

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in self.__slots__}


def trade_stats(pnls: list[float], durations_ms: list[int], open_pnls: list[float]) -> TradeStats:
    p = np.asarray(pnls, dtype=np.float64)
    d = np.asarray(durations_ms, dtype=np.int64)
    n = int(p.size)
    return TradeStats(
        closed=n,
        open=len(open_pnls),
        win_rate=float((p > 0).sum() / n) if n else None,
        profit_factor=ratio(float(p[p > 0].sum()), float(-p[p < 0].sum()), 1.0) if n else None,
        expectancy=float(p.mean()) if n else None,
        sqn=system_quality(p),
        avg_duration_ms=float(d.mean()) if d.size else None,
        max_duration_ms=int(d.max()) if d.size else None,
        pnl=float(p.sum()) + math.fsum(open_pnls),
    )


@dataclass(frozen=True, slots=True)
class MarketStats:
    market: str
    fills: int
    volume: float  # quote traded
    fees: float  # quote
    pnl: float  # lots, closed and open
    exposure: float
    buy_and_hold: float | None
    first_close: float | None
    last_close: float | None
    round_trips: int
    lots: int
    lot_win_rate: float | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Analysis:
    lots: list[Lot]
    reasons: dict[str, str]  # client id -> why it filled
    order_types: dict[str, str]  # client id -> limit / market / stop_market / stop_limit
    round_trip_stats: TradeStats
    lot_stats: TradeStats
    markets: list[MarketStats]
    buy_and_hold: float | None
    order_outcomes: dict[str, int]
    rejections: dict[str, int]


def _closed_stats(trades: list[RoundTrip] | list[Lot]) -> TradeStats:
    closed = [t for t in trades if t.closed]
    durations = [int(t.exit_ms - t.entry_ms) for t in closed if t.exit_ms is not None]
    return trade_stats([t.pnl for t in closed], durations, [t.pnl for t in trades if not t.closed])


def _exposure(result: BacktestResult, market: str, span: tuple[int, int]) -> float:
    """Share of [start, end] with a position (relative to the start) of at least one amount step."""
    start, end = span
    if end <= start:
        return 0.0
    rules = result.rules.get(market)
    step = rules.amount_step if rules is not None else Decimal(0)
    pos = Decimal(0)
    since: int | None = None
    held = 0
    for f in result.fills:
        if f.market != market:
            continue
        pos += f.amount - f.fee if f.side == "buy" else -f.amount
        if abs(pos) >= step and since is None:
            since = f.time_ms
        elif abs(pos) < step and since is not None:
            held += f.time_ms - since
            since = None
    if since is not None:
        held += end - since
    return held / (end - start)


def analyse(result: BacktestResult) -> Analysis:
    series = {s.market: s for s in result.series}
    last_close = {m: float(s.close[-1]) for m, s in series.items() if len(s)}
    end_ms = {m: int(s.time_ms[-1] + s.timeframe_ms) for m, s in series.items() if len(s)}
    reasons = fill_reasons(result.orders)
    lot_list = lots(result.fills, result.rules, last_close, end_ms, reasons)
    t = result.event_time_ms
    span = (int(t[0]), int(t[-1])) if len(t) else (0, 0)
    per_market: list[MarketStats] = []
    bh_parts: list[float] = []
    for m in result.markets:
        fs = [f for f in result.fills if f.market == m]
        s = series.get(m)
        first = float(s.close[0]) if s is not None and len(s) else None
        last = float(s.close[-1]) if s is not None and len(s) else None
        bh = last / first - 1.0 if first and last is not None else None
        if bh is not None:
            bh_parts.append(bh)
        mine = [x for x in lot_list if x.market == m]
        closed = [x.pnl for x in mine if x.closed]
        per_market.append(
            MarketStats(
                market=m,
                fills=len(fs),
                volume=math.fsum(float(f.quote) for f in fs),
                fees=math.fsum(float(f.fee * f.price) if f.side == "buy" else float(f.fee) for f in fs),
                pnl=math.fsum(x.pnl for x in mine),
                exposure=_exposure(result, m, span),
                buy_and_hold=bh,
                first_close=first,
                last_close=last,
                round_trips=sum(1 for r in result.round_trips if r.market == m and r.closed),
                lots=len(closed),
                lot_win_rate=sum(1 for p in closed if p > 0) / len(closed) if closed else None,
            )
        )
    rej: dict[str, int] = {}
    for r in result.rejections:
        rej[r.rule] = rej.get(r.rule, 0) + 1
    return Analysis(
        lots=lot_list,
        reasons=reasons,
        order_types={o.client_id: o.type for o in result.orders},
        round_trip_stats=_closed_stats(result.round_trips),
        lot_stats=_closed_stats(lot_list),
        markets=per_market,
        buy_and_hold=sum(bh_parts) / len(bh_parts) if bh_parts else None,
        order_outcomes=order_outcomes(result.orders),
        rejections=dict(sorted(rej.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def money_decimals(value: float, prec: int, significant: int = 6) -> int:
    """Decimals to show a quote amount: the market's price precision, or more when that would leave fewer than
    `significant` digits (0.93 BTC becomes 0.934512 BTC); at most 12."""
    if value == 0 or not math.isfinite(value):
        return prec
    magnitude = math.floor(math.log10(abs(value)))
    return max(prec, min(12, significant - 1 - magnitude))


def fmt_money(value: float | None, prec: int, significant: int = 6) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:,.{money_decimals(value, prec, significant)}f}"


def duration(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    h = ms / 3_600_000
    if h < 1:
        return f"{ms / 60_000:.0f} min"
    return f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} d"
