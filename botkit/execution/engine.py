"""The one path every order takes: grant check, exchange rules, risk check, state machine, journal, venue.

Backtest, paper and live differ only in the venue and the clock they hand to `ExecutionEngine`. Events that happen
while a strategy callback runs are queued and delivered after it returns (`drain`), so callbacks never nest.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, cast

from botkit.execution.oco import OcoEmulator
from botkit.execution.risk import RiskManager, RiskRejection
from botkit.execution.venue import Venue, VenueEvents
from botkit.market.grants import Grant, InsufficientScope
from botkit.market.orders import (
    NEW,
    OPEN,
    STOP_TYPES,
    ClientIdFactory,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    validate_client_id,
)
from botkit.market.rules import MarketRules, OrderRulesError, float_to_decimal, to_decimal
from botkit.market.types import Side
from botkit.whitebit.endpoints import DEFAULT_REGISTRY

log = logging.getLogger("botkit.execution")
ZERO = Decimal(0)

# Each strategy-facing operation and the WhiteBIT endpoints that carry it out: its scopes come from the endpoint
# registry (botkit/whitebit/endpoints.py), the one scope table, and are checked in every mode, reads included.
OPERATION_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "place_order": ("order_new", "order_market", "order_stop_market", "order_stop_limit"),
    "cancel_order": ("order_cancel",),
    "cancel_all": ("order_cancel",),
    "open_orders": ("open_orders",),
    "balances": ("trade_balance",),
    "deals": ("executed_history",),
    "order_history": ("order_history",),
}
OPERATION_SCOPES: dict[str, frozenset[str]] = {
    op: frozenset().union(*(DEFAULT_REGISTRY.get(e).scopes for e in eps)) for op, eps in OPERATION_ENDPOINTS.items()
}

REJECTIONS_SHOWN = 5  # rejections logged at WARNING before the rest go to INFO
REJECTIONS_KEPT = 1000  # rejection records a live bot keeps in memory (counts are always complete)


class UndeclaredScope(InsufficientScope):
    """The grant has the scope but the strategy did not declare it: declarations are the contract."""

    def __init__(self, operation: str, required: frozenset[str], declared: frozenset[str]) -> None:
        super().__init__(operation, required, declared)
        self.args = (
            f"{operation} needs scope(s) {sorted(self.missing)} that the strategy does not declare; "
            f"add them to the strategy's `scopes` (declared: {sorted(declared)})",
        )


class EventSink(Protocol):
    """Receives order events after the current callback returns (the strategy runner)."""

    def on_order_update(self, order: Order) -> None: ...

    def on_fill(self, fill: Fill) -> None: ...


class Journal(Protocol):
    """Durable record of order intents and outcomes (none for backtests, in memory for paper, SQLite for live)."""

    def record(self, kind: str, order: Order, detail: str = "") -> None: ...

    def flush(self) -> None:
        """Make recorded intents durable (before an order leaves the process)."""


class MemoryJournal:
    """Records kept in memory: the journal of a paper run."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, str, str]] = []

    def record(self, kind: str, order: Order, detail: str = "") -> None:
        self.entries.append((order.updated_ms, kind, order.client_id, detail))

    def flush(self) -> None:
        pass


