"""Candle events kept for reuse (a sweep worker's) replay exactly like candles built afresh for each backtest."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from botkit import Context, Strategy
from botkit.backtest.candle_events import CHUNK, CandleEvents
from botkit.backtest.data import CandleSeries
from botkit.backtest.replay import Backtest, BacktestError, BacktestResult
from botkit.backtest.sample import generate_candles
from botkit.market.grants import Grant
from botkit.market.types import Candle
from tests.core.helpers import ETH, RULES, T0

SCOPES = Grant.of("orders.create,orders.delete,orders.read,balances.read")


class Flipper(Strategy):
    """Buys every 997th candle of a market and sells every 1,499th: orders throughout, in both markets."""

    scopes = frozenset({"orders.create", "balances.read"})

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.seen: list[Candle] = []
        self.stop_at = stop_at

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.seen.append(candle)
        k = len(self.seen)
        if k == self.stop_at:
            raise RuntimeError("stop here")
        rules = ctx.rules(candle.market)
        if k % 997 == 0 and ctx.balance(rules.money).available > 100:
            ctx.buy(candle.market, Decimal("50"))
        elif k % 1499 == 0:
            held = rules.truncate_amount(ctx.balance(rules.stock).available)
            if held >= rules.min_amount:
                ctx.sell(candle.market, held)


def two_markets(n: int = CHUNK + 5000) -> list[CandleSeries]:
    btc = generate_candles("BTC_USDT", start_ms=T0, count=n, seed=3)
    eth = generate_candles("ETH_USDT", start_ms=T0 + 60_000 * 7, count=n - 300, seed=4, start_price=2000.0)
    return [btc, eth]


def replay(series: list[CandleSeries], events: CandleEvents | None = None,
           strategy: Flipper | None = None) -> tuple[BacktestResult, Flipper]:
    s = strategy or Flipper()
    result = Backtest(s, series, {"BTC_USDT": RULES, "ETH_USDT": ETH}, {"USDT": Decimal("10000")}, grant=SCOPES,
                      events=events).run()
    return result, s


def same(a: BacktestResult, b: BacktestResult) -> None:
    assert [(f.time_ms, f.market, f.side, f.price, f.amount) for f in a.fills] == \
        [(f.time_ms, f.market, f.side, f.price, f.amount) for f in b.fills]
    assert np.array_equal(a.equity, b.equity) and np.array_equal(a.event_time_ms, b.event_time_ms)
    assert a.final_balances == b.final_balances and a.events == b.events


@pytest.mark.parametrize("markets", [1, 2])
def test_kept_candles_replay_exactly_like_fresh_ones(markets: int) -> None:
    series = two_markets()[:markets]
    fresh, seen_fresh = replay(series)
    events = CandleEvents(series, keep=True)
    first, _ = replay(series, events)  # builds and keeps
    assert events.built
    kept = [c.candles for c in events.chunks()]
    again, seen_again = replay(series, events)  # reuses
    assert [c.candles for c in events.chunks()] == kept  # the very same lists
    assert all(a is b for x, y in zip(kept, [c.candles for c in events.chunks()], strict=True)
               for a, b in zip(x, y, strict=True))  # ... of the very same candle objects: nothing rebuilt
    assert len(fresh.fills) > 10
    same(fresh, first)
    same(fresh, again)
    assert seen_fresh.seen == seen_again.seen and len(seen_fresh.seen) == len(events)


def test_a_replay_that_stops_early_keeps_nothing() -> None:
    series = two_markets()
    events = CandleEvents(series, keep=True)
    result, _ = replay(series, events, Flipper(stop_at=CHUNK + 10))  # past the first chunk
    assert result.outcome == "halted"
    assert not events.built
    complete, _ = replay(series, events)
    assert events.built
    same(complete, replay(series)[0])


def test_events_of_other_data_are_refused() -> None:
    series = two_markets()
    other = two_markets()  # equal values, other objects: the check is identity, which costs nothing per run
    with pytest.raises(BacktestError, match="other data"):
        replay(series, CandleEvents(other))
    with pytest.raises(BacktestError, match="other data"):
        replay(series[:1], CandleEvents(series))


def test_kept_event_arrays_are_read_only() -> None:
    events = CandleEvents(two_markets(), keep=True)
    for arr in (events.ev_m, events.ev_i, events.close_t):
        assert arr is not None
        with pytest.raises(ValueError):
            arr[0] = 0
    assert CandleEvents(two_markets()).close_t.flags.writeable  # a single backtest's own: no need
