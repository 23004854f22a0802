"""The one event loop: backtest, paper, sandbox and live differ only in the venue, the event source and the clock.

For every market event the loop sets the market clock to the event's time (a candle's close time), lets the
simulated venue fill what the event fills (an order is eligible only for data that starts at or after the market
time it was placed at, so paper fills exactly where a backtest fills), publishes the event to the strategy's data,
calls the strategy, then delivers the order events the call caused and fires due timers. A backtest feeds recorded
candles in chunks as fast as it can; a live run feeds one event at a time from its WebSocket and calls `tick`
between events, so timers and order events flow while the market is quiet.

Each order state change reaches the strategy once, as a snapshot taken when it happened. Strategy errors are a
policy, the same in every mode: "halt" (the default) stops the bot safely; "continue" logs the error with the market
time and the strategy's file:line and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

import numpy as np

from botkit.execution.engine import EventSink, ExecutionEngine
from botkit.market.buffer import MarketState
from botkit.market.orders import Fill, Order
from botkit.market.types import SIDE_NAMES, BookSnapshot, BookView, Candle, Trade, TradeBatch
from botkit.strategy import Context, Strategy
from botkit.venues.simulated import SimulatedVenue

log = logging.getLogger("botkit.loop")
INF, NAN = float("inf"), float("nan")

ErrorPolicy = Literal["halt", "continue"]


class MarketClock:
    """Market time: the time of the latest event (ms). Backtests and paper trading run on it."""

    __slots__ = ("now",)

    def __init__(self, start_ms: int = 0) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now


class WallClock:
    """Wall time for live trading. `now` still tracks market time (the loop sets it), for eligibility and logs."""

    __slots__ = ("_source", "now")

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.now = 0
        self._source = source  # wall seconds; a fake clock in tests

    def __call__(self) -> int:
        return int(self._source() * 1000)


Clock = MarketClock | WallClock


class _MarketTimeFilter(logging.Filter):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock.now
        if now:
            record.created = now / 1000
            record.msecs = float(now % 1000)
        return True


@contextlib.contextmanager
def market_time_logs(clock: Clock) -> Iterator[None]:
    """Log lines written during a replay carry market time, not wall time, so a backtest's log reads like its data."""
    handlers = list(logging.getLogger().handlers)
    filt = _MarketTimeFilter(clock)
    for h in handlers:
        h.addFilter(filt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(filt)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class StrategyFailure:
    """A strategy callback raised: where in the strategy, at what market time, and what."""

    callback: str
    time_ms: int
    where: str
    error: str
    traceback: str

    @classmethod
    def of(cls, callback: str, time_ms: int, exc: BaseException, strategy: Strategy) -> StrategyFailure:
        frames = traceback.extract_tb(exc.__traceback__)
        source = getattr(sys.modules.get(type(strategy).__module__), "__file__", None)
        mine = [f for f in frames if source is not None and f.filename == source]
        outside = [f for f in frames if "/botkit/" not in f.filename.replace("\\", "/")]
        pick = mine or outside or list(frames)
        where = f"{pick[-1].filename}:{pick[-1].lineno}" if pick else "unknown location"
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(callback, time_ms, where, f"{type(exc).__name__}: {exc}", tb)

    def text(self) -> str:
        return f"strategy error in {self.callback} at market time {iso_ms(self.time_ms)} ({self.where}): {self.error}"


class StrategyHalted(BaseException):  # a control-flow signal, like KeyboardInterrupt
    """The error policy stopped the bot; a strategy's own `except Exception` cannot swallow it."""

    def __init__(self, failure: StrategyFailure) -> None:
        super().__init__(failure.text())
        self.failure = failure


class OrderObserver(Protocol):
    """Sees every order event after the strategy did (run output, incremental trades file)."""

    def on_order_update(self, order: Order) -> None: ...

    def on_fill(self, fill: Fill) -> None: ...


class _NoFills:
    active = False
    lo = -math.inf  # the trades gate: no trade price is outside (-inf, inf)
    hi = math.inf


_NO_FILLS = _NoFills()


class EventLoop:
    """Drives one strategy through market events; see the module docstring for the order of steps."""

    def __init__(
        self,
        strategy: Strategy,
        engine: ExecutionEngine,
        state: MarketState,
        clock: Clock,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        fills: SimulatedVenue | None = None,
        on_error: ErrorPolicy = "halt",
        observers: Sequence[OrderObserver] = (),
        record_fill_events: bool = False,
    ) -> None:
        self.strategy = strategy
        self.engine = engine
        self.state = state
        self.clock = clock
        self.ctx = Context(engine, state, clock, logger)
        self.on_error = on_error
        self.observers = tuple(observers)  # fixed here: the engine is told below which order events anyone hears
        self.names = list(state.order)
        self.index = {m: i for i, m in enumerate(self.names)}
        self.buffers = [state.buffers[m] for m in self.names]
        self._venue_fill: Callable[[str, int, float, float, float, int], None] | None = None
        self._venue_trade: Callable[[str, int, float, float, int, float, int], None] | None = None
        self._prev: dict[int, tuple[float, int]] = {}  # each market's last trade (price, side) seen by the venue
        self.venue = fills
        self.books: list[object] = [_NO_FILLS] * len(self.names)
        self.gates: list[Any] = [_NO_FILLS] * len(self.names)  # trade fills: the venue's books
        # Stops the execution layer holds for OCO groups (a venue without native OCO): checked on each closed candle
        # and trade.
        self.watches = [engine.oco.watch(m) for m in self.names]
        if fills is not None and fills.fill_model.kind == "candles":
            self._venue_fill = fills.process_candle
            self.books = [fills.books[m] for m in self.names]
        elif fills is not None and fills.fill_model.kind == "trades":
            self._venue_trade = fills.process_trade
            self.gates = [fills.books[m] for m in self.names]
        strategy_type = type(strategy)
        self.batch_trades = strategy_type.on_trades is not Strategy.on_trades
        self.wants_trades = self.batch_trades or strategy_type.on_trade is not Strategy.on_trade
        self.wants_candles = strategy_type.on_candle is not Strategy.on_candle
        self.wants_books = strategy_type.on_book is not Strategy.on_book
        # Backtests remember which event each fill happened at (the equity curve is rebuilt from that afterwards).
        self.fill_events: list[int] | None = [] if record_fill_events else None
        self.events = 0  # market events fed so far
        self.errors: list[StrategyFailure] = []  # failures under the "continue" policy (first 100 kept)
        self.error_count = 0
        self.halted: StrategyFailure | None = None
        self.halt_reason: str | None = None  # set when the bot halts, whatever the cause
        self.stopped = False
        engine.sink = cast(EventSink, weakref.proxy(self))  # the engine is this loop's: no strong link back
        engine.tell_updates = bool(self.observers) or strategy_type.on_order_update is not Strategy.on_order_update
        engine.tell_fills = bool(self.observers) or strategy_type.on_fill is not Strategy.on_fill

    # ---- lifecycle --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.strategy.on_start(self.ctx)
        except Exception as exc:
            self._failed("on_start", exc)
        self._settle(self.clock.now)

    def stop(self) -> None:
        """The normal end: `on_stop`, then the order events it causes."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.strategy.on_stop(self.ctx)
        except Exception as exc:  # (not _failed: stopped is set, so a halt does not run on_stop twice)
            failure = StrategyFailure.of("on_stop", self.clock.now, exc, self.strategy)
            if self.on_error == "halt":
                raise StrategyHalted(failure) from exc
            self.error_count += 1
            self.ctx.log.error("%s (on_error = continue)", failure.text())
        self.engine.drain()

    def halt(self, failure: StrategyFailure | None, reason: str) -> int:
        """Stop safely (a strategy error, or credentials that stopped working): `on_stop` (errors only logged),
        cancel the bot's own open orders where the credentials allow, then deliver what is left to observers only.
        Returns how many cancels were requested."""
        self.halted = failure
        self.halt_reason = reason
        if not self.stopped:
            self.stopped = True
            try:
                self.strategy.on_stop(self.ctx)
            except Exception as exc:
                log.error("on_stop also failed while halting: %s",
                          StrategyFailure.of("on_stop", self.clock.now, exc, self.strategy).text())
        n = self.engine.cancel_own_orders(f"the bot halted: {reason}")
        self.engine.drain()
        return n

    # ---- market events ----------------------------------------------------------------------------------------------

    def candles_one(self, m: int, first: int, candles: Iterable[Candle], k0: int) -> None:
        """Closed candles of market `m`, rows `first`, `first + 1`, ... of its buffer; `k0` is the first one's event
        number. The backtest's hot path: a no-op strategy costs well under a microsecond per candle."""
        clock, ctx, book, name, buf = self.clock, self.ctx, self.books[m], self.names[m], self.buffers[m]
        watch = self.watches[m]
        on_candle = self.strategy.on_candle
        queue = self.engine._queue
        timers = ctx.timers
        i = first - 1
        try:
            for candle in candles:
                i += 1
                now = candle[2]
                clock.now = now
                if book.active:  # type: ignore[attr-defined]
                    self._fill(k0 + i - first, name, candle[1], candle[3], candle[4], candle[5], now)
                if watch.active:
                    self._held_stops(name, candle[1], candle[5], candle[4])
                buf.cur = i
                try:
                    on_candle(ctx, candle)
                except Exception as exc:
                    self._failed("on_candle", exc)
                if queue or timers:
                    self._settle(now)
        finally:
            self.events = k0 + i - first + 1

    def candles_mixed(self, ms: list[int], rows: list[int], candles: Iterable[Candle], k0: int) -> None:
        """Closed candles of several markets, already merged into event order: candle j is market `ms[j]`'s buffer
        row `rows[j]`."""
        clock, ctx, books, bufs = self.clock, self.ctx, self.books, self.buffers
        watches = self.watches
        on_candle = self.strategy.on_candle
        queue = self.engine._queue
        timers = ctx.timers
        j = -1
        try:
            for candle in candles:
                j += 1
                m = ms[j]
                now = candle[2]
                clock.now = now
                if books[m].active:  # type: ignore[attr-defined]
                    self._fill(k0 + j, candle[0], candle[1], candle[3], candle[4], candle[5], now)
                if watches[m].active:
                    self._held_stops(candle[0], candle[1], candle[5], candle[4])
                bufs[m].cur = rows[j]
                try:
                    on_candle(ctx, candle)
                except Exception as exc:
                    self._failed("on_candle", exc)
                if queue or timers:
                    self._settle(now)
        finally:
            self.events = k0 + j + 1

    def candle(self, candle: Candle) -> bool:
        """One live candle (appended to its market's buffer first). False if it was not newer than the last."""
        m = self.index[candle.market]
        i = self.buffers[m].append(candle.time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume)
        if i is None:
            return False
        self.state.last[candle.market] = candle.close
        self.candles_one(m, i, (candle,), self.events)
        return True

    def trades(self, m: int, t_a: np.ndarray, p_a: np.ndarray, a_a: np.ndarray, s_a: np.ndarray) -> None:
        """Public trades of market `m` in time order (numpy columns): the venue fills what they fill, the strategy
        sees them (`on_trades` in batches when it overrides it, else `on_trade` one by one), timers fire."""
        if self.batch_trades or not self.wants_trades:
            self._trades_batched(m, t_a, p_a, a_a, s_a)
        else:
            self._trades_each(m, t_a.tolist(), p_a.tolist(), a_a.tolist(), s_a.tolist())

    def _trades_each(self, m: int, t_c: list[int], p_c: list[float], a_c: list[float], s_c: list[int]) -> None:
        clock, ctx, gate, name = self.clock, self.ctx, self.gates[m], self.names[m]
        watch = self.watches[m]
        on_trade = self.strategy.on_trade
        last = self.state.last
        queue = self.engine._queue
        timers = ctx.timers
        sides = SIDE_NAMES
        prev, prev_side = self._prev.get(m, (math.nan, 0))
        n = 0
        try:
            for t, p, a, sd in zip(t_c, p_c, a_c, s_c, strict=True):
                n += 1
                clock.now = t
                if p <= gate.lo or p >= gate.hi:
                    self._trade_fill(name, t, p, a, sd, prev, prev_side)
                if watch.active:
                    self._held_stops(name, t, p, p)
                prev, prev_side = p, sd
                last[name] = p
                try:
                    on_trade(ctx, Trade(name, t, p, a, sides[sd]))
                except Exception as exc:
                    self._failed("on_trade", exc)
                if queue or timers:
                    self._settle(t)
        finally:
            self.events += n
            self._prev[m] = (prev, prev_side)

    def _trades_batched(self, m: int, t_a: np.ndarray, p_a: np.ndarray, a_a: np.ndarray, s_a: np.ndarray) -> None:
        clock, ctx, gate, name = self.clock, self.ctx, self.gates[m], self.names[m]
        watch = self.watches[m]
        deliver = self.strategy.on_trades if self.wants_trades else None
        last = self.state.last
        engine = self.engine
        timers = ctx.timers
        n = len(t_a)
        d = 0  # the next trade the strategy has not seen
        i = 0  # the next trade the venue has not seen
        while True:
            lo, hi = gate.lo, gate.hi
            if watch.active:  # held OCO stops (emulated OCO): a trade at or through one is a hit too
                lo, hi = self._held_bounds(watch, lo, hi)
            j = self._next_hit(p_a, i, n, lo, hi)
            while d < j:  # trades d..j-1 change nothing at the venue: one batch (cut at timers)
                e = j
                if timers:
                    due = min(tm.due_ms for tm in timers)
                    k = int(np.searchsorted(t_a, due, "left"))
                    if k < j:
                        e = max(k + 1, d + 1)
                now = int(t_a[e - 1])
                clock.now = now
                last[name] = float(p_a[e - 1])
                if deliver is not None:
                    try:
                        deliver(ctx, TradeBatch(name, t_a[d:e], p_a[d:e], a_a[d:e], s_a[d:e]))
                    except Exception as exc:
                        self._failed("on_trades", exc)
                self.events += e - d
                d = e
                if engine._queue or timers:
                    self._settle(now)
            if j >= n:
                break
            t = int(t_a[j])
            clock.now = t
            p = float(p_a[j])
            if p <= gate.lo or p >= gate.hi:
                prev = (float(p_a[j - 1]), int(s_a[j - 1])) if j else self._prev.get(m, (math.nan, 0))
                self._trade_fill(name, t, p, float(a_a[j]), int(s_a[j]), *prev)
            if watch.active:
                self._held_stops(name, t, p, p)
            i = j + 1
        if n:
            self._prev[m] = (float(p_a[-1]), int(s_a[-1]))

    @staticmethod
    def _held_bounds(watch: Any, lo: float, hi: float) -> tuple[float, float]:
        """The trade gate widened by the held OCO stops: sells trigger at or below, buys at or above their stop."""
        for h in watch.stops:
            if h.triggered:
                continue
            s = float(h.order.stop_price)
            if h.order.side == "sell":
                lo = max(lo, s)
            else:
                hi = min(hi, s)
        return lo, hi

    @staticmethod
    def _next_hit(p_a: np.ndarray, i: int, n: int, lo: float, hi: float) -> int:
        """The first trade at or after `i` priced outside (lo, hi), or n."""
        if lo >= hi:
            return i if i < n else n
        if lo == -math.inf and hi == math.inf:
            return n
        w = 256
        while i < n:
            seg = p_a[i:i + w]
            hit = np.flatnonzero((seg <= lo) | (seg >= hi))
            if len(hit):
                return i + int(hit[0])
            i += w
            w = min(w * 4, 1 << 16)
        return n

    def candle_built(self, m: int, i: int, candle: Candle) -> None:
        """Candle `i` of market `m`'s buffer closed (built from trades): `on_candle`, no fills (trades fill)."""
        self.buffers[m].cur = i
        if not self.wants_candles:
            return  # the market clock moves with the trades (a last candle may close after the last one)
        self.clock.now = candle.close_time_ms
        try:
            self.strategy.on_candle(self.ctx, candle)
        except Exception as exc:
            self._failed("on_candle", exc)
        self._settle(candle.close_time_ms)

    def flush_venue(self, now_ms: float) -> None:
        """Cancels and reports still in flight (latency) reach the strategy: at the end of a replay, all of them."""
        if self.venue is not None:
            nf = self.engine.fill_count
            self.venue.flush(now_ms)
            if self.fill_events is not None and self.engine.fill_count > nf:
                self.fill_events.extend([max(self.events - 1, 0)] * (self.engine.fill_count - nf))
            self._settle(self.clock.now)

    def trade(self, trade: Trade) -> None:
        self.clock.now = trade.time_ms
        if self._venue_trade is not None:
            mi = self.index[trade.market]
            gate = self.gates[mi]
            code = 1 if trade.side == "buy" else -1 if trade.side == "sell" else 0
            if trade.price <= gate.lo or trade.price >= gate.hi:
                self._trade_fill(trade.market, trade.time_ms, trade.price, trade.amount, code,
                                 *self._prev.get(mi, (math.nan, 0)))
            self._prev[mi] = (trade.price, code)
        self.state.last[trade.market] = trade.price
        self.events += 1
        m = self.index.get(trade.market)
        if m is not None and self.watches[m].active:
            self._held_stops(trade.market, trade.time_ms, trade.price, trade.price)
        try:
            self.strategy.on_trade(self.ctx, trade)
        except Exception as exc:
            self._failed("on_trade", exc)
        self._settle(self.clock.now)

    def book(self, book: BookSnapshot) -> None:
        self.clock.now = book.time_ms
        self.events += 1
        try:
            self.strategy.on_book(self.ctx, book)
        except Exception as exc:
            self._failed("on_book", exc)
        self._settle(self.clock.now)

    def book_events(
        self, m: int, t_c: list[int], lo_c: list[int], f_c: list[int], side: list[int], price: list[float],
        amount: list[float], k0: int, marks: list[float],
    ) -> None:
        """Recorded book events of market `m` (the backtest's order-book hot path): event j is rows lo_c[j] ..
        lo_c[j + 1] - 1 of side/price/amount at market time t_c[j] (ms), flags f_c[j] (book_matching.SNAPSHOT,
        RESYNC); `k0` is its first event number. For each event the venue applies the rows and fills what they
        fill, then the strategy's on_book gets a BookView of the rebuilt book (levels built only if read, the
        book's `view_depth` per side); none while the book is stale after a gap. `marks` gets each event's mid
        price (equity)."""
        clock, ctx, name, engine = self.clock, self.ctx, self.names[m], self.engine
        venue = self.venue
        assert venue is not None, "book events need the simulated venue"
        process = venue.process_book
        l2 = venue.depth[name].book
        on_book = self.strategy.on_book
        queue = engine._queue
        timers = ctx.timers
        fill_events = self.fill_events
        mark = marks.append
        watch = self.watches[m]
        j = -1
        try:
            for j, now, flags, a, b in zip(range(len(t_c)), t_c, f_c, lo_c[:-1], lo_c[1:], strict=True):
                clock.now = now
                nf = engine.fill_count
                live = process(name, now, flags, side, price, amount, a, b)
                if engine.fill_count > nf:
                    if fill_events is not None:
                        fill_events.extend([k0 + j] * (engine.fill_count - nf))
                    engine.drain()
                elif queue:
                    engine.drain()
                bb, ba = l2._bb, l2._ba  # (-inf / inf: that side is empty)
                if bb > -INF:
                    if ba < INF:
                        mark((bb + ba) * 0.5)
                    else:
                        mark(NAN)
                        ba = None  # type: ignore[assignment]
                else:
                    mark(NAN)
                    bb = None  # type: ignore[assignment]
                    if ba == INF:
                        ba = None  # type: ignore[assignment]
                if live and watch.active:  # held OCO stops: a sell stop on the best bid, a buy stop on the best ask
                    self._held_stops(name, now, INF if bb is None else bb, -INF if ba is None else ba)
                if live:
                    try:
                        on_book(ctx, BookView(name, now, l2, bb, ba))
                    except Exception as exc:
                        self._failed("on_book", exc)
                if queue or timers:
                    self._settle(now)
        finally:
            self.events = k0 + j + 1

    def tick(self) -> None:
        """Between market events (live): deliver order events the venue reported and fire due timers."""
        self._settle(self.clock())

    # ---- order events (the engine's EventSink) ----------------------------------------------------------------------

    def on_order_update(self, order: Order) -> None:
        if self.halt_reason is None:
            try:
                self.strategy.on_order_update(self.ctx, order)
            except Exception as exc:
                self._failed("on_order_update", exc)
        for obs in self.observers:
            obs.on_order_update(order)

    def on_fill(self, fill: Fill) -> None:
        if self.halt_reason is None:
            try:
                self.strategy.on_fill(self.ctx, fill)
            except Exception as exc:
                self._failed("on_fill", exc)
        for obs in self.observers:
            obs.on_fill(fill)

    # ---- internals --------------------------------------------------------------------------------------------------

    def _fill(self, k: int, name: str, t: int, o: float, h: float, lo: float, now: int) -> None:
        """Only when the market has orders: match, remember which event filled, tell the strategy."""
        engine = self.engine
        nf = engine.fill_count
        self._venue_fill(name, t, o, h, lo, now)  # type: ignore[misc]  # set whenever a book is active
        if self.fill_events is not None and engine.fill_count > nf:
            self.fill_events.extend([k] * (engine.fill_count - nf))
        if engine._queue:
            engine.drain()

    def _trade_fill(self, name: str, t: int, p: float, a: float, sd: int, prev: float, prev_side: int) -> None:
        self._venue_trade(name, t, p, a, sd, prev, prev_side)  # type: ignore[misc]  # set whenever a gate opens
        if self.engine._queue:
            self.engine.drain()

    def _held_stops(self, name: str, start_ms: int, lo: float, h: float) -> None:
        """Held OCO stops of `name` that these prices reach are triggered (before the strategy sees the data)."""
        engine = self.engine
        engine.oco.on_prices(name, start_ms, lo, h)
        if engine._queue:
            engine.drain()

    def _settle(self, now: int) -> None:
        """After a callback: deliver queued order events, then due timers (and what they cause)."""
        engine = self.engine
        if engine._queue:
            engine.drain()
        if self.ctx.timers and self.halt_reason is None and not self.stopped:
            self._fire_timers(now)
            if engine._queue:
                engine.drain()

    def _fire_timers(self, now_ms: int) -> None:
        for t in list(self.ctx.timers):
            while t.due_ms <= now_ms:
                t.due_ms += t.every_ms
                try:
                    self.strategy.on_timer(self.ctx, t.name)
                except Exception as exc:
                    self._failed("on_timer", exc)

    def _failed(self, callback: str, exc: Exception) -> None:
        failure = StrategyFailure.of(callback, self.clock.now, exc, self.strategy)
        if self.on_error == "halt" and not self.stopped:  # (after on_stop there is nothing left to halt)
            raise StrategyHalted(failure) from exc
        self.error_count += 1
        if len(self.errors) < 100:
            self.errors.append(failure)
        self.ctx.log.error("%s (on_error = continue)", failure.text())
