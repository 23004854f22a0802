"""What the order path keeps between orders (balances as last read, quanta, scope checks, id text, the valuation's
market lookups) must always equal what it would compute afresh."""

import random
from decimal import Decimal as D

import pytest

from botkit import Strategy
from botkit.execution.engine import UndeclaredScope
from botkit.execution.portfolio import Valuation, mark_to_market
from botkit.market.grants import Grant, InsufficientScope
from botkit.market.orders import ClientIdFactory
from botkit.market.rules import decimals_of, finer_than, step_of
from botkit.market.types import Balance
from botkit.venues.simulated import FillModel, SimulatedVenue

from .helpers import ETH, RULES, Script, run, series


def _fresh(venue: SimulatedVenue) -> dict[str, Balance]:
    """The venue's balances built from its ledgers, bypassing what it keeps."""
    return {a: Balance(venue._available[a], venue._frozen[a]) for a in sorted(venue._available)}


def test_balances_as_last_read_follow_every_lock_fill_and_cancel():
    rnd = random.Random(7)
    ohlc = [(100.0 + d, 101.0 + d, 99.0 + d, 100.0 + d) for d in (rnd.uniform(-3, 3) for _ in range(60))]
    seen: list[tuple[dict[str, Balance], dict[str, Balance]]] = []

    def step(ctx, c):
        venue = ctx._engine.venue
        seen.append((dict(venue.balances()), _fresh(venue)))
        held = RULES.truncate_amount(ctx.balance("BTC").available)
        r = rnd.random()
        if r < 0.3:
            return ctx.buy("BTC_USDT", "150")  # market buy: locks quote, fills on the next candle
        if r < 0.5 and held > D("0.01"):
            return ctx.sell("BTC_USDT", held / 2)
        if r < 0.7:
            return ctx.buy("BTC_USDT", "0.5", str(round(c.close * 0.97, 2)))  # resting: locks, fills or is cancelled
        if r < 0.85:
            ctx.cancel_all()
        return None

    res = run(Script({i: step for i in range(60)}), [series(ohlc)])
    assert len(seen) == 60 and len(res.fills) >= 10 and res.orders[-1].client_id
    for kept, fresh in seen:
        assert kept == fresh


def test_balance_of_an_asset_without_funds_is_zero_and_not_kept():
    venue = SimulatedVenue({"BTC_USDT": RULES}, {"USDT": D("5")}, FillModel())
    assert venue.balance("XRP") == Balance(D(0), D(0))
    assert venue.balances() == {"BTC": Balance(D(0), D(0)), "USDT": Balance(D("5"), D(0))}
    assert "XRP" not in venue.balances()


def _reference_value(balances, rules, quote, last_price) -> float:
    """The valuation as first written: markets looked up on every call."""
    priced = {r.stock: m for m, r in rules.items() if r.money == quote}
    total = 0.0
    for asset, bal in balances.items():
        if asset == quote:
            total += float(bal.total)
            continue
        market = priced.get(asset)
        px = last_price(market) if market is not None else None
        if px is not None:
            total += float(bal.total) * px
    return total


def test_valuation_equals_the_reference_to_the_last_bit():
    prices: dict[str, float | None] = {}
    rules = {"BTC_USDT": RULES, "ETH_USDT": ETH}
    value = Valuation(rules, "USDT", prices.get)
    rnd = random.Random(3)
    for _ in range(500):
        bal = {a: Balance(D(rnd.randint(0, 10**9)).scaleb(-rnd.randint(0, 8)), D(rnd.randint(0, 10**6)).scaleb(-6))
               for a in sorted(rnd.sample(["BTC", "ETH", "USDT", "XRP"], rnd.randint(1, 4)))}
        prices["BTC_USDT"] = rnd.uniform(1, 1e5)
        prices["ETH_USDT"] = rnd.choice([None, rnd.uniform(1, 1e4)])
        expected = _reference_value(bal, rules, "USDT", prices.get)
        assert value(bal) == expected
        assert mark_to_market(bal, rules, "USDT", prices.get) == expected


def test_finer_than_agrees_with_decimals_of():
    rnd = random.Random(1)
    values = ["0", "0.000", "1.500", "1E+3", "1.23E-7", "-0.01", "123.456789", "1E-30", "100", "0.1000000",
              "12345678901234567890.123456789"]
    values += [str(D(rnd.randint(-10**8, 10**8)).scaleb(rnd.randint(-15, 6))) for _ in range(3000)]
    for v in values:
        for places in range(-2, 12):
            assert finer_than(D(v), places) == (decimals_of(D(v)) > places), (v, places)


