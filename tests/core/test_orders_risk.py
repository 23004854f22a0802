from decimal import Decimal as D

import pytest

from botkit.execution.risk import DAY_MS, RiskLimits, RiskManager
from botkit.market.orders import ClientIdFactory, Fill, IllegalTransition, Order, OrderStatus, validate_client_id


def _order() -> Order:
    return Order("c1", "BTC_USDT", "buy", "limit", D("1"), D("100"))


def test_client_ids_satisfy_whitebit_rules():
    ids = ClientIdFactory("my bot/1!")
    seen = {ids() for _ in range(5000)}
    assert len(seen) == 5000
    for cid in seen:
        assert validate_client_id(cid) == cid
    with pytest.raises(ValueError, match="1-32 characters"):
        validate_client_id("x" * 33)
    with pytest.raises(ValueError):
        validate_client_id("has space")


def test_legal_path_and_fills():
    o = _order()
    o.transition(OrderStatus.OPEN, 1)
    f = Fill("c1", "BTC_USDT", "buy", D("100"), D("0.4"), D("40"), D("0.0004"), "BTC", True, 2)
    o.apply_fill(f, complete=False)
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled == D("0.4")
    o.apply_fill(Fill("c1", "BTC_USDT", "buy", D("100"), D("0.6"), D("60"), D("0"), "BTC", True, 3), complete=True)
    assert o.status is OrderStatus.FILLED and o.average_price == D("100")
    assert not o.is_open


@pytest.mark.parametrize(
    "path",
    [
        [OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELLED],
        [OrderStatus.CANCELLED, OrderStatus.OPEN],
        [OrderStatus.REJECTED, OrderStatus.FILLED],
        [OrderStatus.OPEN, OrderStatus.OPEN],
        [OrderStatus.OPEN, OrderStatus.NEW],
    ],
)
def test_illegal_transitions_raise(path):
    o = _order()
    with pytest.raises(IllegalTransition):
        for st in path:
            o.transition(st, 1)


def _check(rm: RiskManager, **kw):
    base = dict(market="BTC_USDT", side="buy", amount_base=D("1"), notional=D("100"), price=D("100"),
                last_price=D("100"), position=D("0"), now_ms=0, equity=None)
    base.update(kw)
    return rm.check(**base)


def test_each_risk_limit_rejects_with_its_rule():
    assert _check(RiskManager(RiskLimits())) is None
    assert _check(RiskManager(RiskLimits(max_order_notional=D("99"))), notional=D("100")).rule == "max_order_notional"
    r = _check(RiskManager(RiskLimits(max_position={"BTC_USDT": D("1.5")})), position=D("1"))
    assert r.rule == "max_position" and r.value == "2"
    assert _check(RiskManager(RiskLimits(max_position={"BTC_USDT": D("1.5")})), side="sell", position=D("1")) is None
    rm = RiskManager(RiskLimits(max_open_orders=2))
    rm.state.open_orders = 2
    assert _check(rm).rule == "max_open_orders"
    r = _check(RiskManager(RiskLimits(price_band_pct=D("5"))), price=D("106"))
    assert r.rule == "price_band" and "6.0000%" in r.message
    assert _check(RiskManager(RiskLimits(price_band_pct=D("5"))), price=D("95")) is None


def test_daily_loss_limit_halts_until_next_day():
    rm = RiskManager(RiskLimits(daily_loss_limit=D("100")))
    rm.new_day_if_needed(1000, 10_000.0)
    assert _check(rm, equity=9_950.0, now_ms=2000) is None
    assert _check(rm, equity=9_899.0, now_ms=3000).rule == "daily_loss_limit"
    # recovered equity the same day: still halted
    assert _check(rm, equity=10_000.0, now_ms=4000).rule == "daily_loss_limit"
    rm.new_day_if_needed(DAY_MS + 5, 9_899.0)
    assert _check(rm, equity=9_899.0, now_ms=DAY_MS + 6) is None


def test_mark_to_market_values_priced_assets_in_the_quote():
    from botkit.execution.portfolio import mark_to_market
    from botkit.market.rules import MarketRules
    from botkit.market.types import Balance

    rules = {
        "BTC_USDT": MarketRules("BTC_USDT", "BTC", "USDT", 6, 2),
        "ETH_BTC": MarketRules("ETH_BTC", "ETH", "BTC", 4, 6),
    }
    balances = {"USDT": Balance(D("100"), D("50")), "BTC": Balance(D("1"), D("0.5")), "ETH": Balance(D("3"), D("0"))}
    prices = {"BTC_USDT": 20_000.0, "ETH_BTC": 0.05}
    assert mark_to_market(balances, rules, "USDT", prices.get) == 150 + 1.5 * 20_000  # ETH has no ETH_USDT market
    assert mark_to_market(balances, rules, "USDT", lambda m: None) == 150  # no prices yet