class NullJournal:
    """No records: a backtest's journal. Nothing reads them (its orders and fills are the report), and formatting a
    fill's detail cost more than the rest of its bookkeeping."""

    def record(self, kind: str, order: Order, detail: str = "") -> None:
        pass

    def flush(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused order, for logs and the report."""

    time_ms: int
    client_id: str
    market: str
    rule: str
    message: str


class ExecutionEngine:
    """Checks and routes orders; keeps the order state machine; reports events to the strategy."""

    def __init__(
        self,
        *,
        grant: Grant,
        declared_scopes: Iterable[str],
        rules: dict[str, MarketRules],
        risk: RiskManager,
        venue: Venue,
        clock: Callable[[], int],
        last_price: Callable[[str], float | None],
        equity: Callable[[], float] | None = None,
        ids: ClientIdFactory | None = None,
        journal: Journal | None = None,
        keep_closed: bool = True,
    ) -> None:
        self.grant = grant
        self.declared = frozenset(declared_scopes)
        self.rules = rules
        self.risk = risk
        self.venue = venue
        self.clock = clock
        self.last_price = last_price
        self.equity = equity
        self.ids = ids or ClientIdFactory()
        # None: a backtest, which keeps no journal (the order path then skips even building what it would record).
        self.journal: Journal = journal if journal is not None else NullJournal()
        self._journaled = journal is not None
        # A backtest keeps every order and fill for its report; a live bot keeps only open orders in memory (closed
        # ones are in the journal and the run's trades file), so memory stays flat however long it runs.
        self.keep_closed = keep_closed
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.fill_count = 0
        self.rejections: list[Rejection] = []  # all of them when keep_closed, else the first REJECTIONS_KEPT
        self.rejection_counts: dict[str, int] = {}
        self.status_counts: dict[str, int] = {}  # closed orders by final status
        self.sink: EventSink | None = None
        # What the sink hears (the event loop sets these from its strategy and observers): a change nobody hears is
        # not queued, so no snapshot is built for it (a backtest's strategy often handles neither: two per order).
        self.tell_updates = True
        self.tell_fills = True
        self._at_venue: dict[str, Order | None] = {}
        self._cleared: dict[str, tuple[Grant, frozenset[str]]] = {}  # operation -> what its scope check passed with
        self._queue: deque[tuple[Order | None, Fill | None]] = deque()
        # One-cancels-other on a venue without it: stops of a group are held here (botkit/execution/oco.py).
        self.oco = OcoEmulator(self)
        # The venue reports back through a weak link, as the OCO helper and the sink (the loop) hold theirs: no run
        # builds a reference cycle, so a finished backtest's objects are freed at once, not by a collector pass.
        venue.bind(cast(VenueEvents, weakref.proxy(self)))

    # ---- grant --------------------------------------------------------------------------------------------------

    def check_start(self) -> None:
        """Refuse to start when the strategy declares scopes the grant lacks."""
        self.grant.require("strategy start", self.declared)

    def require(self, operation: str) -> None:
        # A passed check holds while the grant and the declarations are the ones it passed with (both frozen).
        cleared = self._cleared.get(operation)
        if cleared is not None and cleared[0] is self.grant and cleared[1] is self.declared:
            return
        need = OPERATION_SCOPES[operation]
        if not need <= self.declared:
            raise UndeclaredScope(operation, need, self.declared)
        self.grant.require(operation, need)
        self._cleared[operation] = (self.grant, self.declared)

    # ---- strategy-facing operations ----------------------------------------------------------------------------

    def place(
        self,
        market: str,
        side: Side,
        amount: Decimal | str | float | int,
        price: Decimal | str | float | int | None = None,
        *,
        stop_price: Decimal | str | float | int | None = None,
        post_only: bool = False,
        ioc: bool = False,
        client_id: str | None = None,
        oco_group: str | None = None,
    ) -> Order:
        """Place an order; returns it (status NEW/OPEN, or REJECTED with `reject_reason`)."""
        self.require("place_order")
        rules = self.rules.get(market)
        if rules is None:
            raise ValueError(f"unknown market {market!r}; configured: {sorted(self.rules)}")
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
        if post_only and ioc:
            raise ValueError("an order cannot be both post_only and ioc (WhiteBIT code 37)")
        otype: OrderType
        if stop_price is not None:
            otype = "stop_limit" if price is not None else "stop_market"
        else:
            otype = "limit" if price is not None else "market"
        cid = validate_client_id(client_id) if client_id is not None else self.ids()
        now = self.clock()
        # (a Decimal, as strategies usually pass, without the call)
        amt = amount if type(amount) is Decimal and amount.is_finite() else to_decimal(amount, "amount")
        px = rules.round_price(to_decimal(price, "price"), side) if price is not None else None
        stop = to_decimal(stop_price, "stop_price").quantize(rules.price_step) if stop_price is not None else None
        quote_amount = otype == "market" and side == "buy"  # (Order.quote_amount, known before the order exists)
        amt = rules.truncate_quote(amt) if quote_amount else rules.truncate_amount(amt)
        # (positionally: keywords cost a dict per order) client_id, market, side, type, amount, price, stop_price,
        # post_only, ioc, oco_group, status, filled, filled_quote, fee, exchange_id, created_ms, updated_ms
        order = Order(cid, market, side, otype, amt, px, stop, post_only, ioc, oco_group, NEW, ZERO, ZERO,
                      ZERO, None, now, now)
        if cid in self.open:
            return self._reject(order, "client_id", f"clientOrderId {cid} is already used by an open order")
        emulate = oco_group is not None and not self.venue.supports_oco
        if otype == "stop_limit" and not emulate and not getattr(self.venue, "supports_stop_limit", False):
            return self._reject(order, "venue", f"the {self.venue.name} venue does not fill stop-limit orders (the "
                                "WhiteBIT venue does); use a stop-market (stop= without price)")
        self.orders[cid] = order
        try:
            if otype in ("limit", "stop_limit"):
                rules.check_limit(amt, px)  # type: ignore[arg-type]
            elif otype == "stop_market":
                rules.check_limit(amt, stop)  # type: ignore[arg-type]  # base amount; its total at the trigger price
            else:
                rules.check_market(side, amt)
        except OrderRulesError as exc:
            return self._reject(order, f"rules:{exc.violations[0].field}", str(exc))
        last_f = self.last_price(market)
        if type(last_f) is float:  # (the usual case, without to_decimal's dispatch)
            last: Decimal | None = float_to_decimal(last_f)
        else:
            last = to_decimal(last_f) if last_f is not None else None
        ref = px if px is not None else (stop if stop is not None else last)
        if quote_amount:
            notional = amt
            base = amt / last if last else Decimal(0)
        else:
            notional = amt * ref if ref is not None else Decimal(0)
            base = amt
        if post_only and px is not None and last is not None and (px >= last if side == "buy" else px <= last):
            return self._reject(order, "post_only", f"post-only {side} at {px} would cross the last price {last}")
        equity = None
        if self.risk.needs_equity and self.equity is not None:
            equity = self.equity()
            self.risk.new_day_if_needed(now, equity)
        verdict = self.risk.check(
            market=market,
            side=side,
            amount_base=base,
            notional=notional,
            price=px,
            last_price=last,
            position=self.venue.balance(rules.stock).total,
            now_ms=now,
            equity=equity,
        )  # (by name: two Decimal | None arguments side by side must never swap unseen)
        if verdict is not None:
            return self._reject_risk(order, verdict)
        self.open[cid] = order
        self.risk.state.open_orders = len(self.open)
        if emulate and otype in STOP_TYPES:
            self.oco.hold(order, self._market_ms())
            return order
        if emulate:
            self.oco.member(order)
        if self._journaled:
            self.journal.record("submit", order)
        self.venue.submit(order, now)
        return order

    def cancel(self, order: Order | str) -> bool:
        """Cancel an open order (by object or client id). False if it is not open."""
        self.require("cancel_order")
        cid = order if isinstance(order, str) else order.client_id
        target = self.open.get(cid)
        if target is None:
            return False
        self._cancel(target)
        return True

    def cancel_all(self, market: str | None = None) -> int:
        self.require("cancel_all")
        targets = [o for o in self.open.values() if market is None or o.market == market]
        for o in targets:
            self._cancel(o)
        return len(targets)

    def adopt(self, order: Order) -> None:
        """An open order found on the exchange (placed before start or by another process) joins the books as if
        placed here, so the strategy can see and cancel it and its fills move the state machine."""
        self.orders[order.client_id] = order
        self.open[order.client_id] = order
        self.risk.state.open_orders = len(self.open)
        self.journal.record("adopted", order)
        self.tell(order)

    def restore(self, orders: Iterable[Order]) -> int:
        """Open orders journaled by an earlier run of this bot rejoin the books as ours (not adopted); the venue's
        reconciliation then settles them against the exchange. Returns how many were restored."""
        n = 0
        for order in orders:
            if not order.is_open:
                continue
            self.orders[order.client_id] = order
            self.open[order.client_id] = order
            self.journal.record("restored", order)
            self._at_venue[order.client_id] = self.oco.restore(order) if not self.venue.supports_oco else order
            n += 1
        self.risk.state.open_orders = len(self.open)
        return n

    def at_venue(self, order: Order) -> Order | None:
        """What the venue must settle for a restored order: itself, the market order a triggered OCO stop sent, or
        None for a stop this layer holds (it never reached the exchange)."""
        return self._at_venue.pop(order.client_id, order)

    def cancel_own_orders(self, reason: str) -> int:
        """Cancel every open order of this bot, as far as the credentials allow (the strategy need not have declared
        `orders.delete`): used when the bot halts. Returns the number of cancels requested."""
        if not self.grant.covers(OPERATION_SCOPES["cancel_all"]):
            if self.open:
                log.warning("cannot cancel %d open order(s) while halting: the grant lacks %s", len(self.open),
                            sorted(OPERATION_SCOPES["cancel_all"]))
            return 0
        targets = list(self.open.values())
        for o in targets:
            self._cancel(o, reason)
        return len(targets)

    def open_orders(self, market: str | None = None) -> list[Order]:
        return [o for o in self.open.values() if market is None or o.market == market]

    # ---- venue events (VenueEvents) ---------------------------------------------------------------------------

    def order_accepted(self, order: Order, time_ms: int, exchange_id: str) -> None:
        parent = self.oco.parent_of(order) if self.oco.children else None  # (no OCO stop sent: skip the call)
        if parent is not None:  # the market order of a triggered OCO stop: the stop stays open, now on the exchange
            order.exchange_id = parent.exchange_id = exchange_id
            order.transition(OrderStatus.OPEN, time_ms)
            self.journal.record("accepted", parent, exchange_id)
            return
        order.exchange_id = exchange_id
        order.transition(OPEN, time_ms)  # (OrderStatus.OPEN, read once)
        if self._journaled:
            self.journal.record("accepted", order, exchange_id)
        if self.tell_updates:  # (what `tell` checks first: a backtest's strategy often hears no updates)
            self.tell(order)

    def order_filled(self, order: Order, fill: Fill, complete: bool) -> None:
        parent = self.oco.parent_of(order) if self.oco.children else None
        if parent is not None:  # its fills are the stop's
            order.apply_fill(fill, complete)
            if complete:
                self.oco.child_closed(order)
            order = parent
        order.apply_fill(fill, complete)
        self.fill_count += 1
        if self.keep_closed:
            self.fills.append(fill)
        if self._journaled:
            self.journal.record("fill", order, f"{fill.amount!s}@{fill.price!s}")  # (!s: the same text, 3x faster)
        if self.tell_updates or self.tell_fills:
            self.tell(order, fill)
        if complete:
            self._close(order)
        if self.oco.members and self.oco.is_member(order):
            self.oco.on_member(order)

    def order_cancelled(self, order: Order, time_ms: int, reason: str) -> None:
        parent = self.oco.parent_of(order)
        if parent is not None:
            order.transition(OrderStatus.CANCELLED, time_ms)
            self.oco.child_closed(order)
            order = parent
        order.transition(OrderStatus.CANCELLED, time_ms)
        order.reject_reason = None if reason == "cancelled" else reason
        self.journal.record("cancelled", order, reason)
        self.tell(order)
        self._close(order)
        if self.oco.members and self.oco.is_member(order):
            self.oco.on_member(order)

    def order_rejected(self, order: Order, time_ms: int, reason: str) -> None:
        parent = self.oco.parent_of(order)
        if parent is not None:  # an open stop cannot become "rejected": it is cancelled, saying why
            order.reject(reason, time_ms)
            self.oco.child_closed(order)
            log.warning("stop %s triggered but its market order was refused: %s", parent.client_id, reason)
            self.order_cancelled(parent, time_ms, f"stop triggered; its market order was refused: {reason}")
            return
        self._reject(order, reason.split(":", 1)[0], reason)
        if self.oco.members and self.oco.is_member(order):
            self.oco.on_member(order)

    # ---- delivery -----------------------------------------------------------------------------------------------

    def drain(self) -> None:
        """Deliver queued events to the strategy, including those its handlers cause."""
        q, sink = self._queue, self.sink
        while q:
            order, fill = q.popleft()
            if sink is None:
                continue
            if fill is not None:
                sink.on_fill(fill)
            if order is not None:
                sink.on_order_update(order)

    def tell(self, order: Order, fill: Fill | None = None) -> None:
        """Queue a change for the sink: the order as it is now (a snapshot) and the fill that caused it, each only
        if the sink hears it."""
        snap = order.snapshot() if self.tell_updates else None
        if not self.tell_fills:
            fill = None
        if snap is not None or fill is not None:
            self._queue.append((snap, fill))

    @property
    def has_events(self) -> bool:
        return bool(self._queue)

    # ---- internals ----------------------------------------------------------------------------------------------

    def _cancel(self, order: Order, reason: str = "") -> None:
        if self.oco.holds(order):
            self.oco.cancel(order, "cancelled")
            return
        self.journal.record("cancel", order, reason)
        self.venue.cancel(order, self.clock())

    def _market_ms(self) -> int:
        """Market time: a backtest's clock is market time; a live clock tracks it in `now` (set by the loop)."""
        now = getattr(self.clock, "now", None)
        return int(now) if isinstance(now, int | float) and now else self.clock()

    def _close(self, order: Order) -> None:
        self.open.pop(order.client_id, None)
        self.risk.state.open_orders = len(self.open)
        status = order.status._value_  # (the plain attribute: `.value` is an enum property, slow on this path)
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        if not self.keep_closed:
            self.orders.pop(order.client_id, None)

    def _reject(self, order: Order, rule: str, message: str) -> Order:
        now = self.clock()
        order.reject(message, now)
        self.orders.setdefault(order.client_id, order)
        self.rejection_counts[rule] = self.rejection_counts.get(rule, 0) + 1
        total = sum(self.rejection_counts.values())
        if self.keep_closed or len(self.rejections) < REJECTIONS_KEPT:
            self.rejections.append(Rejection(now, order.client_id, order.market, rule, message))
        self.journal.record("rejected", order, message)
        # The first few are shown at the default log level (a strategy that is refused should hear it); the rest
        # are counted in the summary, and -v shows each.
        level = logging.WARNING if total <= REJECTIONS_SHOWN else logging.INFO
        log.log(level, "order %s rejected (%s): %s", order.client_id, rule, message)
        if total == REJECTIONS_SHOWN:
            log.warning("further rejections are counted in the summary (-v shows each)")
        self.tell(order)
        self._close(order)
        return order

    def _reject_risk(self, order: Order, verdict: RiskRejection) -> Order:
        return self._reject(order, f"risk:{verdict.rule}", str(verdict))
