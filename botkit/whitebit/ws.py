"""Asyncio WebSocket client for WhiteBIT's JSON-RPC-style API (docs/whitebit.md §3).

One connection, kept alive: ids correlate requests with responses, a ping goes out every `ping_interval` seconds
(the server drops silent clients after 60 s), a lost connection is re-opened with jittered backoff and every
subscription is sent again (re-authorizing with a fresh token first), and requests are paced to the server's
200-per-minute budget. Market data leaves as typed events through one callback, in arrival order: candles only once
they have closed (a newer candle began, or the candle's end passed), depth as a consistent book (a gap in update
ids resubscribes for a fresh snapshot), and a staleness event when the feed goes quiet.

Turning a received frame into typed events is `FrameParser`'s job alone, a pure class (its only state is the
candle in progress and the depth books; time comes in as an argument), so a recording replayed through it
(botkit/recorder.py) yields exactly the events the live client produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from botkit.auth.redact import RedactingFilter
from botkit.market.types import BookSnapshot, Candle, Trade
from botkit.retry import reconnect_delay

log = logging.getLogger("botkit.whitebit.ws")
# websockets logs every frame at DEBUG, the `authorize` request with its token included. Its records go to this
# logger, whose own filter masks the token whatever handlers the application installed (botkit/auth/redact.py).
wire_log = logging.getLogger("botkit.whitebit.ws.wire")
wire_log.addFilter(RedactingFilter())

# Candle intervals WhiteBIT accepts (seconds).
CANDLE_INTERVALS = (1, 5, 10, 15, 30, 60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 28800, 43200, 86400,
                    259200, 604800, 2592000)


class WsRpcError(Exception):
    """An error answer to a request: WhiteBIT's code and message."""

    def __init__(self, method: str, code: int, message: str) -> None:
        self.method = method
        self.code = code
        super().__init__(f"WebSocket {method}: error {code}: {message}")


class WsConnectionLost(ConnectionError):
    """The connection closed while a request was waiting for its answer."""


# ---- events ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    reconnect: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class CandleClosed:
    candle: Candle


@dataclass(frozen=True, slots=True)
class TradePrinted:
    trade: Trade


@dataclass(frozen=True, slots=True)
class BookChanged:
    book: BookSnapshot
    update_id: int


@dataclass(frozen=True, slots=True)
class DepthGap:
    market: str
    expected: int | None
    got: int | None


@dataclass(frozen=True, slots=True)
class LastPrice:
    market: str
    price: float


@dataclass(frozen=True, slots=True)
class BookTop:
    """One bookTicker row: best bid and ask (prices and amounts as floats, like every market-data event)."""

    market: str
    time_ms: int
    update_id: int
    bid_price: float
    bid_amount: float
    ask_price: float
    ask_amount: float


@dataclass(frozen=True, slots=True)
class Stale:
    silent_s: float


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    event: int  # 1 new, 2 update, 3 finished
    order: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DealUpdate:
    deal: list[Any]  # [id, time, market, order_id, price, amount, fee, client_order_id, side, role, fee_asset]


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    balances: dict[str, dict[str, str]]


WsEvent = (
    Connected | Disconnected | CandleClosed | TradePrinted | BookChanged | DepthGap | LastPrice | Stale | OrderUpdate
    | DealUpdate | BalanceUpdate | BookTop
)


@dataclass(frozen=True, slots=True)
class CandleRow:
    """A candle the feed has moved past (a newer one began): WhiteBIT's row [t, open, close, high, low, vol_stock,
    vol_money] as received. The live client finalizes it with `candles_request`; a replay takes it as it is."""

    market: str
    interval: int
    row: list[Any]

    def candle(self) -> Candle:
        t = int(self.row[0])
        o, c, h, lo, v = (float(x) for x in self.row[1:6])
        return Candle(self.market, t * 1000, (t + self.interval) * 1000, o, h, lo, c, v)


ParsedEvent = WsEvent | CandleRow
# Update methods that carry market data (they keep the staleness watchdog quiet).
MARKET_DATA_METHODS = frozenset(
    {"candles_update", "trades_update", "depth_update", "lastprice_update", "bookTicker_update"}
)


# ---- local state ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _CandleState:
    market: str
    interval: int
    current: list[Any] | None = None  # [t, open, close, high, low, vol_stock, vol_money]
    last_closed: int = -1


