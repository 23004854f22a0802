"""OCO emulated by the execution layer (botkit/execution/oco.py), on the simulated venue with native OCO switched off
(`[backtest] oco = "emulated"`): the same engine code path a WhiteBIT run takes."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from botkit.backtest.replay import Backtest, BacktestResult
from botkit.config import BotConfig
from botkit.execution.engine import ExecutionEngine
from botkit.execution.journal import SqliteJournal
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.market.grants import Grant
from botkit.market.orders import OCO_REASON, Order
from botkit.venues.simulated import FillModel, SimulatedVenue

from .helpers import ETH, RULES, Script, series

FLAT = [(100.0, 101.0, 99.0, 100.0)]
SCOPES = "orders.create,orders.delete,orders.read,balances.read"


def run(strategy: Script, data: list, oco: str = "emulated", fill_model: FillModel | None = None) -> BacktestResult:
    return Backtest(strategy, data, {"BTC_USDT": RULES, "ETH_USDT": ETH}, {"USDT": D("10000")},
                    grant=Grant.of(SCOPES), fill_model=fill_model, oco=oco).run()  # type: ignore[arg-type]


def enter(ctx, c):
    return ctx.buy("BTC_USDT", "1", "100.5")  # marketable at the next open


def bracket(ctx, c):
    held = ctx.position("BTC_USDT")
    ctx.sell("BTC_USDT", held, "110", oco="g")
    return ctx.sell("BTC_USDT", held, stop="95", oco="g")


class Snapshots(Script):
    def __init__(self, plan):
        super().__init__(plan)
        self.snaps: list[Order] = []

    def on_order_update(self, ctx, order):
        super().on_order_update(ctx, order)
        self.snaps.append(order)


def test_take_profit_fill_cancels_the_held_stop_which_never_reached_the_venue():
    data = series(FLAT + [(100.2, 101.0, 100.0, 100.5), (100.5, 101.0, 100.0, 100.5), (105.0, 111.0, 104.0, 110.0),
                          (110.0, 110.0, 90.0, 91.0)])
    s = Snapshots({0: enter, 1: bracket})
    res = run(s, [data])
    stop = s.placed[1]
    target = next(o for o in res.orders if o.type == "limit" and o.side == "sell")
    assert [f.price for f in res.fills if f.side == "sell"] == [D("110")]
    assert target.status.value == "filled"
    assert stop.status.value == "cancelled" and stop.reject_reason == OCO_REASON and stop.type == "stop_market"
    opened = [o for o in s.snaps if o.client_id == stop.client_id and o.status.value == "open"]
    assert len(opened) == 1 and opened[0].held  # reported open, held locally
    assert stop.exchange_id is None  # it never went to the venue (which numbers what it accepts)
    # each state change reached the strategy once, as a snapshot
    assert [st for cid, st in s.updates if cid == stop.client_id] == ["open", "cancelled"]


def test_triggered_stop_cancels_the_take_profit_then_sells_at_the_next_open():
    data = series(FLAT + [(100.2, 101.0, 100.0, 100.5), (100.5, 101.0, 100.0, 100.5), (100.0, 101.0, 94.0, 96.0),
                          (93.0, 97.0, 92.0, 96.0)])
    s = Script({0: enter, 1: bracket})
    res = run(s, [data])
    stop = s.placed[1]
    target = next(o for o in res.orders if o.type == "limit" and o.side == "sell")
    (sell,) = [f for f in res.fills if f.side == "sell"]
    # triggered by the close of candle 3 (low 94 <= 95), sent as a market order, filled at candle 4's open
    assert sell.client_id == stop.client_id and sell.price == D("93") and sell.time_ms == int(data.time_ms[4])
    assert not sell.maker and sell.amount == stop.amount
    assert stop.status.value == "filled" and stop.type == "stop_market" and not stop.held
    assert target.status.value == "cancelled"
    assert [st for cid, st in s.updates if cid == stop.client_id] == ["open", "filled"]
    assert res.final_balances["BTC"] == 0 or res.final_balances["BTC"] < D("0.00001")


def test_one_candle_reaching_both_the_resting_take_profit_wins_where_native_takes_the_stop():
    """The documented difference: an emulated stop is checked on closed candles, after the exchange-side take-profit
    had its chance; the native simulated OCO takes the pessimistic stop."""
    data = series(FLAT + [(100.2, 101.0, 100.0, 100.5), (100.5, 101.0, 100.0, 100.5), (100.0, 111.0, 94.0, 100.0),
                          (100.0, 100.0, 100.0, 100.0)])
    emulated = run(Script({0: enter, 1: bracket}), [data])
    native = run(Script({0: enter, 1: bracket}), [data], oco="native")
    assert [f.price for f in emulated.fills if f.side == "sell"] == [D("110")]
    assert [f.price for f in native.fills if f.side == "sell"] == [D("95")]


class BracketOnFill(Script):
    """Places the bracket from on_fill, while the venue fills the entry on a candle (market time: its close)."""

    def on_fill(self, ctx, fill):
        super().on_fill(ctx, fill)
        if fill.side == "buy":
            self.placed.append(bracket(ctx, None))


def test_a_stop_placed_while_a_candle_fills_is_checked_from_the_next_candle_on():
    data = series(FLAT + [(100.2, 101.0, 90.0, 100.5), (100.5, 101.0, 99.0, 100.5), (100.5, 101.0, 94.0, 100.5),
                          (97.0, 97.0, 97.0, 97.0)])
    s = BracketOnFill({0: enter})
    res = run(s, [data])
    # candle 1 (low 90) filled the entry; the stop placed then is not triggered by it, but by candle 3 (low 94)
    assert [(f.side, f.price, f.time_ms) for f in res.fills] == [
        ("buy", D("100.2"), int(data.time_ms[1])), ("sell", D("97"), int(data.time_ms[4]))]


def test_the_strategy_can_cancel_a_held_stop():
    data = series(FLAT * 5)
    s = Script({0: enter, 1: bracket, 2: lambda ctx, c: ctx.cancel(ctx.open_orders("BTC_USDT")[-1])})
    res = run(s, [data])
    stop = s.placed[1]
    assert stop.status.value == "cancelled" and stop.reject_reason is None and not stop.held
    target = next(o for o in res.orders if o.type == "limit" and o.side == "sell")
    assert target.is_open  # the take-profit stays


def test_a_held_stop_survives_a_restart_through_the_journal(tmp_path: Path):
    """The stop is journaled as held; a new engine restores it (nothing for the venue to settle) and it still
    triggers, cancelling the take-profit and selling at market."""
    def engine(journal: SqliteJournal, venue: SimulatedVenue, now: list[int]) -> ExecutionEngine:
        return ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=Grant.of(SCOPES).scopes,
                               rules={"BTC_USDT": RULES}, risk=RiskManager(RiskLimits()), venue=venue,
                               clock=lambda: now[0], last_price=lambda m: 100.0, journal=journal)

    now = [1_000]
    v1 = SimulatedVenue({"BTC_USDT": RULES}, {"BTC": D("1")}, supports_oco=False)
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        e1 = engine(j, v1, now)
        tp = e1.place("BTC_USDT", "sell", "1", "110", oco_group="g")
        stop = e1.place("BTC_USDT", "sell", "1", stop_price="95", oco_group="g")
        assert stop.held and stop.status.value == "open" and tp.status.value == "open"
        e1.cancel(tp)  # (the simulated venue cannot be restarted: only the held stop crosses the restart)
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        restored = j.open_orders()
        assert [(o.client_id, o.type, o.held, o.stop_price) for o in restored] == [
            (stop.client_id, "stop_market", True, D("95"))]
        v2 = SimulatedVenue({"BTC_USDT": RULES}, {"BTC": D("1")}, supports_oco=False)
        e2 = engine(j, v2, now)
        assert e2.restore(restored) == 1
        (st,) = restored
        assert e2.at_venue(st) is None  # held here: nothing for the venue to settle
        now[0] = 2_000
        e2.oco.on_prices("BTC_USDT", 2_000, 96.0, 99.0)
        assert st.held  # not reached
        e2.oco.on_prices("BTC_USDT", 2_000, 94.0, 99.0)
        assert not st.held and st.is_open
        v2.process_candle("BTC_USDT", 2_000, 93.0, 93.0, 93.0, 62_000)
        assert st.status.value == "filled" and st.filled == D("1") and st.fills[0].price == D("93")
        assert [e.kind for e in j.events(st.client_id)] == ["held", "restored", "triggered", "submit", "accepted",
                                                             "fill"]


def test_backtests_emulate_oco_like_whitebit_unless_told_native():
    cfg = BotConfig(name="t", strategy={"plugin": "x.py:X"}, markets={"BTC_USDT": {}})
    assert cfg.oco_mode() == "emulated"
    assert BotConfig(name="t", strategy={"plugin": "x.py:X"}, markets={"BTC_USDT": {}},
                     backtest={"oco": "native"}).oco_mode() == "native"
    with pytest.raises(ValueError, match="oco"):
        BotConfig(name="t", strategy={"plugin": "x.py:X"}, markets={"BTC_USDT": {}}, backtest={"oco": "auto"})


def test_a_stop_triggered_before_a_restart_is_settled_as_its_market_order(tmp_path: Path):
    """Journaled after its trigger (no longer held): the venue must settle the market order sent under the stop's
    client id, and that order's fills are the stop's."""
    from botkit.market.orders import Fill

    now = [1_000]
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        e1 = ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=Grant.of(SCOPES).scopes,
                             rules={"BTC_USDT": RULES}, risk=RiskManager(RiskLimits()),
                             venue=SimulatedVenue({"BTC_USDT": RULES}, {"BTC": D("1")}, supports_oco=False),
                             clock=lambda: now[0], last_price=lambda m: 100.0, journal=j)
        stop = e1.place("BTC_USDT", "sell", "1", stop_price="95", oco_group="g")
        e1.oco.on_prices("BTC_USDT", 1_000, 94.0, 99.0)  # sent; the process dies before the fill
        assert not stop.held and stop.exchange_id is not None
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        (st,) = j.open_orders()
        assert st.type == "stop_market" and not st.held and st.exchange_id == stop.exchange_id
        e2 = ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=Grant.of(SCOPES).scopes,
                             rules={"BTC_USDT": RULES}, risk=RiskManager(RiskLimits()),
                             venue=SimulatedVenue({"BTC_USDT": RULES}, {"BTC": D("1")}, supports_oco=False),
                             clock=lambda: now[0], last_price=lambda m: 100.0, journal=j)
        e2.restore([st])
        child = e2.at_venue(st)
        assert child is not None and child is not st
        assert (child.client_id, child.type, child.side, child.amount, child.exchange_id) == (
            st.client_id, "market", "sell", D("1"), st.exchange_id)
        # what the WhiteBIT venue's reconciliation reports for it
        e2.order_accepted(child, 2_000, st.exchange_id)
        assert st.status.value == "open" and child.status.value == "open"
        e2.order_filled(child, Fill(st.client_id, "BTC_USDT", "sell", D("93"), D("1"), D("93"), D("0.186"), "USDT",
                                    False, 2_000), True)
        assert st.status.value == "filled" and st.filled == D("1") and e2.open == {}


def test_a_stop_limit_alone_is_refused_by_the_simulated_venue_saying_what_to_use():
    data = series(FLAT * 3)
    s = Script({0: lambda ctx, c: ctx.sell("BTC_USDT", "0.1", "94", stop="95")})
    res = run(s, [data])
    (rej,) = res.rejections
    assert rej.rule == "venue" and "stop-limit" in rej.message and "stop= without price" in rej.message
    assert s.placed[0].type == "stop_limit" and s.placed[0].status.value == "rejected"


def test_a_held_stop_limit_goes_out_as_a_limit_at_its_price():
    def limit_bracket(ctx, c):
        held = ctx.position("BTC_USDT")
        ctx.sell("BTC_USDT", held, "110", oco="g")
        return ctx.sell("BTC_USDT", held, "94.5", stop="95", oco="g")

    data = series(FLAT + [(100.2, 101.0, 100.0, 100.5), (100.5, 101.0, 100.0, 100.5), (100.0, 101.0, 94.8, 96.0),
                          (94.0, 94.2, 93.0, 93.5), (93.5, 95.0, 93.0, 94.0)])
    s = Script({0: enter, 1: limit_bracket})
    res = run(s, [data])
    stop = s.placed[1]
    (sell,) = [f for f in res.fills if f.side == "sell"]
    # triggered on candle 3 (low 94.8 <= 95); its limit at 94.5 rests through candle 4 (high 94.2) and fills as a
    # maker at its own price on candle 5 (high 95)
    assert (sell.client_id, sell.price, sell.maker, sell.time_ms) == (stop.client_id, D("94.5"), True,
                                                                      int(data.time_ms[5]))
    assert stop.status.value == "filled" and stop.type == "stop_limit"


def test_trades_the_bot_receives_trigger_a_held_stop_too():
    """Live, a strategy that subscribes to trades has its held stops checked on each trade, in market time."""
    import logging

    from botkit import Strategy
    from botkit.loop import EventLoop, MarketClock
    from botkit.market.buffer import CandleBuffer, MarketState
    from botkit.market.types import Trade

    clock = MarketClock(1_000)
    venue = SimulatedVenue({"BTC_USDT": RULES}, {"BTC": D("1")}, supports_oco=False)
    engine = ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=Grant.of(SCOPES).scopes,
                             rules={"BTC_USDT": RULES}, risk=RiskManager(RiskLimits()), venue=venue, clock=clock,
                             last_price=lambda m: 100.0)
    loop = EventLoop(Strategy(), engine, MarketState({"BTC_USDT": CandleBuffer.live(4)}), clock,
                     logger=logging.getLogger("t"), fills=venue)
    tp = engine.place("BTC_USDT", "sell", "1", "110", oco_group="g")
    stop = engine.place("BTC_USDT", "sell", "1", stop_price="95", oco_group="g")
    loop.trade(Trade("BTC_USDT", 2_000, 96.0, 0.1, "sell"))
    assert stop.held and tp.is_open
    loop.trade(Trade("BTC_USDT", 3_000, 95.0, 0.1, "sell"))
    assert not stop.held and tp.status.value == "cancelled"  # sent at market: the venue fills it on the next candle
