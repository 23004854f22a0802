"""A recording (botkit/recorder.py) as store datasets: its frames replayed through the live client's parser and
written as trades, book and candles columns. Lives with the store, so the recorder itself knows nothing of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from botkit.backtest.books import ASK, BID
from botkit.backtest.store import Ingested, Store
from botkit.recorder import read_manifest, replay
from botkit.whitebit.ws import BookChanged, CandleRow, DepthGap, FrameParser, ParsedEvent, TradePrinted


def to_store(path: str | Path, store: Store, *, progress: Callable[[str], None] | None = None) -> dict[str, Ingested]:
    """The recording as store datasets: trades/<M>, book/<M> (level rows; a resync marks the snapshot after a gap
    or a reconnect) and candles/<M> (closed candles), rebuilt only when the recording's files changed."""
    p = Path(path)
    manifest = read_manifest(p)
    files = sorted(p.glob("frames-*.jsonl.gz"))
    built: dict[str, dict[str, pa.Table]] = {}

    def build_all() -> dict[str, dict[str, pa.Table]]:
        if not built:
            built.update(_tables(p, manifest))
        return built

    out: dict[str, Ingested] = {}
    for market in manifest["markets"]:
        for kind, channel in (("trades", "trades"), ("book", "depth"), ("candles", "candles")):
            if channel not in manifest["channels"]:
                continue
            out[f"{kind}/{market}"] = store.ingest(
                kind, market, files, _picker(build_all, kind, market),
                options={"recording": str(p), "interval_s": manifest["interval_s"]}, progress=progress)
    return out


def _picker(build: Callable[[], dict[str, dict[str, pa.Table]]], kind: str, market: str) -> Callable[[], pa.Table]:
    return lambda: build()[kind][market]


def _tables(path: Path, manifest: dict[str, Any]) -> dict[str, dict[str, pa.Table]]:
    trades: dict[str, list[tuple[int, int, float, float, int]]] = {m: [] for m in manifest["markets"]}
    candles: dict[str, list[tuple[int, float, float, float, float, float]]] = {m: [] for m in manifest["markets"]}
    book: dict[str, list[tuple[int, int, int, int, int, float, float, int]]] = {m: [] for m in manifest["markets"]}
    pending_resync: set[str] = set()  # markets whose next snapshot follows a gap or a reconnect
    last_us: dict[str, int] = {}

    def frame(rec: dict[str, Any], events: list[ParsedEvent]) -> None:
        if rec.get("event") == "disconnected":
            pending_resync.add(manifest["markets"][int(rec.get("c", 0))])
            return
        msg = FrameParser.decode(rec.get("f", ""))
        for ev in events:
            if isinstance(ev, DepthGap):
                pending_resync.add(ev.market)
        if msg is None or msg.get("method") != "depth_update":
            return
        if not any(isinstance(ev, BookChanged) for ev in events):
            return  # a delta the parser did not apply (before a snapshot, or the gap itself)
        full, data, market = msg["params"]
        t_us = max(round(float(rec["t"]) * 1e6), last_us.get(market, 0))  # receive time: what a live bot saw when
        last_us[market] = t_us
        uid = int(data.get("update_id") or 0)
        pu = int(data["past_update_id"]) if data.get("past_update_id") is not None else -1
        resync = int(bool(full) and market in pending_resync)
        if full:
            pending_resync.discard(market)
        rows = book[market]
        for side, levels in ((BID, data.get("bids", [])), (ASK, data.get("asks", []))):
            for price, amount in levels:
                rows.append((t_us, uid, pu, int(bool(full)), side, float(price), float(amount), resync))

    for _, ev in replay(path, on_frame=frame):
        if isinstance(ev, TradePrinted):
            tr = ev.trade
            trades[tr.market].append((tr.time_ms, tr.trade_id if tr.trade_id is not None else -1, tr.price, tr.amount,
                                      1 if tr.side == "buy" else -1))
        elif isinstance(ev, CandleRow):
            c = ev.candle()
            candles[c.market].append((c.time_ms, c.open, c.high, c.low, c.close, c.volume))
    out: dict[str, dict[str, pa.Table]] = {"trades": {}, "book": {}, "candles": {}}
    for m in manifest["markets"]:
        tr_rows = sorted(trades[m], key=lambda r: (r[0], r[1]))
        out["trades"][m] = _table(tr_rows, {"time_ms": np.int64, "id": np.int64, "price": np.float64,
                                             "amount": np.float64, "side": np.int8})
        out["candles"][m] = _table(candles[m], {"time_ms": np.int64, "open": np.float64, "high": np.float64,
                                                "low": np.float64, "close": np.float64, "volume": np.float64})
        out["book"][m] = _table(book[m], {"time_us": np.int64, "update_id": np.int64, "prev_update_id": np.int64,
                                     "snapshot": np.int8, "side": np.int8, "price": np.float64,
                                     "amount": np.float64, "resync": np.int8})
    return out


def _table(rows: list[Any], schema: dict[str, Any]) -> pa.Table:
    names = list(schema)
    if not rows:
        return pa.table({n: np.empty(0, schema[n]) for n in names})
    cols = list(zip(*rows, strict=True))
    return pa.table({n: np.asarray(cols[i], dtype=schema[n]) for i, n in enumerate(names)})


