"""Paper trading with the trades fill model and latency: live trades from the sandbox, fills from the simulated
venue on the public trades, an order eligible only from its decision + latency_ms (market time)."""

from __future__ import annotations

from decimal import Decimal

from botkit import Context, Strategy, Trade
from botkit.config import BacktestConfig
from botkit.market.orders import Fill, Order
from botkit.market.rules import to_decimal
from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox

from .conftest import bot_config


class TradeTaker(Strategy):
    """A market buy of 50 USDT on the first public trade it sees; records every trade and fill."""

    def __init__(self, params: object = None) -> None:
        super().__init__()
        self.trades: list[Trade] = []
        self.fills: list[tuple[int, Fill]] = []
        self.order: Order | None = None

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.trades.append(trade)
        if self.order is None:
            self.order = ctx.buy(trade.market, "50")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append((ctx.now, fill))


async def test_paper_fills_on_public_trades_after_the_latency(sandbox: Sandbox) -> None:
    strategy = TradeTaker()
    cfg = bot_config("PaperTrader", mode="paper", duration_s=4.0, base_url=sandbox.base_url, ws_url=sandbox.ws_url)
    cfg = cfg.model_copy(update={"backtest": BacktestConfig(fills="trades", latency_ms=300, fill_latency_ms=200)})
    runner = LiveRunner(cfg, strategy=strategy, out=None, handle_signals=False)
    await runner.run()

    order = strategy.order
    assert order is not None and order.status.value == "filled", strategy.fills
    ((seen_at, fill),) = strategy.fills
    arrival = order.created_ms + 300
    first = next(t for t in strategy.trades if t.time_ms >= arrival)  # the first trade after it arrived
    assert fill.time_ms == first.time_ms and fill.price == to_decimal(first.price).quantize(Decimal("0.01"))
    assert seen_at >= fill.time_ms + 200  # heard of 200 ms (market time) after the fill
    assert fill.quote <= Decimal("50") and not fill.maker
