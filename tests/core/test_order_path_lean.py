"""What a backtest's order path leaves out or builds more cheaply (no journal, balances and trades as named tuples,
fee rates worked out once) must not change what it decides, nor what a paper or live run records."""

from decimal import Decimal as D

from botkit.execution.engine import ExecutionEngine, MemoryJournal, NullJournal
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.market.grants import Grant
from botkit.market.types import Balance
from botkit.venues.simulated import FillModel, SimulatedVenue

from .helpers import RULES

SCOPES = {"orders.create", "orders.delete", "balances.read"}


def _engine(journal: MemoryJournal | None) -> tuple[ExecutionEngine, SimulatedVenue]:
    venue = SimulatedVenue({"BTC_USDT": RULES}, {"USDT": D("1000"), "BTC": D("1")}, FillModel(D("0.01")))
    eng = ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=SCOPES, rules={"BTC_USDT": RULES},
                          risk=RiskManager(RiskLimits(daily_loss_limit=D("100"))), venue=venue, clock=lambda: 1000,
                          last_price=lambda m: 100.0, equity=lambda: 1100.0, journal=journal)
    return eng, venue


def _trade(eng: ExecutionEngine, venue: SimulatedVenue) -> None:
    eng.place("BTC_USDT", "buy", "150")
    eng.place("BTC_USDT", "sell", "0.5")
    resting = eng.place("BTC_USDT", "buy", "0.1", "90")
    venue.process_candle("BTC_USDT", 60_000, 100.5, 101.0, 99.5, 120_000)
    eng.cancel(resting)
    eng.place("BTC_USDT", "buy", "1", "95", stop_price="96")  # a rejection (stop-limit): recorded too


def test_a_given_journal_records_every_event_as_before_and_a_backtest_none() -> None:
    journal = MemoryJournal()
    eng, venue = _engine(journal)
    _trade(eng, venue)
    cids = list(eng.orders)
    buy, sell = eng.orders[cids[0]], eng.orders[cids[1]]
    assert [e[:3] for e in journal.entries] == [
        (1000, "submit", cids[0]), (1000, "accepted", cids[0]),
        (1000, "submit", cids[1]), (1000, "accepted", cids[1]),
        (1000, "submit", cids[2]), (1000, "accepted", cids[2]),
        (60_000, "fill", cids[1]), (60_000, "fill", cids[0]),  # sells fill first (rule 5 of the fill model)
        (1000, "cancel", cids[2]), (1000, "cancelled", cids[2]), (1000, "rejected", cids[3]),
    ]
    assert journal.entries[1][3] == "1" and journal.entries[3][3] == "2"  # accepted: the exchange id
    assert journal.entries[6][3] == f"{sell.fills[0].amount}@{sell.fills[0].price}"
    assert journal.entries[7][3] == f"{buy.fills[0].amount}@{buy.fills[0].price}"

    bare, bare_venue = _engine(None)
    assert isinstance(bare.journal, NullJournal)
    _trade(bare, bare_venue)
    assert [(o.client_id, o.status, o.filled, o.filled_quote, o.fee, o.exchange_id, o.reject_reason)
            for o in bare.orders.values()] == [
        (o.client_id, o.status, o.filled, o.filled_quote, o.fee, o.exchange_id, o.reject_reason)
        for o in eng.orders.values()]
    assert bare.fills == eng.fills and bare_venue.balances() == venue.balances()


def test_a_balance_is_what_it_was_as_a_dataclass() -> None:
    _, venue = _engine(None)
    usdt = venue.balance("USDT")
    assert type(usdt) is Balance and usdt == Balance(D("1000"), D(0)) == Balance(available=D("1000"), frozen=D(0))
    assert (usdt.available, usdt.frozen, usdt.total) == (D("1000"), D(0), D("1000"))
    assert repr(usdt) == "Balance(available=Decimal('1000'), frozen=Decimal('0'))"
    assert hash(usdt) == hash(Balance(D("1000"), D(0)))


def test_fee_rates_worked_out_once_give_the_fees_rules_give() -> None:
    from botkit.market.rules import MarketRules

    rules = MarketRules("X_Y", "X", "Y", 6, 2, maker_fee=D("0.075"), taker_fee=D("0.2"))
    venue = SimulatedVenue({"X_Y": rules}, {"Y": D("1000"), "X": D("3")}, FillModel(D("0.013")))
    book = venue.books["X_Y"]
    assert book.fee_rates == (rules.fee_rate(False), rules.fee_rate(True))
    eng = ExecutionEngine(grant=Grant.of(SCOPES), declared_scopes=SCOPES, rules={"X_Y": rules},
                          risk=RiskManager(RiskLimits()), venue=venue, clock=lambda: 0, last_price=lambda m: 77.7)
    eng.place("X_Y", "buy", "123.45")  # taker, fee in X
    eng.place("X_Y", "sell", "1.234567")  # taker, fee in Y
    eng.place("X_Y", "buy", "0.5", "77.5")  # rests, then fills as a maker
    venue.process_candle("X_Y", 60_000, 77.71, 78.0, 77.0, 120_000)
    fills = {f.client_id: f for f in eng.fills}
    assert len(fills) == 3
    for order in eng.orders.values():
        f = fills[order.client_id]
        received = f.amount if f.side == "buy" else f.quote
        assert f.fee == rules.fee(received, f.maker) and str(f.fee) == str(rules.fee(received, f.maker))
    assert [f.maker for f in eng.fills].count(True) == 1


def test_prices_converted_directly_equal_to_decimal_and_statuses_read_once_are_the_members() -> None:
    import random

    from botkit.market import orders
    from botkit.market.orders import OrderStatus
    from botkit.market.rules import float_to_decimal, to_decimal

    rnd = random.Random(5)
    for _ in range(2000):
        x = round(rnd.uniform(0.0001, 100_000), rnd.randint(0, 8))
        for value in (x, x, -x):  # (twice: the remembered conversion too)
            d = float_to_decimal(value)
            assert d == to_decimal(repr(value)) and str(d) == str(to_decimal(repr(value)))
    assert (orders.NEW, orders.OPEN, orders.PARTIALLY_FILLED, orders.FILLED) == (
        OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
    assert all(type(s) is OrderStatus for s in (orders.NEW, orders.OPEN, orders.PARTIALLY_FILLED, orders.FILLED))


def test_needs_equity_follows_the_daily_loss_limit() -> None:
    assert RiskManager(RiskLimits(daily_loss_limit=D("5"))).needs_equity is True
    assert RiskManager(RiskLimits()).needs_equity is False


def test_round_trips_and_lots_keep_their_fields_in_order() -> None:
    from botkit.backtest.trades import Lot, RoundTrip

    assert RoundTrip._fields == ("market", "side", "entry_ms", "exit_ms", "entry_price", "exit_price", "amount",
                                 "pnl", "fees", "closed", "closed_amount", "fills", "exit_reason")
    assert Lot._fields == ("market", "side", "entry_ms", "exit_ms", "entry_price", "exit_price", "amount", "pnl",
                           "fees", "closed", "entry_id", "exit_reason")
    rt = RoundTrip("X_Y", "long", 1, 5, D(1), D(2), D(3), 1.5, 0.25, True)
    assert (rt.closed_amount, rt.fills, rt.exit_reason, rt.duration_ms) == (D(0), 0, "", 4)
