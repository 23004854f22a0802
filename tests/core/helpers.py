"""Small hand-made candle series and a scriptable strategy for engine tests."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np

from botkit import Context, Strategy
from botkit.backtest.data import CandleSeries
from botkit.backtest.replay import Backtest, BacktestResult
from botkit.execution.oco import OcoMode
from botkit.execution.risk import RiskLimits
from botkit.market.grants import Grant
from botkit.market.orders import Fill, Order
from botkit.market.rules import MarketRules
from botkit.market.types import Candle
from botkit.venues.simulated import FillModel

RULES = MarketRules("BTC_USDT", "BTC", "USDT", stock_prec=6, money_prec=2, min_amount=Decimal("0.00001"),
                    min_total=Decimal("1"), maker_fee=Decimal("0.1"), taker_fee=Decimal("0.2"))
ETH = MarketRules("ETH_USDT", "ETH", "USDT", stock_prec=4, money_prec=2, min_total=Decimal("1"))
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def series(ohlc: list[tuple[float, float, float, float]], market: str = "BTC_USDT", t0: int = T0,
           tf: int = 60_000) -> CandleSeries:
    a = np.asarray(ohlc, dtype=np.float64)
    n = len(ohlc)
    return CandleSeries(market, tf, t0 + np.arange(n, dtype=np.int64) * tf, a[:, 0].copy(), a[:, 1].copy(),
                        a[:, 2].copy(), a[:, 3].copy(), np.ones(n), "test")


class Script(Strategy):
    """Calls `plan[i](ctx, candle)` on the i-th candle; records everything it is told."""

    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self, plan: dict[int, Callable[[Context, Candle], object]]) -> None:
        super().__init__()
        self.plan = plan
        self.i = -1
        self.seen: list[Candle] = []
        self.updates: list[tuple[str, str]] = []
        self.fills: list[Fill] = []
        self.placed: list[Order] = []

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.i += 1
        self.seen.append(candle)
        step = self.plan.get(self.i)
        if step is not None:
            out = step(ctx, candle)
            if isinstance(out, Order):
                self.placed.append(out)

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.updates.append((order.client_id, order.status.value))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)


def run(strategy: Strategy, data: list[CandleSeries], balances: dict[str, str] | None = None,
        scopes: str = "orders.create,orders.delete,orders.read,balances.read", risk: RiskLimits | None = None,
        fill_model: FillModel | None = None, oco: OcoMode = "emulated") -> BacktestResult:
    rules = {"BTC_USDT": RULES, "ETH_USDT": ETH}
    bal = {k: Decimal(v) for k, v in (balances or {"USDT": "10000"}).items()}
    return Backtest(strategy, data, rules, bal, grant=Grant.of(scopes), risk=risk, fill_model=fill_model,
                    oco=oco).run()
