"""The tape as the backtest's event source: book events to `on_book` and as the queue estimate, several markets in
time order, timers between batches, and the live path (`EventLoop.trade`, what paper trading calls) with latency."""

from __future__ import annotations

import logging
from decimal import Decimal as D

import numpy as np

from botkit import Context, Strategy
from botkit.backtest.books import BookEvents
from botkit.backtest.replay import Backtest
from botkit.backtest.tape import Tape
from botkit.execution.engine import ExecutionEngine
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.loop import EventLoop, MarketClock
from botkit.market.buffer import CandleBuffer, MarketState
from botkit.market.grants import Grant
from botkit.market.orders import Fill
from botkit.market.types import BookSnapshot, BookView, Trade, TradeBatch
from botkit.venues.simulated import FillModel, SimulatedVenue
from tests.backtest.test_trades_fill_model import SELL, TradeScript, tape, trades_run
from tests.core.helpers import ETH, RULES, T0

GRANT = "orders.create,orders.delete,orders.read,balances.read"


def book_events(rows: list[tuple[int, int, int, float, float]], market: str = "BTC_USDT") -> BookEvents:
    """rows: (ms after T0, snapshot 0/1, side +1 bid/-1 ask, price, amount); one update id per distinct time."""
    t = np.asarray([(T0 + r[0]) * 1000 for r in rows], np.int64)
    uid = np.unique(t, return_inverse=True)[1].astype(np.int64) + 1
    cols: dict[str, np.ndarray] = {"time_us": t, "update_id": uid, "prev_update_id": uid - 1,
            "snapshot": np.asarray([r[1] for r in rows], np.int8), "side": np.asarray([r[2] for r in rows], np.int8),
            "price": np.asarray([r[3] for r in rows], np.float64),
            "amount": np.asarray([r[4] for r in rows], np.float64), "resync": np.zeros(len(rows), np.int8)}
    return BookEvents(market, "test", cols)


class BookWatcher(TradeScript):
    def __init__(self, plan):
        super().__init__(plan)
        self.books: list[BookSnapshot] = []

    def on_book(self, ctx: Context, book: BookSnapshot) -> None:
        assert isinstance(book, BookView)  # the book model's lazy view: read it here (what was read stays)
        book.bids, book.asks  # noqa: B018
        self.books.append(book)


def test_book_events_reach_on_book_in_time_and_size_the_queue_ahead():
    books = book_events([(0, 1, 1, 100.0, 2.0), (0, 1, 1, 99.0, 5.0), (0, 1, -1, 101.0, 1.0),
                         (15, 0, 1, 100.0, 2.5)])
    s = BookWatcher({0: lambda ctx, tr: ctx.buy("BTC_USDT", "1", "100")})
    t = tape([(0, 100.5, 1.0, 1), (10, 100.0, 1.0, SELL), (20, 100.0, 1.0, SELL), (30, 100.0, 1.5, SELL)])
    t.books["BTC_USDT"] = books
    trades_run(s, t)  # queue_ahead 0, but the book shows 2.0 bid at 100 when the order joins (at the trade at 10)
    assert [(b.time_ms - T0, b.bids, b.asks) for b in s.books] == [
        (0, ((100.0, 2.0), (99.0, 5.0)), ((101.0, 1.0),)), (15, ((100.0, 2.5), (99.0, 5.0)), ((101.0, 1.0),))]
    # 1.0 at 10 and 1.0 at 20 use up the 2.0 ahead; the trade at 30 fills 1.0 of its 1.5
    assert [(f.time_ms - T0, f.amount) for _, f in s.fills] == [(30, D("1"))]
    seen_order = [("b", b.time_ms - T0) for b in s.books] + [("t", tr.time_ms - T0) for tr in s.seen]
    assert sorted(seen_order, key=lambda x: x[1]) == [("b", 0), ("t", 0), ("t", 10), ("b", 15), ("t", 20), ("t", 30)]


class Both(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []
        self.fills: list[Fill] = []

    def on_start(self, ctx: Context) -> None:
        ctx.buy("BTC_USDT", "1", "99")
        ctx.buy("ETH_USDT", "1", "9")

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.seen.append((trade.market, trade.time_ms - T0))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)


