"""The order-book fill model through the backtest (botkit/venues/book_matching.py): level walks and slippage, queue
positions, resyncs after update-id gaps, partial fills with exact balances, and the report's slippage figures."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from botkit.backtest.books import ASK, BID, BookEvents, load_binance_depth, synthetic_book
from botkit.backtest.replay import Backtest, BacktestResult
from botkit.backtest.report import report_dict, summary_table, write_report
from botkit.execution.oco import OcoMode
from botkit.market.grants import Grant
from botkit.market.orders import Fill, Order, OrderStatus
from botkit.market.rules import MarketRules
from botkit.market.types import BookMoved, BookSnapshot
from botkit.strategy import Context, Strategy
from botkit.venues.book_matching import BookMatcher

M = "BTC_USDT"
RULES = MarketRules(M, "BTC", "USDT", stock_prec=3, money_prec=2, maker_fee=D("0.1"), taker_fee=D("0.2"))
T0 = 1_767_571_200_000
START = {"USDT": D("100000"), "BTC": D("10")}
Level = tuple[int, float, float]


def book_events(*events: tuple[int, str, list[Level]]) -> BookEvents:
    """Events (ms after T0, "snap" | "delta" | "gap", [(side, price, amount), ...]) as importer-shaped rows; "gap" is
    a delta flagged as the first event after a break in the update-id chain."""
    rows: dict[str, list[Any]] = {k: [] for k in ("time_us", "update_id", "prev_update_id", "snapshot", "side",
                                                    "price", "amount", "resync")}
    for uid, (dt, kind, levels) in enumerate(events, start=100):
        for side, price, amount in levels:
            rows["time_us"].append((T0 + dt) * 1000)
            rows["update_id"].append(uid)
            rows["prev_update_id"].append(-1 if kind == "snap" else uid - (5 if kind == "gap" else 1))
            rows["snapshot"].append(int(kind == "snap"))
            rows["side"].append(side)
            rows["price"].append(price)
            rows["amount"].append(amount)
            rows["resync"].append(int(kind == "gap"))
    types = {"time_us": np.int64, "update_id": np.int64, "prev_update_id": np.int64, "snapshot": np.int8,
             "side": np.int8, "price": np.float64, "amount": np.float64, "resync": np.int8}
    return BookEvents(M, "test rows", {k: np.asarray(v, dtype=types[k]) for k, v in rows.items()})


SNAP = [(BID, 99.0, 1.0), (BID, 98.0, 2.0), (BID, 97.0, 5.0),
        (ASK, 100.0, 0.5), (ASK, 101.0, 1.0), (ASK, 102.0, 2.0), (ASK, 103.0, 4.0)]


class Script(Strategy):
    """Runs `actions[i](ctx, book)` at the i-th on_book; records what it sees."""

    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self, actions: dict[int, Callable[[Context, BookSnapshot], Any]] | None = None) -> None:
        self.actions = actions or {}
        self.seen: list[tuple[int, float | None, float | None]] = []
        self.fills: list[Fill] = []
        self.updates: list[Order] = []
        self.usdt_after_fill: list[tuple[D, D]] = []
        self.kept: BookSnapshot | None = None

    def on_book(self, ctx: Context, book: BookSnapshot) -> None:
        i = len(self.seen)
        self.seen.append((book.time_ms - T0, book.best_bid, book.best_ask))
        act = self.actions.get(i)
        if act is not None:
            act(ctx, book)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)
        b = ctx.balance("USDT")
        self.usdt_after_fill.append((b.available, b.frozen))

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.updates.append(order)


def run(events: BookEvents, strategy: Strategy, depth: int = 20, oco: OcoMode = "emulated") -> BacktestResult:
    return Backtest(strategy, [], {M: RULES}, dict(START), grant=Grant.of(",".join(sorted(Strategy.scopes | {
        "orders.create", "orders.delete", "orders.read", "balances.read"}))), books=[events], book_depth=depth,
        oco=oco).run()


# ---- walking the book -----------------------------------------------------------------------------------------------


def _market_buy(quote: str) -> tuple[list[Fill], Order]:
    s = Script({0: lambda ctx, b: ctx.buy(M, quote)})
    res = run(book_events((0, "snap", SNAP), (10, "delta", [(BID, 96.0, 1.0)])), s)
    (order,) = res.orders
    return res.fills, order


def test_slippage_grows_with_order_size_on_the_same_book() -> None:
    """Market buys of 40, 140 and 500 USDT walk 1, 2 and 4 levels: the average price and the slippage against the
    best ask at decision time (100) rise with size, and no level gives more than it shows."""
    shown = {p: a for side, p, a in SNAP if side == ASK}
    avgs, bps = [], []
    for quote in ("40", "140", "500"):
        fills, order = _market_buy(quote)
        assert order.status is OrderStatus.FILLED
        assert all(f.ref_price == D("100.0") and not f.maker for f in fills)
        per_level: dict[float, D] = {}
        for f in fills:
            per_level[float(f.price)] = per_level.get(float(f.price), D(0)) + f.amount
        assert all(amount <= D(str(shown[p])) for p, amount in per_level.items())
        spent = sum((f.quote for f in fills), D(0))
        assert spent <= D(quote)
        avg = spent / sum((f.amount for f in fills), D(0))
        avgs.append(avg)
        bps.append((avg / D(100) - 1) * 10_000)
    assert [len(_market_buy(q)[0]) for q in ("40", "140", "500")] == [1, 2, 4]
    assert avgs[0] == D(100) and avgs[0] < avgs[1] < avgs[2]
    assert bps[0] == 0 < bps[1] < bps[2]


def test_a_market_order_larger_than_the_book_fills_what_is_shown_and_the_rest_is_cancelled() -> None:
    s = Script({0: lambda ctx, b: ctx.sell(M, "9")})  # the bids show 8
    res = run(book_events((0, "snap", SNAP), (10, "delta", [(ASK, 104.0, 1.0)])), s)
    (order,) = res.orders
    assert [(f.price, f.amount) for f in res.fills] == [(D("99.0"), D("1.000")), (D("98.0"), D("2.000")),
                                                        (D("97.0"), D("5.000"))]
    assert order.status is OrderStatus.CANCELLED and order.filled == D(8)
    assert order.reject_reason == "market: the book had no more liquidity"
    # what was taken stays out of the book until the data touches those levels: the next view has no bids
    assert s.seen[1][1] is None
    assert res.final_balances["BTC"] == D(2)  # the unfilled 1 BTC is unlocked


def test_a_marketable_limit_walks_up_to_its_price_and_rests_the_rest() -> None:
    s = Script({0: lambda ctx, b: ctx.buy(M, "2", "101")})
    res = run(book_events((0, "snap", SNAP), (10, "delta", [(BID, 96.0, 1.0)]),
                          (20, "delta", [(BID, 96.0, 2.0)])), s)
    (order,) = res.orders
    assert [(f.price, f.amount, f.maker) for f in res.fills] == [(D("100.0"), D("0.500"), False),
                                                                 (D("101.0"), D("1.000"), False)]
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled == D("1.5")
    # the rest (0.5) rests at 101, the new best bid; its funds stay locked at the limit price, exactly
    assert s.usdt_after_fill[-1][1] == D("0.5") * D(101)
    assert s.seen[1][1] == 99.0  # the data's book: our own resting order is not in it


# ---- queue position -------------------------------------------------------------------------------------------------


def test_a_resting_order_fills_only_after_the_volume_ahead_of_it_traded() -> None:
    """A buy of 1 joins 99's queue behind 1.0 shown there (plus 3.0 that arrive later, behind it). Decreases at the
    touch eat the queue from the front: 0.6 + 0.4 are ahead of us, the next 0.7 and 0.3 fill us."""
    s = Script({0: lambda ctx, b: ctx.buy(M, "1", "99")})
    res = run(book_events(
        (0, "snap", SNAP),
        (10, "delta", [(BID, 99.0, 4.0)]),  # our order arrives before this; 3.0 joins behind us
        (20, "delta", [(BID, 99.0, 3.4)]),  # 0.6 traded: ahead 0.4
        (30, "delta", [(BID, 99.0, 3.0)]),  # 0.4 traded: ahead 0, no fill yet
        (40, "delta", [(BID, 99.0, 2.3)]),  # 0.7 traded: ours
        (50, "delta", [(BID, 99.0, 2.0)]),  # 0.3 traded: ours, complete
        (60, "delta", [(BID, 99.0, 1.0)]),
    ), s)
    (order,) = res.orders
    assert [(f.time_ms - T0, f.amount, f.price, f.maker) for f in res.fills] == [
        (40, D("0.700"), D("99"), True), (50, D("0.300"), D("99"), True)]
    assert order.status is OrderStatus.FILLED
    assert [u.status for u in s.updates] == [OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]


def test_cancels_behind_the_touch_shrink_the_queue_pro_rata_and_fill_nothing() -> None:
    mt = BookMatcher(M, RULES)
    sides, prices, amounts = [BID, BID, ASK], [99.0, 98.0, 100.0], [1.0, 4.0, 1.0]
    mt.event(T0, 1, sides, prices, amounts, 0, 3)
    o = Order("a", M, "buy", "limit", D("1"), D("98"), created_ms=T0)
    mt.submit(o, T0)
    mt.event(T0 + 1, 0, [BID], [98.0], [2.0], 0, 1)  # 98 is behind the touch (99): cancels
    (r,) = mt.resting
    assert r.ahead == pytest.approx(2.0) and not mt.deals
    mt.event(T0 + 2, 0, [BID], [99.0], [0.0], 0, 1)  # 99 gone: 98 is the touch now
    mt.event(T0 + 3, 0, [BID], [98.0], [0.5], 0, 1)  # 1.5 traded: 2.0 was ahead... 0.5 left ahead, no fill
    assert r.ahead == pytest.approx(0.5) and not mt.deals
    mt.event(T0 + 4, 0, [BID], [98.0], [0.0], 0, 1)  # 0.5 traded: ahead 0, still no fill
    assert not mt.deals
    mt.event(T0 + 5, 0, [ASK], [98.0], [0.25], 0, 1)  # the asks came down to 98: traded through our price
    (deal,) = mt.deals
    assert (deal.base, deal.price, deal.maker, deal.complete) == (D("0.250"), D("98"), True, False)


def test_an_order_at_a_price_the_book_moves_through_fills_from_the_opposite_side() -> None:
    s = Script({0: lambda ctx, b: ctx.sell(M, "2", "101.5")})
    res = run(book_events(
        (0, "snap", SNAP),
        (10, "delta", [(ASK, 101.0, 3.0)]),
        (20, "delta", [(BID, 101.5, 1.2), (BID, 99.0, 0.0)]),  # bids reach our ask: 1.2 of them trade with us
        (30, "delta", [(BID, 101.5, 1.2)]),  # the same bid again: nothing new to take
        (40, "delta", [(BID, 102.0, 5.0)]),  # more bids at and above our price: the rest fills
    ), s)
    assert [(f.time_ms - T0, f.amount, f.price) for f in res.fills] == [(20, D("1.200"), D("101.5")),
                                                                        (40, D("0.800"), D("101.5"))]
    assert sum((f.amount for f in res.fills), D(0)) <= D("1.2") + D("5")


# ---- resyncs ---------------------------------------------------------------------------------------------------------


def test_a_gap_in_the_update_id_chain_is_a_reported_resync_and_the_next_snapshot_rebuilds_the_book(
        tmp_path: Path) -> None:
    s = Script({0: lambda ctx, b: ctx.buy(M, "1", "98")})
    events = book_events(
        (0, "snap", SNAP),
        (10, "delta", [(BID, 99.5, 1.0)]),
        (20, "gap", [(BID, 98.0, 0.0), (ASK, 97.0, 9.0)]),  # after a gap: not applied (it would fill us)
        (30, "delta", [(ASK, 96.0, 9.0)]),
        (40, "snap", [(BID, 97.5, 1.0), (ASK, 99.5, 1.0)]),
        (50, "delta", [(BID, 97.6, 1.0)]),
    )
    res = run(events, s)
    st = res.book[M]
    assert st.resync_times_ms == [T0 + 20] and st.skipped_updates == 3 and st.skipped_events == 2
    # no on_book while the book is stale; after the snapshot the book is the snapshot's, not the old one patched
    assert [t for t, _, _ in s.seen] == [0, 10, 40, 50]
    assert s.seen[2] == (40, 97.5, 99.5) and s.seen[3] == (50, 97.6, 99.5)
    assert not res.fills  # the skipped asks at 97 and 96 would have filled our buy at 98: never applied
    assert any("1 gap(s) in the book's update-id chain" in w and "3 updates" in w for w in res.warnings)
    rep = report_dict(res, "test")
    assert rep["book"][M]["resyncs"] == 1 and rep["book"][M]["resync_times"] == ["2026-01-05T00:00:00.020Z"]
    assert "Book resyncs" in summary_table(res)
    out = write_report(res, tmp_path / "out", "test", html=False)
    assert json.loads(out[0].read_text())["book"][M]["skipped_updates"] == 3


def test_the_real_binance_files_replay_their_gap_as_a_resync(shared_data: Path) -> None:
    """The real BTCUSDT updates do not chain to the snapshot (a gap at line 2, kept with mark_gaps): the replay
    reports it and, with no later snapshot, skips all 100 updates instead of patching a book it cannot trust."""
    depth = shared_data / "depth"
    ev = load_binance_depth(depth / "binance_BTCUSDT_depth_snapshot.csv", depth / "binance_BTCUSDT_depth_updates.csv",
                            M, repair=["mark_gaps"])
    s = Script()
    res = run(ev, s)
    st = res.book[M]
    assert st.resync_times_ms == [ev.gaps[0].time_us // 1000] and st.skipped_updates == 100
    assert len(s.seen) == 1 and s.seen[0][1] == 20377.0  # the snapshot only
    assert "rebuilt from the next snapshot, 100 updates in 1 events before it were skipped" in res.warnings[0]


def test_a_market_buy_walks_the_real_top25_snapshots(shared_data: Path) -> None:
    """Wide top-25 snapshots (every event replaces the book): a 50,000 USDT market buy takes the first snapshot's
    asks level by level, never more than a level shows; repeated snapshots do not hand the same asks out again."""
    from botkit.backtest.books import load_wide_book
    ev = load_wide_book(shared_data / "depth" / "binance-futures_BTCUSDT_book_top25.csv", M)
    first: dict[float, float] = {}
    s = Script({0: lambda ctx, b: (first.update(b.asks), ctx.buy(M, "50000"))})
    res = run(ev, s, depth=25)
    (order,) = res.orders
    assert order.status is OrderStatus.FILLED and len(res.fills) >= 2
    best = min(first)
    assert all(f.ref_price == D(str(best)) for f in res.fills)
    assert [float(f.price) for f in res.fills] == sorted(first)[:len(res.fills)]
    assert all(f.amount <= D(str(first[float(f.price)])) for f in res.fills)
    assert order.average_price is not None and order.average_price > D(str(best))
    assert sum((f.quote for f in res.fills), D(0)) <= D(50000)


# ---- balances and views ----------------------------------------------------------------------------------------------


def test_balances_stay_exact_after_partial_fills() -> None:
    s = Script({0: lambda ctx, b: ctx.buy(M, "1.5", "99")})
    res = run(book_events(
        (0, "snap", SNAP),
        (10, "delta", [(BID, 99.0, 0.7)]),  # 0.3 of the 1.0 ahead traded
        (20, "delta", [(BID, 99.0, 0.0)]),  # 0.7: the rest ahead; the level is empty
        (30, "delta", [(ASK, 99.0, 0.333)]),  # asks come down to 99: 0.333 fills us
        (40, "delta", [(ASK, 99.0, 2.0)]),  # more: the remaining 1.167
    ), s)
    amounts = [f.amount for f in res.fills]
    assert amounts == [D("0.333"), D("1.167")]
    # after the partial fill: locked = the rest at the limit price, exactly; available = start - 1.5 * 99
    assert s.usdt_after_fill[0] == (D("100000") - D("1.5") * D("99"), D("1.167") * D("99"))
    fee = sum((f.fee for f in res.fills), D(0))
    assert fee == D("1.5") * D("0.001")
    assert res.final_balances["USDT"] == D("100000") - D("1.5") * D("99")
    assert res.final_balances["BTC"] == D("10") + D("1.5") - fee
    assert all(isinstance(v, D) for v in res.final_balances.values())


def test_book_views_are_lazy_and_say_when_read_too_late() -> None:
    keep: list[BookSnapshot] = []
    def read_now(ctx: Context, b: BookSnapshot) -> None:
        keep.append(b)
        assert b.bids

    s = Script({0: lambda ctx, b: keep.append(b), 1: read_now})
    run(book_events((0, "snap", SNAP), (10, "delta", [(BID, 99.5, 1.0)]), (20, "delta", [(BID, 99.5, 2.0)])), s,
        depth=2)
    with pytest.raises(BookMoved, match="read after the book moved on"):
        keep[0].asks  # noqa: B018  (never read inside its callback)
    assert keep[1].bids == ((99.5, 1.0), (99.0, 1.0))  # read inside: kept, `book_depth` levels


def test_report_shows_slippage_in_json_summary_and_trades_csv(tmp_path: Path) -> None:
    s = Script({0: lambda ctx, b: ctx.buy(M, "140")})
    res = run(book_events((0, "snap", SNAP), (10, "delta", [(BID, 96.0, 1.0)])), s)
    out = tmp_path / "r"
    write_report(res, out, "test", html=False)
    rep = json.loads((out / "report.json").read_text())
    # 0.5 @ 100 and 0.891 @ 101 (90 USDT, cut to the step): 0.891 * 1 USDT worse than the best ask at decision
    assert rep["slippage"]["fills"] == 2 and D(rep["slippage"]["total_quote"]) == D("0.891")
    assert rep["slippage"]["mean_bps"] == pytest.approx(0.891 / (1.391 * 100) * 10_000, rel=1e-6)
    rows = list(csv.DictReader((out / "trades.csv").open()))
    assert [r["slippage"] for r in rows] == ["0", "0.891"] and rows[1]["slippage_bps"] == "100.0000"
    assert "0.891 USDT over 2 taker fills" in summary_table(res)
    pytest.importorskip("plotly")
    write_report(res, tmp_path / "h", "test", html=True)
    page = (tmp_path / "h" / "report.html").read_text()
    assert "Slippage" in page and "0.891 USDT over 2 taker fills" in page and "Book resyncs" in page


def test_a_synthetic_book_replays_with_a_quoting_strategy() -> None:
    """The benchmark's data and strategy at a small size: orders rest, fill, funds balance."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_book", Path(__file__).parents[2] / "backtests" /
                                                  "bench_book.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, res, strategy, rows = bench.run_once(3000, 3, 7)
    assert rows == len(synthetic_book(M, 3000, seed=7)) and res.fills
    assert all(f.maker == (f.ref_price is None) for f in res.fills)  # takers (a quote crossed on arrival) say so
    assert sum(f.maker for f in res.fills) > len(res.fills) / 2
    assert res.book[M].events == 3001 and strategy.reads == 3001


