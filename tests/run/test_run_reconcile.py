"""Reconciliation: an order placed outside the bot is known after start; a dropped WebSocket is survived
(reconnect, re-authorize, resubscribe) and a fill that happened while it was down is not lost."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, driving
from .run_strategies import Recorder, Resting


async def _until(cond, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_outside_order_adopted_and_fill_during_outage_not_lost() -> None:
    """On a fake clock shared with the sandbox, driven at 5x (1 s candles every 0.2 s of real time)."""
    async with clocked_sandbox() as (sandbox, clock, rest), driving(clock):
        await _adopted_and_not_lost(sandbox, clock, rest)


async def _adopted_and_not_lost(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest) -> None:
    last = Decimal((await rest.call("ticker"))["BTC_USDT"]["last_price"])
    outside_price = (last * Decimal("0.9")).quantize(Decimal("0.01"))
    await rest.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "0.001",
                                  "price": str(outside_price), "clientOrderId": "outside-1"})

    strategy = Resting()
    runner = LiveRunner(bot_config("Resting", duration_s=100), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False, **clock.clocks())
    task = asyncio.create_task(runner.run())
    try:
        await _until(lambda: runner.engine is not None and "outside-1" in runner.engine.open)
        engine = runner.engine
        assert engine is not None
        adopted = engine.open["outside-1"]
        assert adopted.price == outside_price and adopted.amount == Decimal("0.001") and adopted.side == "buy"
        await _until(lambda: ("outside-1", "open") in strategy.updates)

        await _until(lambda: strategy.limit is not None and strategy.limit.status.value == "open")
        limit = strategy.limit
        assert limit is not None and limit.price is not None
        venue_ws = runner.venue.ws  # type: ignore[union-attr]
        assert venue_ws is not None
        connects_before = venue_ws.connects
        candles_before = len(strategy.candles)

        # Cut every socket and, before any byte can flow again, trade through the bot's limit price.
        sandbox.hub.drop_all()
        sandbox.exchange.print_trade("BTC_USDT", limit.price - Decimal("1"), Decimal("0.01"), "sell")
        filled_on_exchange = (await rest.call("order_history", {"market": "BTC_USDT",
                                                                "clientOrderId": limit.client_id}))["BTC_USDT"]
        assert filled_on_exchange[0]["status"] == "FILLED"

        await _until(lambda: (limit.client_id, "filled") in strategy.updates, timeout=10)
        assert limit.status.value == "filled"
        assert venue_ws.connects > connects_before  # reconnected ...
        # ... re-authorized with a fresh token, and subscribed again to orders, deals and balances
        assert len(sandbox.exchange.ws_tokens) >= 2
        await _until(lambda: any(c.pending == {"BTC_USDT"} and c.deals == {"BTC_USDT"} and "BTC" in c.balance_assets
                                 for c in sandbox.hub.by_account.get("demo", ())))
        assert sum(f.amount for f in strategy.fills if f.client_id == limit.client_id) == Decimal("0.002")
        await _until(lambda: len(strategy.candles) >= candles_before + 2, timeout=6)  # market data resubscribed
        assert "outside-1" in engine.open  # still open, still known
    finally:
        runner.stop_event.set()
        summary = await task

    assert summary.adopted == 1 and summary.reconnects >= 2
    deals = await rest.call("executed_history", {"market": "BTC_USDT", "clientOrderId": limit.client_id})
    assert sum(Decimal(d["amount"]) for d in deals) == limit.filled
    assert sum(Decimal(d["fee"]) for d in deals) == limit.fee
    balances = await rest.call("trade_balance", {})
    assert Decimal(balances["BTC"]["available"]) == summary.final_balances["BTC"].available
    assert Decimal(balances["USDT"]["freeze"]) == summary.final_balances["USDT"].frozen
    times = [c.time_ms for c, _ in strategy.candles]
    assert times == sorted(set(times))
    # prints every 50 ms put trades in every 1 s bucket: no candle may go missing across the outage
    assert all(b - a == 1000 for a, b in itertools.pairwise(times)), times


async def test_long_outage_loses_no_candle() -> None:
    """Every reconnect attempt is cut for 2 s; afterwards the candles that closed meanwhile arrive, in order. On a
    fake clock shared with the sandbox, driven at 5x: the 2 s outage (on that clock) lasts 0.4 s of real time."""
    async with clocked_sandbox() as (sandbox, clock, _rest), driving(clock):
        await _long_outage(sandbox, clock)


async def _long_outage(sandbox: Sandbox, clock: FakeClock) -> None:
    strategy = Recorder()
    runner = LiveRunner(bot_config("Recorder", duration_s=100), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False, **clock.clocks())
    task = asyncio.create_task(runner.run())
    try:
        await _until(lambda: len(strategy.candles) >= 2)
        sandbox.set_faults(ws_drop_rate=1.0)
        sandbox.hub.drop_all()
        cut = clock.now
        await _until(lambda: clock.now >= cut + 2.0)  # 2 s of the exchange's clock
        sandbox.set_faults(ws_drop_rate=0.0)
        before = len(strategy.candles)
        await _until(lambda: len(strategy.candles) >= before + 3, timeout=10)
    finally:
        runner.stop_event.set()
        summary = await task
    times = [c.time_ms for c, _ in strategy.candles]
    assert summary.reconnects >= 1  # how many attempts the 2 s outage cut depends on timing; one is certain
    assert all(b - a == 1000 for a, b in itertools.pairwise(times)), times
