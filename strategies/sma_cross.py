"""SMA crossover: buy with market orders when the fast average crosses above the slow one, sell all when it
crosses back below. Spot, long only."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from botkit import Context, Strategy
from botkit.indicators import SMA
from botkit.market.types import Candle


class SmaCrossParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    market: str | None = Field(None, description="market to trade; default: the first configured market")
    fast: int = Field(10, ge=1)
    slow: int = Field(30, ge=2)
    fraction: Decimal = Field(Decimal("0.95"), gt=0, le=1, description="share of the quote balance to spend")


class SmaCross(Strategy):
    Params = SmaCrossParams
    scopes = frozenset({"orders.create"})

    def on_start(self, ctx: Context) -> None:
        p = self.params
        if p.fast >= p.slow:
            raise ValueError(f"fast ({p.fast}) must be shorter than slow ({p.slow})")
        self.market = p.market or ctx.markets[0]
        self.fast, self.slow = SMA(p.fast), SMA(p.slow)
        self.prev_diff: float | None = None

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if candle.market != self.market:
            return
        f = self.fast.update(candle.close)
        s = self.slow.update(candle.close)
        if f is None or s is None:
            return
        diff = f - s
        prev, self.prev_diff = self.prev_diff, diff
        if prev is None:
            return
        if prev < 0 < diff:
            quote = ctx.balance(ctx.rules(self.market).money).available * self.params.fraction
            if quote > 0:
                ctx.buy(self.market, quote)
        elif prev > 0 > diff:
            held = ctx.balance(ctx.rules(self.market).stock).available
            if held > 0:
                ctx.sell(self.market, held)
