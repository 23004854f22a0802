"""Round trips and FIFO lots against hand-worked fills, their accounting identity, and fill reasons from orders."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from botkit.backtest.data import load_candles
from botkit.backtest.replay import Backtest
from botkit.backtest.trades import END_OF_DATA, Lot, RoundTrip, fill_reasons, lots, order_outcomes, round_trips_of
from botkit.market.grants import Grant
from botkit.market.orders import Fill, Order, OrderStatus
from botkit.market.rules import MarketRules
from botkit.plugins import build_strategy

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "backtests" / "sample" / "BTC_USDT_1m.csv"
RULES = MarketRules("BTC_USDT", "BTC", "USDT", stock_prec=6, money_prec=2, min_amount=D("0.00001"),
                    min_total=D("1"), maker_fee=D("0.1"), taker_fee=D("0.1"))
R = {"BTC_USDT": RULES}
T = 1_700_000_000_000


def buy(t: int, price: str, amount: str, fee_pct: str = "0", cid: str = "b") -> Fill:
    a, p = D(amount), D(price)
    return Fill(cid, "BTC_USDT", "buy", p, a, p * a, a * D(fee_pct) / 100, "BTC", False, T + t)


def sell(t: int, price: str, amount: str, fee_pct: str = "0", cid: str = "s") -> Fill:
    a, p = D(amount), D(price)
    return Fill(cid, "BTC_USDT", "sell", p, a, p * a, p * a * D(fee_pct) / 100, "USDT", False, T + t)


def identity_gap(x: RoundTrip | Lot) -> float:
    """pnl - ((exit - entry) * amount - fees), for a long; the sign flips for a short. Zero by construction."""
    assert x.exit_price is not None
    amount = x.closed_amount if isinstance(x, RoundTrip) else x.amount
    gross = (x.exit_price - x.entry_price) * amount
    if x.side == "short":
        gross = -gross
    return x.pnl - (float(gross) - x.fees)


def test_round_trip_prices_are_volume_weighted_and_reconcile_with_pnl() -> None:
    fills = [buy(0, "100", "1", "0.1"), buy(60_000, "110", "3", "0.1"), sell(120_000, "120", "3.996", "0.1")]
    (rt,) = round_trips_of(fills, R, {"BTC_USDT": 120.0})
    assert rt.closed and rt.side == "long" and rt.fills == 3
    assert rt.entry_price == D("107.5")  # (100 * 1 + 110 * 3) / 4, not the first fill's 100
    assert rt.exit_price == D("120")
    assert rt.closed_amount == D("3.996")  # base bought net of the 0.004 BTC fee, all sold
    # by hand: spent 430 USDT, got 3.996 * 120 * 0.999 = 479.040480
    assert rt.pnl == pytest.approx(3.996 * 120 * 0.999 - 430, abs=1e-12)
    # fees: 0.4795... USDT on the sell + 0.004 BTC at the average entry price 107.5
    assert rt.fees == pytest.approx(3.996 * 120 * 0.001 + 0.004 * 107.5, abs=1e-12)
    assert identity_gap(rt) == pytest.approx(0.0, abs=1e-9)


def test_open_round_trip_is_marked_at_the_last_close() -> None:
    (rt,) = round_trips_of([buy(0, "100", "2")], R, {"BTC_USDT": 90.0})
    assert not rt.closed and rt.exit_ms is None and rt.exit_reason == END_OF_DATA
    assert rt.pnl == pytest.approx(-20.0) and rt.exit_price == D("90")
    assert identity_gap(rt) == pytest.approx(0.0, abs=1e-9)


def test_fifo_lots_by_hand() -> None:
    fills = [buy(0, "100", "1", cid="b1"), buy(60_000, "110", "1", cid="b2"), sell(120_000, "120", "1.5"),
             sell(180_000, "90", "0.5")]
    out = lots(fills, R, {"BTC_USDT": 95.0}, {"BTC_USDT": T + 240_000})
    assert [(x.entry_id, x.amount, x.closed) for x in out] == [("b1", D("1"), True), ("b2", D("1"), True)]
    first, second = out
    assert first.exit_price == D("120") and first.pnl == pytest.approx(20.0)  # 1 @ 100 -> 120
    # the second lot: 0.5 sold at 120 and 0.5 at 90 -> exit 105, pnl 0.5 * 10 - 0.5 * 20 = -5
    assert second.exit_price == D("105") and second.pnl == pytest.approx(-5.0)
    assert second.exit_ms == T + 180_000 and second.duration_ms == 120_000
    # the same fills are a single round trip, whose pnl is the lots' sum
    (rt,) = round_trips_of(fills, R, {"BTC_USDT": 95.0})
    assert rt.pnl == pytest.approx(first.pnl + second.pnl)


def test_lots_with_fees_partial_open_rest_and_a_short() -> None:
    fills = [buy(0, "100", "2", "0.1", cid="b1"), sell(60_000, "105", "1", "0.1"),
             sell(120_000, "104", "1.5", "0.1", cid="s2"), buy(180_000, "101", "0.2", cid="b3")]
    out = lots(fills, R, {"BTC_USDT": 103.0}, {"BTC_USDT": T + 240_000})
    long_lot, short_lot = out
    # the buy nets 1.998 BTC: 1 sold at 105, 0.998 at 104; the rest (0.502) of the second sell opens a short lot
    assert long_lot.side == "long" and long_lot.amount == D("1.998") and long_lot.closed
    assert short_lot.side == "short" and short_lot.entry_id == "s2"
    assert not short_lot.closed and short_lot.exit_reason == END_OF_DATA  # 0.2 bought back, 0.302 open
    cost = 200.0  # 2 BTC at 100, fee taken in BTC
    proceeds = 105 * 0.999 + 0.998 * 104 * 0.999
    assert long_lot.pnl == pytest.approx(proceeds - cost, abs=1e-9)
    short_proceeds = 0.502 * 104 * 0.999
    assert short_lot.pnl == pytest.approx(short_proceeds - (0.2 * 101 + 0.302 * 103), abs=1e-9)
    for x in out:
        assert identity_gap(x) == pytest.approx(0.0, abs=1e-9)


def test_dust_below_the_amount_step_closes_a_lot_and_is_absorbed_later() -> None:
    # a market buy leaves 0.0000009 BTC below the step after the sell of what can be sold
    fills = [buy(0, "100", "1.0000009"), sell(60_000, "110", "1"), buy(120_000, "100", "1"),
             sell(180_000, "105", "1.000001")]
    out = lots(fills, R, {"BTC_USDT": 100.0}, {"BTC_USDT": T + 240_000})
    assert [x.closed for x in out] == [True, True]  # no third lot from the dust, no open rest
    assert sum(x.pnl for x in out) == pytest.approx(10 + 5, abs=1e-3)


def _order(cid: str, typ: str, oco: str | None, status: OrderStatus, filled: str = "0") -> Order:
    o = Order(cid, "BTC_USDT", "sell", typ, D("1"), price=D("1") if typ == "limit" else None, oco_group=oco)  # type: ignore[arg-type]
    o.status, o.filled = status, D(filled)
    return o


def test_fill_reasons_and_outcomes_from_orders() -> None:
    orders = [
        _order("e", "limit", None, OrderStatus.FILLED, "1"),
        _order("tp", "limit", "g1", OrderStatus.FILLED, "1"),
        _order("sl", "stop_market", "g1", OrderStatus.CANCELLED),
        _order("tp2", "limit", "g2", OrderStatus.CANCELLED),
        _order("sl2", "stop_market", "g2", OrderStatus.FILLED, "1"),
        _order("m", "market", None, OrderStatus.CANCELLED),
        _order("o", "limit", "g3", OrderStatus.OPEN),
        _order("x", "limit", "g4", OrderStatus.FILLED, "1"),  # an OCO without a stop: not a take-profit
    ]
    assert fill_reasons(orders) == {"e": "signal", "tp": "take-profit", "sl": "stop", "tp2": "take-profit",
                                    "sl2": "stop", "m": "signal", "o": "signal", "x": "signal"}
    assert order_outcomes(orders) == {"cancelled": 1, "filled": 4, "oco_cancelled": 2, "open_at_end": 1}


def _sample_run(plugin: str, params: dict[str, object]):
    series = load_candles(SAMPLE, "BTC_USDT")
    strategy = build_strategy(plugin, params)
    grant = Grant.of("orders.create,orders.delete,orders.read,balances.read")
    return Backtest(strategy, [series], R, {"USDT": D("10000")}, grant=grant).run()


def test_a_grid_bot_has_many_lots_and_both_views_add_up_to_the_equity_change() -> None:
    res = _sample_run(str(ROOT / "strategies" / "grid.py") + ":GridBot",
                      {"levels": 5, "spacing_pct": "0.4", "level_quote": "300", "recenter_pct": "2.5"})
    last = {"BTC_USDT": float(res.series[0].close[-1])}
    end = {"BTC_USDT": int(res.series[0].time_ms[-1] + 60_000)}
    lot_list = lots(res.fills, R, last, end)
    closed_trips = [t for t in res.round_trips if t.closed]
    buys = sum(1 for f in res.fills if f.side == "buy")
    assert len(res.fills) > 100 and len(closed_trips) < 10
    assert len(lot_list) == buys  # one lot per entry fill
    change = float(res.equity[-1] - res.equity[0])
    assert sum(x.pnl for x in lot_list) == pytest.approx(change, abs=0.01)
    assert sum(t.pnl for t in res.round_trips) == pytest.approx(change, abs=0.01)
    for x in [*lot_list, *res.round_trips]:
        assert identity_gap(x) == pytest.approx(0.0, abs=1e-6)


def test_bollinger_fills_carry_stop_and_take_profit_reasons() -> None:
    res = _sample_run(str(ROOT / "strategies" / "bollinger_reversion.py") + ":BollingerReversion", {})
    reasons = fill_reasons(res.orders)
    by_id = {o.client_id: o for o in res.orders}
    seen = {reasons[f.client_id] for f in res.fills}
    assert seen == {"signal", "stop", "take-profit"}
    for f in res.fills:
        o = by_id[f.client_id]
        if reasons[f.client_id] == "stop":
            assert o.type == "stop_market" and f.side == "sell"
        elif reasons[f.client_id] == "take-profit":
            assert o.type == "limit" and o.oco_group is not None and f.side == "sell"
        else:
            assert f.side == "buy"  # this strategy's entries are its only signal orders
    # every exit pair whose one side filled has its other side cancelled by the OCO
    filled_groups = {o.oco_group for o in res.orders if o.oco_group and o.status == OrderStatus.FILLED}
    assert order_outcomes(res.orders)["oco_cancelled"] == len(filled_groups)
    assert [t.exit_reason for t in res.round_trips if t.closed] == [
        reasons[max((f for f in res.fills if f.time_ms == t.exit_ms), key=lambda f: f.side == "sell").client_id]
        for t in res.round_trips if t.closed
    ]