def test_steps_are_the_quanta_of_their_precision():
    for places in range(-3, 20):
        assert step_of(places) == D(1).scaleb(-places)
        assert step_of(places).as_tuple() == D(1).scaleb(-places).as_tuple()  # the same exponent, so quantize agrees
    assert RULES.price_step == D("0.01") and RULES.amount_step == D("0.000001")


def test_client_ids_count_in_base36():
    ids = ClientIdFactory("bt")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"

    def base36(n: int) -> str:
        out = ""
        while n:
            n, r = divmod(n, 36)
            out = digits[r] + out
        return out

    for n in range(1, 50_000):
        assert ids() == f"bt-{base36(n)}"


def test_a_scope_check_passed_once_is_redone_for_another_grant_or_declaration():
    seen = {}

    def probe(ctx, c):
        engine = ctx._engine
        engine.require("balances")
        engine.grant = Grant.of("orders.create")  # the credentials lost balances.read
        with pytest.raises(InsufficientScope):
            engine.require("balances")
        engine.grant = Grant.of("orders.create,balances.read")
        engine.require("balances")
        engine.declared = frozenset({"orders.create"})  # declarations are the contract too
        with pytest.raises(UndeclaredScope):
            engine.require("balances")
        seen["ok"] = True

    run(Script({0: probe}), [series([(100.0, 101.0, 99.0, 100.0)] * 2)])
    assert seen == {"ok": True}


def test_float_conversion_remembers_only_what_it_would_compute():
    from botkit.market.rules import to_decimal

    for v in [30000.5, 30000.5, -0.0, 0.0, -0.0, 1e-7, 1e-7, 0.1, 0.1 + 0.2, 0.1 + 0.2, 2.5, -2.5]:
        got = to_decimal(v)
        assert got == D(repr(v)) and got.as_tuple() == D(repr(v)).as_tuple(), v
    for bad in [float("nan"), float("inf"), float("-inf")]:
        with pytest.raises(ValueError, match="not a finite number"):
            to_decimal(bad)


class _Quiet(Script):
    """Places like Script but hears no order events (the base class's no-op callbacks)."""

    on_order_update = Strategy.on_order_update  # type: ignore[assignment]
    on_fill = Strategy.on_fill  # type: ignore[assignment]


def test_order_events_are_queued_only_for_listeners_and_results_do_not_change():
    ohlc = [(100.0, 101.0, 99.0, 100.0), (101.0, 102.0, 100.0, 101.0), (99.0, 100.0, 90.0, 95.0)] * 3
    plan = {0: lambda ctx, c: ctx.buy("BTC_USDT", "500"), 1: lambda ctx, c: ctx.sell("BTC_USDT", "1"),
            2: lambda ctx, c: ctx.buy("BTC_USDT", "1", "91"), 4: lambda ctx, c: ctx.buy("BTC_USDT", "1", "50"),
            5: lambda ctx, c: ctx.cancel_all(), 6: lambda ctx, c: ctx.sell("BTC_USDT", "1000")}
    told: dict[str, tuple[bool, bool]] = {}

    def probe(name):
        def step(ctx, c):
            told[name] = (ctx._engine.tell_updates, ctx._engine.tell_fills)
            return plan[0](ctx, c)
        return step

    loud, quiet = Script(plan | {0: probe("loud")}), _Quiet(plan | {0: probe("quiet")})
    a, b = run(loud, [series(ohlc)]), run(quiet, [series(ohlc)])
    assert told == {"loud": (True, True), "quiet": (False, False)}
    assert loud.updates and loud.fills and quiet.updates == [] and quiet.fills == []
    assert [(f.client_id, f.price, f.amount, f.fee) for f in a.fills] == \
           [(f.client_id, f.price, f.amount, f.fee) for f in b.fills]
    assert [(o.client_id, o.status, o.filled) for o in a.orders] == \
           [(o.client_id, o.status, o.filled) for o in b.orders]
    assert [r.rule for r in a.rejections] == [r.rule for r in b.rejections] != []
    assert a.final_balances == b.final_balances
    assert (a.equity == b.equity).all()
