"""A price-time-priority limit order book for one market: sorted price levels, each a FIFO queue of orders."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

Side = Literal["buy", "sell"]
ZERO = Decimal(0)


@dataclass(slots=True, eq=False)
class Order:
    """One order; `amount`/`left` are base, except a market or stop-market buy, where they are quote."""

    id: int
    account: str
    market: str
    side: Side
    type: str
    price: Decimal
    amount: Decimal
    ctime: float
    client_order_id: str = ""
    post_only: bool = False
    ioc: bool = False
    stp: str = "no"
    left: Decimal = ZERO
    deal_stock: Decimal = ZERO
    deal_money: Decimal = ZERO
    deal_fee: Decimal = ZERO
    locked: Decimal = ZERO
    mtime: float = 0.0
    ftime: float = 0.0
    status: str = "NEW"
    fee_asset: str = ""
    activation_price: Decimal = ZERO  # stop orders only (type "stop limit" / "stop market")
    activated: int = 0  # stop orders: 0 waiting for the trigger, 1 triggered
    house: bool = field(default=False, repr=False)

    @property
    def is_stop(self) -> bool:
        return self.type in ("stop limit", "stop market")

    @property
    def quote_sized(self) -> bool:
        """`amount`/`left` are quote: a market buy and a stop-market buy (docs/whitebit.md §2.4)."""
        return self.side == "buy" and self.type in ("market", "stop market")


class OrderBook:
    """Bids and asks as price -> FIFO queue; prices kept sorted ascending in a side list."""

    __slots__ = ("_ask_prices", "_asks", "_bid_prices", "_bids", "version")

    def __init__(self) -> None:
        self._bids: dict[Decimal, deque[Order]] = {}
        self._asks: dict[Decimal, deque[Order]] = {}
        self._bid_prices: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self.version = 0

    def _side(self, side: Side) -> tuple[dict[Decimal, deque[Order]], list[Decimal]]:
        return (self._bids, self._bid_prices) if side == "buy" else (self._asks, self._ask_prices)

    def add(self, order: Order) -> None:
        levels, prices = self._side(order.side)
        queue = levels.get(order.price)
        if queue is None:
            queue = levels[order.price] = deque()
            insort(prices, order.price)
        queue.append(order)
        self.version += 1

    def remove(self, order: Order) -> None:
        levels, prices = self._side(order.side)
        queue = levels.get(order.price)
        if queue is None:
            return
        try:
            queue.remove(order)
        except ValueError:
            return
        if not queue:
            del levels[order.price]
            del prices[bisect_left(prices, order.price)]
        self.version += 1

    def touched(self) -> None:
        """A resting order's `left` changed in place (a partial fill)."""
        self.version += 1

    def best(self, side: Side) -> Order | None:
        """First order in time at the best price of `side`."""
        levels, prices = self._side(side)
        if not prices:
            return None
        return levels[prices[-1] if side == "buy" else prices[0]][0]

    def best_price(self, side: Side) -> Decimal | None:
        prices = self._bid_prices if side == "buy" else self._ask_prices
        if not prices:
            return None
        return prices[-1] if side == "buy" else prices[0]

    def prices(self, side: Side) -> Iterator[Decimal]:
        """Prices from best to worst."""
        return reversed(self._bid_prices) if side == "buy" else iter(self._ask_prices)

    def queue(self, side: Side, price: Decimal) -> deque[Order]:
        return self._side(side)[0][price]

    def levels(self, side: Side, limit: int, interval: Decimal = ZERO) -> list[tuple[Decimal, Decimal]]:
        """Aggregated (price, amount) levels, best first, optionally merged into `interval`-wide buckets."""
        levels, _ = self._side(side)
        out: list[tuple[Decimal, Decimal]] = []
        for price in self.prices(side):
            qty = sum((o.left for o in levels[price]), ZERO)
            if interval > 0:
                rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
                price = (price / interval).to_integral_value(rounding=rounding) * interval
                if out and out[-1][0] == price:
                    out[-1] = (price, out[-1][1] + qty)
                    continue
            if len(out) >= limit:
                break
            out.append((price, qty))
        return out

    def orders(self) -> Iterator[Order]:
        for levels in (self._bids, self._asks):
            for queue in list(levels.values()):
                yield from list(queue)

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()
        self.version += 1
