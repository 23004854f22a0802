"""SqliteJournal: orders come back exactly (Decimal, every status, flags), across a reopen, and bad files fail
clearly."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from botkit.execution.engine import ExecutionEngine
from botkit.execution.journal import JournalError, SqliteJournal
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.market.grants import Grant
from botkit.market.orders import Fill, Order, OrderStatus
from botkit.market.rules import MarketRules
from botkit.venues.simulated import SimulatedVenue

FIELDS = ("client_id", "market", "side", "type", "amount", "price", "stop_price", "post_only", "ioc", "oco_group",
          "status", "filled", "filled_quote", "fee", "exchange_id", "created_ms", "updated_ms", "reject_reason")


def _orders() -> list[Order]:
    """One order per status, with awkward Decimals (trailing zeros, exponents, many places)."""
    return [
        Order("n-1", "BTC_USDT", "buy", "limit", Decimal("0.00100000"), Decimal("65000.10"), created_ms=1,
              updated_ms=1, post_only=True),
        Order("o-1", "BTC_USDT", "sell", "limit", Decimal("1E-8"), Decimal("70000"), status=OrderStatus.OPEN,
              exchange_id="4242", created_ms=2, updated_ms=3, ioc=True, oco_group="g1"),
        Order("p-1", "ETH_USDT", "buy", "limit", Decimal("2.5"), Decimal("3000.01"),
              status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("1.234567891234"),
              filled_quote=Decimal("3703.7160000000001"), fee=Decimal("0.0012345"), exchange_id="7", created_ms=4,
              updated_ms=5),
        Order("f-1", "BTC_USDT", "buy", "market", Decimal("20"), status=OrderStatus.FILLED,
              filled=Decimal("0.000307"), filled_quote=Decimal("19.99"), fee=Decimal("3.07E-7"), exchange_id="8",
              created_ms=6, updated_ms=7),
        Order("c-1", "BTC_USDT", "sell", "stop_market", Decimal("0.5"), stop_price=Decimal("60000.00"),
              status=OrderStatus.CANCELLED, created_ms=8, updated_ms=9, reject_reason="cancelled after a partial"),
        Order("r-1", "BTC_USDT", "buy", "limit", Decimal("0.001"), Decimal("1"), status=OrderStatus.REJECTED,
              reject_reason="exchange: code 32 amount: too small", created_ms=10, updated_ms=11),
    ]


def _same(a: Order, b: Order) -> None:
    for f in FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        assert va == vb and type(va) is type(vb), (a.client_id, f, va, vb)
        if isinstance(va, Decimal):
            assert str(va) == str(vb), (a.client_id, f)  # exact: same digits and exponent, not merely equal


def test_round_trip_every_status_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.sqlite"
    orders = _orders()
    with SqliteJournal(path, run_id="r1", venue="v") as j:
        for o in orders:
            j.record("submit", o)
        assert j.client_ids() == {o.client_id for o in orders}
    with SqliteJournal(path, run_id="r2", venue="v") as j:
        back = {o.client_id: o for o in j.orders_since(0)}
        assert set(back) == {o.client_id for o in orders}
        for o in orders:
            _same(o, back[o.client_id])
        assert [o.client_id for o in j.open_orders()] == ["n-1", "o-1", "p-1"]
        assert [o.client_id for o in j.orders_since(8)] == ["c-1", "r-1"]
        assert j.open_orders(venue="another") == []
        assert [e.kind for e in j.events("p-1")] == ["submit"]
    conn = sqlite3.connect(path)
    types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(orders)")}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert all(types[c] == "TEXT" for c in ("amount", "price", "filled", "filled_quote", "fee"))


def test_upsert_follows_the_order_and_keeps_every_event(tmp_path: Path) -> None:
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        o = Order("x-1", "BTC_USDT", "buy", "limit", Decimal("0.002"), Decimal("100.00"), created_ms=1, updated_ms=1)
        j.record("submit", o)
        o.exchange_id = "99"
        o.transition(OrderStatus.OPEN, 2)
        j.record("accepted", o, "99")
        o.apply_fill(Fill("x-1", "BTC_USDT", "buy", Decimal("100.00"), Decimal("0.001"), Decimal("0.1"),
                          Decimal("0.000001"), "BTC", True, 3), complete=False)
        j.record("fill", o, "0.001@100.00")
        got = j.order("x-1")
        assert got is not None
        _same(o, got)
        assert [(e.kind, e.detail) for e in j.events("x-1")] == [("submit", ""), ("accepted", "99"),
                                                                  ("fill", "0.001@100.00")]
        assert [e.seq for e in j.events()] == sorted(e.seq for e in j.events())


def test_engine_journals_every_transition_and_restores(tmp_path: Path) -> None:
    rules = {"BTC_USDT": MarketRules("BTC_USDT", "BTC", "USDT", 6, 2, min_amount=Decimal("0.00001"),
                                     min_total=Decimal("1"))}
    path = tmp_path / "j.sqlite"

    def engine(journal: SqliteJournal) -> tuple[ExecutionEngine, SimulatedVenue]:
        venue = SimulatedVenue(rules, {"USDT": Decimal("1000"), "BTC": Decimal("1")})
        eng = ExecutionEngine(grant=Grant.of(["orders.create", "orders.delete"]),
                              declared_scopes={"orders.create", "orders.delete"}, rules=rules,
                              risk=RiskManager(RiskLimits()), venue=venue, clock=lambda: 1000,
                              last_price=lambda m: 100.0, journal=journal)
        return eng, venue

    with SqliteJournal(path) as j:
        eng, _ = engine(j)
        keep = eng.place("BTC_USDT", "buy", "0.1", "90")
        gone = eng.place("BTC_USDT", "buy", "0.1", "91")
        eng.cancel(gone)
        assert eng.rejections == []
        kinds = [e.kind for e in j.events(gone.client_id)]
        assert kinds[0] == "submit" and kinds[-1] == "cancelled"
        assert j.order(gone.client_id).status == OrderStatus.CANCELLED  # type: ignore[union-attr]
    with SqliteJournal(path) as j:
        eng, _ = engine(j)
        assert eng.restore(j.open_orders()) == 1
        assert list(eng.open) == [keep.client_id]
        assert eng.open[keep.client_id].price == Decimal("90.00")
        assert [e.kind for e in j.events(keep.client_id)][-1] == "restored"


def test_bad_files_fail_with_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all, just text" * 100)
    with pytest.raises(JournalError, match="cannot be opened as SQLite.*new file"):
        SqliteJournal(junk)
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(JournalError, match="schema version 99"):
        SqliteJournal(newer)
    with SqliteJournal(tmp_path / "ok.sqlite") as j:
        j.record("submit", Order("b-1", "BTC_USDT", "buy", "limit", Decimal("1"), Decimal("2")))
        j._db.execute("UPDATE orders SET amount = 'lots' WHERE client_id = 'b-1'")
        with pytest.raises(JournalError, match="row 'b-1' is corrupt"):
            j.open_orders()
