"""The backtest: recorded candles, replayed in time order through the same strategy API and execution layer as
live trading, against the simulated venue.

Candles of all markets merge into one stream ordered by close time (ties: market order in the config), and each
candle is delivered only once it has closed. The hot loop walks numpy columns in chunks converted to Python lists,
so a no-op strategy costs well under a microsecond per candle; the equity curve is rebuilt with numpy afterwards
from the fills, not per candle.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from botkit.backtest.books import BookEvents
from botkit.backtest.candle_events import CHUNK, CandleEvents
from botkit.backtest.data import CandleSeries
from botkit.backtest.gcpolicy import rare_young_collections
from botkit.backtest.metrics import Metrics, compute_metrics
from botkit.backtest.tape import Tape, TapeState, candles_from_trades, feed_tape
from botkit.backtest.trades import RoundTrip, fill_reasons, round_trips_of
from botkit.execution.engine import ExecutionEngine, Rejection
from botkit.execution.oco import OcoMode
from botkit.execution.portfolio import Valuation
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.loop import (
    ErrorPolicy,
    EventLoop,
    MarketClock,
    StrategyFailure,
    StrategyHalted,
    iso_ms,
    market_time_logs,
)
from botkit.market.buffer import CandleBuffer, MarketState
from botkit.market.grants import Grant
from botkit.market.orders import ClientIdFactory, Fill, Order
from botkit.market.rules import MarketRules
from botkit.strategy import Strategy
from botkit.venues.book_matching import BookStats
from botkit.venues.simulated import FillModel, SimulatedVenue

log = logging.getLogger("botkit.backtest")

class BacktestError(Exception):
    """The backtest cannot run as configured (e.g. markets with different quote currencies)."""


@dataclass(slots=True)
class BacktestResult:
    strategy: str
    markets: list[str]
    quote: str
    sources: dict[str, str]
    repairs: dict[str, list[str]]
    start_balances: dict[str, Decimal]
    final_balances: dict[str, Decimal]
    event_time_ms: np.ndarray
    equity: np.ndarray
    in_market: np.ndarray
    fills: list[Fill]
    orders: list[Order]
    rejections: list[Rejection]
    round_trips: list[RoundTrip]
    metrics: Metrics
    fees_paid: float
    events: int
    elapsed_s: float = 0.0
    unvalued_assets: list[str] = field(default_factory=list)
    outcome: str = "complete"  # "complete", "halted" (strategy error) or "interrupted" (Ctrl-C): partial results
    failure: StrategyFailure | None = None
    strategy_errors: int = 0  # errors logged and passed over under on_error = "continue"
    warnings: list[str] = field(default_factory=list)  # data mismatches said before the run
    rules: dict[str, MarketRules] = field(default_factory=dict)  # for the report layer (trades.py, report.py)
    series: list[CandleSeries] = field(default_factory=list)  # book replays: each event's mid price as a "candle"
    book: dict[str, BookStats] = field(default_factory=dict)  # book replays: events, updates, resyncs per market
    event_unit: str = "candles"  # what `events` counts: "candles", "book events", or "trades" / "trades and book
    # events" (a tape)

    @property
    def partial(self) -> bool:
        return self.outcome != "complete"


class Backtest:
    """Run one strategy over recorded candles of one or more markets (all quoted in the same currency)."""

    def __init__(
        self,
        strategy: Strategy,
        series: list[CandleSeries],
        rules: dict[str, MarketRules],
        balances: dict[str, Decimal],
        *,
        grant: Grant,
        risk: RiskLimits | None = None,
        fill_model: FillModel | None = None,
        oco: OcoMode = "emulated",
        progress: Callable[[int, int], None] | None = None,
        logger: logging.Logger | None = None,
        on_error: ErrorPolicy = "halt",
        books: Sequence[BookEvents] = (),
        book_depth: int = 20,
        tape: Tape | None = None,
        timeframe_ms: int = 60_000,
        events: CandleEvents | None = None,
    ) -> None:
        """`books`: replay order-book events (the book fill model) instead of candles. `tape` (trades, and optionally
        book events, from the store or a recording): replay those, with candles of `timeframe_ms` built from the
        trades for `on_candle`, the equity curve and the report (`series` is then ignored). `events`: the candle
        events of these very `series`, built once and kept by a caller that replays them many times (a sweep)."""
        self.books = list(books)
        self.book_depth = book_depth
        self.tape = tape
        self._starts: list[np.ndarray] = []
        if tape is not None:
            if fill_model is None or fill_model.kind != "trades":
                raise BacktestError('a replay of trades fills from them: give FillModel(kind="trades") (for candle '
                                    "fills, build candles with candles_from_trades and replay those)")
            if self.books:
                raise BacktestError("one backtest replays either trades or order-book data through the book model")
            if not len(tape.trades):
                raise BacktestError("no trades to replay: the [data] store or recording has no trades of the "
                                    "configured markets")
            built = [candles_from_trades(tr, timeframe_ms) for tr in tape.trades]
            series = [b[0] for b in built]
            self._starts = [b[1] for b in built]
        if self.books:
            if series:
                raise BacktestError("one backtest replays either candles or order-book data, not both")
            if book_depth < 1:
                raise BacktestError(f"book_depth {book_depth} must be at least 1 (levels per side in on_book)")
            series = [_mark_series(b.market, np.zeros(0, np.int64), np.zeros(0), b.source, b.repairs)
                      for b in self.books]
        if not series:
            raise BacktestError("no candle data: configure [data] files")
        missing = [s.market for s in series if s.market not in rules]
        if missing:
            raise BacktestError(f"data for {missing} but no [markets] entry with their rules")
        quotes = {rules[s.market].money for s in series}
        if len(quotes) != 1:
            raise BacktestError(
                f"all markets of one backtest must share a quote currency to value equity; got {sorted(quotes)}"
            )
        self.quote = quotes.pop()
        self.strategy = strategy
        self.series = series
        self.rules = {s.market: rules[s.market] for s in series}
        self._index = {s.market: i for i, s in enumerate(series)}
        self._market_of_stock = {r.stock: m for m, r in self.rules.items()}
        self.start_balances = dict(balances)
        self.grant = grant
        self.risk_limits = risk or RiskLimits()
        self.fill_model = fill_model or FillModel()
        self.oco: OcoMode = oco
        self.progress = progress
        self.on_error: ErrorPolicy = on_error
        self.log = logger or logging.getLogger(f"botkit.strategy.{type(strategy).__name__}")
        if events is not None and (self.books or tape is not None or not events.serves(series)):
            raise BacktestError("the candle events given were built from other data than this backtest replays")
        self.events = events

    # ---- run ----------------------------------------------------------------------------------------------------

    def run(self) -> BacktestResult:
        """Replay every candle through the shared event loop. A strategy error (policy "halt") or Ctrl-C ends the
        replay early: the result then covers the events replayed so far and says why it is partial."""
        t0 = time.perf_counter()
        events = None
        if self.books:
            ev_m, ev_i, close_t = self._merge_books()
        else:
            events = self.events if self.events is not None else CandleEvents(self.series)
            ev_m, ev_i, close_t = events.ev_m, events.ev_i, events.close_t
        n = len(close_t)
        first = 0 if ev_m is None or not n else int(ev_m[0])
        clock = MarketClock(int(close_t[0]) - self.series[first].timeframe_ms if n else 0)
        buffers = {s.market: CandleBuffer.of_columns(s.time_ms, s.open, s.high, s.low, s.close, s.volume)
                   for s in self.series}
        state = MarketState(buffers) if self.tape is None else \
            TapeState(buffers, clock, {s.market: s.time_ms + s.timeframe_ms for s in self.series})
        venue = SimulatedVenue(self.rules, self.start_balances, self.fill_model, supports_oco=self.oco == "native")
        for b in self.books:
            l2 = venue.use_book(b.market).book
            l2.view_depth = self.book_depth
            state.marks[b.market] = l2.mid
        value = Valuation(self.rules, self.quote, state.last_price)
        engine = ExecutionEngine(
            grant=self.grant,
            declared_scopes=type(self.strategy).scopes,
            rules=self.rules,
            risk=RiskManager(self.risk_limits),
            venue=venue,
            clock=clock,
            last_price=state.last_price,
            equity=lambda: value(venue.balances()),
            ids=ClientIdFactory("bt"),
        )
        engine.check_start()
        loop = EventLoop(self.strategy, engine, state, clock, logger=self.log, fills=venue, on_error=self.on_error,
                         record_fill_events=self.tape is None)
        outcome, failure = "complete", None
        marks: list[float] = []
        tape_books: dict[str, BookStats] = {}
        with market_time_logs(clock), rare_young_collections():
            try:
                loop.start()
                if self.tape is not None:
                    tape_books = feed_tape(loop, self.tape, self.series, self._starts, self.progress, self.book_depth)
                elif self.books:
                    self._feed_books(loop, ev_m, ev_i, marks)
                elif events is not None:
                    self._feed(loop, events)
                loop.flush_venue(float("inf"))  # what latency still held back reaches the strategy
                loop.stop()
                loop.flush_venue(float("inf"))  # cancels placed in on_stop
            except StrategyHalted as halted:
                outcome, failure = "halted", halted.failure
                loop.halt(halted.failure, "strategy error")
            except KeyboardInterrupt:
                outcome = "interrupted"
        done = loop.events
        if self.books:
            self._mark_series(marks, ev_m, ev_i, close_t)
        keep = max(done, 1) if n else 0  # a halt in on_start still reports the starting equity (one point)
        fill_k = loop.fill_events or []
        if self.tape is not None:  # events are trades; the equity curve is on the candles built from them
            keep = n if outcome == "complete" else min(n, int(np.searchsorted(close_t, clock.now, "right")) + 1)
            fill_k = np.minimum(np.searchsorted(close_t, [f.time_ms for f in engine.fills], "right"),
                                max(keep - 1, 0)).tolist()
        if keep < n:
            close_t = close_t[:keep]
            ev_m = ev_m[:keep] if ev_m is not None else None
            ev_i = ev_i[:keep] if ev_i is not None else None
        with rare_young_collections():  # the results walk every order and fill: the same reasoning
            result = self._result(engine, venue, ev_m, ev_i, close_t, fill_k)
        result.book = {m: d.stats for m, d in venue.depth.items()}
        result.warnings = book_warnings(result.book | tape_books)  # (a tape's book gaps: warned, not a book replay)
        for text in result.warnings:
            log.warning(text)
        result.events = done
        if self.tape is not None:
            result.event_unit = "trades and book events" if self.tape.books and loop.wants_books else "trades"
        elif self.books:
            result.event_unit = "book events"
        result.outcome = outcome
        result.failure = failure
        result.strategy_errors = loop.error_count
        result.elapsed_s = time.perf_counter() - t0
        return result

    def _feed(self, loop: EventLoop, events: CandleEvents) -> None:
        """The backtest's event source: candles in event order, a chunk at a time."""
        n = len(events)
        for chunk in events.chunks():
            if chunk.markets is None or chunk.rows is None:  # one market: event index == row index
                loop.candles_one(0, chunk.start, chunk.candles, chunk.start)
            else:
                loop.candles_mixed(chunk.markets, chunk.rows, chunk.candles, chunk.start)
            if self.progress is not None:
                self.progress(chunk.end, n)

    def _merge_books(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Book events of all markets in time order (ties: market order); as `_merge`, with event numbers for rows."""
        self._book_index = [b.event_index() for b in self.books]
        for b, (_, t, _) in zip(self.books, self._book_index, strict=True):
            back = np.flatnonzero(np.diff(t) < 0)
            if len(back):
                raise BacktestError(f"{b.market} book events go back in time at event {int(back[0]) + 1} "
                                    f"({b.source}): sort the data by time")
        if len(self.books) == 1:
            return None, None, self._book_index[0][1] // 1000
        ms = np.concatenate([np.full(len(t), j, dtype=np.int64) for j, (_, t, _) in enumerate(self._book_index)])
        rows = np.concatenate([np.arange(len(t), dtype=np.int64) for _, t, _ in self._book_index])
        tu = np.concatenate([t for _, t, _ in self._book_index])
        order = np.lexsort((ms, tu))
        return ms[order], rows[order], tu[order] // 1000

    def _feed_books(self, loop: EventLoop, ev_m: np.ndarray | None, ev_i: np.ndarray | None,
                    marks: list[float]) -> None:
        """The book replay's event source: runs of one market's events, a chunk of Python lists at a time."""
        total = sum(len(t) for _, t, _ in self._book_index)
        if ev_m is None or ev_i is None:
            runs = [(0, 0, total, 0)]  # (market, first event, end event, first event number)
        else:
            cut = np.flatnonzero(np.diff(ev_m)) + 1
            bounds = np.concatenate(([0], cut, [len(ev_m)])).tolist()
            runs = [(int(ev_m[a]), int(ev_i[a]), int(ev_i[a]) + b - a, a) for a, b in itertools.pairwise(bounds)]
        for m, e0, e1, k in runs:
            starts, t_us, flags = self._book_index[m]
            c = self.books[m].cols
            for a in range(e0, e1, CHUNK):
                b = min(e1, a + CHUNK)
                r0, r1 = int(starts[a]), int(starts[b])
                loop.book_events(m, (t_us[a:b] // 1000).tolist(), (starts[a:b + 1] - r0).tolist(),
                                 flags[a:b].tolist(), c["side"][r0:r1].tolist(), c["price"][r0:r1].tolist(),
                                 c["amount"][r0:r1].tolist(), k + a - e0, marks)
                if self.progress is not None:
                    self.progress(k + b - e0, total)

    def _mark_series(self, marks: list[float], ev_m: np.ndarray | None, ev_i: np.ndarray | None,
                     close_t: np.ndarray) -> None:
        """Each market's mid price at its book events (carried over gaps), as the series results are priced on."""
        mk = np.full(len(close_t), np.nan)
        mk[:len(marks)] = marks
        out = []
        for j, b in enumerate(self.books):
            mine = slice(None) if ev_m is None else ev_m == j
            px = _ffill(mk[mine])
            out.append(_mark_series(b.market, close_t[mine].astype(np.int64), px, b.source, b.repairs))
        self.series = out

    # ---- results ------------------------------------------------------------------------------------------------

    def _result(
        self,
        engine: ExecutionEngine,
        venue: SimulatedVenue,
        ev_m: np.ndarray | None,
        ev_i: np.ndarray | None,
        close_t: np.ndarray,
        fill_k: list[int],
    ) -> BacktestResult:
        n = len(close_t)
        fills = engine.fills
        # Fills in on_start/on_stop cannot happen (the venue fills only on candles), so fill_k covers every fill.
        kk = np.asarray(fill_k, dtype=np.int64)
        assets = sorted(set(venue.balances()) | set(self.start_balances))
        equity = np.zeros(n, dtype=np.float64)
        in_market = np.zeros(n, dtype=bool)
        unvalued: list[str] = []
        # Each fill's (stock, money, stock change, money change), converted to float once for all assets.
        moves: list[tuple[str, str, float, float]] = []
        fee_values: list[float] = []  # each fee in quote, for fees_paid
        rules = self.rules
        for f in fills:
            r = rules[f.market]
            if f.side == "buy":
                moves.append((r.stock, r.money, float(f.amount - f.fee), -float(f.quote)))
            else:
                moves.append((r.stock, r.money, -float(f.amount), float(f.quote - f.fee)))
            fee_values.append(float(f.fee) * (float(f.price) if f.fee_asset == r.stock else 1.0))
        for asset in assets:  # one asset at a time keeps peak memory to a few columns
            start = float(self.start_balances.get(asset, 0))
            amounts = [ds if asset == st else (dm if asset == mo else 0.0) for st, mo, ds, dm in moves]
            w = np.asarray(amounts, dtype=np.float64)
            if fills and int(kk.min()) >= 0 and int(kk.max()) < n:
                # np.add.at's sums (fill by fill, in fill order, from 0.0) at a twentieth of its cost
                h: np.ndarray = np.bincount(kk, weights=w, minlength=n).astype(np.float64, copy=False)
            else:
                h = np.zeros(n, dtype=np.float64)
                if fills:
                    np.add.at(h, kk, w)
            np.cumsum(h, out=h)
            h += start
            if asset == self.quote:
                equity += h
                continue
            market = self._market_of_stock.get(asset)
            if market is None:
                if np.any(h != 0):
                    unvalued.append(asset)
                continue
            step = float(self.rules[market].amount_step)
            moved = h - start
            np.abs(moved, out=moved)
            in_market |= moved >= step / 2
            del moved
            h *= self._ffill_close(market, ev_m, ev_i)[:n]  # a partial replay covers the first n events
            equity += h
            del h
        # open positions are valued at the last close replayed (a partial replay stops before the data's end)
        last_close = {s.market: float(self._ffill_close(s.market, ev_m, ev_i)[n - 1]) for s in self.series} if n else {}
        round_trips = round_trips_of(fills, self.rules, last_close, fill_reasons(engine.orders.values()))
        fees_paid = sum(fee_values)  # in fill order, as ever: the same float
        pnls = np.asarray([rt.pnl for rt in round_trips if rt.closed], dtype=np.float64)
        metrics = compute_metrics(close_t, equity, pnls, in_market, fees_paid)
        return BacktestResult(
            strategy=type(self.strategy).__name__,
            markets=[s.market for s in self.series],
            quote=self.quote,
            sources={s.market: s.source for s in self.series},
            repairs={s.market: list(s.repairs) for s in self.series},
            start_balances=dict(self.start_balances),
            final_balances={a: b.total for a, b in venue.balances().items()},
            event_time_ms=close_t,
            equity=equity,
            in_market=in_market,
            fills=list(fills),
            orders=list(engine.orders.values()),
            rejections=list(engine.rejections),
            round_trips=round_trips,
            metrics=metrics,
            fees_paid=fees_paid,
            events=n,
            unvalued_assets=unvalued,
            rules=self.rules,
            series=self.series,
        )

    def _ffill_close(self, market: str, ev_m: np.ndarray | None, ev_i: np.ndarray | None) -> np.ndarray:
        j = self._index[market]
        s = self.series[j]
        if ev_m is None or ev_i is None:
            return s.close
        mine = ev_m == j
        idx = np.where(mine, np.arange(len(ev_m)), -1)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(mine)) if mine.any() else 0
        idx[idx < 0] = first
        out: np.ndarray = s.close[ev_i[idx]]
        return out


