"""A candle replay's events: every market's candles merged into one stream, in chunks of Python objects.

Candles of all markets are ordered by close time (ties: market order in the config). The hot loop wants Python
objects, not numpy scalars, so each chunk of numpy columns becomes a `Candle` per row, built in C (`tuple.__new__`
over `zip`). That conversion is a sixth of a short replay's time; a sweep worker replays the same data for hundreds
of parameter sets, so it can `keep` the built chunks and hand them to every backtest (candles are immutable tuples:
nothing a strategy does to one reaches the next run).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from botkit.backtest.data import CandleSeries
from botkit.market.types import Candle

CHUNK = 1 << 14  # candles converted to Python objects at a time: fast loop, small memory when not kept

_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class CandleChunk:
    """Events `start` .. `end - 1`: the candles, and for several markets each one's market index and buffer row
    (None for one market, where the row is the event number)."""

    start: int
    end: int
    candles: Iterable[Candle]  # a list when kept, else a one-pass iterator
    markets: list[int] | None
    rows: list[int] | None


class CandleEvents:
    """The merged event order of `series` (computed once) and its chunks of candles."""

    def __init__(self, series: Sequence[CandleSeries], *, keep: bool = False) -> None:
        self.series = tuple(series)
        self.keep = keep
        self.ev_m, self.ev_i, self.close_t = self._merge()
        if keep:  # shared by every backtest that replays them: no run may change them for the next
            for arr in (self.ev_m, self.ev_i, self.close_t):
                if arr is not None:
                    arr.flags.writeable = False
        self._kept: list[CandleChunk] | None = None

    def __len__(self) -> int:
        return len(self.close_t)

    @property
    def built(self) -> bool:
        """Whether a complete pass was kept: later replays reuse its candles."""
        return self._kept is not None

    def serves(self, series: Sequence[CandleSeries]) -> bool:
        """Whether these events were built from exactly these series objects."""
        return len(series) == len(self.series) and all(a is b for a, b in zip(series, self.series, strict=True))

    def chunks(self) -> Iterator[CandleChunk]:
        if self._kept is not None:
            yield from self._kept
            return
        kept: list[CandleChunk] = []
        for chunk in self._build():
            if self.keep:
                chunk = CandleChunk(chunk.start, chunk.end, list(chunk.candles), chunk.markets, chunk.rows)
                kept.append(chunk)
            yield chunk
        if self.keep:  # only a complete pass is kept (a halted replay stops early)
            self._kept = kept

    def _merge(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Event order: by candle close time, then by market order. One market needs no merge arrays."""
        if len(self.series) == 1:
            s = self.series[0]
            return None, None, s.time_ms + s.timeframe_ms
        ms = np.concatenate([np.full(len(s), j, dtype=np.int64) for j, s in enumerate(self.series)])
        rows = np.concatenate([np.arange(len(s), dtype=np.int64) for s in self.series])
        ct = np.concatenate([s.time_ms + s.timeframe_ms for s in self.series])
        order = np.lexsort((ms, ct))
        return ms[order], rows[order], ct[order]

    def _build(self) -> Iterator[CandleChunk]:
        n = len(self.close_t)
        cols = [(s.time_ms, s.open, s.high, s.low, s.close, s.volume) for s in self.series]
        names = [s.market for s in self.series]
        ev_m, ev_i = self.ev_m, self.ev_i
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            ct_l = self.close_t[a:b].tolist()
            if ev_m is None or ev_i is None:  # one market: event index == row index
                t_c, o_c, h_c, l_c, c_c, v_c = (x[a:b].tolist() for x in cols[0])
                candles = map(_new_tuple, repeat(Candle),
                              zip(repeat(names[0]), t_c, ct_l, o_c, h_c, l_c, c_c, v_c))
                yield CandleChunk(a, b, candles, None, None)
            else:
                ms_l = ev_m[a:b].tolist()
                t_c, o_c, h_c, l_c, c_c, v_c = _gather(cols, ev_m[a:b], ev_i[a:b])
                candles = map(_new_tuple, repeat(Candle),
                              zip(map(names.__getitem__, ms_l), t_c, ct_l, o_c, h_c, l_c, c_c, v_c, strict=True))
                yield CandleChunk(a, b, candles, ms_l, ev_i[a:b].tolist())


def _gather(cols: Sequence[tuple[np.ndarray, ...]], ms: np.ndarray, rows: np.ndarray) -> list[list[Any]]:
    """Columns of a chunk of merged events, market by market."""
    out = [np.empty(len(ms), dtype=np.int64)] + [np.empty(len(ms), dtype=np.float64) for _ in range(5)]
    for j, c in enumerate(cols):
        sel = ms == j
        if sel.any():
            r = rows[sel]
            for k in range(6):
                out[k][sel] = c[k][r]
    return [x.tolist() for x in out]