def test_book_depth_is_a_checked_config_key(tmp_path: Path) -> None:
    from botkit.backtest.run import backtest_of
    from botkit.config import load_config
    from botkit.configfile import ConfigError

    cfg = tmp_path / "c.toml"
    body = '[strategy]\nplugin = "x.py:X"\n[markets.BTC_USDT]\n[balances]\nUSDT = "1000"\n[backtest]\n'
    cfg.write_text(body + "book_depth = 0\n")
    with pytest.raises(ConfigError, match=r"backtest\.book_depth = 0: Input should be greater than or equal to 1"):
        load_config(cfg)
    cfg.write_text(body + "book_depth = 5\n")
    bt = backtest_of(load_config(cfg), Script(), [_one_series()])
    assert bt.book_depth == 5


def _one_series() -> Any:
    from botkit.backtest.data import CandleSeries
    z = np.zeros(1)
    return CandleSeries(M, 60_000, np.array([T0], dtype=np.int64), z + 1, z + 1, z + 1, z + 1, z, "one candle")


def test_a_stop_triggers_on_the_best_bid_and_its_oco_partner_is_cancelled() -> None:
    def bracket(ctx: Context, b: BookSnapshot) -> None:
        ctx.sell(M, "1", "101.5", oco="x")
        ctx.sell(M, "1", stop="98.5", oco="x")

    s = Script({0: bracket})
    res = run(book_events(
        (0, "snap", SNAP),
        (10, "delta", [(BID, 98.8, 0.4)]),  # best bid 99: no trigger
        (20, "delta", [(BID, 99.0, 0.0), (BID, 98.8, 0.0)]),  # best bid 98 <= 98.5: the stop walks the bids
    ), s, oco="native")
    tp, sl = sorted(res.orders, key=lambda o: o.type)
    assert sl.type == "stop_market" and sl.status is OrderStatus.FILLED
    assert [(f.time_ms - T0, f.price, f.amount, f.ref_price) for f in res.fills] == [(20, D("98.0"), D("1.000"),
                                                                                     D("98.0"))]
    assert tp.status is OrderStatus.CANCELLED and tp.reject_reason == "oco: another order of the group filled"
    assert res.final_balances["BTC"] == D(9) and res.final_balances["USDT"] == D(100000) + D(98) * (1 - D("0.002"))


