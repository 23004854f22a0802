"""Trades and order-book events as the backtest's event source (a "tape"), from the store or a recording.

One time-ordered stream per run: the public trades of every market (merged by time; ties keep market order), and
around them two kinds of interruptions, each at its place in time: a candle built from the trades closes (before
the first trade at or after its close, when the strategy overrides `on_candle`; `ctx.candles()` shows the candles
closed by the market time in any case, see `TapeState`) and a book event (delivered to `on_book`
before the trades at or after its time). Book events are rebuilt by the book fill model's own matcher
(`BookMatcher`, holding no orders here: the trades fill) and reach `on_book` as the same lazy `BookView` over its
`L2Book`, so a strategy sees the same book objects, levels and gaps whatever the fill model (none while the book
is stale after a gap). Trades themselves go through `EventLoop.trades`, which lets the simulated
venue fill what they fill and the strategy see them, one by one or in batches.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from botkit.backtest.books import BookEvents
from botkit.backtest.data import CandleSeries
from botkit.backtest.importers import TradeSeries
from botkit.loop import EventLoop
from botkit.market.buffer import CandleArrays, CandleBuffer, MarketState
from botkit.market.rules import MarketRules
from botkit.market.types import BookView, Candle
from botkit.venues.book_matching import BookMatcher, BookStats, L2Book

CHUNK = 1 << 16  # trades handed to the loop at a time
LevelSize = Callable[[str, str, float], float | None]


@dataclass(slots=True)
class Tape:
    """What a trades backtest replays: trades per market (config order) and, optionally, book events per market."""

    trades: list[TradeSeries]
    books: dict[str, BookEvents] = field(default_factory=dict)

    @property
    def markets(self) -> list[str]:
        return [t.market for t in self.trades]

    def __len__(self) -> int:
        return sum(len(t) for t in self.trades)


class TapeState(MarketState):
    """The market data a trades replay's context reads: candles built from the trades are visible once market time
    has reached their close. Worked out when read, so a replay of sparse trades (a candle every few trades) is not
    cut at every candle for a strategy that has no `on_candle`."""

    def __init__(self, buffers: dict[str, CandleBuffer], clock: Callable[[], int],
                 closes: dict[str, np.ndarray]) -> None:
        super().__init__(buffers)
        self._clock = clock
        self._closes = closes

    def candles(self, market: str, n: int | None) -> CandleArrays:
        buf = self.buffers[market]
        buf.cur = int(np.searchsorted(self._closes[market], self._clock(), "right")) - 1
        return buf.arrays(n)


def candles_from_trades(trades: TradeSeries, timeframe_ms: int) -> tuple[CandleSeries, np.ndarray]:
    """Candles of `timeframe_ms` built from the trades (only intervals that have trades), and for each candle the
    index of its first trade."""
    t = trades.time_ms
    if len(t) and bool((np.diff(t) < 0).any()):
        raise ValueError(f"{trades.source}: trades of {trades.market} are not in time order")
    bins = t // timeframe_ms
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1]))) if len(t) else np.empty(0, np.int64)
    ends = np.concatenate((starts[1:], [len(t)])).astype(np.int64) if len(t) else np.empty(0, np.int64)
    p = trades.price
    series = CandleSeries(
        trades.market, timeframe_ms, (bins[starts] * timeframe_ms).astype(np.int64),
        np.ascontiguousarray(p[starts], dtype=np.float64),
        np.maximum.reduceat(p, starts).astype(np.float64) if len(t) else np.empty(0),
        np.minimum.reduceat(p, starts).astype(np.float64) if len(t) else np.empty(0),
        np.ascontiguousarray(p[ends - 1], dtype=np.float64) if len(t) else np.empty(0),
        np.add.reduceat(trades.amount, starts).astype(np.float64) if len(t) else np.empty(0),
        source=f"{trades.source} (candles built from trades)",
    )
    return series, starts.astype(np.int64)


def feed_tape(
    loop: EventLoop,
    tape: Tape,
    series: list[CandleSeries],
    starts: list[np.ndarray],
    progress: Callable[[int, int], None] | None = None,
    book_depth: int = 20,
) -> dict[str, BookStats]:
    """Replay the tape through `loop` (see the module docstring). `series[j]`/`starts[j]`: market j's candles built
    from its trades and their first trades; `book_depth`: levels per side an `on_book` view shows. Returns what
    the book rebuild counted per market (events, updates, resyncs), as the book model reports it."""
    k = len(tape.trades)
    if k == 1:
        tr = tape.trades[0]
        t, p, a, s = tr.time_ms, tr.price, tr.amount, tr.side
        mkt = None
    else:
        t = np.concatenate([x.time_ms for x in tape.trades])
        m_all = np.concatenate([np.full(len(x), j, dtype=np.int64) for j, x in enumerate(tape.trades)])
        order = np.lexsort((m_all, t))
        t = t[order]
        mkt = m_all[order]
        p = np.concatenate([x.price for x in tape.trades])[order]
        a = np.concatenate([x.amount for x in tape.trades])[order]
        s = np.concatenate([x.side for x in tape.trades])[order]
    n = len(t)
    # Interruptions: (position in the merged stream before which it happens, time, tie order, kind, payload).
    stops: list[Iterator[tuple[int, int, int, int, int]]] = []
    if loop.wants_candles:  # (without on_candle, TapeState moves ctx.candles() along lazily)
        for j, cs in enumerate(series):
            close = cs.time_ms + cs.timeframe_ms  # delivered before the first trade at or after its close
            pos = np.searchsorted(t, close, "left")
            stops.append(zip(pos.tolist(), close.tolist(), [0] * len(cs), [j] * len(cs), range(len(cs)),
                             strict=True))
    books: dict[int, _BookFeed] = {}
    latest: dict[str, L2Book] = {}  # each market's book as of now (from its first event)
    venue = loop.venue if loop.venue is not None and loop.venue.fill_model.kind == "trades" else None
    for j, market in enumerate(tape.markets):
        ev = tape.books.get(market)
        if ev is None or not len(ev) or not (loop.wants_books or venue is not None):
            continue
        feed = books[j] = _BookFeed(ev, loop.engine.rules[market], book_depth)
        times_ms = feed.times_ms
        pos = np.searchsorted(t, times_ms, "left")
        stops.append(zip(pos.tolist(), times_ms.tolist(), [1] * len(times_ms), [j] * len(times_ms),
                         range(len(times_ms)), strict=True))
    if venue is not None and books:
        venue.level_size = _level_size(latest, venue.level_size)
    cur = 0
    done = 0
    for at, when, kind, j, i in heapq.merge(*stops, key=lambda x: (x[0], x[1], x[2])):
        if at > cur:
            _trades(loop, t, p, a, s, mkt, cur, at)
            done += at - cur
            cur = at
            if progress is not None:
                progress(done, n)
        if kind == 0:
            cs = series[j]
            loop.candle_built(j, i, Candle(cs.market, int(cs.time_ms[i]), when, float(cs.open[i]),
                                           float(cs.high[i]), float(cs.low[i]), float(cs.close[i]),
                                           float(cs.volume[i])))
        else:
            feed = books[j]
            latest[feed.market] = feed.book
            if feed.event(i, when) and loop.wants_books:
                loop.book(feed.view(when))
    for a0 in range(cur, n, CHUNK):
        b0 = min(n, a0 + CHUNK)
        _trades(loop, t, p, a, s, mkt, a0, b0)
        if progress is not None:
            progress(b0, n)
    return {f.market: f.matcher.stats for f in books.values()}


class _BookFeed:
    """One market's book events, applied one at a time by the book fill model's matcher (no orders on it)."""

    def __init__(self, ev: BookEvents, rules: MarketRules, depth: int) -> None:
        self.market = ev.market
        starts, t_us, flags = ev.event_index()
        self.times_ms = t_us // 1000
        self._starts = starts.tolist()
        self._flags = flags.tolist()
        c = ev.cols
        self._rows = c["side"].tolist(), c["price"].tolist(), c["amount"].tolist()
        self.matcher = BookMatcher(ev.market, rules)
        self.book = self.matcher.book
        self.book.view_depth = depth

    def event(self, i: int, t_ms: int) -> bool:
        """Apply event i; False while the book is stale after a gap (no `on_book` then)."""
        return self.matcher.event(t_ms, self._flags[i], *self._rows, self._starts[i], self._starts[i + 1])

    def view(self, t_ms: int) -> BookView:
        book = self.book
        return BookView(self.market, t_ms, book, book.best_bid(), book.best_ask())


def _trades(loop: EventLoop, t: np.ndarray, p: np.ndarray, a: np.ndarray, s: np.ndarray, mkt: np.ndarray | None,
            lo: int, hi: int) -> None:
    """Trades lo..hi-1 of the merged stream, in runs of one market, CHUNK at a time."""
    for a0 in range(lo, hi, CHUNK):
        b0 = min(hi, a0 + CHUNK)
        if mkt is None:
            loop.trades(0, t[a0:b0], p[a0:b0], a[a0:b0], s[a0:b0])
            continue
        m = mkt[a0:b0]
        cuts = np.flatnonzero(m[1:] != m[:-1]) + 1
        for x, y in zip([0, *cuts.tolist()], [*cuts.tolist(), b0 - a0], strict=True):
            loop.trades(int(m[x]), t[a0 + x:a0 + y], p[a0 + x:a0 + y], a[a0 + x:a0 + y], s[a0 + x:a0 + y])


def _level_size(latest: dict[str, L2Book], fallback: LevelSize | None) -> LevelSize:
    """The trades fill model's queue estimate: the visible size at a new order's level in the latest book (before
    the first book event and while the book is stale after a gap: `fallback`, i.e. `[backtest] queue_ahead`)."""

    def level_size(market: str, side: str, price: float) -> float | None:
        book = latest.get(market)
        if book is None or book.stale:  # no book yet, or none to trust since a gap: as without book data
            return fallback(market, side, price) if fallback is not None else None
        return (book.bids if side == "buy" else book.asks).get(price, 0.0)

    return level_size
