"""Backtest metrics from the equity curve and the closed trades, with numpy, with every convention stated.

Conventions (so figures can be compared with other tools):
- Bars that share a time (several markets' candles closing together) count once, with the state after the last.
- Sharpe, Sortino and volatility use DAILY returns, as quantstats and backtesting.py do, so the figures compare
  across tools and timeframes (the formulas below are quantstats'; backtesting.py samples the same daily returns
  but annualises a geometric mean, so its Sharpe differs a little). Equity is sampled at each UTC day's close (the
  last bar closing in (D 00:00, D+1 00:00]; `time_ms` are bar close times); r_d = close_d / close_{d-1} - 1 over
  the days that have bars (the first day's close is the base); risk-free rate 0; annualised with 365 days (crypto
  trades every day) unless the caller passes `periods_per_year`.
- volatility_ann = std(r, ddof=1) * sqrt(365).  sharpe = mean(r) / std(r, ddof=1) * sqrt(365).
- sortino = mean(r) / downside deviation * sqrt(365), downside deviation = sqrt(sum(min(r, 0)^2) / n) over ALL
  n daily returns (target 0, Sortino & Price 1994; quantstats' formula).
- total_return = e_last / e_first - 1.  CAGR = (e_last / e_first) ^ (1 / years) - 1 over the wall-clock span from
  the first to the last bar time, years of 365 days; -1 if the equity ends at or below zero.
- max_drawdown = max over bars of 1 - e / running peak, a positive fraction (0.25 = 25 % below the peak).
- max_drawdown_duration_ms = longest time from a peak to the first bar back at or above it; a drawdown that has not
  recovered lasts until the last bar.
- calmar = CAGR / max_drawdown.  profit_factor = gross wins / |gross losses|.  expectancy = mean net P&L per trade
  (quote currency).  win_rate = share of trades with P&L > 0.  exposure = share of bars with a position.
- sqn = sqrt(n) * mean(P&L) / std(P&L, ddof=1) over the closed trades (Van Tharp's System Quality Number).
- Annualised figures (CAGR, Calmar, Sharpe, Sortino, volatility) extrapolate the run to a year: `span_warnings`
  flags runs shorter than MIN_ANNUAL_DAYS, where they mean little (a 2.5-day run can show a CAGR of 9,000 %).

Undefined figures are None (no trades -> win_rate, profit_factor, expectancy; flat equity -> sharpe, sortino; fewer
than 2 bars -> everything return-based; fewer than 2 daily returns -> sharpe, sortino, volatility); a ratio whose
denominator is zero while its numerator is positive is +inf (no losing trade, no drawdown). Never NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
DAYS_PER_YEAR = 365.0
MIN_ANNUAL_DAYS = 30  # below this span, annualised figures are flagged as extrapolations
CONVENTION = (
    "Sharpe, Sortino and volatility from daily returns (equity at each UTC day's close), risk-free rate 0, "
    "annualised with 365 days, as quantstats and backtesting.py; CAGR over a 365-day year"
)


@dataclass(frozen=True, slots=True)
class Metrics:
    """The figures a backtest report shows; None where a figure is undefined (see the module docstring)."""

    total_return: float
    cagr: float | None
    volatility_ann: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    max_drawdown_duration_ms: int
    calmar: float | None
    trades: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    exposure: float
    fees_paid: float
    periods_per_year: float
    daily_returns: int
    bars: int
    start_equity: float
    end_equity: float
    span_ms: int
    avg_win: float | None
    avg_loss: float | None
    best_trade: float | None
    worst_trade: float | None
    sqn: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def compute_metrics(
    time_ms: npt.NDArray[np.int64],
    equity: npt.NDArray[np.float64],
    trade_pnls: npt.NDArray[np.float64],
    in_market: npt.NDArray[np.bool_],
    fees_paid: float,
    periods_per_year: float | None = None,
) -> Metrics:
    """All metrics of one run; inputs are per-bar arrays (time, equity, in_market) plus one P&L per closed trade."""
    t = np.asarray(time_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    pnl = np.asarray(trade_pnls, dtype=np.float64).reshape(-1)
    pos = np.asarray(in_market)
    _check_inputs(t, e, pnl, pos, fees_paid, periods_per_year)
    # Full-length temporaries are made one at a time and freed at once: a backtest of 1M candles must stay within
    # a small multiple of its data in memory.
    if len(t) > 1:
        last = np.append(t[1:] != t[:-1], True)  # several markets' candles closing at one time: keep the last state
        if not last.all():
            t, e, pos = t[last], e[last], pos[last]
        del last
    n = len(e)

    ppy = DAYS_PER_YEAR if periods_per_year is None else periods_per_year
    e0, e1 = float(e[0]), float(e[-1])
    span = int(t[-1] - t[0])
    total_return = e1 / e0 - 1.0
    cagr: float | None = None
    if span > 0:
        cagr = -1.0 if e1 <= 0 else _annualise(e1 / e0, YEAR_MS / span)

    vol = sharpe = sortino = None
    r = daily_returns(t, e)
    if r.size >= 2:
        mean = float(r.mean())
        sd = float(r.std(ddof=1))
        root = math.sqrt(ppy)
        vol = sd * root
        sharpe = ratio(mean, sd, root)
        downside = math.sqrt(float(np.square(np.minimum(r, 0.0)).sum()) / r.size)
        sortino = ratio(mean, downside, root)

    peak = np.maximum.accumulate(e)
    if e0 > 0:
        rel = e / peak
        max_dd = 1.0 - float(rel.min())
        del rel
    else:
        max_dd = 0.0
    max_dd = max(0.0, max_dd)
    dd_ms = _longest_drawdown_ms(t, e, peak)
    calmar: float | None = None
    if cagr is not None:
        calmar = ratio(cagr, max_dd, 1.0)

    trades = int(pnl.size)
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    win_rate = expectancy = profit_factor = avg_win = avg_loss = best = worst = sqn = None
    if trades:
        win_rate = wins.size / trades
        expectancy = float(pnl.mean())
        profit_factor = ratio(float(wins.sum()), float(-losses.sum()), 1.0)
        best, worst = float(pnl.max()), float(pnl.min())
        sqn = system_quality(pnl)
    if wins.size:
        avg_win = float(wins.mean())
    if losses.size:
        avg_loss = float(losses.mean())

    return Metrics(
        total_return=total_return,
        cagr=cagr,
        volatility_ann=vol,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        max_drawdown_duration_ms=dd_ms,
        calmar=calmar,
        trades=trades,
        win_rate=win_rate,
        profit_factor=profit_factor,
        expectancy=expectancy,
        exposure=float(pos.mean()),
        fees_paid=float(fees_paid),
        periods_per_year=ppy,
        daily_returns=int(r.size),
        bars=n,
        start_equity=e0,
        end_equity=e1,
        span_ms=span,
        avg_win=avg_win,
        avg_loss=avg_loss,
        best_trade=best,
        worst_trade=worst,
        sqn=sqn,
    )


def daily_returns(time_ms: npt.NDArray[np.int64], equity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Simple returns between consecutive UTC day closes (days without a bar are skipped); `time_ms` are bar
    close times, so a bar closing at exactly 00:00 closes the day before."""
    t = np.asarray(time_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    if len(t) < 2:
        return np.empty(0, dtype=np.float64)
    day = (t - 1) // DAY_MS
    last = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    closes = e[last]
    prev = closes[:-1]
    ok = prev > 0
    out: npt.NDArray[np.float64] = (closes[1:][ok] / prev[ok]) - 1.0
    return out


def system_quality(pnl: npt.NDArray[np.float64]) -> float | None:
    """SQN = sqrt(n) * mean / std (ddof=1); None with fewer than 2 trades or when every trade made the same."""
    p = np.asarray(pnl, dtype=np.float64)
    if p.size < 2:
        return None
    sd = float(p.std(ddof=1))
    return ratio(float(p.mean()), sd, math.sqrt(p.size)) if sd > 0 else None


def span_warnings(m: Metrics) -> list[str]:
    """What a reader should know before trusting the annualised figures of `m`."""
    days = m.span_ms / DAY_MS
    if days >= MIN_ANNUAL_DAYS:
        return []
    return [
        f"the run spans {days:.1f} days (< {MIN_ANNUAL_DAYS}): CAGR, Calmar, Sharpe, Sortino and volatility "
        f"extrapolate it to a year and mean little ({m.daily_returns} daily returns)"
    ]


def _check_inputs(
    t: npt.NDArray[np.int64],
    e: npt.NDArray[np.float64],
    pnl: npt.NDArray[np.float64],
    pos: npt.NDArray[np.bool_],
    fees_paid: float,
    ppy: float | None,
) -> None:
    n = len(e)
    if e.ndim != 1 or n == 0:
        raise ValueError(f"equity must be a non-empty 1-d array, got shape {e.shape}")
    if t.shape != e.shape or pos.shape != e.shape:
        raise ValueError(
            f"time_ms {t.shape}, equity {e.shape} and in_market {pos.shape} must have one value per bar each"
        )
    if pos.dtype != np.bool_:
        raise ValueError(f"in_market must be a bool array (position != 0 per bar), got {pos.dtype}")
    if n > 1 and not bool((np.diff(t) >= 0).all()):
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise ValueError(f"time_ms must not go backwards: bar {i} has {t[i]} after {t[i - 1]}")
    if not bool(np.isfinite(e).all()):
        i = int(np.flatnonzero(~np.isfinite(e))[0])
        raise ValueError(f"equity[{i}] is {e[i]}: equity must be finite on every bar")
    if e[0] <= 0:
        raise ValueError(f"equity[0] is {e[0]}: a run must start with positive equity")
    if not bool(np.isfinite(pnl).all()):
        i = int(np.flatnonzero(~np.isfinite(pnl))[0])
        raise ValueError(f"trade_pnls[{i}] is {pnl[i]}: every closed trade needs a finite P&L")
    if not math.isfinite(fees_paid) or fees_paid < 0:
        raise ValueError(f"fees_paid is {fees_paid}: it must be a finite amount >= 0 in the quote currency")
    if ppy is not None and (not math.isfinite(ppy) or ppy <= 0):
        raise ValueError(f"periods_per_year is {ppy}: give a positive number, or None for 365")


def ratio(num: float, den: float, scale: float) -> float | None:
    """num / den * scale; +-inf when only the denominator is 0, None when both are (never NaN)."""
    if den > 0:
        return _finite_or_inf(num / den * scale)
    if num > 0:
        return math.inf
    if num < 0:
        return -math.inf
    return None


def _finite_or_inf(x: float) -> float:
    return x if not math.isnan(x) else math.inf  # only inf / inf can land here


def _annualise(growth: float, years_inv: float) -> float:
    """growth ** (1 / years) - 1; a short, winning run can overflow, which is +inf, said plainly."""
    try:
        return float(growth**years_inv) - 1.0
    except OverflowError:
        return math.inf


def _longest_drawdown_ms(t: npt.NDArray[np.int64], e: npt.NDArray[np.float64], peak: npt.NDArray[np.float64]) -> int:
    """Longest peak-to-recovery time; an open drawdown runs to the last bar."""
    n = len(e)
    under = e < peak
    if not under.any():
        return 0
    peak_idx = np.arange(n)
    peak_idx[under] = 0
    np.maximum.accumulate(peak_idx, out=peak_idx)  # last bar at the running peak
    ends = under & np.append(~under[1:], True)  # last underwater bar of each stretch
    end_idx = np.flatnonzero(ends)
    stop = np.minimum(end_idx + 1, n - 1)  # the recovery bar, or the last bar if never recovered
    return int((t[stop] - t[peak_idx[end_idx]]).max())