def test_resting_orders_rejoin_the_back_of_the_queue_after_a_resync() -> None:
    mt = BookMatcher(M, RULES)
    mt.event(T0, 1, [BID, ASK], [99.0, 100.0], [1.0, 1.0], 0, 2)
    mt.submit(Order("a", M, "buy", "limit", D("1"), D("99"), created_ms=T0), T0)
    mt.event(T0 + 1, 0, [BID], [99.0], [0.2], 0, 1)  # 0.8 traded at the touch: 0.2 ahead
    (r,) = mt.resting
    assert r.ahead == pytest.approx(0.2)
    assert not mt.event(T0 + 2, 2, [BID], [99.0], [0.0], 0, 1)  # a gap: stale, skipped (it would have filled us)
    assert not mt.deals and mt.book.stale and mt.book.best_bid() is None
    assert mt.event(T0 + 3, 1, [BID, ASK], [99.0, 100.0], [3.0, 1.0], 0, 2)  # the snapshot: at the back again
    assert r.ahead == 3.0 and mt.book.best_bid() == 99.0 and mt.stats.resync_times_ms == [T0 + 2]


def test_two_markets_replay_in_time_order_and_a_halt_keeps_a_partial_result() -> None:
    eth = MarketRules("ETH_USDT", "ETH", "USDT", stock_prec=3, money_prec=2)
    a = book_events((0, "snap", SNAP), (20, "delta", [(BID, 99.5, 1.0)]), (40, "delta", [(BID, 99.6, 1.0)]))
    b = book_events((10, "snap", [(BID, 9.0, 1.0), (ASK, 10.0, 1.0)]), (30, "delta", [(BID, 9.5, 1.0)]))
    b.market = "ETH_USDT"
    seen: list[tuple[str, int, float | None]] = []

    class Watch(Strategy):
        scopes = frozenset()

        def on_book(self, ctx: Context, book: BookSnapshot) -> None:
            seen.append((book.market, book.time_ms - T0, book.best_bid))
            if len(seen) == 4:
                raise RuntimeError("boom")

    res = Backtest(Watch(), [], {M: RULES, "ETH_USDT": eth}, dict(START), grant=Grant.of("orders.create"),
                   books=[a, b]).run()
    assert seen == [(M, 0, 99.0), ("ETH_USDT", 10, 9.0), (M, 20, 99.5), ("ETH_USDT", 30, 9.5)]
    assert res.outcome == "halted" and res.failure is not None and "boom" in res.failure.error
    assert res.events == 4 and len(res.equity) == 4 and res.equity[0] == pytest.approx(100000 + 10 * 99.5)


