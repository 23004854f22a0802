"""The WhiteBIT venue: orders go out over signed REST, their fate comes back from the REST answers and the private
WebSocket streams, and every source feeds one upsert keyed by clientOrderId.

Fills are derived from the exchange's cumulative figures (dealStock, dealMoney, dealFee) and from deals: each source
can only raise what we have seen, so a deal that arrives before, after or instead of its order event is counted
exactly once. On start and after every reconnect the venue reconciles with GET-style reads (/api/v4/orders, order
history): no order the exchange holds is unknown, and no fill that happened while the socket was down is lost.
An ambiguous failure (the request may have reached the exchange) is resolved by asking for the clientOrderId,
never by sending again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botkit.auth.errors import ReauthRequired
from botkit.market.grants import InsufficientScope
from botkit.market.orders import Fill, Order, OrderStatus, OrderType
from botkit.market.rules import MarketRules, fmt
from botkit.market.types import Balance, Side
from botkit.retry import policy
from botkit.whitebit.endpoints import DEFAULT_REGISTRY
from botkit.whitebit.errors import WhiteBitError, WhiteBitUnavailable
from botkit.whitebit.rest import TransportFailure, WhiteBitRest
from botkit.whitebit.ws import (
    BalanceUpdate,
    Connected,
    DealUpdate,
    OrderUpdate,
    WsClient,
    WsEvent,
)

if TYPE_CHECKING:  # the port's other half, named in annotations only (no upward import)
    from botkit.execution.venue import VenueEvents

log = logging.getLogger("botkit.venues.whitebit")

ZERO = Decimal(0)
_MAX_PAGES = 50
# Orders that execute at once as takers (a market order; a stop-market once triggered): counted from their final
# figures, never deal by deal, so a finish event can never find them "partly filled" and call them cancelled.
_SETTLED_WHOLE = frozenset({"market", "stop_market"})
_CLOSED_REMEMBERED = 1_000  # ids (client and exchange) of closed orders kept to recognise late events


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None and value != "" else ZERO


@dataclass(slots=True)
class _Tracked:
    """What we know of one order on the exchange: cumulative figures seen so far, and the deals counted."""

    order: Order
    in_flight: bool = True  # submit not yet answered
    seen_stock: Decimal = ZERO
    seen_money: Decimal = ZERO
    seen_fee: Decimal = ZERO
    deals: set[int] = field(default_factory=set)
    deal_stock: Decimal = ZERO
    deal_money: Decimal = ZERO
    deal_fee: Decimal = ZERO
    maker: bool | None = None
    cancel_sent: bool = False


class _NotFoundYet(Exception):
    """An order lookup found nothing while the order may still be in flight inside the exchange."""


class WhiteBitVenue:
    """Implements the Venue protocol against WhiteBIT (or the sandbox). Call `start()` before trading."""

    # What the venue itself calls, whatever the strategy does: balances, reconciliation, resolving a lost answer by
    # clientOrderId, the private stream's token. Their scopes come from the endpoint registry (`required_scopes`).
    ENDPOINTS: tuple[str, ...] = ("trade_balance", "open_orders", "order_history", "websocket_token")

    @classmethod
    def required_scopes(cls) -> frozenset[str]:
        return frozenset().union(*(DEFAULT_REGISTRY.get(e).scopes for e in cls.ENDPOINTS))

    name = "whitebit"
    # WhiteBIT's public API has no OCO endpoint for spot (docs/whitebit.md §2.4): the execution layer emulates it
    # (botkit/execution/oco.py)
    supports_oco = False
    supports_stop_limit = True  # order/stop_limit

    def __init__(
        self,
        rest: WhiteBitRest,
        rules: dict[str, MarketRules],
        *,
        ws_url: str | None,
        notify: Callable[[], None] = lambda: None,
        adopt: Callable[[Order], bool] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        ping_interval: float = 50.0,
        lost_order_grace_s: float = 3.0,
        max_in_flight: int = 8,
        before_send: Callable[[], None] = lambda: None,
        on_reauth: Callable[[ReauthRequired], None] = lambda exc: None,
    ) -> None:
        self.on_reauth = on_reauth
        self.rest = rest
        self.max_in_flight = max_in_flight
        self.before_send = before_send
        # Orders wait here, in the order they were placed, for one of `max_in_flight` workers: a callback that
        # places 10,000 orders queues them (never drops one) instead of opening 10,000 requests at once.
        self._outbox: deque[_Tracked] = deque()
        self._workers = 0
        # Orders that closed recently: late stream events for them are ignored (never adopted as unknown), and
        # everything else about a closed order leaves memory.
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.lost_order_grace_s = lost_order_grace_s
        self.rules = rules
        self.notify = notify
        self.adopt = adopt
        self.clock_ms = clock_ms
        self._events: VenueEvents | None = None
        self._balances: dict[str, Balance] = {}
        self._by_cid: dict[str, _Tracked] = {}
        self._by_xid: dict[str, _Tracked] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconcile_lock = asyncio.Lock()
        self.reconciles = 0
        self.adopted: list[Order] = []
        self.kill_switch_arms = 0
        self._foreign: set[str] = set()
        self.errors: list[str] = []
        assets = sorted({a for r in rules.values() for a in (r.stock, r.money)})
        self.ws: WsClient | None = None
        if ws_url is not None:
            self.ws = WsClient(ws_url, self._on_ws, token=self._ws_token, ping_interval=ping_interval,
                               stale_after=None, name="private-ws")
            self.ws.subscribe_private(sorted(rules), assets)

    # ---- lifecycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Balances, then the private stream, then a full reconciliation (also repeated after each reconnect)."""
        await self.refresh_balances()
        if self.ws is not None:
            await self.ws.start(wait=10.0)
        await self.reconcile()

    async def stop(self) -> None:
        await self.settle()
        if self.ws is not None:
            await self.ws.close()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait for in-flight submits and cancels to be answered."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks and asyncio.get_running_loop().time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - asyncio.get_running_loop().time()))

    async def refresh_balances(self) -> None:
        data = await self.rest.call("trade_balance", {})
        self._balances = {
            str(a): Balance(_dec(v.get("available")), _dec(v.get("freeze"))) for a, v in (data or {}).items()
            if isinstance(v, dict)
        }

    # ---- Venue protocol ----------------------------------------------------------------------------------------------

    def bind(self, events: VenueEvents) -> None:
        self._events = events

    def balance(self, asset: str) -> Balance:
        return self._balances.get(asset, Balance(ZERO, ZERO))

    def balances(self) -> dict[str, Balance]:
        return dict(sorted(self._balances.items()))

    def submit(self, order: Order, now_ms: int) -> None:
        tr = _Tracked(order)
        self._by_cid[order.client_id] = tr
        self._outbox.append(tr)
        while self._workers < self.max_in_flight and self._workers < len(self._outbox):
            self._workers += 1
            self._spawn(self._send_worker())

    def cancel(self, order: Order, now_ms: int) -> None:
        tr = self._by_cid.get(order.client_id)
        if tr is None or tr.cancel_sent:
            return
        if tr in self._outbox:  # never sent: nothing to ask the exchange
            self._outbox.remove(tr)
            tr.in_flight = False
            self._ev().order_cancelled(order, self.clock_ms(), "cancelled before it was sent")
            self._forget(tr)
            self.notify()
            return
        tr.cancel_sent = True
        self._spawn(self._cancel(tr))

    def arm_kill_switch(self, market: str, timeout_s: int) -> None:
        """(Re-)arm the exchange's dead-man switch for `market`: unless armed again within `timeout_s`, WhiteBIT
        cancels the account's spot orders there, also after the bot stops. Failures are logged, never fatal."""
        self._spawn(self._kill_switch(market, timeout_s))

    async def _kill_switch(self, market: str, timeout_s: int) -> None:
        try:
            await self.rest.call("kill_switch", {"market": market, "timeout": str(timeout_s), "types": ["spot"]})
            self.kill_switch_arms += 1
        except (WhiteBitError, InsufficientScope, ReauthRequired) as exc:
            log.warning("kill switch for %s not armed: %s", market, exc)

    @property
    def queued(self) -> int:
        """Orders placed but not yet sent (waiting for a free request slot)."""
        return len(self._outbox)

    def drop_queued(self, reason: str) -> int:
        """At shutdown: orders still waiting to be sent never leave; each is reported cancelled with `reason`."""
        n = 0
        while self._outbox:
            tr = self._outbox.popleft()
            tr.in_flight = False
            if tr.order.is_open:
                self._ev().order_cancelled(tr.order, self.clock_ms(), reason)
                n += 1
            self._forget(tr)
        if n:
            self.notify()
        return n

    async def _send_worker(self) -> None:
        try:
            while self._outbox:
                tr = self._outbox.popleft()
                await self._submit(tr)
        finally:
            self._workers -= 1

    def track(self, order: Order) -> None:
        """An order journaled by an earlier run of this bot: ours, and settled against the exchange by the next
        `reconcile` (by exchange id, or by clientOrderId if the send was never acknowledged; never sent again).
        What the journal already counted is "seen", so only fills made while the bot was down are reported."""
        tr = _Tracked(order, in_flight=False, seen_stock=order.filled, seen_money=order.filled_quote,
                      seen_fee=order.fee, deal_stock=order.filled, deal_money=order.filled_quote,
                      deal_fee=order.fee)
        self._by_cid[order.client_id] = tr
        if order.exchange_id is not None:
            self._by_xid[order.exchange_id] = tr

    # ---- order entry -------------------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, tr: _Tracked) -> None:
        o = tr.order
        self.before_send()
        if o.type == "limit":
            endpoint = "order_new"
            params: dict[str, Any] = {"market": o.market, "side": o.side, "amount": fmt(o.amount),
                                      "price": fmt(o.price), "clientOrderId": o.client_id}  # type: ignore[arg-type]
            if o.post_only:
                params["postOnly"] = True
            if o.ioc:
                params["ioc"] = True
        elif o.type == "market":
            endpoint = "order_market"
            params = {"market": o.market, "side": o.side, "amount": fmt(o.amount), "clientOrderId": o.client_id}
        elif o.type == "stop_limit":
            # Base amount and limit price, like order/new; triggered at `activation_price` (docs/whitebit.md §2.4).
            endpoint = "order_stop_limit"
            params = {"market": o.market, "side": o.side, "amount": fmt(o.amount), "price": fmt(o.price),  # type: ignore[arg-type]
                      "activation_price": fmt(o.stop_price or ZERO), "clientOrderId": o.client_id}
        else:
            # WhiteBIT's stop-market takes a buy's amount in quote to spend (like a market buy): the base amount the
            # strategy asked for, valued at the trigger price, cut to the quote's precision.
            r = self.rules[o.market]
            stop = o.stop_price or ZERO
            amount = r.truncate_quote(o.amount * stop) if o.side == "buy" else o.amount
            endpoint = "order_stop_market"
            params = {"market": o.market, "side": o.side, "amount": fmt(amount), "activation_price": fmt(stop),
                      "clientOrderId": o.client_id}
        try:
            resp = await self.rest.call(endpoint, params)
        except (TransportFailure, WhiteBitUnavailable) as exc:
            if isinstance(exc, TransportFailure) and not exc.sent:
                self._reject(tr, f"network: {exc}")
                return
            log.warning("order %s: ambiguous failure (%s); asking the exchange by clientOrderId", o.client_id, exc)
            await self._resolve_ambiguous(tr)
            return
        except InsufficientScope as exc:
            self._reject(tr, f"scope: {exc}")
            return
        except ReauthRequired as exc:  # the OAuth grant is gone: never sent (the token was refused first)
            self._reject(tr, "auth: re-authorization required")
            self.on_reauth(exc)
            return
        except WhiteBitError as exc:
            self._reject(tr, f"exchange: {exc}")
            return
        finally:
            tr.in_flight = False
        if isinstance(resp, dict):
            self._apply(tr, resp, finished=self._rest_finished(tr, resp))
        self.notify()

    async def _resolve_ambiguous(self, tr: _Tracked) -> None:
        """Look the order up until it is found, or until `lost_order_grace_s` has passed without it (a request
        still in flight inside the exchange must not be declared lost too early); lookups that fail are retried
        with the shared retry policy."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.lost_order_grace_s
        found: tuple[dict[str, Any], bool] | None = None
        try:
            async for attempt in policy(lambda e: isinstance(e, WhiteBitError | _NotFoundYet), attempts=8,
                                        total_s=None, max_wait_s=4.0):
                with attempt:
                    found = await self._find(tr)
                    if found is None and loop.time() < give_up:
                        raise _NotFoundYet
        except InsufficientScope as exc:
            self.errors.append(f"order {tr.order.client_id}: cannot look it up: {exc}")
            return
        except WhiteBitError as exc:
            self.errors.append(f"order {tr.order.client_id}: state unknown after repeated lookups ({exc})")
            log.error("order %s: state unknown; it will be resolved at the next reconciliation", tr.order.client_id)
            return
        except _NotFoundYet:
            found = None  # the lookups ran out inside the grace period: not found is the answer
        if found is None:
            self._reject(tr, "network: the order did not reach the exchange (not found by clientOrderId)")
        else:
            self._apply(tr, found[0], finished=found[1])
        self.notify()

    async def _cancel(self, tr: _Tracked) -> None:
        o = tr.order
        while tr.in_flight:
            await asyncio.sleep(0.02)  # cancel after the exchange knows the order
        if not o.is_open:
            return
        self.before_send()
        params: dict[str, Any] = {"market": o.market}
        if o.exchange_id is not None:
            params["orderId"] = int(o.exchange_id)
        else:
            params["clientOrderId"] = o.client_id
        try:
            resp = await self.rest.call("order_cancel", params)
        except WhiteBitError as exc:
            log.info("cancel %s: %s; reconciling its state", o.client_id, exc)
            tr.cancel_sent = False
            with contextlib.suppress(WhiteBitError, InsufficientScope):
                found = await self._find(tr)
                if found is not None:
                    self._apply(tr, found[0], finished=found[1])
            self.notify()
            return
        except InsufficientScope as exc:
            self.errors.append(str(exc))
            tr.cancel_sent = False
            return
        except ReauthRequired as exc:
            self.errors.append(f"cancel {o.client_id}: {exc}")
            tr.cancel_sent = False
            self.on_reauth(exc)
            return
        if isinstance(resp, dict):
            self._apply(tr, resp, finished=True)
        self.notify()

    def _rest_finished(self, tr: _Tracked, resp: dict[str, Any]) -> bool:
        """REST `status` is unreliable on creation (an open order reads "FILLED"): use `left`. A stop order waits
        for its trigger: its fills and its end come from the streams and reconciliation."""
        if tr.order.type == "market":
            return True
        if tr.order.type in ("stop_market", "stop_limit"):
            return False
        return _dec(resp.get("left")) == 0 or bool(tr.order.ioc)

    async def _find(self, tr: _Tracked) -> tuple[dict[str, Any], bool] | None:
        """The order as the exchange holds it: open (/orders) or finished (order history); None if unknown."""
        o = tr.order
        key: dict[str, Any] = {"market": o.market}
        if o.exchange_id is not None:
            key["orderId"] = int(o.exchange_id)
        else:
            key["clientOrderId"] = o.client_id
        rows = await self.rest.call("open_orders", {**key, "limit": 100})
        for r in rows or []:
            if self._matches(o, r):
                return r, False
        hist = await self.rest.call("order_history", {**key, "limit": 100})
        items = hist.get(o.market, []) if isinstance(hist, dict) else (hist or [])
        for r in items:
            if self._matches(o, r):
                return r, True
        return None

    @staticmethod
    def _matches(o: Order, r: dict[str, Any]) -> bool:
        xid = r.get("orderId", r.get("id"))
        if o.exchange_id is not None and xid is not None:
            return str(xid) == o.exchange_id
        return str(r.get("clientOrderId") or "") == o.client_id

    # ---- the upsert --------------------------------------------------------------------------------------------------

    def _apply(self, tr: _Tracked, r: dict[str, Any], *, finished: bool) -> None:
        """Bring our order in line with an exchange record (REST or WS shape)."""
        o = tr.order
        ev = self._ev()
        now = self.clock_ms()
        xid = r.get("orderId", r.get("id"))
        if o.status == OrderStatus.NEW and xid is not None:
            ev.order_accepted(o, now, str(xid))
        if o.exchange_id is not None:
            self._by_xid[o.exchange_id] = tr
        if not o.is_open:
            self._forget(tr)
            return
        stock = _dec(r.get("dealStock", r.get("deal_stock")))
        money = _dec(r.get("dealMoney", r.get("deal_money")))
        fee = _dec(r.get("dealFee", r.get("deal_fee")))
        self._raise_to(tr, stock, money, fee, finished)
        if finished and o.is_open:
            ev.order_cancelled(o, now, "cancelled" if not stock else "cancelled after a partial fill")
        if o.status.is_terminal:  # (is_open was narrowed above; the calls may have closed it)
            self._forget(tr)

    def _raise_to(self, tr: _Tracked, stock: Decimal, money: Decimal, fee: Decimal, finished: bool) -> None:
        """Emit the fill between what we had seen and `stock` (cumulative), if any."""
        o = tr.order
        if stock <= tr.seen_stock:
            return  # nothing new; a finished order that is not complete is cancelled by the caller
        d_stock, d_money = stock - tr.seen_stock, max(ZERO, money - tr.seen_money)
        d_fee = max(ZERO, fee - tr.seen_fee)
        tr.seen_stock, tr.seen_money, tr.seen_fee = stock, max(money, tr.seen_money), max(fee, tr.seen_fee)
        self._emit(tr, d_stock, d_money, d_fee, complete=self._complete(o, stock, finished))

    @staticmethod
    def _complete(o: Order, stock: Decimal, finished: bool) -> bool:
        if o.quote_amount or (o.type == "stop_market" and o.side == "buy"):
            return finished  # a buy sized in quote is done when the exchange says so
        if o.type in ("market", "stop_market"):
            return finished and stock > 0
        return stock >= o.amount

    def _emit(self, tr: _Tracked, d_stock: Decimal, d_money: Decimal, d_fee: Decimal, *, complete: bool) -> None:
        o = tr.order
        r = self.rules[o.market]
        price = (d_money / d_stock).quantize(r.price_step) if d_stock else (o.price or ZERO)
        maker = tr.maker if tr.maker is not None else (o.type == "limit" and o.status != OrderStatus.NEW)
        fill = Fill(o.client_id, o.market, o.side, price, d_stock, d_money, d_fee,
                    r.stock if o.side == "buy" else r.money, maker, self.clock_ms())
        if o.status == OrderStatus.NEW and o.exchange_id is not None:
            self._ev().order_accepted(o, fill.time_ms, o.exchange_id)
        self._ev().order_filled(o, fill, complete)

    def _reject(self, tr: _Tracked, reason: str) -> None:
        tr.in_flight = False
        o = tr.order
        if o.is_open and o.status == OrderStatus.NEW:
            self._ev().order_rejected(o, self.clock_ms(), reason)
        if not o.is_open:
            self._forget(tr)
        self.notify()

    def _forget(self, tr: _Tracked) -> None:
        """A closed order leaves memory once its in-flight requests are answered; its ids are remembered for a
        while so that late stream events for it are ignored rather than adopted."""
        if tr.in_flight or (tr.cancel_sent and tr.order.is_open):
            return
        o = tr.order
        for key in (o.client_id, o.exchange_id):
            if key is not None:
                self._closed[key] = None
                self._closed.move_to_end(key)
        while len(self._closed) > _CLOSED_REMEMBERED:
            self._closed.popitem(last=False)
        if self._by_cid.get(o.client_id) is tr:
            del self._by_cid[o.client_id]
        if o.exchange_id is not None and self._by_xid.get(o.exchange_id) is tr:
            del self._by_xid[o.exchange_id]

    def _recently_closed(self, xid: Any, cid: Any) -> bool:
        return (xid is not None and str(xid) in self._closed) or (bool(cid) and str(cid) in self._closed)

    # ---- private stream ----------------------------------------------------------------------------------------------

    async def _ws_token(self) -> str:
        data = await self.rest.call("websocket_token", {})
        return str(data["websocket_token"])

    def _on_ws(self, ev: WsEvent) -> None:
        if isinstance(ev, OrderUpdate):
            self._on_order_event(ev.event, ev.order)
        elif isinstance(ev, DealUpdate):
            self._on_deal(ev.deal)
        elif isinstance(ev, BalanceUpdate):
            for a, v in ev.balances.items():
                self._balances[a] = Balance(_dec(v.get("available")), _dec(v.get("freeze")))
        elif isinstance(ev, Connected) and ev.reconnect:
            self._spawn(self.reconcile())
            return
        else:
            return
        self.notify()

    def _lookup(self, xid: Any, cid: Any) -> _Tracked | None:
        tr = self._by_xid.get(str(xid)) if xid is not None else None
        if tr is None and cid:
            tr = self._by_cid.get(str(cid))
        return tr

    def _on_order_event(self, event: int, data: dict[str, Any]) -> None:
        tr = self._lookup(data.get("id"), data.get("client_order_id"))
        if tr is None and self._recently_closed(data.get("id"), data.get("client_order_id")):
            return  # a late event of an order that is already settled
        if tr is None or tr.order.status == OrderStatus.REJECTED:
            if event != 3:
                self._adopt(data)
            return
        finished = event == 3
        if tr.order.type in _SETTLED_WHOLE and not finished:
            return
        self._apply(tr, data, finished=finished)

    def _on_deal(self, d: list[Any]) -> None:
        # [id, time, market, order_id, price, amount, fee, client_order_id, side, role, fee_asset]
        tr = self._lookup(d[3], d[7])
        if tr is None or int(d[0]) in tr.deals:
            return
        tr.deals.add(int(d[0]))
        tr.maker = int(d[9]) == 1
        if tr.order.type in _SETTLED_WHOLE:
            return  # settled whole by its REST answer or its finish event, never by halves
        amount, price = _dec(d[5]), _dec(d[4])
        tr.deal_stock += amount
        tr.deal_money += amount * price
        tr.deal_fee += _dec(d[6])
        if tr.order.status == OrderStatus.NEW and tr.order.exchange_id is None:
            self._ev().order_accepted(tr.order, self.clock_ms(), str(d[3]))
            self._by_xid[str(d[3])] = tr
        self._raise_to(tr, tr.deal_stock, tr.deal_money, tr.deal_fee, finished=False)

    # ---- reconciliation ----------------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make our open orders match the exchange's: adopt unknown ones, settle the ones that closed meanwhile."""
        async with self._reconcile_lock:
            self.reconciles += 1
            seen: set[str] = set()
            for market in sorted(self.rules):
                offset = 0
                for _ in range(_MAX_PAGES):
                    rows = await self.rest.call("open_orders", {"market": market, "limit": 100, "offset": offset})
                    rows = rows or []
                    for r in rows:
                        xid = str(r.get("orderId"))
                        seen.add(xid)
                        tr = self._lookup(xid, r.get("clientOrderId"))
                        if tr is None and xid in self._foreign:
                            continue
                        if tr is None or tr.order.status == OrderStatus.REJECTED:
                            self._adopt(r)  # unknown, or given up as lost: the exchange holds it, so track it
                        else:
                            self._apply(tr, r, finished=False)
                    if len(rows) < 100:
                        break
                    offset += 100
            for tr in list(self._by_cid.values()):
                o = tr.order
                if not o.is_open or tr.in_flight or (o.exchange_id is not None and o.exchange_id in seen):
                    continue
                try:
                    found = await self._find(tr)
                except (WhiteBitError, InsufficientScope) as exc:
                    self.errors.append(f"reconcile {o.client_id}: {exc}")
                    continue
                if found is not None:
                    self._apply(tr, found[0], finished=found[1])
                elif o.status == OrderStatus.NEW:
                    self._reject(tr, "network: the order is unknown to the exchange")
            with contextlib.suppress(WhiteBitError):
                await self.refresh_balances()
        self.notify()

    def _adopt(self, r: dict[str, Any]) -> None:
        """An order we did not place (or forgot): track it so nothing the exchange holds is unknown."""
        market = str(r.get("market"))
        if market not in self.rules or self.adopt is None:
            return
        xid = str(r.get("orderId", r.get("id")))
        cid = str(r.get("clientOrderId", r.get("client_order_id")) or "") or f"x-{xid}"
        known = self._by_xid.get(xid) or self._by_cid.get(cid)
        if known is not None and known.order.status != OrderStatus.REJECTED:
            return
        if xid in self._foreign:
            return
        side_raw = r.get("side")
        side: Side = "sell" if side_raw in ("sell", 1) else "buy"
        raw_type = str(r.get("type"))
        otype: OrderType = ("market" if raw_type in ("market", "2", "stock market", "202") else
                            "stop_limit" if raw_type in ("stop limit", "3") else
                            "stop_market" if raw_type in ("stop market", "4") else "limit")
        ts = r.get("timestamp", r.get("ctime"))
        t_ms = int(float(ts) * 1000) if ts is not None else self.clock_ms()
        activation = r.get("activation_price")
        order = Order(client_id=cid, market=market, side=side, type=otype, amount=_dec(r.get("amount")),
                      price=_dec(r.get("price")) if otype in ("limit", "stop_limit") else None,
                      stop_price=_dec(activation) if otype in ("stop_limit", "stop_market") and activation else None,
                      created_ms=t_ms, updated_ms=t_ms)
        if not self.adopt(order):
            self._foreign.add(xid)  # someone else's (another bot's): never ours, never reported
            return
        tr = _Tracked(order, in_flight=False)
        self._by_cid[cid] = tr
        self._by_xid[xid] = tr
        self.adopted.append(order)
        log.info("adopted open order %s (%s) found on the exchange", cid, xid)
        self._apply(tr, r, finished=False)

    def _ev(self) -> VenueEvents:
        if self._events is None:
            raise RuntimeError("WhiteBitVenue is not bound to an execution engine")
        return self._events