@dataclass(slots=True)
class DepthBook:
    """A local copy of one depth subscription, kept only while update ids chain."""

    market: str
    limit: int
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int | None = None  # None: waiting for a snapshot

    def snapshot(self, time_ms: int, depth: int | None = None) -> BookSnapshot:
        n = depth or self.limit
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return BookSnapshot(
            self.market, time_ms, tuple((float(p), float(q)) for p, q in bids),
            tuple((float(p), float(q)) for p, q in asks),
        )


class FrameParser:
    """Received frames -> typed events, for the live client and for replays of recordings alike.

    Pure apart from its own state (the candle in progress, the depth books) and deterministic: the caller passes the
    receive time, used only where a frame carries no time of its own (a depth update without `timestamp`).
    Malformed updates raise ValueError/TypeError/IndexError/KeyError/ArithmeticError; the caller decides.
    """

    def __init__(self) -> None:
        self.candles: _CandleState | None = None
        self.books: dict[str, DepthBook] = {}

    @staticmethod
    def decode(raw: str | bytes) -> dict[str, Any] | None:
        """One frame as a JSON object, or None when it is not one (not JSON, or a JSON array/scalar)."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None

    def parse(self, raw: str | bytes, now_ms: int) -> list[ParsedEvent]:
        """Events of one raw frame; answers to requests (frames with an id) and non-updates give none."""
        msg = self.decode(raw)
        if msg is None or msg.get("id") is not None:
            return []
        kind, params = msg.get("method"), msg.get("params")
        if isinstance(kind, str) and isinstance(params, list):
            return self.update(kind, params, now_ms)
        return []

    def update(self, method: str, params: list[Any], now_ms: int) -> list[ParsedEvent]:
        out: list[ParsedEvent] = []
        if method == "candles_update":
            for row in params:
                self._on_candle_row(row, out)
        elif method == "trades_update":
            market, items = params[0], params[1]
            for it in items:
                out.append(TradePrinted(Trade(market, int(float(it["time"]) * 1000), float(it["price"]),
                                              float(it["amount"]), "buy" if it["type"] == "buy" else "sell",
                                              int(it["id"]) if it.get("id") is not None else None)))
        elif method == "depth_update":
            self._on_depth(bool(params[0]), params[1], str(params[2]), now_ms, out)
        elif method == "lastprice_update":
            out.append(LastPrice(str(params[0]), float(params[1])))
        elif method == "bookTicker_update":
            for row in params:
                out.append(BookTop(str(row[2]), int(float(row[1]) * 1000), int(row[3]), float(row[4]),
                                   float(row[5]), float(row[6]), float(row[7])))
        elif method == "ordersPending_update":
            out.append(OrderUpdate(int(params[0]), dict(params[1])))
        elif method == "deals_update":
            out.append(DealUpdate(list(params)))
        elif method == "balanceSpot_update":
            for item in params:
                if isinstance(item, dict):
                    out.append(BalanceUpdate(item))
        return out

    def _on_candle_row(self, row: list[Any], out: list[ParsedEvent]) -> None:
        st = self.candles
        if st is None or row[-1] != st.market:
            return
        t = int(row[0])
        if t <= st.last_closed:
            return  # late update of a candle already delivered
        if st.current is not None and t > int(st.current[0]):
            closed = self.close_current()
            if closed is not None:
                out.append(closed)
        st.current = list(row[:7])

    def close_current(self) -> CandleRow | None:
        """The candle in progress, now closed (a newer one began or its end passed); None when there is none."""
        st = self.candles
        if st is None or st.current is None:
            return None
        st.last_closed = int(st.current[0])
        row = CandleRow(st.market, st.interval, st.current)
        st.current = None
        return row

    def _on_depth(self, full: bool, data: dict[str, Any], market: str, now_ms: int, out: list[ParsedEvent]) -> None:
        book = self.books.get(market)
        if book is None:
            return
        uid = int(data["update_id"]) if data.get("update_id") is not None else None
        if full:
            book.asks = {Decimal(p): Decimal(q) for p, q in data.get("asks", [])}
            book.bids = {Decimal(p): Decimal(q) for p, q in data.get("bids", [])}
            book.update_id = uid
        else:
            if book.update_id is None:
                return  # deltas before the fresh snapshot: ignore
            past = data.get("past_update_id")
            if past is None or int(past) != book.update_id:
                expected = book.update_id
                book.update_id = None  # wait for a fresh snapshot
                out.append(DepthGap(market, expected, int(past) if past is not None else None))
                return
            for side, levels in ((book.asks, data.get("asks", [])), (book.bids, data.get("bids", []))):
                for p, q in levels:
                    price, qty = Decimal(p), Decimal(q)
                    if qty == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty
            book.update_id = uid
        ts = data.get("timestamp")
        ms = int(float(ts) * 1000) if ts is not None else now_ms
        out.append(BookChanged(book.snapshot(ms), uid or 0))


class RateBudget:
    """At most `limit` sends in any 60 s window; callers wait for a free slot instead of being cut off (error 7)."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if limit < 1:
            raise ValueError(f"requests_per_minute must be >= 1, got {limit}")
        self.limit = limit
        self.window = window_s
        self.clock = clock
        self._sleep = sleep
        self.sent: deque[float] = deque()

    def delay(self) -> float:
        now = self.clock()
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[0] + self.window - now

    async def acquire(self) -> None:
        while (d := self.delay()) > 0:
            await self._sleep(d)
        self.sent.append(self.clock())


