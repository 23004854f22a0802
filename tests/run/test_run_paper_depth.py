"""Paper mode (live data from the sandbox, fills from the simulated venue) and depth-gap recovery."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, run_driven
from .run_strategies import BookWatcher, PaperTrader


async def test_paper_fills_locally_and_sends_nothing() -> None:
    """A 5 s paper run on a fake clock shared with the sandbox (driven at 5x)."""
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _paper_fills_locally(sandbox, clock, rest)


async def _paper_fills_locally(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest) -> None:
    strategy = PaperTrader()
    cfg = bot_config("PaperTrader", mode="paper", duration_s=5.0, base_url=sandbox.base_url, ws_url=sandbox.ws_url)
    runner = LiveRunner(cfg, strategy=strategy, out=None, handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)

    assert len(strategy.orders) == 2
    buy, sell = strategy.orders
    assert buy.status.value == "filled" and sell.status.value == "filled", strategy.updates
    candles = [c for c, _ in strategy.candles]
    # market time, as in a backtest: placed at the first candle's close, filled at the very next candle's open
    assert buy.created_ms == candles[0].close_time_ms
    bfill = next(f for f in strategy.fills if f.client_id == buy.client_id)
    assert bfill.price == Decimal(str(candles[1].open)).quantize(Decimal("0.01"))
    assert bfill.time_ms == candles[1].time_ms
    sfill = next(f for f in strategy.fills if f.client_id == sell.client_id)
    assert bfill.quote <= Decimal("100") and sfill.amount == Decimal("0.001")
    assert summary.final_balances["USDT"].total == Decimal("1000") - bfill.quote + sfill.quote - sfill.fee
    assert summary.final_balances["BTC"].total == Decimal("0.01") + bfill.amount - bfill.fee - sfill.amount

    # nothing reached the exchange: no order, no private stream, balances untouched
    assert sandbox.exchange.open_orders == {} and sandbox.exchange.history == {}
    assert await rest.call("order_history", {"limit": 100}) == {}
    assert sandbox.hub.by_account == {} or all(not c for c in sandbox.hub.by_account.values())
    bal = await rest.call("trade_balance", {})
    assert bal["USDT"]["available"] == "100000" and bal["BTC"]["available"] == "1"


async def test_depth_gap_resubscribes_to_a_consistent_book(sandbox: Sandbox) -> None:
    strategy = BookWatcher()
    runner = LiveRunner(bot_config("BookWatcher", duration_s=20), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False)
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    try:
        while not (runner.feeds and strategy.books):
            await asyncio.sleep(0.02)
        feed = runner.feeds[0]
        sandbox.set_faults(skip_depth_ids=0.5)
        end = loop.time() + 8
        while feed.depth_resubscribes < 2:
            assert loop.time() < end, "no depth gap detected"
            await asyncio.sleep(0.02)
        sandbox.set_faults(skip_depth_ids=0.0)
        group = sandbox.hub.groups[("BTC_USDT", 20, "0")]
        book = feed.books["BTC_USDT"]
        end = loop.time() + 8
        matched = 0
        while matched < 5:
            assert loop.time() < end, "local book never caught up with the exchange's"
            if book.update_id == group.update_id:
                assert book.asks == group.asks and book.bids == group.bids
                matched += 1
            await asyncio.sleep(0.01)
        snap = strategy.books[-1]
        assert snap.best_bid is not None and snap.best_ask is not None and snap.best_bid < snap.best_ask
    finally:
        runner.stop_event.set()
        await task
