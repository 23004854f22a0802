"""Sources into the store and back: each importer's columns become a dataset, and a dataset becomes the numpy
columns a backtest takes (CandleSeries, TradeSeries, BookEvents). The store decides when a rebuild is due."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from botkit.backtest.books import BookEvents, load_binance_depth, load_wide_book
from botkit.backtest.data import CandleSeries, Fmt, load_candles
from botkit.backtest.importers import TradeFmt, TradeSeries, load_trades
from botkit.backtest.store import Ingested, Store

Progress = Callable[[str], None] | None


def import_trades(store: Store, path: str | Path, market: str, *, fmt: TradeFmt = "auto",
                  repair: Iterable[str] = (), progress: Progress = None) -> Ingested:
    repairs = list(repair)
    return store.ingest("trades", market, [path],
                        lambda: load_trades(path, market, fmt=fmt, repair=repairs).to_arrow(),
                        options={"fmt": fmt, "repair": repairs}, progress=progress)


def import_candles(store: Store, path: str | Path, market: str, *, fmt: Fmt = "auto", timeframe: str | None = None,
                   repair: Iterable[str] = (), progress: Progress = None) -> Ingested:
    repairs = list(repair)

    def build() -> pa.Table:
        s = load_candles(path, market, fmt=fmt, timeframe=timeframe, repair=repairs)
        table = pa.table({"time_ms": s.time_ms, "open": s.open, "high": s.high, "low": s.low, "close": s.close,
                          "volume": s.volume})
        return table.replace_schema_metadata({"timeframe_ms": str(s.timeframe_ms)})

    return store.ingest("candles", market, [path], build,
                        options={"fmt": fmt, "timeframe": timeframe, "repair": repairs}, progress=progress)


def import_book(store: Store, paths: Sequence[str | Path], market: str, *, repair: Iterable[str] = (),
                progress: Progress = None) -> Ingested:
    """Two files: a Binance-style snapshot and its updates; one file: wide top-N snapshots."""
    repairs = list(repair)
    if len(paths) == 2:
        def build() -> pa.Table:
            return load_binance_depth(paths[0], paths[1], market, repair=repairs).to_arrow()
    elif len(paths) == 1:
        if repairs:
            raise ValueError("wide top-N snapshots have no update ids: no repair applies")

        def build() -> pa.Table:
            return load_wide_book(paths[0], market).to_arrow()
    else:
        raise ValueError("give a snapshot file and an updates file (Binance-style), or one wide top-N file")
    return store.ingest("book", market, list(paths), build, options={"repair": repairs}, progress=progress)


def candles_from_store(store: Store, market: str, *, timeframe_ms: int | None = None,
                       start_ms: int | None = None, end_ms: int | None = None) -> CandleSeries:
    """The stored candles as a CandleSeries (the columns are zero-copy views of the memory-mapped files)."""
    table = store.read("candles", market, start_ms, end_ms)
    meta = table.schema.metadata or {}
    tf = timeframe_ms or int(meta.get(b"timeframe_ms", b"0"))
    if not tf:
        t = table.column("time_ms").to_numpy()
        steps = np.diff(t)
        tf = int(np.min(steps)) if len(steps) else 60_000
    info = store.info("candles", market) or {}
    files = [f["path"] for f in info.get("files", [])]
    def col(name: str) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.float64)

    t = np.ascontiguousarray(table.column("time_ms").to_numpy(), dtype=np.int64)
    return CandleSeries(market, tf, t, col("open"), col("high"), col("low"), col("close"), col("volume"),
                        source=f"store {store.root} ({', '.join(files) or 'fetched'})")


def trades_from_store(store: Store, market: str, start_ms: int | None = None,
                      end_ms: int | None = None) -> TradeSeries:
    return TradeSeries.from_arrow(store.read("trades", market, start_ms, end_ms), market, f"store {store.root}")


def book_from_store(store: Store, market: str, start_us: int | None = None, end_us: int | None = None) -> BookEvents:
    return BookEvents.from_arrow(store.read("book", market, start_us, end_us), market, f"store {store.root}")
