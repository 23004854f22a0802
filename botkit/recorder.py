"""Record what a live bot sees, and replay it through the live client's own parser.

`Recorder` keeps one WebSocket connection per market (WsClient: pings, reconnects with resubscription) and writes
every received frame exactly as received, with its local receive time, to gzip-compressed line-delimited files
rotated by time and size. Each line is a JSON object:

    {"t": <receive time, s since the epoch>, "c": <connection>, "f": "<the frame's text, as received>"}
    {"t": ..., "c": ..., "event": "disconnected", "reason": "..."}      (a connection ended: a gap begins)

The manifest (manifest.json, rewritten at every rotation, connect, disconnect and at the end) holds the markets,
channels, time span, files, reconnects, gaps (from the disconnect to the resubscribed connection) and resync points
(a depth past_update_id break). Nothing is hidden: a gap in the feed is a gap in the manifest.

`replay()` reads the lines back in order through `FrameParser`, the class WsClient parses with, so a replay yields
the events the live client produced: a disconnect line resets the depth books exactly as the live client's
reconnect does. `to_store()` turns a recording into the store's trades, book and candle datasets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from botkit.whitebit.ws import (
    CANDLE_INTERVALS,
    Connected,
    DepthBook,
    DepthGap,
    Disconnected,
    FrameParser,
    ParsedEvent,
    WsClient,
    WsEvent,
    _CandleState,
)

log = logging.getLogger("botkit.recorder")

CHANNELS: tuple[str, ...] = ("trades", "depth", "candles", "bookTicker")
MANIFEST = "manifest.json"
FORMAT = "botkit-ws-recording/1"


@dataclass(slots=True)
class RecordSpec:
    """What to record. `interval_s` is the candle interval; `depth_limit` the depth subscription's size."""

    markets: list[str]
    channels: list[str]
    interval_s: int = 60
    depth_limit: int = 100
    rotate_s: float = 3600.0
    rotate_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        bad = [c for c in self.channels if c not in CHANNELS]
        if bad or not self.channels:
            raise ValueError(f"unknown channel {', '.join(bad) or '(none)'}: choose from {', '.join(CHANNELS)}")
        if not self.markets:
            raise ValueError("give at least one market, e.g. --market BTC_USDT")
        if "candles" in self.channels and self.interval_s not in CANDLE_INTERVALS:
            raise ValueError(f"candle interval {self.interval_s} s is not one WhiteBIT serves: {CANDLE_INTERVALS}")
        if self.rotate_s <= 0 or self.rotate_bytes <= 0:
            raise ValueError("rotation time and size must be positive")


