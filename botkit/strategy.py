"""The strategy API: a `Strategy` subclass with callbacks, and the `Context` that is its only handle on the world.

A strategy never sees a token, an HTTP client or a venue: everything it does goes through `Context`, and through
it the execution layer, so the scope check, the risk limits and the journal cannot be bypassed. Callbacks receive
closed data only, and orders placed in a callback fill no earlier than the next market event, in backtest and live
alike: look-ahead is impossible by construction, not by discipline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from botkit.execution.engine import ExecutionEngine
from botkit.market.buffer import CandleArrays
from botkit.market.orders import Fill, Order
from botkit.market.rules import MarketRules
from botkit.market.types import Balance, BookSnapshot, Candle, Trade, TradeBatch


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MarketData(Protocol):
    """What the context reads market data from: the backtest's cursor or the live feed's buffers."""

    def candles(self, market: str, n: int | None) -> CandleArrays: ...

    def last_price(self, market: str) -> float | None: ...


class Strategy:
    """Base class for strategy plugins. Override what you need; every callback is optional.

    Declare parameters as a pydantic model in `Params` (validated from the config's ``[strategy.params]``) and the
    WhiteBIT scopes the strategy needs in `scopes`; the bot refuses to start when the grant lacks one, and an
    operation that needs an undeclared scope raises before anything is sent.
    """

    Params: ClassVar[type[BaseModel]] = NoParams
    scopes: ClassVar[frozenset[str]] = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params: Any = params if params is not None else self.Params()

    def on_start(self, ctx: Context) -> None:
        """Before the first market event."""

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        """A candle of a configured market closed."""

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        """A public trade printed."""

    def on_trades(self, ctx: Context, trades: TradeBatch) -> None:
        """Consecutive public trades of one market, as columns. Backtests on trades call this instead of `on_trade`
        when a strategy overrides it (much faster for millions of trades): a batch ends before any trade that could
        fill one of the strategy's orders and at every timer, so nothing happens to its orders inside a batch;
        what it does in the call happens at the batch's last trade (`ctx.now`), so a strategy that must act on
        each trade as it prints should use `on_trade`.
        Live runs deliver one trade at a time through `on_trade`; the default here does the same, trade by trade."""
        for trade in trades:
            self.on_trade(ctx, trade)

    def on_book(self, ctx: Context, book: BookSnapshot) -> None:
        """The order book changed."""

    def on_order_update(self, ctx: Context, order: Order) -> None:
        """One of our orders changed state (accepted, filled, cancelled, rejected)."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """One of our orders traded."""

    def on_timer(self, ctx: Context, name: str) -> None:
        """A timer set with `ctx.schedule` fired."""

    def on_stop(self, ctx: Context) -> None:
        """After the last market event (or on shutdown)."""


@dataclass(slots=True)
class Timer:
    name: str
    every_ms: int
    due_ms: int


class Context:
    """The strategy's handle: orders, positions, balances, time, closed market data, a logger."""

    def __init__(
        self,
        engine: ExecutionEngine,
        data: MarketData,
        clock: Callable[[], int],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._engine = engine
        self._data = data
        self._clock = clock
        self.log = logger
        self.timers: list[Timer] = []

    # ---- time and data ------------------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """Current time, ms since the epoch (UTC). In a backtest, the close time of the latest event."""
        return self._clock()

    @property
    def markets(self) -> list[str]:
        return sorted(self._engine.rules)

    def rules(self, market: str) -> MarketRules:
        return self._engine.rules[market]

    def candles(self, market: str, n: int | None = None) -> CandleArrays:
        """The last `n` closed candles of `market` (all of them if n is None)."""
        return self._data.candles(market, n)

    def last_price(self, market: str) -> float | None:
        return self._data.last_price(market)

    # ---- orders -------------------------------------------------------------------------------------------------

    def buy(
        self,
        market: str,
        amount: Decimal | str | float | int,
        price: Decimal | str | float | int | None = None,
        *,
        stop: Decimal | str | float | int | None = None,
        post_only: bool = False,
        ioc: bool = False,
        client_id: str | None = None,
        oco: str | None = None,
    ) -> Order:
        """Buy `amount` base at `price` (limit), at market (no price: `amount` is the QUOTE to spend, as on
        WhiteBIT), or when the price rises to `stop` (stop-market, `amount` in base)."""
        return self._engine.place(
            market, "buy", amount, price, stop_price=stop, post_only=post_only, ioc=ioc, client_id=client_id,
            oco_group=oco,
        )

    def sell(
        self,
        market: str,
        amount: Decimal | str | float | int,
        price: Decimal | str | float | int | None = None,
        *,
        stop: Decimal | str | float | int | None = None,
        post_only: bool = False,
        ioc: bool = False,
        client_id: str | None = None,
        oco: str | None = None,
    ) -> Order:
        """Sell `amount` base at `price` (limit), at market (no price), or when the price falls to `stop`."""
        return self._engine.place(
            market, "sell", amount, price, stop_price=stop, post_only=post_only, ioc=ioc, client_id=client_id,
            oco_group=oco,
        )

    def cancel(self, order: Order | str) -> bool:
        return self._engine.cancel(order)

    def cancel_all(self, market: str | None = None) -> int:
        return self._engine.cancel_all(market)

    def open_orders(self, market: str | None = None) -> list[Order]:
        """This bot's open orders (needs `orders.read`)."""
        self._engine.require("open_orders")
        return self._engine.open_orders(market)

    # ---- account ------------------------------------------------------------------------------------------------

    def position(self, market: str) -> Decimal:
        """Base held for `market` (available + locked in orders): the spot position (needs `balances.read`)."""
        self._engine.require("balances")
        return self._engine.venue.balance(self._engine.rules[market].stock).total

    def tradable_position(self, market: str) -> Decimal:
        """What a sell can take now: the available base cut to the market's amount step, and 0 when that is below
        the market's minimum amount (fee dust left after a sell is a position no order can close)."""
        self._engine.require("balances")
        rules = self._engine.rules[market]
        amount = rules.truncate_amount(self._engine.venue.balance(rules.stock).available)
        return amount if amount > 0 and amount >= rules.min_amount else Decimal(0)

    def balance(self, asset: str) -> Balance:
        """Available and frozen amounts of `asset` (needs `balances.read`)."""
        self._engine.require("balances")
        return self._engine.venue.balance(asset)

    @property
    def balances(self) -> dict[str, Balance]:
        self._engine.require("balances")
        return self._engine.venue.balances()

    # ---- timers -------------------------------------------------------------------------------------------------

    def schedule(self, name: str, every_ms: int) -> None:
        """Call `on_timer(ctx, name)` every `every_ms` milliseconds of market time, starting one period from now."""
        if every_ms <= 0:
            raise ValueError(f"timer {name!r}: every_ms must be positive, got {every_ms}")
        self.timers[:] = [t for t in self.timers if t.name != name]  # in place: the runner holds this list
        self.timers.append(Timer(name, every_ms, self.now + every_ms))