def test_several_markets_replay_in_time_order_and_fill_on_their_own_trades():
    btc = tape([(0, 100.0, 1.0, 1), (20, 98.0, 1.0, SELL), (40, 101.0, 1.0, 1)]).trades[0]
    eth = tape([(10, 10.0, 1.0, 1), (20, 9.5, 1.0, SELL), (30, 8.0, 1.0, SELL)], market="ETH_USDT").trades[0]
    s = Both()
    res = Backtest(s, [], {"BTC_USDT": RULES, "ETH_USDT": ETH}, {"USDT": D("1000")}, grant=Grant.of(GRANT),
                   fill_model=FillModel(kind="trades"), tape=Tape([btc, eth])).run()
    assert s.seen == [("BTC_USDT", 0), ("ETH_USDT", 10), ("BTC_USDT", 20), ("ETH_USDT", 20), ("ETH_USDT", 30),
                      ("BTC_USDT", 40)]
    assert [(f.market, f.time_ms - T0, f.price) for f in s.fills] == [("BTC_USDT", 20, D("99")),
                                                                      ("ETH_USDT", 30, D("9"))]
    assert res.events == 6


class Ticker(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[tuple[int, int]] = []  # (now, trades seen so far)
        self.n = 0

    def on_start(self, ctx: Context) -> None:
        ctx.schedule("t", 100)

    def on_trades(self, ctx: Context, trades: TradeBatch) -> None:
        assert np.all(np.diff(trades.time_ms) >= 0)
        self.n += len(trades)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.ticks.append((ctx.now - T0, self.n))


def test_batches_end_at_timers_so_a_timer_sees_exactly_the_trades_before_it():
    rows = [(t, 100.0, 1.0, 1) for t in range(0, 450, 30)]  # 0, 30, ..., 420
    s = Ticker()
    trades_run(s, tape(rows))
    # due at 100, 200, 300, 400: each fires after the first trade at or past it (as on_trade delivery would)
    assert s.ticks == [(120, 5), (210, 8), (300, 11), (420, 15)]


def test_the_live_path_paper_uses_applies_latency_to_trade_fills():
    """Paper trading feeds one Trade at a time through `EventLoop.trade`: the same venue, the same latency."""
    clock = MarketClock(T0)
    venue = SimulatedVenue({"BTC_USDT": RULES}, {"USDT": D("1000")},
                           FillModel(kind="trades", latency_ms=300, fill_latency_ms=100))
    state = MarketState({"BTC_USDT": CandleBuffer.live(10)})
    seen: list[tuple[int, Fill]] = []

    class Rec(Strategy):
        def on_fill(self, ctx: Context, fill: Fill) -> None:
            seen.append((ctx.now - T0, fill))

    engine = ExecutionEngine(grant=Grant.of(GRANT), declared_scopes=Rec.scopes, rules={"BTC_USDT": RULES},
                             risk=RiskManager(RiskLimits()), venue=venue, clock=clock, last_price=state.last_price)
    loop = EventLoop(Rec(), engine, state, clock, logger=logging.getLogger("t"), fills=venue)
    loop.start()
    loop.trade(Trade("BTC_USDT", T0, 100.0, 1.0, "buy"))
    loop.ctx.buy("BTC_USDT", "1", "99.5")
    for dt, px in ((100, 99.0), (299, 98.0), (300, 99.4), (350, 99.4), (400, 99.4)):
        loop.trade(Trade("BTC_USDT", T0 + dt, px, 1.0, "sell"))
    ((when, fill),) = seen
    assert fill.time_ms == T0 + 300 and when == 400  # arrived at 300 (trades at 100 and 299 missed it), heard at 400


class Looker(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int, float | None]] = []  # (trade time, closed candles, last close)

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        c = ctx.candles("BTC_USDT")
        self.seen.append((trade.time_ms - T0, len(c), float(c.close[-1]) if len(c) else None))


def test_candles_built_from_trades_grow_as_they_close_without_look_ahead():
    rows = [(0, 100.0, 1.0, 1), (30_000, 101.0, 1.0, 1), (60_000, 102.0, 1.0, 1), (61_000, 99.0, 1.0, 1),
            (185_000, 98.0, 1.0, 1)]
    s = Looker()
    trades_run(s, tape(rows))
    # the first minute closes before the trade at 60 s; the second (102, 99) before the one at 185 s
    assert s.seen == [(0, 0, None), (30_000, 0, None), (60_000, 1, 101.0), (61_000, 1, 101.0),
                      (185_000, 2, 99.0)]


