"""The simulated venue's fill model, rule by rule (README "Fill model")."""

from decimal import Decimal as D

import pytest

from botkit.execution.engine import UndeclaredScope
from botkit.execution.risk import RiskLimits
from botkit.market.grants import InsufficientScope
from botkit.venues.simulated import FillModel

from .helpers import Script, run, series

FLAT = [(100.0, 101.0, 99.0, 100.0)]


def test_market_buy_fills_at_next_open_with_slippage_and_taker_fee_in_base():
    data = series(FLAT + [(110.0, 112.0, 108.0, 111.0), (111.0, 111.0, 111.0, 111.0)])
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1000")})
    res = run(s, [data], fill_model=FillModel(slippage_pct=D("1")))
    (fill,) = res.fills
    assert fill.price == D("111.10")  # 110 * 1.01, rounded against the buyer
    assert fill.amount == D("9.000900")  # 1000 / 111.10 truncated to 6 decimals
    assert fill.fee == fill.amount * D("0.002") and fill.fee_asset == "BTC" and not fill.maker
    assert fill.time_ms == int(data.time_ms[1])
    assert res.final_balances["USDT"] == D("10000") - fill.amount * fill.price
    assert res.final_balances["BTC"] == fill.amount - fill.fee


def test_resting_limit_fills_only_when_traded_through_as_maker():
    data = series(FLAT + [(100.0, 100.5, 95.0, 96.0), (96.0, 97.0, 94.0, 95.0), (95.0, 96.0, 93.0, 94.0)])
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "94")})
    res = run(s, [data])
    (fill,) = res.fills
    assert fill.price == D("94") and fill.maker and fill.time_ms == int(data.time_ms[3])
    assert fill.fee == D("0.001")


def test_touch_option_fills_on_equal_low():
    data = series(FLAT + [(100.0, 100.5, 95.0, 96.0), (96.0, 97.0, 94.0, 95.0)])
    plan = {0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "94")}
    assert run(Script(plan), [data]).fills == []
    assert len(run(Script(plan), [data], fill_model=FillModel(touch=True)).fills) == 1


def test_marketable_limit_fills_at_open_as_taker():
    data = series(FLAT + [(98.0, 99.0, 97.0, 98.0)])
    res = run(Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "99.5")}), [data])
    (fill,) = res.fills
    assert fill.price == D("98") and not fill.maker


def test_post_only_that_would_cross_is_rejected_at_once():
    data = series(FLAT * 3)
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "100.5", post_only=True)})
    res = run(s, [data])
    assert res.fills == [] and [r.rule for r in res.rejections] == ["post_only"]
    assert s.placed[0].status.value == "rejected"


def test_ioc_not_marketable_is_cancelled():
    data = series(FLAT + [(100.0, 100.0, 90.0, 95.0)])
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "99", ioc=True)})
    res = run(s, [data])
    assert res.fills == [] and s.placed[0].status.value == "cancelled"


def test_stop_and_target_in_one_candle_stop_wins():
    def enter(ctx, c):
        return ctx.buy("BTC_USDT", "1", "100.5")  # marketable at next open 100.2

    def exits(ctx, c):
        held = ctx.position("BTC_USDT")
        ctx.sell("BTC_USDT", held, "110", oco="g")
        return ctx.sell("BTC_USDT", held, stop="95", oco="g")

    data = series(FLAT + [(100.2, 101.0, 100.0, 100.5), (100.5, 101.0, 100.0, 100.5),
                          (100.0, 111.0, 94.0, 100.0)])
    s = Script({0: enter, 1: exits})
    res = run(s, [data], oco="native")  # the simulated venue's own OCO (tests/core/test_oco_emulation.py: emulated)
    sells = [f for f in res.fills if f.side == "sell"]
    assert len(sells) == 1 and sells[0].price == D("95")
    statuses = dict(s.updates)
    target = [o for o in res.orders if o.type == "limit" and o.side == "sell"][0]
    assert target.status.value == "cancelled" and statuses[target.client_id] == "cancelled"


def test_stop_gap_fills_at_open():
    data = series(FLAT + [(100.0, 100.0, 100.0, 100.0), (90.0, 91.0, 89.0, 90.0)])
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "100"),
                1: lambda ctx, c: ctx.sell("BTC_USDT", ctx.position("BTC_USDT"), stop="95")})
    res = run(s, [data])
    assert [f.price for f in res.fills if f.side == "sell"] == [D("90")]


def test_insufficient_balance_is_rejected_and_nothing_moves():
    data = series(FLAT * 3)
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1000", "99")})
    res = run(s, [data])
    assert res.rejections[0].rule == "balance" and res.final_balances["USDT"] == D("10000")


def test_risk_rejection_is_an_event_not_an_exception():
    data = series(FLAT * 3)
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "80")})
    res = run(s, [data], risk=RiskLimits(price_band_pct=D("5")))
    assert [r.rule for r in res.rejections] == ["risk:price_band"]
    assert s.updates == [(s.placed[0].client_id, "rejected")]


def test_rules_rejection_names_the_field():
    data = series(FLAT * 3)
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "0.000001", "99")})
    res = run(s, [data])
    assert res.rejections[0].rule == "rules:amount"
    assert "less than min amount 0.00001" in res.rejections[0].message


def test_missing_grant_fails_at_start_before_any_order():
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "10")})
    with pytest.raises(InsufficientScope) as ei:
        run(s, [series(FLAT * 2)], scopes="orders.create,orders.read,balances.read")
    assert ei.value.missing == frozenset({"orders.delete"})
    assert s.seen == []


def test_undeclared_scope_raises_without_side_effects():
    class BuyOnly(Script):
        scopes = frozenset({"orders.create", "orders.read"})

    seen = {}

    def cancel(ctx, c):
        with pytest.raises(UndeclaredScope) as ei:
            ctx.cancel_all()
        seen["err"] = str(ei.value)
        seen["open"] = len(ctx.open_orders())

    s = BuyOnly({0: lambda ctx, c: ctx.buy("BTC_USDT", "1", "50"), 1: cancel})
    run(s, [series(FLAT * 3)])
    assert "orders.delete" in seen["err"] and "does not declare" in seen["err"]
    assert seen["open"] == 1


def test_reads_need_their_scopes_too():
    """The execution layer checks every operation, reads included: a strategy reading balances without
    `balances.read` (declared and granted) fails before anything is read."""

    class NoBalances(Script):
        scopes = frozenset({"orders.create"})

    errors = []

    def read(ctx, c):
        try:
            ctx.balance("USDT")
        except UndeclaredScope as exc:
            errors.append(str(exc))

    run(NoBalances({0: read}), [series(FLAT * 2)], scopes="orders.create,balances.read")
    assert errors and "balances.read" in errors[0] and "does not declare" in errors[0]

    class Declares(Script):
        scopes = frozenset({"orders.create", "balances.read"})

    with pytest.raises(InsufficientScope) as ei:  # declared but not granted: the bot never starts
        run(Declares({0: read}), [series(FLAT * 2)], scopes="orders.create")
    assert ei.value.missing == frozenset({"balances.read"})
