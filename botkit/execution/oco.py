"""One-cancels-other emulated by the execution layer, for venues that have none (WhiteBIT spot).

WhiteBIT has no spot OCO endpoint, and on spot a take-profit limit sell and a stop-market sell of the same position
each lock the full amount, so the second is refused for balance. So, the way freqtrade's non-exchange stoploss works:

- The group's other orders (the take-profit limit) go to the exchange as usual.
- A stop (stop-market or stop-limit) of the group is *held* here instead: journaled (a restart restores it), and
  reported as an open order of its type with ``held = True`` ("held locally, not on the exchange").
- It is checked in market time against the prices the bot sees: each closed candle of its market (its low for a sell
  stop, its high for a buy stop) and each trade the bot receives (when the strategy subscribes to trades), of candles
  or trades that start at or after the market time the stop was placed at. So when one candle reaches both the
  take-profit and the stop, the take-profit resting on the exchange fills first and the stop is cancelled.
- On trigger the group's other open orders are cancelled; once every cancel is confirmed the stop goes out as a market
  order (a stop-limit: a limit order at its price) under the stop's own client id (its fills are the stop's fills).
  If one of them turned out filled, the stop is cancelled as OCO-cancelled; if one filled partly, the stop's order
  sells only what is left.
- When another order of the group fills, the held stop is cancelled (reason ``OCO_REASON``); a partial fill shrinks
  the stop's amount to what is left.

The strategy API does not change: a strategy places an OCO exactly as on a venue with native OCO, and sees snapshots
(open, partially_filled, filled or cancelled) as usual. A backtest can run the same code path
(``[backtest] oco = "emulated"``, the simulated venue then reports no native OCO).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, cast

from botkit.market.orders import OCO_REASON, STOP_TYPES, Order, OrderStatus

if TYPE_CHECKING:
    from botkit.execution.engine import ExecutionEngine

log = logging.getLogger("botkit.execution.oco")

ZERO = Decimal(0)

OcoMode = Literal["native", "emulated"]  # how a simulated venue treats OCO groups ([backtest] oco)


@dataclass(slots=True)
class MarketWatch:
    """The held stops of one market; `active` tells the event loop whether a price needs a look."""

    stops: list[_Held] = field(default_factory=list)
    active: bool = False


@dataclass(slots=True, eq=False)
class _Held:
    order: Order  # the strategy's stop, as the engine and the strategy know it
    since_ms: int  # market time it was placed at: only prices from then on can trigger it
    original: Decimal  # its amount when placed
    triggered: bool = False
    waiting: set[str] = field(default_factory=set)  # group members whose cancel is awaited before sending
    child: Order | None = None  # the market order sent for it once triggered


class OcoEmulator:
    """The engine's helper for OCO groups on a venue without native OCO (see the module docstring)."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = cast("ExecutionEngine", weakref.proxy(engine))  # its owner: a strong link back is a cycle
        self.watches: dict[str, MarketWatch] = {}
        self.held: dict[str, _Held] = {}  # client id -> held (or triggered, not yet finished) stop
        self.members: dict[str, list[Order]] = {}  # group -> its orders on the exchange
        self.children: dict[str, Order] = {}  # client id -> market order sent for a triggered stop

    # ---- queries ------------------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return not self.engine.venue.supports_oco

    def watch(self, market: str) -> MarketWatch:
        w = self.watches.get(market)
        if w is None:
            w = self.watches[market] = MarketWatch()
        return w

    def holds(self, order: Order) -> bool:
        """True when `order` is a stop this layer holds (not yet sent to the exchange)."""
        h = self.held.get(order.client_id)
        return h is not None and h.order is order and h.child is None

    def parent_of(self, order: Order) -> Order | None:
        """The strategy's stop when `order` is the market order sent for it, else None."""
        if not self.children:
            return None
        child = self.children.get(order.client_id)
        if child is not order:
            return None
        h = self.held.get(order.client_id)
        return h.order if h is not None else None

    def is_member(self, order: Order) -> bool:
        return order.oco_group is not None and order in self.members.get(order.oco_group, ())

    # ---- placing and restoring ------------------------------------------------------------------------------------

    def hold(self, order: Order, market_ms: int) -> None:
        """A new stop of an OCO group: open, journaled, checked against prices from `market_ms` on."""
        eng = self.engine
        order.held = True
        order.transition(OrderStatus.OPEN, order.created_ms)
        eng.journal.record("held", order, "stop held by the execution layer (the venue has no OCO)")
        eng.tell(order)
        self._keep(order, market_ms)

    def member(self, order: Order) -> None:
        """A non-stop order of an OCO group, sent to the exchange: its fills cancel or shrink the group's stops."""
        assert order.oco_group is not None
        self.members.setdefault(order.oco_group, []).append(order)

    def restore(self, order: Order) -> Order | None:
        """An open order of an earlier run: a held stop is held again (returns None: nothing at the venue); a stop
        whose market order was sent returns that market order, for the venue to settle; other orders return
        themselves (and join their group)."""
        if order.oco_group is None:
            return order
        if order.type not in STOP_TYPES:
            self.member(order)
            return order
        if order.held:
            self._keep(order, order.updated_ms)
            return None
        h = _Held(order, order.updated_ms, order.amount, triggered=True)
        self.held[order.client_id] = h
        h.child = self._child(order, order.amount)
        h.child.exchange_id = order.exchange_id
        self.children[order.client_id] = h.child
        return h.child

    def _keep(self, order: Order, market_ms: int) -> None:
        h = _Held(order, market_ms, order.amount)
        self.held[order.client_id] = h
        w = self.watch(order.market)
        w.stops.append(h)
        w.active = True

    # ---- prices ---------------------------------------------------------------------------------------------------

    def on_prices(self, market: str, start_ms: int, low: float, high: float) -> None:
        """A closed candle (or a trade: low = high) of `market` starting at `start_ms`: trigger the stops it reaches."""
        w = self.watches.get(market)
        if w is None:
            return
        for h in list(w.stops):
            o = h.order
            if h.triggered or start_ms < h.since_ms or not o.is_open:
                continue
            stop = float(o.stop_price)  # type: ignore[arg-type]
            if (o.side == "sell" and low <= stop) or (o.side == "buy" and high >= stop):
                self._trigger(h, low if o.side == "sell" else high)

    def _trigger(self, h: _Held, price: float) -> None:
        eng = self.engine
        o = h.order
        h.triggered = True
        o.held = False
        self._unwatch(h)
        eng.journal.record("triggered", o, f"price {price} reached the stop {o.stop_price}")
        now = eng.clock()
        group = o.oco_group
        others = [m for m in self.members.get(group or "", []) if m.is_open]
        for x in [x for x in self.held.values() if x is not h and x.order.oco_group == group and not x.triggered]:
            self.cancel(x.order, OCO_REASON)
        h.waiting = {m.client_id for m in others}
        for m in others:
            eng.journal.record("cancel", m, f"oco: stop {o.client_id} triggered")
            eng.venue.cancel(m, now)  # a simulated venue answers at once (and may send the stop from inside)
        if not h.waiting:
            self._send(h)

    def _send(self, h: _Held) -> None:
        """The group's other orders are closed: the stop goes out as a market order for what is left."""
        if h.child is not None or not h.order.is_open:
            return
        eng = self.engine
        o = h.order
        left = self._left(h)
        if left <= 0:
            self.cancel(o, OCO_REASON)
            return
        if left != o.amount:
            o.amount = left
        child = self._child(o, left)
        h.child = child
        self.children[o.client_id] = child
        eng.journal.record("submit", o, f"stop triggered: {child.type} {o.side} of {left}")
        eng.venue.submit(child, child.created_ms)

    def _child(self, o: Order, amount: Decimal) -> Order:
        rules = self.engine.rules[o.market]
        now = self.engine.clock()
        if o.type == "stop_limit":  # a triggered stop-limit is a limit order at its price
            return Order(client_id=o.client_id, market=o.market, side=o.side, type="limit", amount=amount,
                         price=o.price, created_ms=now, updated_ms=now)
        # A market buy is sized in quote on WhiteBIT: the stop's base amount valued at its trigger price.
        amt = rules.truncate_quote(amount * o.stop_price) if o.side == "buy" else amount  # type: ignore[operator]
        return Order(client_id=o.client_id, market=o.market, side=o.side, type="market", amount=amt,
                     created_ms=now, updated_ms=now)

    def _left(self, h: _Held) -> Decimal:
        rules = self.engine.rules[h.order.market]
        filled = sum((m.filled for m in self.members.get(h.order.oco_group or "", []) if m.side == h.order.side),
                     ZERO)
        return rules.truncate_amount(max(ZERO, h.original - filled))

    # ---- events ---------------------------------------------------------------------------------------------------

    def on_member(self, order: Order) -> None:
        """An order of an emulated group moved (a fill, a cancel, a rejection): cancel, shrink or send its stops."""
        group = order.oco_group
        for h in [h for h in self.held.values() if h.order.oco_group == group and h.order.is_open]:
            if h.child is not None:
                continue
            if order.status == OrderStatus.FILLED and order.side == h.order.side:
                self.cancel(h.order, OCO_REASON)
            elif h.triggered:
                if not order.is_open:
                    h.waiting.discard(order.client_id)
                    if not h.waiting:
                        self._send(h)
            elif order.filled > 0 and order.side == h.order.side:
                left = self._left(h)
                if left <= 0:
                    self.cancel(h.order, OCO_REASON)
                elif left != h.order.amount:
                    h.order.amount = left  # the stop now covers what the take-profit has not sold
                    self.engine.journal.record("shrunk", h.order, f"{order.client_id} filled {order.filled}")
                    self.engine.tell(h.order)
        if not order.is_open:
            members = self.members.get(group or "")
            if members is not None and order in members and not any(h.order.oco_group == group for h in
                                                                     self.held.values()):
                members.remove(order)
                if not members:
                    del self.members[group or ""]

    def cancel(self, order: Order, reason: str) -> None:
        """Cancel a held stop here (nothing to ask the exchange)."""
        h = self.held.get(order.client_id)
        if h is None or not order.is_open:
            return
        if h.child is not None:  # already a market order on the exchange
            self.engine.venue.cancel(h.child, self.engine.clock())
            return
        self._unwatch(h)
        del self.held[order.client_id]
        order.held = False
        self.engine.order_cancelled(order, self.engine.clock(), reason)
        self._forget_group(order.oco_group)

    def child_closed(self, order: Order) -> None:
        """The market order of a triggered stop is finished: the stop leaves this layer."""
        self.children.pop(order.client_id, None)
        h = self.held.pop(order.client_id, None)
        if h is not None:
            self._forget_group(h.order.oco_group)

    def _unwatch(self, h: _Held) -> None:
        w = self.watches.get(h.order.market)
        if w is not None and h in w.stops:
            w.stops.remove(h)
            w.active = bool(w.stops)

    def _forget_group(self, group: str | None) -> None:
        if group is None or any(h.order.oco_group == group for h in self.held.values()):
            return
        members = self.members.get(group)
        if members is not None:
            members[:] = [m for m in members if m.is_open]
            if not members:
                del self.members[group]
