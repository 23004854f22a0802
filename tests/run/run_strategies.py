"""Strategies the `botkit run` tests drive (plugins loaded from this file by path)."""

from __future__ import annotations

from decimal import Decimal

from botkit import Context, Strategy
from botkit.market.orders import Fill, Order
from botkit.market.types import BookSnapshot, Candle


class Recorder(Strategy):
    """Records everything it is told; subclasses decide what to trade."""

    scopes = frozenset({"orders.create", "orders.delete"})

    def __init__(self, params: object = None) -> None:
        super().__init__(None)
        self.candles: list[tuple[Candle, int]] = []  # (candle, the bot's clock when received: wall ms when live)
        self.updates: list[tuple[str, str]] = []  # (client id, status)
        self.fills: list[Fill] = []
        self.books: list[BookSnapshot] = []
        self.started = self.stopped = False

    def on_start(self, ctx: Context) -> None:
        self.started = True

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.candles.append((candle, ctx.now))

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.updates.append((order.client_id, order.status.value))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)

    def on_book(self, ctx: Context, book: BookSnapshot) -> None:
        self.books.append(book)

    def on_stop(self, ctx: Context) -> None:
        self.stopped = True


class Prober(Recorder):
    """First closed candle: a resting limit buy 5 % under the market and a 20 USDT market buy; the next one, a
    market sell of 0.0002 BTC; the third cancels the limit buy."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.limit: Order | None = None
        self.market: Order | None = None
        self.market_sell: Order | None = None
        self.timer_times: list[int] = []
        self.scheduled_at = 0

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.scheduled_at = ctx.now
        ctx.schedule("tick", 500)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.timer_times.append(ctx.now)

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        n = len(self.candles)
        if n == 1:
            price = Decimal(str(candle.close)) * Decimal("0.95")
            self.limit = ctx.buy(candle.market, "0.001", price)
            self.market = ctx.buy(candle.market, "20")
        elif n == 2:
            self.market_sell = ctx.sell(candle.market, "0.0002")
        elif n == 3 and self.limit is not None:
            ctx.cancel(self.limit)


class Resting(Recorder):
    """First closed candle: one limit buy 2 % under the market that rests until the test moves the price."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.limit: Order | None = None

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if self.limit is None:
            self.limit = ctx.buy(candle.market, "0.002", Decimal(str(candle.close)) * Decimal("0.98"))


class WantsApiKeys(Recorder):
    """Declares a scope no sandbox trading key carries: the bot must refuse to start."""

    scopes = frozenset({"orders.create", "apikeys.read"})

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        ctx.buy(candle.market, "20")


class PaperTrader(Recorder):
    """Paper mode: a market buy on the first candle, a marketable limit sell on the second."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.orders: list[Order] = []

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        n = len(self.candles)
        if n == 1:
            self.orders.append(ctx.buy(candle.market, "100"))
        elif n == 2:
            self.orders.append(ctx.sell(candle.market, "0.001", Decimal(str(candle.close)) * Decimal("0.9")))


class BookWatcher(Recorder):
    scopes = frozenset()


class HaltsAfterResting(Recorder):
    """Candle 1: a resting limit buy far under the market and a 20 USDT market buy; candle 3: a bug."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.limit: Order | None = None
        self.market: Order | None = None

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if len(self.candles) == 1:
            self.limit = ctx.buy(candle.market, "0.001", Decimal(str(candle.close)) * Decimal("0.8"))
            self.market = ctx.buy(candle.market, "20")
        elif len(self.candles) == 3:
            raise KeyError("a strategy bug")


class Flood(Recorder):
    """First candle: 10,000 tiny resting limit buys from one callback; a 100 ms timer shows the loop stays alive."""

    N = 10_000

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.placed: list[Order] = []
        self.ticks = 0

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        ctx.schedule("tick", 100)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.ticks += 1

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if not self.placed:
            price = (Decimal(str(candle.close)) * Decimal("0.5")).quantize(Decimal("0.01"))
            self.placed = [ctx.buy(candle.market, "0.0001", price) for _ in range(self.N)]


class OcoTrier(Recorder):
    """A take-profit + stop-loss pair as one OCO group: simulated venues take it, WhiteBIT's has no OCO."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.pair: list[Order] = []

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if not self.pair:
            px = Decimal(str(candle.close))
            self.pair = [ctx.sell(candle.market, "0.001", (px * Decimal("1.05")).quantize(Decimal("0.01")), oco="x"),
                         ctx.sell(candle.market, "0.001", stop=(px * Decimal("0.95")).quantize(Decimal("0.01")),
                                  oco="x")]


class SteadyBuyer(Recorder):
    """A 20 USDT market buy on every closed candle, and one resting limit buy far below the market at the start."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.placed: list[Order] = []
        self.resting: Order | None = None

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if self.resting is None:
            self.resting = ctx.buy(candle.market, "0.001", (Decimal(str(candle.close)) * Decimal("0.8")).quantize(
                Decimal("0.01")))
        self.placed.append(ctx.buy(candle.market, "20"))


class Stops(Recorder):
    """First candle: a stop-market sell 0.3 % under the market and a stop-market buy 0.3 % over it (inside the
    sandbox's quoted book, so a triggered stop finds liquidity)."""

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.sell_stop: Order | None = None
        self.buy_stop: Order | None = None

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        super().on_candle(ctx, candle)
        if self.sell_stop is None:
            px = Decimal(str(candle.close))
            self.sell_stop = ctx.sell(candle.market, "0.001", stop=(px * Decimal("0.997")).quantize(Decimal("0.01")))
            self.buy_stop = ctx.buy(candle.market, "0.001", stop=(px * Decimal("1.003")).quantize(Decimal("0.01")))
