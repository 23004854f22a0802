"""Grid bot: resting limit buys below the price; each filled buy is answered by a sell one step higher and each
filled sell by a buy one step lower. When the price leaves the grid, unfilled buys are cancelled and the grid is
re-centred. Many resting orders and cancels: a workout for the order state machine."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from botkit import Context, Strategy
from botkit.market.orders import Fill
from botkit.market.types import Candle


class GridParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    market: str | None = None
    levels: int = Field(5, ge=1, le=50, description="buy levels below the centre")
    spacing_pct: Decimal = Field(Decimal("0.5"), gt=0)
    level_quote: Decimal = Field(Decimal("200"), gt=0, description="quote spent per buy level")
    recenter_pct: Decimal = Field(Decimal("3"), gt=0, description="re-centre when price is this far from centre")


class GridBot(Strategy):
    Params = GridParams
    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def on_start(self, ctx: Context) -> None:
        self.market = self.params.market or ctx.markets[0]
        self.center: Decimal | None = None
        self.step = self.params.spacing_pct / 100

    def _place_buys(self, ctx: Context, center: Decimal) -> None:
        self.center = center
        money = ctx.rules(self.market).money
        for i in range(1, self.params.levels + 1):
            if ctx.balance(money).available < self.params.level_quote:
                break  # the rest of the quote is already working in the grid
            price = center * (1 - self.step * i)
            ctx.buy(self.market, self.params.level_quote / price, price, post_only=True)

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if candle.market != self.market:
            return
        close = Decimal(repr(candle.close))
        if self.center is None:
            self._place_buys(ctx, close)
            return
        if abs(close / self.center - 1) * 100 > self.params.recenter_pct:
            for order in ctx.open_orders(self.market):
                if order.side == "buy":
                    ctx.cancel(order)
            self._place_buys(ctx, close)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if fill.side == "buy":
            amount = fill.amount - fill.fee
            ctx.sell(self.market, amount, fill.price * (1 + self.step))
        else:
            price = fill.price * (1 - self.step)
            quote = min(fill.quote - fill.fee, ctx.balance(ctx.rules(self.market).money).available)
            ctx.buy(self.market, quote / price, price)
