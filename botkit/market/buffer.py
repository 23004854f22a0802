"""Closed candles as the strategy sees them: numpy columns per market, up to the latest closed candle.

One structure serves every mode. A backtest wraps the recorded columns whole and moves a cursor; a live run appends
into a fixed-size buffer (twice the capacity, compacted when full), so memory stays flat for any run length and
`ctx.candles()` is always a cheap read-only view, never a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """Closed candles of one market, oldest first, as numpy arrays (read-only views)."""

    time_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return len(self.time_ms)


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class CandleBuffer:
    """One market's closed candles. `cur` is the index of the latest closed candle the strategy may see (-1: none).

    Recorded data (`of_columns`) is never copied: the cursor moves over it. Live data (`live`) goes into arrays of
    twice `capacity`; when they fill up, the newest `capacity` rows move to the front, so appends are amortised O(1)
    and a view of the last n <= capacity rows is always contiguous.
    """

    __slots__ = ("_cap", "c", "cur", "h", "l", "o", "t", "v")

    def __init__(self, t: I64, o: F64, h: F64, lo: F64, c: F64, v: F64, capacity: int | None) -> None:
        self.t, self.o, self.h, self.l, self.c, self.v = t, o, h, lo, c, v
        self._cap = capacity
        self.cur = -1

    @classmethod
    def of_columns(cls, t: I64, o: F64, h: F64, lo: F64, c: F64, v: F64) -> CandleBuffer:
        return cls(t, o, h, lo, c, v, None)

    @classmethod
    def live(cls, capacity: int) -> CandleBuffer:
        if capacity < 1:
            raise ValueError(f"candle buffer capacity must be >= 1, got {capacity}")
        n = 2 * capacity
        f = np.float64
        return cls(np.zeros(n, np.int64), np.zeros(n, f), np.zeros(n, f), np.zeros(n, f), np.zeros(n, f),
                   np.zeros(n, f), capacity)

    @property
    def capacity(self) -> int | None:
        return self._cap

    def append(self, time_ms: int, o: float, h: float, lo: float, c: float, v: float) -> int | None:
        """Write the next closed candle (live buffers only); returns its index for the loop to publish, or None
        when it is not newer than the last one (never out of order, never twice)."""
        cap = self._cap
        if cap is None:
            raise TypeError("a buffer over recorded columns does not take appends")
        i = self.cur
        if i >= 0 and time_ms <= self.t[i]:
            return None
        i += 1
        if i == 2 * cap:  # full: keep the newest `cap` rows, at the front
            for col in (self.t, self.o, self.h, self.l, self.c, self.v):
                col[:cap] = col[cap:]
            i = cap
            self.cur = cap - 1
        self.t[i], self.o[i], self.h[i], self.l[i], self.c[i], self.v[i] = time_ms, o, h, lo, c, v
        return i

    def arrays(self, n: int | None) -> CandleArrays:
        end = self.cur + 1
        start = 0 if n is None else max(0, end - n)
        if self._cap is None:  # recorded columns are read-only already
            return CandleArrays(self.t[start:end], self.o[start:end], self.h[start:end], self.l[start:end],
                                self.c[start:end], self.v[start:end])
        start = max(start, end - self._cap)
        return CandleArrays(
            _readonly(self.t[start:end]), _readonly(self.o[start:end]), _readonly(self.h[start:end]),
            _readonly(self.l[start:end]), _readonly(self.c[start:end]), _readonly(self.v[start:end]),
        )

    def close(self) -> float | None:
        return None if self.cur < 0 else float(self.c[self.cur])

    def __len__(self) -> int:
        n = self.cur + 1
        return n if self._cap is None else min(n, self._cap)


class MarketState:
    """What `Context` reads: each market's closed candles and its last price (a newer trade or ticker price wins
    over the last close)."""

    def __init__(self, buffers: dict[str, CandleBuffer]) -> None:
        self.buffers = buffers
        self.order = list(buffers)
        self.last: dict[str, float] = {}
        # markets priced from a rebuilt order book: their mid price, read when asked (a replay of book data)
        self.marks: dict[str, Callable[[], float | None]] = {}

    def candles(self, market: str, n: int | None) -> CandleArrays:
        return self.buffers[market].arrays(n)

    def last_price(self, market: str) -> float | None:
        px = self.last.get(market)
        if px is None and self.marks:
            mark = self.marks.get(market)
            if mark is not None:
                return mark()
        return px if px is not None else self.buffers[market].close()
