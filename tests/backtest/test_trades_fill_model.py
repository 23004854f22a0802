"""The trades fill model and latency (README "Fill model"): queue position, partial fills, trade-throughs, market
orders and stops on trade prices, latency in both directions, in the trades and the candle model."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D

import numpy as np
import pytest

from botkit import Context, Strategy
from botkit.backtest.importers import TradeSeries
from botkit.backtest.replay import Backtest, BacktestResult
from botkit.backtest.tape import Tape
from botkit.execution.oco import OcoMode
from botkit.market.grants import Grant
from botkit.market.orders import Fill, Order
from botkit.market.types import Trade, TradeBatch
from botkit.venues.simulated import FillModel
from tests.core.helpers import RULES, T0, Script, run, series

SELL, BUY = -1, 1


def tape(rows: list[tuple[int, float, float, int]], market: str = "BTC_USDT") -> Tape:
    """rows: (ms after T0, price, amount, taker side)."""
    n = len(rows)
    a: list[tuple[float, ...]] = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return Tape([TradeSeries(market, T0 + np.asarray(a[0], np.int64), np.arange(n, dtype=np.int64),
                             np.asarray(a[1], np.float64), np.asarray(a[2], np.float64), np.asarray(a[3], np.int8),
                             "test")])


class TradeScript(Strategy):
    """Calls `plan[i](ctx, trade)` on the i-th trade; records what it is told and when."""

    def __init__(self, plan: dict[int, Callable[[Context, Trade], object]]) -> None:
        super().__init__()
        self.plan = plan
        self.i = -1
        self.placed: list[Order] = []
        self.fills: list[tuple[int, Fill]] = []  # (ctx.now when seen, fill)
        self.updates: list[tuple[int, str, str, D]] = []  # (now, id, status, filled)
        self.seen: list[Trade] = []

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.i += 1
        self.seen.append(trade)
        step = self.plan.get(self.i)
        if step is not None:
            out = step(ctx, trade)
            if isinstance(out, Order):
                self.placed.append(out)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append((ctx.now, fill))

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.updates.append((ctx.now, order.client_id, order.status.value, order.filled))


def trades_run(strategy: Strategy, t: Tape, oco: OcoMode = "emulated", **model: object) -> BacktestResult:
    fm = FillModel(kind="trades", **model)  # type: ignore[arg-type]
    return Backtest(strategy, [], {"BTC_USDT": RULES}, {"USDT": D("10000"), "BTC": D("10")},
                    grant=Grant.of("orders.create,orders.delete,orders.read,balances.read"), fill_model=fm,
                    tape=t, oco=oco).run()


def test_a_queue_position_fill_arrives_only_after_the_volume_ahead_of_it_traded():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100")})
    rows = [(0, 101.0, 1.0, BUY),  # the order is placed here, 3 BTC estimated ahead of it at 100
            (10, 100.0, 1.0, SELL), (20, 100.0, 5.0, BUY),  # a taker BUY at 100 does not reach our bid
            (30, 100.0, 1.5, SELL), (40, 100.0, 0.4, SELL),  # 2.9 of the 3 ahead traded: still nothing
            (50, 100.0, 0.6, SELL),  # 0.1 more ahead, then 0.5 for us: a partial fill
            (60, 100.0, 0.2, SELL), (70, 101.0, 1.0, BUY)]
    res = trades_run(s, tape(rows), queue_ahead=D("3"))
    assert [f.time_ms - T0 for _, f in s.fills] == [50, 60]
    assert [f.amount for _, f in s.fills] == [D("0.5"), D("0.2")]
    assert all(f.maker and f.price == D("100") for _, f in s.fills)
    (order,) = s.placed
    statuses = [u[2] for u in s.updates if u[1] == order.client_id]
    assert statuses == ["open", "partially_filled", "partially_filled"]
    assert order.status.value == "partially_filled" and order.filled == D("0.7")
    # the rest (0.3 BTC at 100) stays locked; what the partial fills used is released exactly
    assert res.final_balances["USDT"] == D("10000") - D("70")


def test_partial_fills_sum_to_the_order_and_a_trade_through_fills_the_rest():
    s = TradeScript({0: lambda ctx, tr: ctx.sell("BTC_USDT", "2", "105")})
    rows = [(0, 104.0, 1.0, SELL), (10, 105.0, 0.25, BUY), (20, 105.0, 0.5, BUY), (30, 105.2, 0.01, BUY),
            (40, 104.0, 1.0, SELL)]
    res = trades_run(s, tape(rows))
    fills = [f for _, f in s.fills]
    assert [f.amount for f in fills] == [D("0.25"), D("0.5"), D("1.25")]  # the last: a trade through, the rest
    assert sum(f.amount for f in fills) == D("2") and s.placed[0].status.value == "filled"
    assert all(f.price == D("105") and f.maker for f in fills)
    fee = sum(f.fee for f in fills)
    assert fee == sum(RULES.fee(f.quote, True) for f in fills) == D("0.21")  # maker 0.1 % of each part
    assert res.final_balances["BTC"] == D("8")
    assert res.final_balances["USDT"] == D("10000") + D("210") - fee


def test_market_orders_fill_at_the_next_trade_with_slippage_and_stops_trigger_on_trade_prices():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1000"),
                     1: lambda ctx, tr: ctx.sell("BTC_USDT", "1", stop="95")})
    rows = [(0, 100.0, 1.0, BUY), (5, 100.5, 1.0, BUY), (10, 96.0, 1.0, SELL), (20, 94.5, 1.0, SELL),
            (30, 90.0, 1.0, SELL)]
    trades_run(s, tape(rows), slippage_pct=D("1"))
    (_, f1), (_, f2) = s.fills
    assert f1.price == D("101.51") and not f1.maker and f1.time_ms == T0 + 5  # 100.5 * 1.01, against the buyer
    assert f1.amount == D("9.851246")  # 1000 / 101.51 cut to 6 decimals
    assert f2.price == D("93.55") and f2.time_ms == T0 + 20  # 94.5 * 0.99: the first trade at or below 95


def test_with_latency_an_order_cannot_fill_on_trades_before_it_arrives():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100")})
    rows = [(0, 100.5, 1.0, BUY), (100, 99.0, 1.0, SELL), (499, 98.0, 1.0, SELL), (500, 99.5, 1.0, SELL)]
    trades_run(s, tape(rows), latency_ms=500)
    ((_, fill),) = s.fills
    assert fill.time_ms == T0 + 500  # placed at T0, arrived at T0 + 500: the earlier trade-throughs missed it
    s0 = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100")})
    trades_run(s0, tape(rows))
    assert s0.fills[0][1].time_ms == T0 + 100  # the same without latency


def test_with_fill_latency_the_strategy_sees_a_fill_only_that_much_later():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100")})
    rows = [(0, 100.5, 1.0, BUY), (100, 99.0, 1.0, SELL), (200, 99.0, 1.0, SELL), (349, 99.0, 1.0, SELL),
            (350, 99.0, 1.0, SELL), (400, 99.0, 1.0, SELL)]
    res = trades_run(s, tape(rows), fill_latency_ms=250)
    ((seen_at, fill),) = s.fills
    assert fill.time_ms == T0 + 100 and seen_at == T0 + 350  # filled at 100, heard of at the first event >= 350
    assert [u[2] for u in s.updates] == ["open", "filled"] and s.updates[1][0] == T0 + 350
    assert res.final_balances["BTC"] == D("10") + D("1") - D("0.001")


def test_a_cancel_takes_effect_only_when_it_arrives():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100"),
                     1: lambda ctx, tr: ctx.cancel_all("BTC_USDT")})
    rows = [(0, 100.5, 1.0, BUY), (1000, 100.4, 1.0, BUY), (1100, 99.0, 1.0, SELL), (1300, 99.0, 1.0, SELL)]
    trades_run(s, tape(rows), latency_ms=200)
    assert [f.time_ms - T0 for _, f in s.fills] == [1100]  # the cancel sent at 1000 arrives at 1200: too late
    s2 = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100"),
                      1: lambda ctx, tr: ctx.cancel_all("BTC_USDT")})
    rows2 = [(0, 100.5, 1.0, BUY), (1000, 100.4, 1.0, BUY), (1250, 99.0, 1.0, SELL)]
    trades_run(s2, tape(rows2), latency_ms=200)
    assert s2.fills == [] and s2.updates[-1][2] == "cancelled" and s2.updates[-1][0] == T0 + 1250


def test_candle_model_latency_delays_eligibility_and_fill_reports():
    data = series([(100.0, 101.0, 99.0, 100.0)] + [(100.0, 100.5, 95.0, 96.0)] * 4)
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "98")})
    res = run(s, [data], fill_model=FillModel(latency_ms=61_000))
    (fill,) = res.fills
    assert fill.time_ms == int(data.time_ms[3])  # placed at candle 1's open, arrives 61 s later: candle 3
    seen: list[int] = []

    class Seen(Script):
        def on_fill(self, ctx: Context, f: Fill) -> None:
            seen.append(ctx.now)

    res = run(Seen({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "98")}), [data],
              fill_model=FillModel(fill_latency_ms=90_000))
    (fill,) = res.fills
    assert fill.time_ms == int(data.time_ms[1])
    assert seen == [int(data.time_ms[2]) + 60_000]  # filled at candle 1's open, heard of at candle 2's close


class MarketMaker(Strategy):
    """Holds a bid and an ask around 100 from the start; each fill re-quotes around the fill's price. It decides
    only on order events, so trade-by-trade and batched delivery must give the same fills (a batch ends before any
    trade that can touch an order, so the strategy never hears of a fill later in one mode than in the other)."""

    def __init__(self) -> None:
        super().__init__()
        self.mid = 100.0
        self.seen = 0

    def quote(self, ctx: Context) -> None:
        ctx.buy("BTC_USDT", "0.02", f"{self.mid - 0.5:.2f}")
        ctx.sell("BTC_USDT", "0.02", f"{self.mid + 0.5:.2f}")

    def on_start(self, ctx: Context) -> None:
        self.quote(ctx)

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.seen += 1

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.mid = float(fill.price) + (0.5 if fill.side == "buy" else -0.5)
        ctx.cancel_all("BTC_USDT")
        self.quote(ctx)


class BatchedMaker(MarketMaker):
    def on_trades(self, ctx: Context, trades: TradeBatch) -> None:
        self.seen += len(trades)


def random_tape(n: int, seed: int = 3) -> Tape:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 50, n)).astype(np.int64)
    p = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    rows = list(zip(t.tolist(), p.tolist(), rng.exponential(0.02, n).tolist(),
                    np.where(rng.random(n) < 0.5, 1, -1).tolist(), strict=True))
    return tape(rows)


def test_batched_and_per_trade_delivery_give_the_same_fills():
    t = random_tape(20_000)
    one, many = MarketMaker(), BatchedMaker()
    a = trades_run(one, t, queue_ahead=D("0.05"))
    b = trades_run(many, t, queue_ahead=D("0.05"))
    assert len(a.fills) > 20
    assert [(f.time_ms, f.price, f.amount) for f in a.fills] == [(f.time_ms, f.price, f.amount) for f in b.fills]
    assert one.seen == many.seen == 20_000 == a.events
    assert a.final_balances == b.final_balances


def test_a_cancel_after_a_partial_fill_releases_exactly_the_rest_of_the_lock():
    s = TradeScript({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100"),
                     2: lambda ctx, tr: ctx.cancel_all("BTC_USDT")})
    rows = [(0, 100.5, 1.0, BUY), (10, 100.0, 0.3, SELL), (20, 100.2, 1.0, BUY), (30, 99.0, 5.0, SELL)]
    res = trades_run(s, tape(rows))
    ((_, fill),) = s.fills
    assert fill.amount == D("0.3") and s.placed[0].status.value == "cancelled" and s.placed[0].filled == D("0.3")
    assert res.final_balances["USDT"] == D("10000") - D("30")  # 70 USDT of the 100 locked came back
    assert res.final_balances["BTC"] == D("10") + D("0.3") - D("0.0003")


@pytest.mark.parametrize("oco", ["native", "emulated"])
def test_oco_stop_and_target_on_trades_and_ioc_that_cannot_take(oco: OcoMode):
    """A stop of an OCO group triggers on a trade at or through it. Native (the simulated venue's OCO): it fills at
    that trade. Emulated (the execution layer holds the stop, as on WhiteBIT): the trigger cancels the target and
    sends a market order, which fills at the next trade."""

    def exits(ctx: Context, tr: Trade) -> None:
        ctx.sell("BTC_USDT", "1", "110", oco="x")
        ctx.sell("BTC_USDT", "1", stop="95", oco="x")
        ctx.buy("BTC_USDT", "1", "90", ioc=True)

    s = TradeScript({0: exits})
    rows = [(0, 100.0, 1.0, BUY), (10, 99.0, 1.0, SELL), (20, 94.0, 1.0, SELL), (30, 93.0, 1.0, SELL),
            (40, 111.0, 1.0, BUY)]
    res = trades_run(s, tape(rows), oco=oco)
    ((_, fill),) = s.fills
    px, at = (D("94"), 20) if oco == "native" else (D("93"), 30)
    assert fill.price == px and fill.time_ms == T0 + at and not fill.maker  # a taker, at the trade price
    statuses = sorted(u[2] for u in s.updates if u[2] in ("filled", "cancelled"))
    assert statuses == ["cancelled", "cancelled", "filled"]  # target cancelled (oco), ioc expired, stop filled
    assert res.final_balances["BTC"] == D("9")
    assert res.final_balances["USDT"] == D("10000") + px - px * D("0.002")  # taker fee 0.2 %


class Bracket(Strategy):
    """On start and after each exit: buy 0.05 at market, then an OCO exit (target +0.4, stop -0.4) from the fill."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def on_start(self, ctx: Context) -> None:
        ctx.buy("BTC_USDT", "5")

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.seen += 1

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if fill.side == "buy":
            px = float(fill.price)
            ctx.sell("BTC_USDT", fill.amount - fill.fee, f"{px + 0.4:.2f}", oco=f"g{fill.time_ms}")
            ctx.sell("BTC_USDT", fill.amount - fill.fee, stop=f"{px - 0.4:.2f}", oco=f"g{fill.time_ms}")
        elif not ctx.open_orders("BTC_USDT"):
            ctx.buy("BTC_USDT", "5")


class BatchedBracket(Bracket):
    def on_trades(self, ctx: Context, trades: TradeBatch) -> None:
        self.seen += len(trades)


@pytest.mark.parametrize("oco", ["native", "emulated"])
def test_held_oco_stops_fill_the_same_in_batches_and_one_by_one(oco: OcoMode):
    t = random_tape(20_000, seed=5)
    one, many = Bracket(), BatchedBracket()
    a = trades_run(one, t, oco=oco)
    b = trades_run(many, t, oco=oco)
    stops = [o for o in a.orders if o.type == "stop_market" and o.status.value == "filled"]
    assert len(a.fills) > 20 and stops  # some exits were stops
    assert [(f.time_ms, f.side, f.price, f.amount) for f in a.fills] == \
        [(f.time_ms, f.side, f.price, f.amount) for f in b.fills]
    assert a.final_balances == b.final_balances and one.seen == many.seen == 20_000