def test_backtest_command_on_a_store_dataset_with_both_fill_models_and_a_window(shared_data, tmp_path, capsys):
    """Real XRP/ETH trades imported into a store; `botkit backtest --data STORE` replays them (fills = "trades"),
    or the 1m candles built from them (fills = "candles"); --from/--to cut the window."""
    import textwrap

    from botkit.backtest.datasets import import_trades
    from botkit.backtest.store import Store
    from botkit.cli import main

    store = tmp_path / "store"
    import_trades(Store(store), shared_data / "trades" / "XRP_ETH_trades.csv", "XRP_ETH")
    cfg = tmp_path / "xrp.toml"
    body = textwrap.dedent(f'''
        [strategy]
        plugin = "strategies/sma_cross.py:SmaCross"
        params = {{ fast = 5, slow = 20, fraction = "0.5" }}
        [markets.XRP_ETH]
        stock_prec = 0
        money_prec = 8
        [balances]
        ETH = "10"
        [backtest]
        fills = "trades"
        progress = false
        [output]
        dir = "{tmp_path / 'out'}"
        ''')
    cfg.write_text(body)
    assert main(["backtest", str(cfg), "--data", str(store)]) == 0
    out = capsys.readouterr().out
    assert "12,477 trades in" in out and f"store {store} trades/XRP_ETH" in out
    assert "  Trades             12,477" in out  # the summary counts trades, not candles
    assert main(["backtest", str(cfg), "--data", str(store), "--from", "2019-10-11T12:00", "--to",
                 "2019-10-12"]) == 0
    out = capsys.readouterr().out
    n = len([1 for line in (shared_data / "trades" / "XRP_ETH_trades.csv").read_text().splitlines()[1:]
             if 1570795200000 <= int(line.split(",")[0]) < 1570838400000])
    assert f"{n:,} trades in" in out and 0 < n < 12_477
    cfg.write_text(body.replace('fills = "trades"', 'fills = "candles"'))
    assert main(["backtest", str(cfg), "--data", str(store)]) == 0
    out = capsys.readouterr().out
    assert "candles built from trades" in out and " candles in " in out


def test_latency_in_the_book_model_and_fills_book_from_the_command(shared_data, tmp_path, capsys):
    """The book model with latency: an order decided at event t arrives at t + latency_ms and is matched against the
    book as it was then (before the first event at or after its arrival), its fills carrying the arrival time; the
    strategy hears of them fill_latency_ms later (at the first event from then on). `fills = "book"` with a store
    replays its book dataset (here the real Binance BTCUSDT snapshot + updates)."""
    import textwrap

    from botkit.backtest.datasets import import_book
    from botkit.backtest.store import Store
    from botkit.cli import main
    from tests.backtest.test_book_fills import RULES as BOOK_RULES
    from tests.backtest.test_book_fills import SNAP, START
    from tests.backtest.test_book_fills import T0 as B0
    from tests.backtest.test_book_fills import book_events as book_rows

    seen: list[tuple[int, Fill]] = []

    class Taker(Strategy):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def on_book(self, ctx: Context, book: BookSnapshot) -> None:
            self.n += 1
            if self.n == 1:
                ctx.buy("BTC_USDT", "1000")  # market buy, 1,000 USDT

        def on_fill(self, ctx: Context, fill: Fill) -> None:
            seen.append((ctx.now - B0, fill))

    ev = book_rows((0, "snap", SNAP), (100, "delta", [(-1, 100.0, 0.7)]), (250, "delta", [(-1, 100.0, 20.0)]),
                   (400, "delta", [(1, 99.0, 1.5)]), (600, "delta", [(1, 99.0, 1.4)]))
    for lat, flat, filled_at, heard_at in ((0, 0, 0, 100), (200, 0, 200, 250), (200, 300, 200, 600)):
        seen.clear()
        Backtest(Taker(), [], {"BTC_USDT": BOOK_RULES}, dict(START), grant=Grant.of(GRANT), books=[ev],
                 fill_model=FillModel(latency_ms=lat, fill_latency_ms=flat)).run()
        assert seen and {f.time_ms - B0 for _, f in seen} == {filled_at}, (lat, flat, seen)
        assert {w for w, _ in seen} == {heard_at}, (lat, flat)

    store = tmp_path / "store"
    depth = shared_data / "depth"
    import_book(Store(store), [depth / "binance_BTCUSDT_depth_snapshot.csv",
                               depth / "binance_BTCUSDT_depth_updates.csv"], "BTC_USDT", repair=["mark_gaps"])
    cfg = tmp_path / "book.toml"
    cfg.write_text(textwrap.dedent(f'''
        [strategy]
        plugin = "strategies/sma_cross.py:SmaCross"
        [markets.BTC_USDT]
        stock_prec = 3
        money_prec = 2
        [balances]
        USDT = "100000"
        [backtest]
        fills = "book"
        latency_ms = 5
        progress = false
        [output]
        dir = "{tmp_path / 'out'}"
        '''))
    assert main(["backtest", str(cfg), "--data", str(store)]) == 0
    out = capsys.readouterr().out
    assert " book events in " in out


