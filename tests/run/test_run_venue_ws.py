"""The WhiteBIT venue's failure handling and the WebSocket client's keepalive and request budget, against a real
sandbox on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner
from botkit.execution.engine import ExecutionEngine
from botkit.execution.risk import RiskLimits, RiskManager
from botkit.market.rules import MarketRules
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock, running_sandbox
from botkit.venues.whitebit import WhiteBitVenue
from botkit.whitebit.rest import WhiteBitRest
from botkit.whitebit.ws import Connected, RateBudget, Stale, WsClient, WsEvent

from .conftest import driving, fast_config

RULES = {"BTC_USDT": MarketRules(name="BTC_USDT", stock="BTC", money="USDT", stock_prec=6, money_prec=2,
                                 min_amount=Decimal("0.00001"), min_total=Decimal("1"))}


async def _venue_engine(rest: WhiteBitRest) -> tuple[WhiteBitVenue, ExecutionEngine]:
    venue = WhiteBitVenue(rest, RULES, ws_url=None, lost_order_grace_s=0.3)
    engine = ExecutionEngine(grant=rest.key_grant, declared_scopes={"orders.create", "orders.delete"},  # type: ignore[arg-type]
                             rules=RULES, risk=RiskManager(RiskLimits()), venue=venue,
                             clock=lambda: int(time.time() * 1000), last_price=lambda m: None)
    await venue.start()
    return venue, engine


async def _price(rest: WhiteBitRest) -> Decimal:
    return Decimal((await rest.call("ticker"))["BTC_USDT"]["last_price"])


async def test_ambiguous_failure_is_resolved_by_client_order_id_never_resent(sandbox: Sandbox,
                                                                          rest: WhiteBitRest) -> None:
    venue, engine = await _venue_engine(rest)
    price = (await _price(rest) * Decimal("0.9")).quantize(Decimal("0.01"))
    # "amb-1" reached the exchange but its answer was lost: here it is placed first, then the bot's call fails.
    await rest.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "0.001", "price": str(price),
                                  "clientOrderId": "amb-1"})
    sandbox.set_faults(error_rates={"/api/v4/order/new": {"500": 1.0}})
    placed = engine.place("BTC_USDT", "buy", "0.001", price, client_id="amb-1")
    lost = engine.place("BTC_USDT", "buy", "0.001", price, client_id="amb-2")
    await venue.settle()
    sandbox.set_faults(error_rates={})
    assert placed.status.value == "open" and placed.exchange_id is not None
    assert lost.status.value == "rejected" and "did not reach the exchange" in (lost.reject_reason or "")
    open_orders = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100})
    assert [o["clientOrderId"] for o in open_orders] == ["amb-1"]  # found, not sent twice; amb-2 never placed
    assert str(open_orders[0]["orderId"]) == placed.exchange_id


class AnswerEater:
    """A TCP proxy to the sandbox that relays everything, except that it swallows the answer to the first
    order/new request and cuts that connection: the order reached the exchange, its answer never came back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.eaten = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        eat = asyncio.Event()

        async def up() -> None:
            while data := await cr.read(65536):
                if b"POST /api/v4/order/new" in data and self.eaten == 0:
                    self.eaten += 1
                    eat.set()
                sw.write(data)
                await sw.drain()

        async def down() -> None:
            while data := await sr.read(65536):
                if eat.is_set():
                    break  # the exchange answered; the answer is lost on the way back
                cw.write(data)
                await cw.drain()
            cw.close()
            sw.close()

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        cw.close()
        sw.close()


