"""The matching engine under a seeded random order flow: price-time priority, exact conservation, no negatives."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from botkit.sandbox.config import parse_sandbox_config
from botkit.sandbox.engine import Exchange, ExchangeError

CONFIG = {
    "markets": [{"name": "BTC_USDT", "stock": "BTC", "money": "USDT", "stock_prec": 4, "money_prec": 2,
                 "min_amount": "0.001", "min_total": "1", "maker_fee": "0.1", "taker_fee": "0.2"}],
    "accounts": [
        {"name": "a", "balances": {"BTC": "5", "USDT": "200000"}},
        {"name": "b", "balances": {"BTC": "5", "USDT": "200000"}},
        {"name": "c", "balances": {"BTC": "1", "USDT": "1000"}},
    ],
}


def exchange() -> Exchange:
    return Exchange(parse_sandbox_config(CONFIG), time.time)


def totals(ex: Exchange) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for bal in ex.balances.values():
        for asset, b in bal.items():
            assert b.available >= 0 and b.freeze >= 0, (asset, b)
            out[asset] = out.get(asset, Decimal(0)) + b.available + b.freeze
    return out


def test_price_time_priority() -> None:
    ex = exchange()
    first = ex.place_limit("a", "BTC_USDT", "sell", "0.01", "40000")
    better = ex.place_limit("b", "BTC_USDT", "sell", "0.01", "39990")
    second = ex.place_limit("b", "BTC_USDT", "sell", "0.01", "40000")
    taker = ex.place_limit("c", "BTC_USDT", "buy", "0.025", "40000")
    fills = [d.order_id for d in ex.deals["c"]]
    assert [d.price for d in ex.deals["c"]] == [Decimal("39990"), Decimal("40000"), Decimal("40000")]
    maker_ids = [d.order_id for acc in ("a", "b") for d in ex.deals.get(acc, [])]
    assert set(maker_ids) == {first.id, better.id, second.id} and len(fills) == 3
    assert first.left == 0 and second.left == Decimal("0.005")  # the earlier order at 40000 filled first
    assert taker.left == 0
    assert taker.deal_money == Decimal("39990") * Decimal("0.01") + Decimal("40000") * Decimal("0.015")


def test_random_flow_conserves_every_asset_exactly() -> None:
    ex = exchange()
    start = totals(ex)
    rng = random.Random(42)
    refused = 0
    for _ in range(1500):
        acc = rng.choice(["a", "b", "c"])
        side = rng.choice(["buy", "sell"])
        kind = rng.random()
        try:
            if kind < 0.6:
                price = Decimal(40000 + rng.randint(-200, 200))
                ex.place_limit(acc, "BTC_USDT", side, str(Decimal(rng.randint(10, 3000)).scaleb(-4)), str(price),
                               ioc=rng.random() < 0.1)
            elif kind < 0.75:
                amount = str(rng.randint(2, 500)) if side == "buy" else str(Decimal(rng.randint(10, 500)).scaleb(-4))
                ex.place_market(acc, "BTC_USDT", side, amount, stock=False)
            elif kind < 0.85:
                ex.place_market(acc, "BTC_USDT", side, str(Decimal(rng.randint(10, 500)).scaleb(-4)), stock=True)
            else:
                mine = ex.account_orders(acc)
                if mine:
                    ex.cancel(acc, "BTC_USDT", rng.choice(mine).id)
        except ExchangeError:
            refused += 1
        now = totals(ex)  # also asserts that nothing is negative
        fees = {"BTC": Decimal(0), "USDT": Decimal(0)}
        for deals in ex.deals.values():
            for d in deals:
                fees[d.fee_asset] += d.fee
        for asset in start:
            assert now[asset] + fees[asset] == start[asset], asset
    assert refused < 1500 and sum(len(d) for d in ex.deals.values()) > 100
    # what stays frozen is exactly what the open orders hold
    for acc, bal in ex.balances.items():
        held_usdt = sum((o.locked for o in ex.account_orders(acc) if o.side == "buy"), Decimal(0))
        held_btc = sum((o.locked for o in ex.account_orders(acc) if o.side == "sell"), Decimal(0))
        assert bal["USDT"].freeze == held_usdt and bal["BTC"].freeze == held_btc


def test_self_trade_prevention() -> None:
    ex = exchange()
    resting = ex.place_limit("a", "BTC_USDT", "sell", "0.01", "40000")
    new = ex.place_limit("a", "BTC_USDT", "buy", "0.01", "40000", stp="cn")
    assert new.status == "CANCELED_STP" and resting.left == Decimal("0.01")
    new = ex.place_limit("a", "BTC_USDT", "buy", "0.01", "40000", stp="co")
    assert resting.status == "CANCELED_STP" and new.left == Decimal("0.01") and new.id in ex.open_orders
    with pytest.raises(ExchangeError) as err:
        ex.place_limit("a", "BTC_USDT", "buy", "0.01", "40000", stp="maybe")
    assert err.value.errors == {"stp": ["Stp must be one of: no, cb, cn, co."]}