def test_paper_trading_refuses_the_book_fill_model(tmp_path, capsys):
    import textwrap

    from botkit.cli import main

    cfg = tmp_path / "paper.toml"
    cfg.write_text(textwrap.dedent('''
        [strategy]
        plugin = "strategies/sma_cross.py:SmaCross"
        [markets.BTC_USDT]
        [balances]
        USDT = "1000"
        [backtest]
        fills = "book"
        [run]
        mode = "paper"
        '''))
    assert main(["run", str(cfg)]) == 2
    assert 'fills = "book" is for backtests' in capsys.readouterr().err


def test_a_tape_delivers_the_book_as_the_book_model_does_through_a_gap():
    """One builder for both fill models: the book model's matcher. A gap in the update-id chain makes the tape's book
    stale too (no on_book until the next snapshot rebuilds it, the old book never patched) and is warned; the views
    (type, times, best prices, levels) are those the book model hands the same strategy."""
    from botkit.backtest.importers import TradeSeries
    from tests.backtest.test_book_fills import ASK, BID, SNAP
    from tests.backtest.test_book_fills import RULES as BOOK_RULES
    from tests.backtest.test_book_fills import T0 as B0
    from tests.backtest.test_book_fills import book_events as book_rows
    from tests.backtest.test_book_fills import run as book_run

    class Looks(Strategy):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, int, float | None, float | None, object, object]] = []

        def on_book(self, ctx: Context, book: BookSnapshot) -> None:
            self.seen.append((type(book).__name__, book.time_ms - B0, book.best_bid, book.best_ask, book.bids,
                              book.asks))

    events = book_rows((0, "snap", SNAP), (10, "delta", [(BID, 99.5, 1.0)]),
                       (20, "gap", [(BID, 98.0, 0.0), (ASK, 97.0, 9.0)]), (30, "delta", [(ASK, 96.0, 9.0)]),
                       (40, "snap", [(BID, 97.5, 1.0), (ASK, 99.5, 1.0)]), (50, "delta", [(BID, 97.6, 1.0)]))
    in_book = Looks()
    book_run(events, in_book, depth=2)
    n = 6
    trades = TradeSeries("BTC_USDT", B0 + 5 + 10 * np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64),
                         np.full(n, 99.0), np.full(n, 0.1), np.ones(n, np.int8), "test")
    in_tape = Looks()
    res = Backtest(in_tape, [], {"BTC_USDT": BOOK_RULES}, {"USDT": D("1000")}, grant=Grant.of(GRANT),
                   fill_model=FillModel(kind="trades"), tape=Tape([trades], {"BTC_USDT": events}), book_depth=2).run()
    assert [s[1:4] for s in in_tape.seen] == [(0, 99.0, 100.0), (10, 99.5, 100.0), (40, 97.5, 99.5),
                                             (50, 97.6, 99.5)]
    assert in_tape.seen == in_book.seen and {s[0] for s in in_tape.seen} == {"BookView"}
    assert in_tape.seen[0][4:] == (((99.0, 1.0), (98.0, 2.0)), ((100.0, 0.5), (101.0, 1.0)))  # book_depth 2
    assert any("1 gap(s) in the book's update-id chain" in w and "3 updates" in w for w in res.warnings)