def test_a_stop_does_not_trigger_on_an_empty_side() -> None:
    mt = BookMatcher(M, RULES)
    mt.event(T0, 1, [BID, ASK], [99.0, 100.0], [1.0, 1.0], 0, 2)
    mt.submit(Order("s", M, "sell", "stop_market", D("1"), stop_price=D("98"), created_ms=T0), T0)
    mt.event(T0 + 1, 0, [BID], [99.0], [0.0], 0, 1)  # no bids at all: no price to trigger on
    assert mt.stops and not mt.deals and not mt.cancels
    mt.event(T0 + 2, 0, [BID], [97.5], [0.4], 0, 1)  # a bid at 97.5 <= 98: triggers, sells what is there
    assert [(d.base, d.price) for d in mt.deals] == [(D("0.400"), D("97.5"))] and not mt.stops
    assert mt.cancels[0][1] == "market: the book had no more liquidity"


def test_an_order_meets_the_book_of_its_arrival_time() -> None:
    """Arrival later than placement (a latency) is matched against the book as it is when the order arrives."""
    mt = BookMatcher(M, RULES)
    mt.event(T0, 1, [BID, ASK], [99.0, 100.0], [1.0, 1.0], 0, 2)
    mt.submit(Order("m", M, "sell", "market", D("0.5"), created_ms=T0), T0 + 15)
    assert mt.arrivals[0].ref == D("99.0")  # the best bid when it was decided
    mt.event(T0 + 10, 0, [BID], [99.0], [0.2], 0, 1)  # before it arrives: not matched
    assert not mt.deals and mt.arrivals
    mt.event(T0 + 20, 0, [BID], [98.0], [3.0], 0, 1)  # arrived at +15: the book of then (0.2 @ 99, nothing at 98)
    assert [(d.price, d.base, d.time_ms - T0) for d in mt.deals] == [(D("99.0"), D("0.200"), 15)]
    assert mt.cancels[0][1] == "market: the book had no more liquidity"


