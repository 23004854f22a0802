"""Bollinger mean reversion with limit orders: when a candle closes below the lower band, bid a little under the
close (post-only); once filled, exit with a take-profit limit at the middle band and a protective stop-market, both
in one OCO group, so whichever fills first cancels the other. Stale entries are cancelled."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from botkit import Context, Strategy
from botkit.indicators import Bollinger
from botkit.market.orders import Fill, Order
from botkit.market.types import Candle


class BollingerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    market: str | None = None
    period: int = Field(20, ge=2)
    width: float = Field(2.0, gt=0)
    fraction: Decimal = Field(Decimal("0.5"), gt=0, le=1)
    entry_offset_pct: Decimal = Field(Decimal("0.05"), ge=0)
    stop_pct: Decimal = Field(Decimal("2"), gt=0)
    min_profit_pct: Decimal = Field(Decimal("0.4"), ge=0, description="target at least this far above the entry")
    max_wait: int = Field(5, ge=1, description="candles an unfilled entry may rest before it is cancelled")


class BollingerReversion(Strategy):
    Params = BollingerParams
    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def on_start(self, ctx: Context) -> None:
        self.market = self.params.market or ctx.markets[0]
        self.bands = Bollinger(self.params.period, self.params.width)
        self.entry: Order | None = None
        self.entry_age = 0
        self.exits = 0

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if candle.market != self.market:
            return
        if self.bands.update(candle.close) is None:
            return
        rules = ctx.rules(self.market)
        if self.entry is not None and self.entry.is_open:
            self.entry_age += 1
            if self.entry_age >= self.params.max_wait:
                ctx.cancel(self.entry)
            return
        if ctx.open_orders(self.market):
            return  # exits are working
        held = ctx.balance(rules.stock).available
        if held >= max(rules.min_amount, rules.amount_step):
            return
        lower = self.bands.lower
        if lower is not None and candle.close < lower:
            price = Decimal(repr(candle.close)) * (1 - self.params.entry_offset_pct / 100)
            quote = ctx.balance(rules.money).available * self.params.fraction
            amount = quote / price
            self.entry = ctx.buy(self.market, amount, price, post_only=True)
            self.entry_age = 0

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if self.entry is None or fill.client_id != self.entry.client_id:
            return
        rules = ctx.rules(self.market)
        held = ctx.balance(rules.stock).available
        target = Decimal(repr(self.bands.mid or float(fill.price)))
        target = max(target, fill.price * (1 + self.params.min_profit_pct / 100))
        stop = fill.price * (1 - self.params.stop_pct / 100)
        self.exits += 1
        group = f"x{self.exits}"
        ctx.sell(self.market, held, target, oco=group)
        ctx.sell(self.market, held, stop=stop, oco=group)
