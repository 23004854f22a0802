"""OCO emulated by the execution layer on the WhiteBIT venue, against a real sandbox on 127.0.0.1: the cases a
backtest cannot produce (a partial take-profit fill, a take-profit that fills while its cancel is on the way); and
the venue's stop-limit orders (WhiteBIT's order/stop_limit).

The sandbox replays a candles file in lock-step (`pace = "step"`), so the market stands still unless the test moves
it: the take-profit rests as the best ask and only the test's own counterparty (an in-process account of the same
sandbox) trades with it. The stop is triggered the way the event loop does it, through `engine.oco.on_prices`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest_asyncio
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner
from botkit.execution.engine import ExecutionEngine
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.market.grants import Grant
from botkit.market.orders import OCO_REASON, Order
from botkit.sandbox.engine import Balance
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.venues.whitebit import WhiteBitVenue
from botkit.whitebit.rest import WhiteBitRest

D = Decimal
LAST = D("30000.00")
TP = D("30003.00")  # inside the house spread (30000 +- 6): the best ask once it rests


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    path = tmp_path / "candles.csv"
    path.write_text("time_ms,open,high,low,close,volume\n1767571200000,30000,30000,30000,30000,1\n"
                    "1767571260000,30000,30000,29800,29800,1\n"  # stepped by the stop-limit test only
                    "1767571320000,29800,29900,29800,29900,1\n")
    cfg = test_config()
    markets = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={
        "kind": "candles", "file": path, "pace": "step", "level_amount": D("5")})})
        if m.name == "BTC_USDT" else m for m in cfg.markets]
    async with running_sandbox(cfg.model_copy(update={"markets": markets})) as sb:
        sb.replay_step("BTC_USDT", 4)  # one flat candle at 30000: a book around it, then nothing moves
        sb.exchange.balances["taker"] = {"USDT": Balance(available=D("100000")), "BTC": Balance()}
        yield sb


@pytest_asyncio.fixture
async def engine(sandbox: Sandbox) -> AsyncIterator[ExecutionEngine]:
    perms = next(k for a in sandbox.config.accounts if a.name == "demo" for k in a.api_keys).permissions
    rules = {"BTC_USDT": next(m for m in sandbox.config.markets if m.name == "BTC_USDT").rules()}
    async with httpx.AsyncClient(timeout=10) as http:
        rest = WhiteBitRest(sandbox.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                            key_grant=Grant.of(perms))
        venue = WhiteBitVenue(rest, rules, ws_url=sandbox.ws_url)
        eng = ExecutionEngine(grant=Grant.of(perms), declared_scopes={"orders.create", "orders.delete", "orders.read"},
                              rules=rules, risk=RiskManager(RiskLimits()), venue=venue,
                              clock=lambda: int(time.time() * 1000), last_price=lambda m: float(LAST))
        await venue.start()
        try:
            yield eng
        finally:
            await venue.stop()


async def until(what: str, cond: Callable[[], bool], engine: ExecutionEngine) -> None:
    end = time.monotonic() + 30
    while not cond():
        engine.drain()
        if time.monotonic() > end:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.005)


def bracket(engine: ExecutionEngine) -> tuple[Order, Order]:
    tp = engine.place("BTC_USDT", "sell", "0.01", TP, oco_group="g")
    stop = engine.place("BTC_USDT", "sell", "0.01", stop_price="29900", oco_group="g")
    return tp, stop


def trigger(engine: ExecutionEngine) -> None:
    """What the event loop does with a closed candle whose low reaches the stop."""
    engine.oco.on_prices("BTC_USDT", int(time.time() * 1000) + 1, 29_890.0, 30_000.0)


async def test_a_partial_take_profit_shrinks_the_stop_which_then_sells_only_the_rest(sandbox: Sandbox,
                                                                                    engine: ExecutionEngine) -> None:
    tp, stop = bracket(engine)
    assert stop.held and stop.status.value == "open"
    await until("the take-profit rests", lambda: tp.status.value == "open", engine)
    sandbox.exchange.place_limit("taker", "BTC_USDT", "buy", "0.004", str(TP))  # takes part of the take-profit
    await until("the partial fill is seen", lambda: tp.filled == D("0.004"), engine)
    assert stop.amount == D("0.006") and stop.held  # the stop covers what is left
    trigger(engine)
    assert not stop.held and stop.is_open  # waiting for the take-profit's cancel before it sells
    await until("the stop sold", lambda: not stop.is_open, engine)
    assert tp.status.value == "cancelled" and tp.filled == D("0.004")
    assert stop.status.value == "filled" and stop.filled == D("0.006") and stop.type == "stop_market"
    assert stop.fills[0].price == D("29994.00") and not stop.fills[0].maker  # the house bid (level_step 0.0002)
    history = sandbox.exchange.history["demo"]
    sold = [o for o in history if o.client_order_id == stop.client_id]
    assert [(o.type, o.side, o.amount, o.status) for o in sold] == [("market", "sell", D("0.006"), "FILLED")]
    assert [o.status for o in history if o.client_order_id == tp.client_id] == ["CANCELED"]


async def test_a_take_profit_filled_while_its_cancel_is_on_the_way_cancels_the_stop(sandbox: Sandbox,
                                                                                   engine: ExecutionEngine) -> None:
    tp, stop = bracket(engine)
    await until("the take-profit rests", lambda: tp.status.value == "open", engine)
    sandbox.exchange.place_limit("taker", "BTC_USDT", "buy", "0.01", str(TP))  # fills it whole...
    trigger(engine)  # ...before the bot heard of it: its cancel meets a filled order
    await until("the stop is settled", lambda: not stop.is_open, engine)
    assert tp.status.value == "filled" and tp.filled == D("0.01")
    assert stop.status.value == "cancelled" and stop.reject_reason == OCO_REASON and stop.filled == 0
    assert not [o for o in sandbox.exchange.history["demo"] if o.client_order_id == stop.client_id]  # never sent
    assert engine.open == {}


async def test_a_stop_limit_waits_on_the_exchange_then_rests_as_a_limit_and_fills_at_its_price(
        sandbox: Sandbox, engine: ExecutionEngine) -> None:
    sl = engine.place("BTC_USDT", "sell", "0.01", "29890", stop_price="29900")
    assert sl.type == "stop_limit" and not sl.held  # no OCO group: the exchange holds it
    await until("the exchange took it", lambda: sl.status.value == "open", engine)
    (on_exchange,) = [o for o in sandbox.exchange.account_orders("demo") if o.client_order_id == sl.client_id]
    assert (on_exchange.type, on_exchange.price, on_exchange.activation_price, on_exchange.activated) == (
        "stop limit", D("29890"), D("29900"), 0)
    sandbox.replay_step("BTC_USDT", 4)  # the next candle falls to 29800: triggered, it rests above the market
    assert on_exchange.activated == 1 and on_exchange.left == D("0.01")
    await until("the trigger is seen", lambda: engine.venue.queued == 0 and not engine.venue._tasks, engine)  # type: ignore[attr-defined]
    assert sl.status.value == "open" and sl.filled == 0
    sandbox.replay_step("BTC_USDT", 4)  # back up to 29900: the print fills the resting order at its own price
    await until("the fill is seen", lambda: not sl.is_open, engine)
    assert sl.status.value == "filled" and [(f.price, f.amount) for f in sl.fills] == [(D("29890"), D("0.01"))]


async def test_a_held_stop_limit_is_sent_as_a_limit_at_its_price(sandbox: Sandbox, engine: ExecutionEngine) -> None:
    tp = engine.place("BTC_USDT", "sell", "0.01", TP, oco_group="g")
    sl = engine.place("BTC_USDT", "sell", "0.01", "29890", stop_price="29900", oco_group="g")
    assert sl.held and sl.type == "stop_limit"
    await until("the take-profit rests", lambda: tp.status.value == "open", engine)
    trigger(engine)
    await until("the limit was sent and answered", lambda: not sl.is_open, engine)
    (sent,) = [o for o in sandbox.exchange.history["demo"] if o.client_order_id == sl.client_id]
    assert (sent.type, sent.side, sent.price, sent.amount) == ("limit", "sell", D("29890"), D("0.01"))
    # the market (30000, best bid 29994) is still above its limit: it takes the bid, never lower than 29890
    assert sl.status.value == "filled" and [f.price for f in sl.fills] == [D("29994.00")]
    assert tp.status.value == "cancelled" and not sl.held and sl.type == "stop_limit"