class _Files:
    """The rotating gzip writer: a new file when the current one is older than rotate_s or larger than rotate_bytes
    (compressed). Every line is sync-flushed, so a killed recorder leaves readable files."""

    def __init__(self, out: Path, rotate_s: float, rotate_bytes: int, on_rotate: Callable[[], None]) -> None:
        self.out = out
        self.rotate_s = rotate_s
        self.rotate_bytes = rotate_bytes
        self.on_rotate = on_rotate
        self.files: list[dict[str, Any]] = []
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._opened = 0.0

    def write(self, t: float, line: bytes) -> None:
        if self._gz is None or time.monotonic() - self._opened >= self.rotate_s or \
                (self._raw is not None and self._raw.tell() >= self.rotate_bytes):
            self._rotate(t)
        assert self._gz is not None
        self._gz.write(line)
        self._gz.flush(zlib.Z_SYNC_FLUSH)
        meta = self.files[-1]
        meta["lines"] += 1
        meta["last"] = t
        meta["first"] = meta["first"] if meta["first"] is not None else t

    def _rotate(self, t: float) -> None:
        self.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
        name = f"frames-{stamp}-{len(self.files):05d}.jsonl.gz"
        self._raw = (self.out / name).open("wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        self._opened = time.monotonic()
        self.files.append({"name": name, "first": None, "last": None, "lines": 0})
        if len(self.files) > 1:
            self.on_rotate()

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._gz = None
        if self._raw is not None:
            self.files[-1]["bytes"] = self._raw.tell()
            self._raw.close()
            self._raw = None


class Recorder:
    """Records `spec` from the WebSocket API at `url` into the directory `out` (see the module docstring)."""

    def __init__(self, url: str, spec: RecordSpec, out: str | Path, *,
                 on_event: Callable[[str, WsEvent], None] | None = None, ping_interval: float = 50.0,
                 backoff_base: float = 0.2) -> None:
        self.url = url
        self.spec = spec
        self.out = Path(out)
        self.on_event = on_event
        self.ping_interval = ping_interval
        self.backoff_base = backoff_base
        self.clients: list[WsClient] = []
        self.frames = 0
        self.started = 0.0
        self.reconnects = 0
        self.gaps: list[dict[str, Any]] = []
        self.resyncs: list[dict[str, Any]] = []
        self._open_gap: dict[int, dict[str, Any]] = {}
        self._files: _Files | None = None

    async def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if (self.out / MANIFEST).exists() or any(self.out.glob("frames-*.jsonl.gz")):
            raise FileExistsError(f"{self.out} already holds a recording; give a new --out directory")
        self.started = time.time()
        self._files = _Files(self.out, self.spec.rotate_s, self.spec.rotate_bytes, self.write_manifest)
        for conn, market in enumerate(self.spec.markets):
            client = WsClient(self.url, self._sink(conn, market), ping_interval=self.ping_interval,
                              stale_after=None, backoff_base=self.backoff_base, name=f"record {market}",
                              on_frame=self._frame_writer(conn))
            ch = self.spec.channels
            if "trades" in ch:
                client.subscribe_trades([market])
            if "depth" in ch:
                client.subscribe_depth(market, self.spec.depth_limit)
            if "candles" in ch:
                client.subscribe_candles(market, self.spec.interval_s)
            if "bookTicker" in ch:
                client.subscribe_book_ticker([market])
            self.clients.append(client)
        self.write_manifest()
        await asyncio.gather(*(c.start(wait=10.0) for c in self.clients))

    async def stop(self) -> None:
        for c in self.clients:
            await c.close()
        now = time.time()
        for gap in self._open_gap.values():
            gap["to"] = None  # still disconnected when the recording ended
            gap["open_at_end"] = now
        if self._files is not None:
            self._files.close()
        self.write_manifest(ended=now)

    def _frame_writer(self, conn: int) -> Callable[[str | bytes, float], None]:
        def write(raw: str | bytes, received: float) -> None:
            if isinstance(raw, bytes):
                rec: dict[str, Any] = {"t": received, "c": conn, "b": base64.b64encode(raw).decode()}
            else:
                rec = {"t": received, "c": conn, "f": raw}
            self._write(received, rec)
            self.frames += 1

        return write

    def _write(self, t: float, rec: dict[str, Any]) -> None:
        assert self._files is not None
        self._files.write(t, (json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n").encode())

    def _sink(self, conn: int, market: str) -> Callable[[WsEvent], None]:
        def sink(ev: WsEvent) -> None:
            now = time.time()
            if isinstance(ev, Disconnected):
                self._write(now, {"t": now, "c": conn, "event": "disconnected", "reason": ev.reason})
                if conn not in self._open_gap:
                    gap: dict[str, Any] = {"market": market, "connection": conn, "from": now, "to": None,
                                           "reason": ev.reason}
                    self._open_gap[conn] = gap
                    self.gaps.append(gap)
                self.write_manifest()
            elif isinstance(ev, Connected) and ev.reconnect:
                self.reconnects += 1
                closed = self._open_gap.pop(conn, None)
                if closed is not None:
                    closed["to"] = now
                self.write_manifest()
            elif isinstance(ev, DepthGap):
                self.resyncs.append({"market": ev.market, "time": now, "expected": ev.expected, "got": ev.got})
                self.write_manifest()
            if self.on_event is not None:
                self.on_event(market, ev)

        return sink

    def manifest(self, ended: float | None = None) -> dict[str, Any]:
        files = self._files.files if self._files is not None else []
        firsts = [f["first"] for f in files if f["first"] is not None]
        lasts = [f["last"] for f in files if f["last"] is not None]
        return {
            "format": FORMAT, "url": self.url, "markets": self.spec.markets, "channels": self.spec.channels,
            "interval_s": self.spec.interval_s, "depth_limit": self.spec.depth_limit,
            "started": self.started, "ended": ended,
            "span": {"first": min(firsts) if firsts else None, "last": max(lasts) if lasts else None},
            "frames": self.frames, "files": [dict(f) for f in files],
            "reconnects": self.reconnects, "gaps": self.gaps, "resyncs": self.resyncs,
        }

    def write_manifest(self, ended: float | None = None) -> None:
        tmp = self.out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest(ended), indent=1))
        tmp.replace(self.out / MANIFEST)


async def record(url: str, spec: RecordSpec, out: Path, *, seconds: float | None,
                 progress: Callable[[str], None] | None = None, every_s: float = 5.0) -> dict[str, Any]:
    """Record until `seconds` pass (None: until cancelled / Ctrl-C); returns the final manifest."""
    rec = Recorder(url, spec, out)
    await rec.start()
    t0 = time.monotonic()
    try:
        while seconds is None or time.monotonic() - t0 < seconds:
            await asyncio.sleep(min(every_s, seconds - (time.monotonic() - t0)) if seconds is not None else every_s)
            if progress is not None:
                progress(f"{time.monotonic() - t0:6.0f} s  {rec.frames:,} frames  {rec.reconnects} reconnect(s)  "
                         f"{len(rec.resyncs)} resync(s)  -> {out}")
    finally:
        await rec.stop()
    return rec.manifest()


# ---- replay ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayStats:
    frames: int = 0
    malformed: int = 0
    disconnects: int = 0
    truncated: list[str] = field(default_factory=list)


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        doc: dict[str, Any] = json.loads((p / MANIFEST).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no {MANIFEST}; is this a `botkit record` directory?") from None
    if doc.get("format") != FORMAT:
        raise ValueError(f"{p / MANIFEST}: format {doc.get('format')!r} is not {FORMAT!r}")
    return doc


def lines(path: str | Path, stats: ReplayStats | None = None) -> Iterator[dict[str, Any]]:
    """The recording's lines in order. A file cut off by a crash yields its readable part and is noted in stats."""
    p = Path(path)
    for f in sorted(p.glob("frames-*.jsonl.gz")):
        with gzip.open(f, "rb") as fh:
            try:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        break  # a line cut off mid-write
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        raise ValueError(f"{f}:{lineno}: not a recording line (JSON object); the file is "
                                         "damaged: remove this line or the file") from None
            except EOFError:
                if stats is not None:
                    stats.truncated.append(f.name)


def _parsers(manifest: dict[str, Any]) -> dict[int, FrameParser]:
    out: dict[int, FrameParser] = {}
    for conn, market in enumerate(manifest["markets"]):
        parser = FrameParser()
        if "depth" in manifest["channels"]:
            parser.books[market] = DepthBook(market, int(manifest["depth_limit"]))
        if "candles" in manifest["channels"]:
            parser.candles = _CandleState(market, int(manifest["interval_s"]))
        out[conn] = parser
    return out


def replay(path: str | Path, stats: ReplayStats | None = None,
           on_frame: Callable[[dict[str, Any], list[ParsedEvent]], None] | None = None,
           ) -> Iterator[tuple[float, ParsedEvent]]:
    """(receive time, event) for every event the live client's parser makes of the recorded frames, in order.

    Closed candles come out as `CandleRow` (the values last received for them; the live client also asks the
    exchange for final values, which a replay cannot)."""
    manifest = read_manifest(path)
    parsers = _parsers(manifest)
    st = stats if stats is not None else ReplayStats()
    for rec in lines(path, st):
        parser = parsers.get(int(rec.get("c", 0)))
        if parser is None:
            continue
        if rec.get("event") == "disconnected":
            st.disconnects += 1
            for book in parser.books.values():
                book.update_id = None  # as WsClient does before resubscribing on the new connection
            if on_frame is not None:
                on_frame(rec, [])
            continue
        raw = rec["f"] if "f" in rec else base64.b64decode(rec["b"])
        st.frames += 1
        try:
            events = parser.parse(raw, int(float(rec["t"]) * 1000))
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError):
            st.malformed += 1  # the live client logs and skips these too
            continue
        if on_frame is not None:
            on_frame(rec, events)
        for ev in events:
            yield float(rec["t"]), ev


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(manifest: dict[str, Any]) -> str:
    span = manifest.get("span") or {}
    first, last = span.get("first"), span.get("last")
    when = f"{iso_time(int(first * 1000))} .. {iso_time(int(last * 1000))}" if first and last else "no frames"
    return (f"{', '.join(manifest['markets'])} [{', '.join(manifest['channels'])}]: {manifest['frames']:,} frames, "
            f"{when}, {manifest['reconnects']} reconnect(s), {len(manifest['gaps'])} gap(s), "
            f"{len(manifest['resyncs'])} resync point(s), {len(manifest['files'])} file(s)")


@contextlib.asynccontextmanager
async def recording(url: str, spec: RecordSpec, out: Path, **kw: Any) -> Any:
    """`async with recording(...) as rec:` records while the block runs (tests, embedding)."""
    rec = Recorder(url, spec, out, **kw)
    await rec.start()
    try:
        yield rec
    finally:
        await rec.stop()