def test_walks_never_take_more_than_the_book_shows_on_random_books() -> None:
    rng = np.random.default_rng(3)
    for trial in range(200):
        n = int(rng.integers(1, 8))
        asks = {round(100 + 0.5 * i, 2): round(float(rng.exponential(1.0)) + 0.001, 3) for i in range(1, n + 1)}
        bids = {round(100 - 0.5 * i, 2): round(float(rng.exponential(1.0)) + 0.001, 3) for i in range(n)}
        mt = BookMatcher(M, RULES)
        levels = [(BID, p, a) for p, a in bids.items()] + [(ASK, p, a) for p, a in asks.items()]
        mt.event(T0, 1, [x[0] for x in levels], [x[1] for x in levels], [x[2] for x in levels], 0, len(levels))
        buy = bool(trial % 2)
        size = D(str(round(float(rng.exponential(3.0)) + 0.001, 3)))
        amount = (size * 100).quantize(D("0.01")) if buy else size  # a market buy spends quote
        mt.submit(Order("x", M, "buy" if buy else "sell", "market", amount, created_ms=T0), T0)
        mt.event(T0 + 1, 0, [BID], [1.0], [1.0], 0, 1)
        shown = asks if buy else bids
        took: dict[float, D] = {}
        for d in mt.deals:
            took[float(d.price)] = took.get(float(d.price), D(0)) + d.base
        assert all(v <= D(str(shown[p])) for p, v in took.items())
        if buy:
            assert sum((d.base * d.price for d in mt.deals), D(0)) <= amount
        else:
            assert sum(took.values(), D(0)) <= min(size, sum((D(str(v)) for v in shown.values()), D(0)))
        ordered = [float(d.price) for d in mt.deals]
        assert ordered == sorted(ordered, reverse=not buy)  # best price first


