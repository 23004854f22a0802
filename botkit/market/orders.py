"""Orders and their state machine, shared by backtest, paper and live.

Every order gets a client order id before it leaves the process (WhiteBIT: ``[A-Za-z0-9._-]``, at most 32
characters, unique among open orders of a market), so an ambiguous failure can be reconciled by id and a modify,
which gives the order a new exchange id, does not lose track of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from botkit.market.types import Side

OrderType = Literal["limit", "market", "stop_market", "stop_limit"]
STOP_TYPES: frozenset[str] = frozenset({"stop_market", "stop_limit"})  # wait for the price to reach `stop_price`

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


class OrderStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})
# Members the order path names at every order, read once: `OrderStatus.OPEN` goes through the enum class's attribute
# lookup, some 1,000 instructions each on Python 3.11 (a module name: a few dozen).
NEW, OPEN = OrderStatus.NEW, OrderStatus.OPEN
PARTIALLY_FILLED, FILLED = OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED
OCO_REASON = "oco: another order of the group filled"  # why an OCO partner was cancelled, native or emulated

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
        }
    ),
    OrderStatus.OPEN: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A state change the order state machine forbids (e.g. a fill on a cancelled order)."""

    def __init__(self, client_id: str, current: OrderStatus, wanted: OrderStatus) -> None:
        self.client_id = client_id
        self.current = current
        self.wanted = wanted
        super().__init__(f"order {client_id}: illegal transition {current.value} -> {wanted.value}")


def validate_client_id(client_id: str) -> str:
    """Return `client_id` if WhiteBIT would accept it, else raise ValueError saying why."""
    if not CLIENT_ID_RE.match(client_id):
        raise ValueError(
            f"client order id {client_id!r} is invalid: use 1-32 characters from A-Z a-z 0-9 . _ -"
        )
    return client_id


class ClientIdFactory:
    """Deterministic ids `<prefix>-<n base36>`: unique within a run, replayable in a backtest."""

    _DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

    def __init__(self, prefix: str = "bk") -> None:
        prefix = re.sub(r"[^A-Za-z0-9._-]", "", prefix)[:20] or "bk"
        self.prefix = prefix
        self._n = 0
        self._high = 0  # n // 36 of the last id, and the text of the id up to its last digit
        self._head = f"{prefix}-"

    def __call__(self) -> str:
        self._n += 1
        high, low = divmod(self._n, 36)
        if high != self._high:  # every 36th id: the digits before the last one change
            self._high, self._head = high, f"{self.prefix}-{self._base36(high)}" if high else f"{self.prefix}-"
        return self._head + self._DIGITS[low]

    @classmethod
    def _base36(cls, n: int) -> str:
        digits = ""
        while n:
            n, r = divmod(n, 36)
            digits = cls._DIGITS[r] + digits
        return digits


@dataclass(slots=True)
class Fill:
    """One execution of (part of) an order. `fee` is in `fee_asset`: base on a buy, quote on a sell. `ref_price`,
    on a taker fill of the order-book fill model: the best opposite price when the order was decided (slippage is
    the fill price's distance from it, against the order)."""

    client_id: str
    market: str
    side: Side
    price: Decimal
    amount: Decimal
    quote: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    time_ms: int
    ref_price: Decimal | None = None


@dataclass(slots=True, eq=False)
class Order:
    """An order as the execution layer tracks it. For a market buy, `amount` is the quote to spend."""

    client_id: str
    market: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    post_only: bool = False
    ioc: bool = False
    oco_group: str | None = None
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = Decimal(0)
    filled_quote: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    exchange_id: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    reject_reason: str | None = None
    fills: list[Fill] = field(default_factory=list, repr=False)
    # A stop of an OCO group that the execution layer holds itself (the venue has no OCO): open, not on the exchange.
    held: bool = False

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def quote_amount(self) -> bool:
        """True when `amount` is quote currency (WhiteBIT's market buy)."""
        return self.type == "market" and self.side == "buy"

    def transition(self, new: OrderStatus, time_ms: int) -> None:
        """Move to `new` or raise IllegalTransition; the only way status changes."""
        if new not in _ALLOWED[self.status]:
            raise IllegalTransition(self.client_id, self.status, new)
        self.status = new
        self.updated_ms = time_ms

    def apply_fill(self, fill: Fill, complete: bool) -> None:
        """Record a fill and move to PARTIALLY_FILLED or FILLED."""
        self.transition(FILLED if complete else PARTIALLY_FILLED, fill.time_ms)
        self.filled += fill.amount
        self.filled_quote += fill.quote
        self.fee += fill.fee
        self.fills.append(fill)

    def reject(self, reason: str, time_ms: int) -> None:
        self.reject_reason = reason
        self.transition(OrderStatus.REJECTED, time_ms)

    def snapshot(self) -> Order:
        """A copy of the order as it is now: what an event reports, unaffected by later changes."""
        return Order(
            self.client_id, self.market, self.side, self.type, self.amount, self.price, self.stop_price,
            self.post_only, self.ioc, self.oco_group, self.status, self.filled, self.filled_quote, self.fee,
            self.exchange_id, self.created_ms, self.updated_ms, self.reject_reason, list(self.fills), self.held,
        )

    @property
    def average_price(self) -> Decimal | None:
        return self.filled_quote / self.filled if self.filled else None