async def test_lost_answer_is_resolved_by_lookup_not_resend(sandbox: Sandbox, rest: WhiteBitRest) -> None:
    """The bot's order/new reaches the exchange but the answer is lost. The venue looks the clientOrderId up and
    finds the order; it never sends it again."""
    price = (await _price(rest) * Decimal("0.9")).quantize(Decimal("0.01"))
    eater = AnswerEater(sandbox.port)
    async with eater as url, httpx.AsyncClient(timeout=5) as http:
        lossy = WhiteBitRest(url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                             key_grant=rest.key_grant)
        venue = WhiteBitVenue(lossy, RULES, ws_url=None, lost_order_grace_s=0.5)
        engine = ExecutionEngine(grant=rest.key_grant, declared_scopes={"orders.create"},  # type: ignore[arg-type]
                                 rules=RULES, risk=RiskManager(RiskLimits()), venue=venue,
                                 clock=lambda: int(time.time() * 1000), last_price=lambda m: None)
        await venue.start()
        order = engine.place("BTC_USDT", "buy", "0.001", price, client_id="lost-answer-1")
        await venue.settle(timeout=10)
    assert eater.eaten == 1
    assert order.status.value == "open", order.reject_reason
    rows = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100})
    assert [r["clientOrderId"] for r in rows] == ["lost-answer-1"]  # exactly one: no blind resend
    assert str(rows[0]["orderId"]) == order.exchange_id


async def test_exchange_rejection_carries_code_and_field_message(sandbox: Sandbox, rest: WhiteBitRest) -> None:
    venue, engine = await _venue_engine(rest)
    price = (await _price(rest)).quantize(Decimal("0.01"))
    order = engine.place("BTC_USDT", "buy", "10", price)  # 10 BTC: far beyond the demo account's USDT
    await venue.settle()
    assert order.status.value == "rejected"
    assert "code 10" in (order.reject_reason or "") and "Not enough balance" in (order.reject_reason or "")
    assert engine.rejections[-1].rule == "exchange"
    assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []


async def test_pings_keep_an_idle_connection_open() -> None:
    """The sandbox's idle timeout and the clients' pings on one fake clock, driven at 5x: 2.5 s take 0.5 s."""
    clock = FakeClock()
    time_kw = {"clock": clock.time, "monotonic": clock.monotonic, "sleep": clock.wait}
    async with running_sandbox(fast_config(ws_idle_timeout=1.0), clock=clock.time) as sb, driving(clock):
        events: list[WsEvent] = []
        ws = WsClient(sb.ws_url, events.append, ping_interval=0.3, stale_after=None, **time_kw)
        ws.subscribe_lastprice(["BTC_USDT"])
        await ws.start()
        silent = WsClient(sb.ws_url, events.append, ping_interval=30, stale_after=None, backoff_base=5, **time_kw)
        await silent.start()
        try:
            await clock.wait(2.5)
            assert ws.connects == 1 and ws.connected  # kept alive by pings past the 1 s idle timeout
            assert silent.connects == 1 and not silent.connected  # the server dropped the silent one
            assert await ws.request("time", []) > 0
        finally:
            await ws.close()
            await silent.close()
        assert sum(isinstance(e, Connected) for e in events) == 2


def test_rate_budget_waits_instead_of_exceeding() -> None:
    now = [0.0]
    budget = RateBudget(3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert budget.delay() == 0
        budget.sent.append(now[0])
        now[0] += 1
    assert budget.delay() == pytest.approx(57.0)  # the first send leaves the window at t=60
    now[0] = 60.0
    assert budget.delay() == 0
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateBudget(0)


async def test_silent_feed_raises_a_staleness_event(sandbox: Sandbox) -> None:
    """The client's clock is a fake one driven at 5x: 0.9 s of silence take 0.18 s."""
    events: list[WsEvent] = []
    clock = FakeClock()
    ws = WsClient(sandbox.ws_url, events.append, stale_after=0.4,  # connected, but subscribed to no data
                  **clock.clocks(), sleep=clock.wait)
    async with driving(clock):
        await ws.start()
        try:
            await clock.wait(0.9)
        finally:
            await ws.close()
    stale = [e for e in events if isinstance(e, Stale)]
    assert len(stale) == 1 and stale[0].silent_s >= 0.4  # reported once per silent spell, not every tick
