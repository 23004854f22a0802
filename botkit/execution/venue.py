"""The Venue port: the seam between the execution layer and a venue (simulated for backtest/paper, WhiteBIT live).

It lives in the execution layer, which calls it; venues (a layer below) implement it structurally and name
`VenueEvents` only in annotations, so no import points upwards.

A venue never calls the strategy. It reports what happened to orders through `VenueEvents`, which the execution
engine implements; so backtest, paper and live share one order state machine and one set of callbacks.
"""

from __future__ import annotations

from typing import Protocol

from botkit.market.orders import Fill, Order
from botkit.market.types import Balance


class VenueEvents(Protocol):
    """What a venue reports. Implemented by `ExecutionEngine`."""

    def order_accepted(self, order: Order, time_ms: int, exchange_id: str) -> None: ...

    def order_filled(self, order: Order, fill: Fill, complete: bool) -> None: ...

    def order_cancelled(self, order: Order, time_ms: int, reason: str) -> None: ...

    def order_rejected(self, order: Order, time_ms: int, reason: str) -> None: ...


class Venue(Protocol):
    """Where orders go. `submit` and `cancel` do not block; outcomes arrive through `VenueEvents`."""

    name: str
    supports_oco: bool  # one-cancels-other groups (the simulated venue); checked before an order is journaled

    def bind(self, events: VenueEvents) -> None: ...

    def submit(self, order: Order, now_ms: int) -> None: ...

    def cancel(self, order: Order, now_ms: int) -> None: ...

    def balance(self, asset: str) -> Balance: ...

    def balances(self) -> dict[str, Balance]: ...
