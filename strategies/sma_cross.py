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
    fast: int = Field(20, ge=1)
    slow: int = Field(100, ge=2)
    fraction: Decimal = Field(Decimal("0.95"), gt=0, le=1, description="share of the quote balance to spend")


class SmaCross(Strategy):
    Params = SmaCrossParams
    scopes = frozenset({"orders.create", "balances.read"})

    def on_start(self, ctx: Context) -> None:
        p = self.params
        if p.fast >= p.slow:
            raise ValueError(f"fast ({p.fast}) must be shorter than slow ({p.slow})")
        self.market = p.market or ctx.markets[0]
        self.fast, self.slow = SMA(p.fast), SMA(p.slow)
        self.last_sign = 0  # sign of the last non-tied difference: a cross through a tie still counts once
        for close in ctx.candles(self.market, p.slow).close.tolist():  # live runs start with history; backtests don't
            f, s = self.fast.update(close), self.slow.update(close)
            if f is not None and s is not None and abs(f - s) >= 1e-9 * close:
                self.last_sign = 1 if f > s else -1

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if candle.market != self.market:
            return
        close = candle.close
        f = self.fast.update(close)
        s = self.slow.update(close)
        if s is None or f is None:
            return
        diff = f - s
        if abs(diff) < 1e-9 * close:
            return  # equal averages: float noise must not decide the sign
        sign = 1 if diff > 0 else -1
        prev = self.last_sign
        if sign == prev:
            return  # no cross (most candles: this is the hot path)
        self.last_sign = sign
        if prev < 0 < sign:
            rules = ctx.rules(self.market)
            quote = ctx.balance(rules.money).available * self.params.fraction
            if quote >= rules.min_total:
                ctx.buy(self.market, quote)
        elif prev > 0 > sign:
            rules = ctx.rules(self.market)
            held = rules.truncate_amount(ctx.balance(rules.stock).available)
            if held >= rules.min_amount and held > 0:
                ctx.sell(self.market, held)