def test_an_emulated_oco_stop_triggers_on_the_best_bid_and_goes_out_as_a_market_order() -> None:
    """The WhiteBIT way (`[backtest] oco = "emulated"`): the stop is held by the execution layer, triggered by the
    best bid, the take-profit is cancelled, and the market order walks the book it was decided on (as any order
    here: matched at the next event, against the book of its decision time, and stamped with that time)."""
    def bracket(ctx: Context, b: BookSnapshot) -> None:
        ctx.sell(M, "1", "101.5", oco="x")
        ctx.sell(M, "1", stop="98.5", oco="x")

    s = Script({0: bracket})
    res = run(book_events(
        (0, "snap", SNAP),
        (10, "delta", [(BID, 98.8, 0.4)]),  # best bid 99: no trigger
        (20, "delta", [(BID, 99.0, 0.0), (BID, 98.8, 0.0)]),  # best bid 98 <= 98.5: triggered here
        (30, "delta", [(BID, 97.5, 2.0)]),  # the market sell is matched here, on the book of its decision
    ), s)
    tp, sl = sorted(res.orders, key=lambda o: o.type)
    assert sl.type == "stop_market" and sl.status is OrderStatus.FILLED
    assert [(f.time_ms - T0, f.price, f.amount) for f in res.fills] == [(20, D("98.0"), D("1.000"))]
    assert tp.status is OrderStatus.CANCELLED
