"""SMA crossover entries with an OCO bracket exit: when the fast average crosses above the slow one, buy at market;
on the next candle, protect the position with a take-profit limit sell and a stop-loss stop-market sell in one OCO
group, so whichever fills first cancels the other. Spot, long only, one position at a time.

On WhiteBIT (and the sandbox), which has no spot OCO, the execution layer holds the stop and sends it as a market
order when a closed candle reaches it (botkit/execution/oco.py); a backtest of a config that runs there does the same
(`[backtest] oco = "emulated"`, the default), so the backtest and the run give the same fills.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from botkit import Context, Strategy
from botkit.indicators import SMA
from botkit.market.orders import Order, OrderStatus
from botkit.market.types import Candle


class SmaOcoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    market: str | None = Field(None, description="market to trade; default: the first configured market")
    fast: int = Field(5, ge=1)
    slow: int = Field(20, ge=2)
    quote: Decimal = Field(Decimal("100"), gt=0, description="quote currency spent on each entry")
    take_profit_pct: Decimal = Field(Decimal("0.5"), gt=0, description="take-profit this far above the entry")
    stop_pct: Decimal = Field(Decimal("0.5"), gt=0, lt=100, description="stop-loss this far below the entry")


class SmaOco(Strategy):
    Params = SmaOcoParams
    scopes = frozenset({"orders.create", "orders.delete", "orders.read"})

    def on_start(self, ctx: Context) -> None:
        p = self.params
        if p.fast >= p.slow:
            raise ValueError(f"fast ({p.fast}) must be shorter than slow ({p.slow})")
        self.market = p.market or ctx.markets[0]
        self.fast, self.slow = SMA(p.fast), SMA(p.slow)
        self.last_sign = 0
        self.entry: Order | None = None  # the market buy of the current position
        self.exits: list[Order] = []  # its take-profit and stop
        self.brackets = 0

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        if candle.market != self.market:
            return
        f, s = self.fast.update(candle.close), self.slow.update(candle.close)
        crossed_up = False
        if f is not None and s is not None and abs(f - s) >= 1e-9 * candle.close:
            sign = 1 if f > s else -1
            crossed_up = self.last_sign < 0 < sign
            self.last_sign = sign
        entry = self.entry
        if entry is not None:
            if entry.status == OrderStatus.FILLED and not self.exits:
                self._bracket(ctx, entry)
            elif entry.is_open or any(o.is_open for o in self.exits):
                return  # entering, or the bracket is working
            else:
                self.entry, self.exits = None, []  # the position is closed (or the entry never filled)
        if self.entry is None and crossed_up:
            self.entry = ctx.buy(self.market, self.params.quote)

    def _bracket(self, ctx: Context, entry: Order) -> None:
        """Take-profit + stop for what the entry bought (its fills, less the fee taken in base)."""
        p, rules = self.params, ctx.rules(self.market)
        held = entry.filled - entry.fee
        price = entry.average_price or Decimal(0)
        target = (price * (1 + p.take_profit_pct / 100)).quantize(rules.price_step)
        stop = (price * (1 - p.stop_pct / 100)).quantize(rules.price_step)
        self.brackets += 1
        group = f"b{self.brackets}"
        self.exits = [ctx.sell(self.market, held, target, oco=group), ctx.sell(self.market, held, stop=stop, oco=group)]