class WsClient:
    """One WhiteBIT WebSocket connection with its subscriptions, surviving disconnects.

    Subscribe before or after `start()`; subscriptions are (re)sent on every connect. A depth delta whose
    past_update_id is not the last update_id seen is a gap (the check WhiteBIT documents) and triggers a resubscribe.
    `token` (an async callable returning a fresh token from POST /api/v4/profile/websocket_token) enables the
    private channels.
    """

    def __init__(
        self,
        url: str,
        sink: Callable[[WsEvent], None],
        *,
        token: Callable[[], Awaitable[str]] | None = None,
        ping_interval: float = 50.0,
        pong_timeout: float = 10.0,
        request_timeout: float = 10.0,
        requests_per_minute: int = 190,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
        stale_after: float | None = 30.0,
        close_grace: float | None = None,
        name: str = "ws",
        on_frame: Callable[[str | bytes, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # Time: `clock` (wall seconds: frame receive times, when a candle is due to close), `monotonic` (a silent
        # feed) and `sleep` (pings, the watchdog's tick, reconnect back-off, the request budget); tests inject one
        # fake clock shared with the sandbox.
        self._now = clock
        self._mono = monotonic
        self._sleep = sleep
        self.url = url
        self.sink = sink
        self.token = token
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.request_timeout = request_timeout
        self.budget = RateBudget(requests_per_minute, clock=monotonic, sleep=sleep)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stale_after = stale_after
        self.close_grace = close_grace
        self.name = name
        self.connects = 0
        self.depth_resubscribes = 0
        self._ws: ClientConnection | None = None
        self._next_id = 1
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.on_frame = on_frame  # every received frame, as received, with its receive time (the recorder)
        self.parser = FrameParser()
        self._trades: list[str] | None = None
        self._lastprice: list[str] = []
        self._book_ticker: list[str] | None = None
        self.books: dict[str, DepthBook] = self.parser.books
        self._private_markets: list[str] = []
        self._balance_assets: list[str] = []
        self._closes: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._ready = asyncio.Event()
        self._last_data = self._mono()
        self._stale_reported = False
        self.last_error: str | None = None  # why the latest connection attempt failed or ended

    # ---- subscriptions (recorded; sent on every connect) -----------------------------------------------------------

    def subscribe_candles(self, market: str, interval_s: int) -> None:
        """WhiteBIT keeps one candle subscription per connection: a second call replaces the first."""
        if interval_s not in CANDLE_INTERVALS:
            raise ValueError(
                f"candle interval {interval_s} s is not one WhiteBIT serves; use one of {CANDLE_INTERVALS}"
            )
        self.parser.candles = _CandleState(market, interval_s)

    @property
    def _candles(self) -> _CandleState | None:
        return self.parser.candles

    def subscribe_trades(self, markets: list[str]) -> None:
        self._trades = list(markets)

    def subscribe_lastprice(self, markets: list[str]) -> None:
        self._lastprice = list(markets)

    def subscribe_book_ticker(self, markets: list[str]) -> None:
        """Best bid/ask per market (`bookTicker_subscribe`; an empty list is every market)."""
        self._book_ticker = list(markets)

    def subscribe_depth(self, market: str, limit: int = 20) -> None:
        self.books[market] = DepthBook(market, limit)

    def subscribe_private(self, markets: list[str], assets: list[str]) -> None:
        if self.token is None:
            raise ValueError("private channels need a token source: WsClient(..., token=...)")
        self._private_markets = list(markets)
        self._balance_assets = list(assets)

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self, wait: float | None = 10.0) -> None:
        """Connect in the background; wait until the first connection is subscribed (or `wait` passes)."""
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._finalizer()),
                       asyncio.create_task(self._watchdog())]
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait)

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        tasks = self._tasks + list(self._side_tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ready.is_set()

    async def request(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """Send one request on the current connection and await its result (WsRpcError on an error answer)."""
        ws = self._ws
        if ws is None:
            raise WsConnectionLost(f"{self.name}: not connected")
        await self.budget.acquire()
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (method, fut)
        try:
            await ws.send(json.dumps({"id": rid, "method": method, "params": params}, separators=(",", ":")))
            return await asyncio.wait_for(fut, timeout if timeout is not None else self.request_timeout)
        except websockets.ConnectionClosed as exc:
            raise WsConnectionLost(f"{self.name}: connection closed during {method}") from exc
        finally:
            self._pending.pop(rid, None)

    def drop(self) -> None:
        """Cut the current connection (it will reconnect): used when the feed looks dead."""
        if self._ws is not None:
            transport = getattr(self._ws, "transport", None)
            if transport is not None:
                transport.abort()

    # ---- connection loop -------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            reason = "closed"
            try:
                async with websockets.connect(self.url, ping_interval=None, max_size=1 << 24,
                                              open_timeout=10, logger=wire_log) as ws:
                    self._ws = ws
                    reader = asyncio.create_task(self._reader(ws))
                    pinger: asyncio.Task[None] | None = None
                    try:
                        await self._on_open()
                        attempt = 0
                        self.connects += 1
                        self._last_data = self._mono()
                        self._ready.set()
                        self.sink(Connected(reconnect=self.connects > 1))
                        pinger = asyncio.create_task(self._pinger())
                        await reader
                    finally:
                        self._ready.clear()
                        for t in (reader, pinger):
                            if t is not None and not t.done():
                                t.cancel()
                                with contextlib.suppress(asyncio.CancelledError, Exception):
                                    await t
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError, WsRpcError, WsConnectionLost) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # e.g. the token request failed: keep the loop alive, try again later
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("%s: connect failed (%s)", self.name, reason)
            finally:
                self._ws = None
                self._fail_pending()
            if self.closing:
                return
            self.last_error = reason
            log.warning("%s: disconnected (%s); reconnecting", self.name, reason)
            self.sink(Disconnected(reason))
            delay = reconnect_delay(attempt, self.backoff_max, self.backoff_base)  # the shared retry policy
            attempt += 1
            await self._sleep(delay)

    async def _on_open(self) -> None:
        """Authorize (fresh token per connection), then send every subscription again."""
        if self.token is not None and self._private_markets:
            await self.request("authorize", [await self.token(), "public"])
            await self.request("ordersPending_subscribe", list(self._private_markets))
            await self.request("deals_subscribe", [list(self._private_markets)])
            if self._balance_assets:
                await self.request("balanceSpot_subscribe", list(self._balance_assets))
        for book in self.books.values():
            book.update_id = None
            await self.request("depth_subscribe", [book.market, book.limit, "0", True])
        if self._trades is not None:
            await self.request("trades_subscribe", list(self._trades))
        if self._lastprice:
            await self.request("lastprice_subscribe", list(self._lastprice))
        if self._book_ticker is not None:
            await self.request("bookTicker_subscribe", list(self._book_ticker))
        if self._candles is not None:
            await self.request("candles_subscribe", [self._candles.market, self._candles.interval])

    async def _pinger(self) -> None:
        while True:
            await self._sleep(self.ping_interval)
            try:
                await self.request("ping", [], timeout=self.pong_timeout)
            except (TimeoutError, WsConnectionLost, WsRpcError):
                log.warning("%s: no pong within %.0f s; reconnecting", self.name, self.pong_timeout)
                self.drop()
                return

    def _fail_pending(self) -> None:
        for method, fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(WsConnectionLost(f"{self.name}: connection lost during {method}"))
                fut.exception()  # its waiter (if it still waits) gets it; nobody else must be warned about it

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            await self._read(ws)
        finally:
            self._fail_pending()  # nobody waits out a timeout for an answer that cannot come

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                received = self._now()
                if self.on_frame is not None:
                    self.on_frame(raw, received)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.warning("%s: non-JSON frame ignored", self.name)
                    continue
                if not isinstance(msg, dict):
                    continue
                rid = msg.get("id")
                if rid is not None:
                    entry = self._pending.get(rid) if isinstance(rid, int) else None
                    if entry is not None and not entry[1].done():
                        method, fut = entry
                        err = msg.get("error")
                        if err:
                            fut.set_exception(WsRpcError(method, int(err.get("code", 0)), str(err.get("message"))))
                        else:
                            fut.set_result(msg.get("result"))
                    continue
                kind = msg.get("method")
                params = msg.get("params")
                if isinstance(kind, str) and isinstance(params, list):
                    try:
                        self._update(kind, params, int(received * 1000))
                    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
                        log.warning("%s: malformed %s ignored (%s)", self.name, kind, exc)

    # ---- updates ---------------------------------------------------------------------------------------------------

    def _fresh(self) -> None:
        self._last_data = self._mono()
        self._stale_reported = False

    def _update(self, method: str, params: list[Any], now_ms: int) -> None:
        if method in MARKET_DATA_METHODS:
            self._fresh()
        for ev in self.parser.update(method, params, now_ms):
            if isinstance(ev, CandleRow):
                self._closes.put_nowait(ev.row)
            elif isinstance(ev, DepthGap):
                self._on_gap(ev)
            else:
                self.sink(ev)

    def _close_current(self) -> None:
        closed = self.parser.close_current()
        if closed is not None:
            self._closes.put_nowait(closed.row)

    async def _finalizer(self) -> None:
        """Closed candles leave in order, with their final values from `candles_request` when it answers; after a
        reconnect, candles that closed while the socket was down are fetched and delivered first."""
        emitted = -1
        while True:
            row = await self._closes.get()
            st = self._candles
            if st is None:
                continue
            t, iv = int(row[0]), st.interval
            if not self.connected:  # final values need the exchange: wait a while for the connection
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), max(5.0, float(iv)))
            # The same request that finalizes this candle also fetches any that closed unseen (an outage), so
            # a gap costs nothing extra; at most 100 candles back.
            start = max(emitted + iv, t - 100 * iv) if emitted >= 0 else t
            rows: list[list[Any]] = [row]
            with contextlib.suppress(TimeoutError, WsConnectionLost, WsRpcError, ValueError, TypeError, IndexError):
                got = await self.request("candles_request", [st.market, start, t + iv, iv])
                fetched = {int(r[0]): r[:7] for r in got or [] if start <= int(r[0]) <= t}
                if t not in fetched:
                    fetched[t] = row
                rows = [fetched[k] for k in sorted(fetched)]
            for r in rows:
                rt = int(r[0])
                if rt <= emitted:
                    continue
                emitted = rt
                o, c, h, lo, v = (float(x) for x in r[1:6])
                self.sink(CandleClosed(Candle(st.market, rt * 1000, (rt + iv) * 1000, o, h, lo, c, v)))

    async def _watchdog(self) -> None:
        """Closes candles whose end has passed without a newer one, and reports a silent feed."""
        while True:
            await self._sleep(0.1)
            st = self._candles
            if st is not None and st.current is not None:
                grace = self.close_grace if self.close_grace is not None else max(0.3, min(2.0, st.interval * 0.05))
                if self._now() >= int(st.current[0]) + st.interval + grace:
                    self._close_current()
            if self.stale_after is not None and self.connected:
                silent = self._mono() - self._last_data
                if silent >= self.stale_after and not self._stale_reported:
                    self._stale_reported = True
                    log.warning("%s: no market data for %.1f s", self.name, silent)
                    self.sink(Stale(silent))

    def _on_gap(self, gap: DepthGap) -> None:
        """A depth delta did not chain: report it and resubscribe for a fresh snapshot."""
        self.depth_resubscribes += 1
        log.info("%s: depth gap on %s (expected past_update_id %s, got %s); resubscribing",
                 self.name, gap.market, gap.expected, gap.got)
        self.sink(gap)
        task = asyncio.create_task(self._resubscribe_depth(self.books[gap.market]))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _resubscribe_depth(self, book: DepthBook) -> None:
        with contextlib.suppress(TimeoutError, WsConnectionLost, WsRpcError):
            await self.request("depth_subscribe", [book.market, book.limit, "0", True])
