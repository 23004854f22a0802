"""WebSocket /ws: WhiteBIT's JSON-RPC-style API with its public and private channels (docs/whitebit.md §3).

Requests {"id", "method", "params"} get {"id", "result", "error"}; updates are {"id": null, "method": "<x>_update",
"params": [...]}. Invalid JSON closes the connection; so does 60 s (configurable) without a client message; more
than 200 requests a minute on one connection get error 7. Depth streams a full snapshot, then deltas whose
`past_update_id` is the previous `update_id`, and a full snapshot again after `depth_keepalive` seconds unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from botkit.market.rules import fmt
from botkit.sandbox.book import Order
from botkit.sandbox.config import ServerConfig
from botkit.sandbox.engine import Deal, Exchange, PublicTrade
from botkit.sandbox.faults import Faults
from botkit.sandbox.public import candles

DEPTH_LIMITS = (1, 5, 10, 20, 30, 50, 100)
CANDLE_INTERVALS = (1, 5, 10, 15, 30, 60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 28800, 43200, 86400,
                    259200, 604800, 2592000)
ORDER_TYPES = {"limit": 1, "market": 2, "stock market": 202, "stop limit": 3, "stop market": 4}
SIDES = {"sell": 1, "buy": 2}
OUTBOX_LIMIT = 50_000
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class RpcError(Exception):
    MESSAGES: ClassVar[dict[int, str]] = {
        1: "invalid argument", 2: "internal error", 3: "service unavailable", 4: "method not found",
        5: "service timeout", 6: "require authentication", 7: "too many requests",
    }

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or self.MESSAGES[code]
        super().__init__(self.message)


class Conn:
    """One client connection: its subscriptions and an outbox drained by a writer task."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, now: float) -> None:
        self.ws = ws
        self.request = request
        self.last_seen = now
        self.requests: deque[float] = deque()
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.account: str | None = None
        self.depth: set[DepthGroup] = set()
        self.trades: set[str] | None = None  # None: not subscribed; empty: all markets
        self.lastprice: set[str] = set()
        self.last_sent_price: dict[str, Decimal] = {}
        self.candles: tuple[str, int] | None = None
        self.candle_sent: list[Any] | None = None
        self.book_ticker: set[str] | None = None
        self.balance_assets: set[str] = set()
        self.balance_all = False  # balanceSpot_subscribe [] = every asset (docs/whitebit.md §3.2)
        self.market_stats: set[str] = set()
        self.market_today: set[str] = set()
        self.pending: set[str] = set()
        self.executed: tuple[set[str], int] | None = None
        self.deals: set[str] = set()
        self.closed = False

    def send(self, text: str) -> None:
        if self.closed:
            return
        if len(self.outbox) >= OUTBOX_LIMIT:  # a client that does not read: cut it off
            self.abort()
            return
        self.outbox.append(text)
        self.wake.set()

    def update(self, method: str, params: list[Any]) -> None:
        self.send(_dumps({"id": None, "method": method, "params": params}))

    async def writer(self) -> None:
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox and not self.closed:
                try:
                    await self.ws.send_str(self.outbox.popleft())
                except (ConnectionError, RuntimeError):
                    self.closed = True

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a fault, or a client that stopped reading)."""
        self.closed = True
        self.wake.set()
        transport = self.request.transport
        if transport is not None:
            transport.close()


@dataclass(eq=False)
class DepthGroup:
    """Subscribers of one (market, limit, interval) share one update-id sequence and one encoded message."""

    market: str
    limit: int
    interval: Decimal
    interval_text: str
    subs: set[Conn] = field(default_factory=set)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 0
    version: int = -1
    last_publish: float = 0.0
    last_change: float = 0.0


def _levels(levels: dict[Decimal, Decimal], reverse: bool) -> list[list[str]]:
    return [[fmt(p), fmt(q)] for p, q in sorted(levels.items(), reverse=reverse)]


def order_ws(o: Order) -> dict[str, Any]:
    return {
        "id": o.id, "market": o.market, "type": ORDER_TYPES.get(o.type, 1), "side": SIDES[o.side],
        "post_only": o.post_only, "ioc": o.ioc, "ctime": o.ctime, "mtime": o.mtime, "price": fmt(o.price),
        "amount": fmt(o.amount), "left": fmt(o.left), "deal_stock": fmt(o.deal_stock),
        "deal_money": fmt(o.deal_money), "deal_fee": fmt(o.deal_fee), "client_order_id": o.client_order_id,
        "stp": o.stp, "status": "OPEN" if o.status == "NEW" else o.status,  # docs/whitebit.md §3.2
        "position_side": "BOTH", "rpi": False,
    }


class WsHub:
    """All WebSocket connections of one sandbox; listens to the exchange and publishes from the server's pulse."""

    def __init__(self, exchange: Exchange, server: ServerConfig, faults: Faults, clock: Callable[[], float]) -> None:
        self.exchange = exchange
        self.server = server
        self.faults = faults
        self.clock = clock
        self.conns: set[Conn] = set()
        self.groups: dict[tuple[str, int, str], DepthGroup] = {}
        self.by_account: dict[str, set[Conn]] = {}
        self.book_ticker_state: dict[str, tuple[int, Any]] = {}
        self._last_prices = 0.0
        self._last_candles = 0.0
        self._closing: set[asyncio.Future[bool]] = set()
        exchange.listeners.append(self)

    # ---- connection ----------------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, request, self.clock())
        self.conns.add(conn)
        writer = asyncio.create_task(conn.writer())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        break
                    continue
                conn.last_seen = self.clock()
                try:
                    req = json.loads(msg.data)
                except json.JSONDecodeError:
                    break  # WhiteBIT: invalid JSON closes the connection
                if not isinstance(req, dict):
                    break
                self._dispatch(conn, req)
                if self.faults.drop_ws():
                    conn.abort()
                    break
        finally:
            self._forget(conn)
            conn.closed = True
            conn.wake.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                await ws.close()
        return ws

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for g in conn.depth:
            g.subs.discard(conn)
        if conn.account is not None:
            self.by_account.get(conn.account, set()).discard(conn)

    def drop_all(self) -> None:
        for conn in list(self.conns):
            conn.abort()

    async def close_all(self) -> None:
        for conn in list(self.conns):
            conn.closed = True
            with contextlib.suppress(Exception):
                await conn.ws.close()

    def reset(self) -> None:
        self.drop_all()
        self.groups.clear()
        self.by_account.clear()
        self.book_ticker_state.clear()

    # ---- requests ------------------------------------------------------------------------------------------------

    def _dispatch(self, conn: Conn, req: dict[str, Any]) -> None:
        rid = req.get("id")
        now = self.clock()
        window = conn.requests
        while window and window[0] <= now - 60.0:
            window.popleft()
        try:
            if len(window) >= self.server.ws_requests_per_minute:
                raise RpcError(7)
            window.append(now)
            method = req.get("method")
            params = req.get("params", [])
            if not isinstance(method, str):
                raise RpcError(4)
            if not isinstance(params, list):
                raise RpcError(1)
            handler = getattr(self, "_m_" + method, None)
            if handler is None:
                raise RpcError(4)
            result, after = handler(conn, params)
        except RpcError as exc:
            conn.send(_dumps({"id": rid, "result": None, "error": {"code": exc.code, "message": exc.message}}))
            return
        conn.send(_dumps({"id": rid, "result": result, "error": None}))
        if after is not None:
            after()

    def _markets(self, params: list[Any], allow_empty: bool = True) -> set[str]:
        names = params[0] if params and isinstance(params[0], list) else params
        if not allow_empty and not names:
            raise RpcError(1)
        for n in names:
            if n not in self.exchange.markets:
                raise RpcError(1, f"invalid argument: unknown market {n!r}")
        return set(names)

    def _need_auth(self, conn: Conn) -> str:
        if conn.account is None:
            raise RpcError(6)
        return conn.account

    _ok: ClassVar[dict[str, str]] = {"status": "success"}

    def _m_ping(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        return "pong", None

    def _m_time(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        return int(self.clock()), None

    def _m_authorize(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        account = self.exchange.account_for_ws_token(params[0] if params else None)
        if account is None:
            raise RpcError(6, "invalid websocket token")
        if conn.account is not None:
            self.by_account.get(conn.account, set()).discard(conn)
        conn.account = account
        self.by_account.setdefault(account, set()).add(conn)
        return self._ok, None

    # public

    def _m_lastprice_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        conn.lastprice = self._markets(params, allow_empty=False)
        conn.last_sent_price = {}
        return self._ok, lambda: self._push_prices(conn)

    def _m_lastprice_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.lastprice = set()
        return self._ok, None

    def _m_lastprice_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        (market,) = self._markets(params[:1], allow_empty=False)
        return fmt(self.exchange.markets[market].last_price), None

    def _m_trades_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.trades = self._markets(params)
        return self._ok, None

    def _m_trades_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.trades = None
        return self._ok, None

    def _m_candles_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        if len(params) != 2 or params[0] not in self.exchange.markets or params[1] not in CANDLE_INTERVALS:
            raise RpcError(1)
        conn.candles = (params[0], int(params[1]))
        conn.candle_sent = None
        return self._ok, lambda: self._push_candle(conn)

    def _m_candles_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.candles = None
        return self._ok, None

    def _m_candles_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        if len(params) != 4 or params[0] not in self.exchange.markets or params[3] not in CANDLE_INTERVALS:
            raise RpcError(1)
        rows = candles(self.exchange.markets[params[0]].trades, int(params[3]), float(params[1]), float(params[2]))
        return [[*r, params[0]] for r in rows], None

    def _m_bookTicker_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        conn.book_ticker = self._markets(params)
        return self._ok, lambda: self._push_book_ticker(conn)

    def _m_bookTicker_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.book_ticker = None
        return self._ok, None

    def _depth_args(self, params: list[Any]) -> tuple[str, int, Decimal, str]:
        if len(params) < 3 or params[0] not in self.exchange.markets or params[1] not in DEPTH_LIMITS:
            raise RpcError(1)
        text = str(params[2])
        try:
            interval = Decimal(text)
        except InvalidOperation:
            raise RpcError(1) from None
        if interval < 0 or interval > Decimal("0.1"):
            raise RpcError(1)
        return params[0], int(params[1]), interval, text

    def _m_depth_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        market, limit, interval, text = self._depth_args(params)
        multi = len(params) > 3 and params[3] is True
        old = [g for g in conn.depth if g.market == market] if multi else list(conn.depth)
        for g in old:
            g.subs.discard(conn)
            conn.depth.discard(g)
        key = (market, limit, text)
        group = self.groups.get(key)
        now = self.clock()
        if group is None:
            group = self.groups[key] = DepthGroup(market, limit, interval, text)
            group.asks, group.bids = self._refresh(group, now)
            group.update_id = self.exchange.markets[market].book.version + 1
            group.last_change = group.last_publish = now
        else:
            self._publish(group, now, force=True)
        group.subs.add(conn)
        conn.depth.add(group)
        return self._ok, lambda: conn.update("depth_update", self._snapshot(group, now))

    def _m_depth_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        for g in conn.depth:
            g.subs.discard(conn)
        conn.depth.clear()
        return self._ok, None

    def _m_depth_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        market, limit, interval, _ = self._depth_args(params)
        book = self.exchange.markets[market].book
        return {
            "timestamp": self.clock(),
            "asks": [[fmt(p), fmt(q)] for p, q in book.levels("sell", limit, interval)],
            "bids": [[fmt(p), fmt(q)] for p, q in book.levels("buy", limit, interval)],
        }, None

    def _m_trades_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        """[market, limit, from_id]: up to `limit` (1..1000) newest trades, only ids above `from_id` if given."""
        if not params or params[0] not in self.exchange.markets:
            raise RpcError(1)
        limit = params[1] if len(params) > 1 else 100
        from_id = params[2] if len(params) > 2 else 0
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise RpcError(1)
        if isinstance(from_id, bool) or not isinstance(from_id, int):
            raise RpcError(1)
        out: list[dict[str, Any]] = []
        for t in reversed(self.exchange.markets[params[0]].trades):
            if t.id <= from_id or len(out) == limit:
                break
            out.append({"id": t.id, "time": t.time, "price": fmt(t.price), "amount": fmt(t.amount),
                        "type": t.side, "rpi": False})
        return out, None

    def _stats(self, market: str, since: float) -> dict[str, str]:
        m = self.exchange.markets[market]
        rows = [t for t in m.trades if t.time >= since]
        first = rows[0].price if rows else m.last_price
        return {
            "last": fmt(m.last_price), "open": fmt(first), "close": fmt(m.last_price),
            "high": fmt(max((t.price for t in rows), default=m.last_price)),
            "low": fmt(min((t.price for t in rows), default=m.last_price)),
            "volume": fmt(sum((t.amount for t in rows), Decimal(0))),
            "deal": fmt(sum((t.amount * t.price for t in rows), Decimal(0))),
        }

    def market_stats(self, market: str, period: int) -> dict[str, Any]:
        """`market_update` / `market_request` body: {period, last, open, close, high, low, volume, deal}."""
        return {"period": period, **self._stats(market, self.clock() - period)}

    def market_today(self, market: str) -> dict[str, Any]:
        """`marketToday_update` body: since 00:00 UTC, {last, open, high, low, volume, deal}."""
        now = self.clock()
        stats = self._stats(market, now - now % 86400)
        del stats["close"]
        return stats

    def _m_market_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        if len(params) != 2 or params[0] not in self.exchange.markets:
            raise RpcError(1)
        period = params[1]
        if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= 2592000:
            raise RpcError(1)
        return self.market_stats(params[0], period), None

    def _m_market_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        conn.market_stats = self._markets(params, allow_empty=False)
        return self._ok, lambda: self._push_stats(conn)

    def _m_market_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.market_stats = set()
        return self._ok, None

    def _m_marketToday_query(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        (market,) = self._markets(params[:1], allow_empty=False)
        return self.market_today(market), None

    _m_marketToday_request = _m_marketToday_query  # an alias; the docs page (docs/whitebit.md §3.1) says _query

    def _m_marketToday_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        conn.market_today = self._markets(params, allow_empty=False)
        return self._ok, lambda: self._push_stats(conn)

    def _m_marketToday_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.market_today = set()
        return self._ok, None

    def _push_stats(self, conn: Conn) -> None:
        for name in sorted(conn.market_stats):
            conn.update("market_update", [name, self.market_stats(name, 86400)])
        for name in sorted(conn.market_today):
            conn.update("marketToday_update", [name, self.market_today(name)])

    # private

    def _m_balanceSpot_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, Callable[[], None]]:
        account = self._need_auth(conn)
        conn.balance_assets = {a for a in params if isinstance(a, str)}
        conn.balance_all = not params
        wanted = set(self.exchange.balance_of(account)) if conn.balance_all else set(conn.balance_assets)
        return self._ok, lambda: self.on_balance(account, wanted, only=conn)

    def _m_balanceSpot_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.balance_assets = set()
        conn.balance_all = False
        return self._ok, None

    def _m_balanceSpot_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        account = self._need_auth(conn)
        bal = self.exchange.balance_of(account)
        wanted = [a for a in params if isinstance(a, str)] or sorted(bal)
        return {a: {"available": fmt(bal[a].available), "freeze": fmt(bal[a].freeze)} for a in wanted if a in bal}, None

    def _m_ordersPending_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        self._need_auth(conn)
        conn.pending = self._markets(params, allow_empty=False)
        return self._ok, None

    def _m_ordersPending_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.pending = set()
        return self._ok, None

    def _m_ordersPending_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        account = self._need_auth(conn)
        if len(params) != 3 or params[0] not in self.exchange.markets:
            raise RpcError(1)
        offset, limit = int(params[1]), min(int(params[2]), 100)
        found = [o for o in self.exchange.account_orders(account) if o.market == params[0]]
        records = [order_ws(o) for o in found[offset : offset + limit]]
        return {"limit": limit, "offset": offset, "total": len(found), "records": records}, None

    def _m_ordersExecuted_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        """[{market, order_types}, offset, limit]: finished orders with fills, newest first."""
        account = self._need_auth(conn)
        if len(params) != 3 or not isinstance(params[0], dict):
            raise RpcError(1)
        market, types = params[0].get("market"), params[0].get("order_types")
        if market not in self.exchange.markets:
            raise RpcError(1)
        offset, limit = self._paging(params[1], params[2])
        found = [
            o for o in reversed(self.exchange.history.get(account, []))
            if o.market == market and o.deal_stock > 0
            and (not types or ORDER_TYPES.get(o.type, 1) in types)
        ]
        records = []
        for o in found[offset : offset + limit]:
            row = order_ws(o)
            row["ftime"] = o.ftime
            row["fee_asset"] = o.fee_asset
            records.append(row)
        return {"limit": limit, "offset": offset, "records": records}, None

    def _m_deals_request(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        """[market, offset, limit]: the account's deals in `market`, newest first."""
        account = self._need_auth(conn)
        if len(params) != 3 or params[0] not in self.exchange.markets:
            raise RpcError(1)
        offset, limit = self._paging(params[1], params[2])
        found = [d for d in reversed(self.exchange.deals.get(account, [])) if d.market == params[0]]
        records = [
            {"time": d.time, "id": d.id, "side": SIDES[d.side], "role": d.role, "price": fmt(d.price),
             "amount": fmt(d.amount), "deal": fmt(d.deal), "fee": fmt(d.fee), "order_id": d.order_id,
             "deal_order_id": d.order_id, "market": d.market, "client_order_id": d.client_order_id,
             "fee_asset": d.fee_asset}
            for d in found[offset : offset + limit]
        ]
        return {"limit": limit, "offset": offset, "records": records}, None

    @staticmethod
    def _paging(offset: Any, limit: Any) -> tuple[int, int]:
        for v in (offset, limit):
            if isinstance(v, bool) or not isinstance(v, int):
                raise RpcError(1)
        if offset < 0 or not 1 <= limit <= 100:
            raise RpcError(1)
        return offset, limit

    def _m_ordersExecuted_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        self._need_auth(conn)
        if not params or not isinstance(params[0], list):
            raise RpcError(1)
        kind = params[1] if len(params) > 1 else 0
        if kind not in (0, 1, 2):
            raise RpcError(1)
        conn.executed = (self._markets([params[0]]), int(kind))
        return self._ok, None

    def _m_ordersExecuted_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.executed = None
        return self._ok, None

    def _m_deals_subscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        self._need_auth(conn)
        conn.deals = self._markets(params, allow_empty=False)
        return self._ok, None

    def _m_deals_unsubscribe(self, conn: Conn, params: list[Any]) -> tuple[Any, None]:
        conn.deals = set()
        return self._ok, None

    # ---- exchange listener ---------------------------------------------------------------------------------------

    def on_trade(self, market: str, trade: PublicTrade) -> None:
        msg: str | None = None
        for conn in self.conns:
            if conn.trades is not None and (not conn.trades or market in conn.trades):
                if msg is None:
                    item = {"id": trade.id, "time": trade.time, "price": fmt(trade.price),
                            "amount": fmt(trade.amount), "type": trade.side, "rpi": False}
                    msg = _dumps({"id": None, "method": "trades_update", "params": [market, [item]]})
                conn.send(msg)

    def on_order(self, account: str, event: int, order: Order) -> None:
        for conn in self.by_account.get(account, ()):
            if order.market in conn.pending:
                conn.update("ordersPending_update", [event, order_ws(order)])
            if event == 3 and conn.executed is not None and order.deal_stock > 0:
                markets, kind = conn.executed
                is_limit = order.type == "limit"
                if (not markets or order.market in markets) and (kind == 0 or (kind == 1) == is_limit):
                    conn.update("ordersExecuted_update", [order_ws(order)])

    def on_deal(self, account: str, deal: Deal) -> None:
        for conn in self.by_account.get(account, ()):
            if deal.market in conn.deals:
                conn.update("deals_update", [
                    deal.id, deal.time, deal.market, deal.order_id, fmt(deal.price), fmt(deal.amount),
                    fmt(deal.fee), deal.client_order_id, SIDES[deal.side], deal.role, deal.fee_asset,
                ])

    def on_balance(self, account: str, assets: set[str], only: Conn | None = None) -> None:
        conns = (only,) if only is not None else self.by_account.get(account, ())
        bal = self.exchange.balance_of(account)
        for conn in conns:
            wanted = set(assets) if conn.balance_all else assets & conn.balance_assets
            if wanted:
                conn.update("balanceSpot_update", [
                    {a: {"available": fmt(bal[a].available), "freeze": fmt(bal[a].freeze)} for a in sorted(wanted)
                     if a in bal}
                ])

    # ---- the pulse -----------------------------------------------------------------------------------------------

    def pulse(self, now: float) -> None:
        for group in list(self.groups.values()):
            if not group.subs:
                del self.groups[(group.market, group.limit, group.interval_text)]
                continue
            self._publish(group, now)
        if self.conns:
            self._pulse_tickers(now)
        idle = self.server.ws_idle_timeout
        for conn in list(self.conns):
            if now - conn.last_seen > idle and not conn.closed:
                conn.closed = True
                task = asyncio.ensure_future(conn.ws.close(code=1000, message=b"idle timeout"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _pulse_tickers(self, now: float) -> None:
        if now - self._last_prices >= self.server.lastprice_interval:
            self._last_prices = now
            for conn in self.conns:
                if conn.lastprice:
                    self._push_prices(conn)
                if conn.market_stats or conn.market_today:
                    self._push_stats(conn)  # documented: a full snapshot every 1 s
        if now - self._last_candles >= self.server.candles_interval:
            self._last_candles = now
            for conn in self.conns:
                if conn.candles is not None:
                    self._push_candle(conn)
        for name, m in self.exchange.markets.items():
            state = self.book_ticker_state.get(name)
            if state is not None and state[0] == m.book.version:
                continue
            bid, ask = m.book.levels("buy", 1), m.book.levels("sell", 1)
            top = (bid, ask)
            if state is not None and state[1] == top:
                self.book_ticker_state[name] = (m.book.version, top)
                continue
            self.book_ticker_state[name] = (m.book.version, top)
            row = [now, now, name, m.book.version,
                   fmt(bid[0][0]) if bid else "0", fmt(bid[0][1]) if bid else "0",
                   fmt(ask[0][0]) if ask else "0", fmt(ask[0][1]) if ask else "0"]
            msg = _dumps({"id": None, "method": "bookTicker_update", "params": [row]})
            for conn in self.conns:
                if conn.book_ticker is not None and (not conn.book_ticker or name in conn.book_ticker):
                    conn.send(msg)

    def _push_prices(self, conn: Conn) -> None:
        for name in conn.lastprice:
            price = self.exchange.markets[name].last_price
            if conn.last_sent_price.get(name) != price:
                conn.last_sent_price[name] = price
                conn.update("lastprice_update", [name, fmt(price)])

    def _push_candle(self, conn: Conn) -> None:
        assert conn.candles is not None
        market, interval = conn.candles
        now = self.exchange.clock()  # market time (a lock-step replay's data time)
        rows = candles(self.exchange.markets[market].trades, interval, now - (now % interval))
        if rows and rows[-1] != conn.candle_sent:
            conn.candle_sent = rows[-1]
            conn.update("candles_update", [[*rows[-1], market]])

    def _push_book_ticker(self, conn: Conn) -> None:
        now = self.clock()
        for name, m in self.exchange.markets.items():
            if conn.book_ticker and name not in conn.book_ticker:
                continue
            bid, ask = m.book.levels("buy", 1), m.book.levels("sell", 1)
            conn.update("bookTicker_update", [[
                now, now, name, m.book.version,
                fmt(bid[0][0]) if bid else "0", fmt(bid[0][1]) if bid else "0",
                fmt(ask[0][0]) if ask else "0", fmt(ask[0][1]) if ask else "0",
            ]])

    # ---- depth ---------------------------------------------------------------------------------------------------

    def _refresh(self, group: DepthGroup, now: float) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        book = self.exchange.markets[group.market].book
        asks = dict(book.levels("sell", group.limit, group.interval))
        bids = dict(book.levels("buy", group.limit, group.interval))
        group.version = book.version
        return asks, bids

    def _snapshot(self, group: DepthGroup, now: float) -> list[Any]:
        return [True, {"timestamp": now, "update_id": group.update_id, "asks": _levels(group.asks, False),
                       "bids": _levels(group.bids, True), "event_time": now}, group.market]

    def _publish(self, group: DepthGroup, now: float, force: bool = False) -> None:
        book = self.exchange.markets[group.market].book
        if not force and now - group.last_publish < self.server.depth_interval:
            return
        if book.version == group.version:
            if now - group.last_change >= self.server.depth_keepalive and group.subs:
                group.update_id += 1
                group.last_change = group.last_publish = now
                msg = _dumps({"id": None, "method": "depth_update", "params": self._snapshot(group, now)})
                for conn in group.subs:
                    conn.send(msg)
            return
        asks, bids = self._refresh(group, now)
        d_asks = _diff(group.asks, asks)
        d_bids = _diff(group.bids, bids)
        group.asks, group.bids = asks, bids
        if not d_asks and not d_bids:
            return
        past = group.update_id
        group.update_id += 1
        group.last_change = group.last_publish = now
        if not group.subs or self.faults.skip_depth():
            return  # fault: this delta is lost on the way, so the next one's past_update_id breaks the chain
        data: dict[str, Any] = {"timestamp": now, "update_id": group.update_id, "past_update_id": past}
        if d_asks:
            data["asks"] = d_asks
        if d_bids:
            data["bids"] = d_bids
        data["event_time"] = now
        msg = _dumps({"id": None, "method": "depth_update", "params": [False, data, group.market]})
        for conn in group.subs:
            conn.send(msg)


def _diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[list[str]]:
    out = [[fmt(p), fmt(q)] for p, q in new.items() if old.get(p) != q]
    out += [[fmt(p), "0"] for p in old if p not in new]
    return out
