"""The same strategy on candles and on trades of one window (real XRP/ETH trades, ../shared/data) gives comparable,
explainable results.

The candle run fills on candles built from the trades (`fills = "candles"`); the trades run replays the trades
themselves (`fills = "trades"`) and delivers the same candles to `on_candle`, each before the first trade at or
after its close. So the strategy decides on identical data in both runs, and the differences come from the fill
models alone:

- market orders: the candle model fills at the next candle's open, the trades model at the first trade after the
  order; with candles built from the trades that is the same trade, so entries, prices and balances are equal;
- resting limits: the candle model fills on a later candle whose low (high) goes through the price; the trades
  model on a later trade through it, which is the same event (a candle's low is its lowest trade), at the same
  price. Two differences remain, both from what each model knows: (1) the candle model calls an order marketable
  on arrival when the next open is at or through its price and fills it there as a taker, while the trades model
  judges arrival against the last trade the strategy saw, so such an order usually rests and fills later at its own
  price (never earlier, never better); (2) at exactly the price the candle model never fills (touch = false), the
  trades model fills from the volume traded there once the queue ahead (queue_ahead) has traded, in parts. With an
  unreachable queue only (1) remains; with no queue the trades model fills more orders, and sooner.
"""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np

from botkit import Context, Strategy
from botkit.backtest.importers import load_trades
from botkit.backtest.replay import Backtest, BacktestResult
from botkit.backtest.tape import Tape, candles_from_trades
from botkit.market.grants import Grant
from botkit.market.rules import MarketRules
from botkit.market.types import Candle
from botkit.venues.simulated import FillModel

M = "XRP_ETH"
RULES = MarketRules(M, "XRP", "ETH", stock_prec=0, money_prec=8, maker_fee=D("0.1"), taker_fee=D("0.1"))


class Momentum(Strategy):
    """Market orders: buy 0.5 ETH of XRP after a rising candle when flat, sell it all after a falling one."""

    def on_candle(self, ctx: Context, c: Candle) -> None:
        held = ctx.tradable_position(M)
        if held == 0 and c.close > c.open:
            ctx.buy(M, "0.5")
        elif held > 0 and c.close < c.open:
            ctx.sell(M, held)


class Ladder(Strategy):
    """Resting limits that do not depend on fills: every 7th candle a bid of 100 XRP at its low and an ask at its
    high, never cancelled. The same orders exist in both runs, so each one's fill can be compared."""

    def __init__(self) -> None:
        super().__init__()
        self.i = 0

    def on_candle(self, ctx: Context, c: Candle) -> None:
        self.i += 1
        if self.i % 7 == 0:
            ctx.buy(M, "100", f"{c.low:.8f}", client_id=f"b{self.i}")
            ctx.sell(M, "100", f"{c.high:.8f}", client_id=f"s{self.i}")


def both(strategy: type[Strategy], path, queue_ahead: D = D(0)) -> tuple[BacktestResult, BacktestResult]:
    trades = load_trades(path, M)
    candles, _ = candles_from_trades(trades, 60_000)
    grant = Grant.of("orders.create,orders.delete,orders.read,balances.read")
    bal = {"ETH": D("100"), "XRP": D("100000")}
    by_candles = Backtest(strategy(), [candles], {M: RULES}, bal, fill_model=FillModel(), grant=grant).run()
    by_trades = Backtest(strategy(), [], {M: RULES}, bal, tape=Tape([trades]),
                         fill_model=FillModel(kind="trades", queue_ahead=queue_ahead), grant=grant).run()
    assert by_trades.events == len(trades) and by_candles.events == len(candles)
    return by_candles, by_trades


def candle_of(res: BacktestResult, time_ms: int) -> tuple[float, float]:
    s = res.series[0]
    i = int(np.searchsorted(s.time_ms, time_ms, "right")) - 1
    return float(s.low[i]), float(s.high[i])