def _ffill(x: np.ndarray) -> np.ndarray:
    """NaN (no two-sided book yet, or stale) takes the previous value; leading NaN the first value."""
    ok = ~np.isnan(x)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.where(ok, np.arange(len(x)), -1)
    np.maximum.accumulate(idx, out=idx)
    idx[idx < 0] = int(np.argmax(ok))
    out: np.ndarray = x[idx]
    return out


def _mark_series(market: str, t: np.ndarray, px: np.ndarray, source: str, repairs: tuple[str, ...]) -> CandleSeries:
    px = np.ascontiguousarray(px, dtype=np.float64)
    return CandleSeries(market, 1, t, px, px, px, px, np.zeros(len(px)), f"{source} (mid prices of the rebuilt book)",
                        repairs)


def book_warnings(stats: dict[str, BookStats]) -> list[str]:
    """A gap in a book's update-id chain is never hidden: one line per market that had any."""
    out = []
    for market, st in stats.items():
        if st.resync_times_ms:
            times = ", ".join(iso_ms(t) for t in st.resync_times_ms[:5]) + (" ..." if len(st.resync_times_ms) > 5
                                                                            else "")
            out.append(f"{market}: {len(st.resync_times_ms)} gap(s) in the book's update-id chain (resync at "
                       f"{times}); the book was rebuilt from the next snapshot, {st.skipped_updates:,} updates in "
                       f"{st.skipped_events:,} events before it were skipped")
    return out
