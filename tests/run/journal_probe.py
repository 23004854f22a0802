"""The strategy `botkit run` subprocesses use in test_run_journal.py (loaded by path, so no package imports)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from botkit import Context, Strategy
from botkit.market.orders import Fill, Order
from botkit.market.types import Candle

# Three resting buys under the market: the test fills the first, cancels the second, leaves the third.
LEVELS = ("0.97", "0.90", "0.85")


class JournalProbe(Strategy):
    """Writes every callback to `log` (one JSON line each, flushed: the process may be SIGKILLed any time); with
    `place`, puts the LEVELS buys on the first closed candle."""

    class Params(BaseModel):
        log: str
        place: bool = False

    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self, params: BaseModel | None = None) -> None:
        super().__init__(params)
        self.placed = False

    def _write(self, **row: Any) -> None:
        with open(self.params.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def on_start(self, ctx: Context) -> None:
        self._write(ev="start", open=sorted(o.client_id for o in ctx.open_orders()))

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if self.params.place and not self.placed:
            self.placed = True
            close = Decimal(str(candle.close))
            for level in LEVELS:
                o = ctx.buy(candle.market, "0.002", close * Decimal(level))
                self._write(ev="placed", cid=o.client_id, price=str(o.price))

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self._write(ev="update", cid=order.client_id, status=order.status.value)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self._write(ev="fill", cid=fill.client_id, amount=str(fill.amount), price=str(fill.price))