def test_market_orders_give_the_same_entries_prices_and_balances(shared_data):
    c, t = both(Momentum, shared_data / "trades" / "XRP_ETH_trades.csv")
    assert len(c.fills) > 50
    assert [(f.side, f.price, f.amount) for f in c.fills] == [(f.side, f.price, f.amount) for f in t.fills]
    assert c.final_balances == t.final_balances
    assert len([f for f in c.fills if f.side == "buy"]) == len([f for f in t.fills if f.side == "buy"])


def test_resting_limits_fill_in_the_same_candle_at_the_same_price_unless_the_candle_model_takes(shared_data):
    """With an unreachable queue (only trade-throughs fill) an order the candle model fills as a maker (a later
    candle went through its price) fills in the same candle at the same price in the trades model. The candle model
    also calls an order "marketable on arrival" when the next open is at or through its price and fills it there as
    a taker; the trades model judges arrival against the last trade (the close the strategy saw), so such an order
    rests and fills only on a trade through its price, at its price: never earlier, never at a better price. (The
    trades model takes on arrival only an order through the last trade, or at it when that trade's taker was on the
    order's side: rare here, since bids are placed at a candle's low and asks at its high.)"""
    c, t = both(Ladder, shared_data / "trades" / "XRP_ETH_trades.csv", queue_ahead=D("1e12"))
    oc = {o.client_id: o for o in c.orders}
    ot = {o.client_id: o for o in t.orders}
    assert oc.keys() == ot.keys() and len(oc) > 100
    same = took = 0
    for cid, a in oc.items():
        b = ot[cid]
        assert b.price is not None
        for f in b.fills:  # whole (no touches fill), at its price as a maker or no worse as a taker
            assert f.amount == b.amount
            assert f.price == b.price if f.maker else (f.price <= b.price if b.side == "buy" else f.price >= b.price)
        if b.fills and not b.fills[0].maker:
            continue
        if not a.fills:
            assert not b.fills, cid  # nothing went through its price after it was placed
            continue
        (fa,) = a.fills
        if fa.maker:
            same += 1
            (fb,) = b.fills
            assert fb.price == fa.price and candle_of(c, fa.time_ms) == candle_of(t, fb.time_ms), cid
        else:
            took += 1
            assert fa.time_ms == int(c.series[0].time_ms[np.searchsorted(c.series[0].time_ms, a.created_ms)])
            for fb in b.fills:
                assert fb.time_ms >= fa.time_ms
                assert (fb.price >= fa.price) if a.side == "buy" else (fb.price <= fa.price)
    assert same > 50 and 0 < took < same


def test_with_no_queue_ahead_orders_also_fill_at_exactly_their_price_in_parts(shared_data):
    """With nothing queued ahead, volume traded at exactly an order's price fills it (in parts): every order the
    candle model fills on a trade-through is filled by the trades model no later, and some only the trades model
    fills (touches)."""
    c, t = both(Ladder, shared_data / "trades" / "XRP_ETH_trades.csv", queue_ahead=D(0))
    oc = {o.client_id: o for o in c.orders}
    ot = {o.client_id: o for o in t.orders}
    printed = set(load_trades(shared_data / "trades" / "XRP_ETH_trades.csv", M).price.tolist())
    only_trades = [cid for cid in oc if ot[cid].fills and not oc[cid].fills]
    assert only_trades
    for cid, a in oc.items():
        b = ot[cid]
        assert b.price is not None
        if a.fills and a.fills[0].maker:  # a trade-through: the trades model filled by then (in that candle)
            assert b.fills and b.fills[0].time_ms < a.fills[-1].time_ms + 60_000, cid
        for f in b.fills:  # at the order's price in a candle that reached it (or a taker on arrival, no worse)
            low, high = candle_of(t, f.time_ms)
            if f.maker:
                assert f.price == b.price
                assert (low <= float(f.price)) if b.side == "buy" else (float(f.price) <= high)
            else:  # a price the tape printed (this trade's or the one before), no worse than the limit
                assert float(f.price) in printed
                assert (f.price <= b.price) if b.side == "buy" else (f.price >= b.price)
        if len(b.fills) > 1:
            assert sum(f.amount for f in b.fills) == b.filled
    assert any(len(o.fills) > 1 for o in t.orders)  # partial fills happened
