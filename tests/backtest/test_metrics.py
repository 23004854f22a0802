"""Metrics against values worked out by hand on tiny series, edge cases, and an independent re-computation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from botkit.backtest.metrics import MIN_ANNUAL_DAYS, Metrics, compute_metrics, span_warnings

DAY = 86_400_000
MIN = 60_000
T0 = 1_767_571_200_000


def run(
    equity: Sequence[float] | np.ndarray,
    *,
    step: int = DAY,
    pnls: Sequence[float] = (),
    in_market: Sequence[bool] | None = None,
    fees: float = 0.0,
    ppy: float | None = None,
    times: Sequence[int] | None = None,
) -> Metrics:
    e = np.asarray(equity, dtype=np.float64)
    t = np.asarray(times if times is not None else [T0 + i * step for i in range(len(e))], dtype=np.int64)
    pos = np.asarray(in_market if in_market is not None else [False] * len(e), dtype=bool)
    return compute_metrics(t, e, np.asarray(pnls, dtype=np.float64), pos, fees, ppy)


def no_nan(m: Metrics) -> None:
    for k, v in m.as_dict().items():
        assert v is None or isinstance(v, int | float), k
        assert v is None or not math.isnan(v), f"{k} is NaN"


def test_daily_series_by_hand() -> None:
    # returns +10 %, -10 %, +20 %, 0 %  ->  mean 0.05, sample variance (0.0025+0.0225+0.0225+0.0025)/3 = 1/60
    m = run(
        [100, 110, 99, 118.8, 118.8],
        pnls=[10, -5, 20, -5, 0],
        in_market=[False, True, True, False, False],
        fees=1.25,
    )
    no_nan(m)
    assert m.periods_per_year == 365.0 and m.daily_returns == 4
    assert m.total_return == pytest.approx(0.188)
    assert m.cagr == pytest.approx(1.188 ** (365 / 4) - 1, rel=1e-9)  # span 4 days
    assert m.volatility_ann == pytest.approx(math.sqrt(365 / 60))
    assert m.sharpe == pytest.approx(0.05 * math.sqrt(60 * 365))  # 7.3993...
    # downside deviation = sqrt((0 + 0.01 + 0 + 0) / 4) = 0.05  ->  sortino = 0.05 / 0.05 * sqrt(365)
    assert m.sortino == pytest.approx(math.sqrt(365))
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert m.max_drawdown_duration_ms == 2 * DAY  # peak on day 1, back above it on day 3
    assert m.calmar == pytest.approx((1.188 ** (365 / 4) - 1) / 0.1, rel=1e-9)
    assert m.trades == 5
    assert m.win_rate == pytest.approx(0.4)  # a zero trade is not a win
    assert m.profit_factor == pytest.approx(3.0)  # 30 / 10
    assert m.expectancy == pytest.approx(4.0)  # 20 / 5
    assert (m.avg_win, m.avg_loss, m.best_trade, m.worst_trade) == (15.0, -5.0, 20.0, -5.0)
    assert m.exposure == pytest.approx(0.4)
    assert m.sqn == pytest.approx(math.sqrt(5) * 4.0 / statistics.stdev([10, -5, 20, -5, 0]))
    assert m.fees_paid == 1.25
    assert (m.bars, m.start_equity, m.end_equity, m.span_ms) == (5, 100.0, 118.8, 4 * DAY)


def test_longest_drawdown_is_not_the_deepest_one() -> None:
    # 100 -> 95 -> 96 -> 100: 3 minutes under water, 5 % deep; 120 -> 90 -> 100: 25 % deep, open for 2 minutes
    m = run([100, 95, 96, 100, 120, 90, 100], step=MIN)
    # the first bar closes at 00:00 (the day before), the rest within one day: one daily return, no std
    assert m.daily_returns == 1 and m.sharpe is None and m.volatility_ann is None
    assert m.max_drawdown == pytest.approx(0.25)
    assert m.max_drawdown_duration_ms == 3 * MIN
    assert m.total_return == 0.0 and m.cagr == 0.0 and m.calmar == 0.0


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    m = run([100, 120, 110, 100, 119], step=MIN)
    assert m.max_drawdown == pytest.approx(20 / 120)
    assert m.max_drawdown_duration_ms == 3 * MIN  # from the peak (bar 1) to the last bar (bar 4)


def test_no_trades_and_flat_equity() -> None:
    m = run([100.0] * 10, step=DAY)
    no_nan(m)
    assert m.trades == 0
    assert m.win_rate is None and m.profit_factor is None and m.expectancy is None
    assert m.avg_win is None and m.avg_loss is None and m.best_trade is None
    assert m.total_return == 0.0 and m.cagr == 0.0
    assert m.volatility_ann == 0.0
    assert m.sharpe is None and m.sortino is None  # 0 / 0
    assert m.max_drawdown == 0.0 and m.max_drawdown_duration_ms == 0
    assert m.calmar is None  # 0 / 0
    assert m.exposure == 0.0


def test_zero_losses_and_no_downside_give_inf() -> None:
    m = run([100, 101, 103, 106], pnls=[1, 2, 3])
    no_nan(m)
    assert m.profit_factor == math.inf
    assert m.sortino == math.inf  # no negative return at all
    assert m.max_drawdown == 0.0 and m.calmar == math.inf
    assert m.win_rate == 1.0 and m.avg_loss is None


def test_all_losses_profit_factor_zero() -> None:
    m = run([100, 99, 98], pnls=[-1, -1])
    assert m.profit_factor == 0.0 and m.win_rate == 0.0 and m.expectancy == -1.0


def test_one_and_two_bars() -> None:
    one = run([100])
    no_nan(one)
    assert one.cagr is None and one.daily_returns == 0 and one.sharpe is None and one.volatility_ann is None
    two = run([100, 110])
    no_nan(two)
    assert two.sharpe is None  # one return has no sample standard deviation
    assert two.cagr == pytest.approx(1.1**365 - 1)


def test_explicit_periods_per_year() -> None:
    m = run([100, 110, 99, 118.8, 118.8], ppy=252.0)
    assert m.periods_per_year == 252.0
    assert m.sharpe == pytest.approx(0.05 * math.sqrt(60 * 252))


def test_bars_sharing_a_time_count_once() -> None:
    # two markets closing together each minute: the state after the last of them counts
    t = [T0, T0, T0 + MIN, T0 + MIN, T0 + 2 * MIN, T0 + 2 * MIN]
    m = run([100, 101, 102, 103, 104, 105], times=t, in_market=[True, False, False, True, True, True])
    assert m.bars == 3 and m.start_equity == 101.0 and m.end_equity == 105.0
    assert m.exposure == pytest.approx(2 / 3)


def test_equity_wiped_out() -> None:
    m = run([100, 50, 0.0], step=DAY)
    no_nan(m)
    assert m.cagr == -1.0 and m.max_drawdown == 1.0 and m.total_return == -1.0


def test_against_an_independent_computation() -> None:
    rng = np.random.default_rng(3)
    e = 1000 * np.cumprod(1 + rng.normal(0.0002, 0.01, 500))
    m = run(e, step=5 * MIN)
    peak, worst, since, longest = e[0], 0.0, 0, 0
    for i, x in enumerate(e):
        if x >= peak:
            longest = max(longest, (i - since) * 5 * MIN)
            peak, since = x, i
        worst = max(worst, 1 - x / peak)
    longest = max(longest, (len(e) - 1 - since) * 5 * MIN)
    assert m.max_drawdown == pytest.approx(worst)
    assert m.max_drawdown_duration_ms == longest


def _five_minute_run(days: int, seed: int, gap_days: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Open times and equity of a 5-minute run starting at 00:00 UTC, with whole days left out."""
    rng = np.random.default_rng(seed)
    step = 5 * MIN
    opens = np.arange(days * DAY // step, dtype=np.int64) * step + T0
    keep = ~np.isin((opens - T0) // DAY, list(gap_days))
    opens = opens[keep]
    equity = 10_000 * np.cumprod(1 + rng.normal(0.00003, 0.002, len(opens)))
    return opens, equity


@pytest.mark.parametrize(("days", "gaps"), [(45, ()), (90, (10, 11, 40)), (3, ())])
def test_sharpe_sortino_volatility_match_quantstats(days: int, gaps: tuple[int, ...]) -> None:
    """The same equity curve through quantstats: daily closes by pandas (indexed by bar open time, as peers index
    candles), annualised with 365 days."""
    import pandas as pd  # test-only dependencies (the dev extra)
    import quantstats as qs
    opens, equity = _five_minute_run(days, seed=days, gap_days=gaps)
    m = run(equity, times=(opens + 5 * MIN).tolist())  # botkit stamps bars with their close time
    daily = pd.Series(equity, index=pd.to_datetime(opens, unit="ms", utc=True)).resample("1D").last().dropna()
    r = daily.pct_change().dropna()
    assert m.daily_returns == len(r) == days - 1 - len(gaps)
    assert m.sharpe == pytest.approx(float(qs.stats.sharpe(r, periods=365)), rel=1e-9)
    assert m.sortino == pytest.approx(float(qs.stats.sortino(r, periods=365)), rel=1e-9)
    assert m.volatility_ann == pytest.approx(float(qs.stats.volatility(r, periods=365)), rel=1e-9)
    prices = pd.Series(equity, index=pd.to_datetime(opens, unit="ms", utc=True))
    assert m.max_drawdown == pytest.approx(-float(qs.stats.max_drawdown(prices)), rel=1e-9)
    assert bool(span_warnings(m)) == (days < MIN_ANNUAL_DAYS)


def test_a_bar_closing_at_midnight_closes_the_day_before() -> None:
    # daily bars stamped with close times 00:00: each closes the previous day, so 4 bars give 3 daily returns
    m = run([100, 110, 121, 133.1], times=[T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY])
    assert m.daily_returns == 3 and m.volatility_ann == pytest.approx(0.0, abs=1e-12)
    # one more bar a minute later starts a new day
    m = run([100, 110, 121, 133.1, 140], times=[T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY, T0 + 4 * DAY + MIN])
    assert m.daily_returns == 4


def test_short_span_warning() -> None:
    short = run([100, 150, 200], step=DAY + DAY // 4)  # 2.5 days
    (text,) = span_warnings(short)
    assert "2.5 days" in text and "CAGR" in text
    assert span_warnings(run([100] * (MIN_ANNUAL_DAYS + 1), step=DAY)) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"equity": [100, float("nan")]}, "finite"),
        ({"equity": [0, 1]}, "positive equity"),
        ({"equity": [100, 101], "times": [T0 + MIN, T0]}, "backwards"),
        ({"equity": [100, 101], "in_market": [True]}, "one value per bar"),
        ({"equity": [100, 101], "fees": -1.0}, "fees_paid"),
        ({"equity": [100, 101], "pnls": [float("inf")]}, "trade_pnls"),
        ({"equity": [100, 101], "ppy": 0.0}, "periods_per_year"),
        ({"equity": []}, "non-empty"),
    ],
)
def test_bad_inputs(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run(**kwargs)


def test_in_market_must_be_bool() -> None:
    with pytest.raises(ValueError, match="bool"):
        compute_metrics(np.array([T0, T0 + MIN]), np.array([1.0, 2.0]), np.array([]), np.array([0, 1]), 0.0)
