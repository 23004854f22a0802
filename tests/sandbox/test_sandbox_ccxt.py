"""Conformance: ccxt's WhiteBIT client (REST and ccxt.pro WebSocket), unchanged except for its base URLs, against the
sandbox. Every call a bot makes on its first day must work; each failure here is a sandbox bug.

ccxt is pointed at 127.0.0.1 for every URL it knows, and its transport refuses any other host, so the test can
never reach the internet. Each call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config

ccxt_async = pytest.importorskip("ccxt.async_support", reason="ccxt is a test dependency: pip install -e .[dev]")
ccxt_pro = pytest.importorskip("ccxt.pro")

T = TypeVar("T")
SYMBOL = "BTC/USDT"


async def bounded(call: Awaitable[T], seconds: float = 15) -> T:
    return await asyncio.wait_for(call, seconds)


def local_urls(sb: Sandbox) -> dict[str, Any]:
    base = sb.base_url
    return {
        "v1": {"public": f"{base}/api/v1/public", "private": f"{base}/api/v1"},
        "v2": {"public": f"{base}/api/v2/public"},
        "v4": {"public": f"{base}/api/v4/public", "private": f"{base}/api/v4"},
        "web": base,
        "ws": sb.ws_url,
    }


def _only_local(ex: Any, sb: Sandbox) -> Any:
    """Refuse any HTTP or WebSocket URL that is not the sandbox (ccxt must not touch the internet)."""
    http_fetch, ws_client = ex.fetch, getattr(ex, "client", None)

    async def fetch(url: str, *args: Any, **kwargs: Any) -> Any:
        assert url.startswith(sb.base_url + "/"), f"ccxt tried to reach {url}"
        return await http_fetch(url, *args, **kwargs)

    def client(url: str) -> Any:
        assert url.startswith(sb.ws_url), f"ccxt.pro tried to reach {url}"
        assert ws_client is not None
        return ws_client(url)

    ex.fetch = fetch
    if ws_client is not None:
        ex.client = client
    return ex


def make(cls: Any, sb: Sandbox) -> Any:
    ex = cls({
        "apiKey": "demo-key", "secret": "demo-secret", "enableRateLimit": False, "timeout": 10_000,
        "options": {"brokerId": None, "adjustForTimeDifference": False},
    })
    ex.urls["api"] = local_urls(sb)
    return _only_local(ex, sb)


@pytest_asyncio.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with running_sandbox(test_config()) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def rest(sb: Sandbox) -> AsyncIterator[Any]:
    ex = make(ccxt_async.whitebit, sb)
    try:
        yield ex
    finally:
        await ex.close()


@pytest_asyncio.fixture
async def pro(sb: Sandbox) -> AsyncIterator[Any]:
    ex = make(ccxt_pro.whitebit, sb)
    try:
        yield ex
    finally:
        await ex.close()


async def test_public_rest(rest: Any) -> None:
    markets = await bounded(rest.load_markets())
    btc = markets[SYMBOL]
    assert btc["id"] == "BTC_USDT" and btc["precision"]["amount"] == 1e-06 and btc["precision"]["price"] == 0.01
    assert btc["limits"]["amount"]["min"] == 1e-05 and btc["maker"] == 0.001
    assert "USDT" in rest.currencies  # from /api/v4/public/assets
    ticker = await bounded(rest.fetch_ticker(SYMBOL))
    assert ticker["last"] > 0 and ticker["bid"] < ticker["ask"]
    tickers = await bounded(rest.fetch_tickers())
    assert {SYMBOL, "ETH/USDT"} <= set(tickers) and tickers[SYMBOL]["last"] > 0
    book = await bounded(rest.fetch_order_book(SYMBOL, 10))
    assert len(book["bids"]) == 10 and book["bids"][0][0] < book["asks"][0][0]
    trades = await bounded(rest.fetch_trades(SYMBOL))
    assert trades and trades[0]["symbol"] == SYMBOL and trades[0]["amount"] > 0
    candles = await bounded(rest.fetch_ohlcv(SYMBOL, "1m", limit=30))
    assert len(candles) == 30 and all(c[2] >= max(c[1], c[4]) and c[3] <= min(c[1], c[4]) for c in candles)
    assert await bounded(rest.fetch_time()) > 0
    fees = await bounded(rest.fetch_trading_fees())  # from /api/v4/public/assets, percent / 100
    assert fees[SYMBOL]["maker"] == 0.001 and fees[SYMBOL]["taker"] == 0.001


async def test_private_rest_orders_and_trades(rest: Any) -> None:
    await bounded(rest.load_markets())
    balance = await bounded(rest.fetch_balance())
    assert balance["USDT"]["free"] == 100000 and balance["BTC"]["total"] == 1
    book = await bounded(rest.fetch_order_book(SYMBOL, 5))
    low = round(book["bids"][0][0] * 0.9, 2)
    placed = await bounded(rest.create_order(SYMBOL, "limit", "buy", 0.01, low, {"clientOrderId": "ccxt-1"}))
    assert placed["id"] and placed["clientOrderId"] == "ccxt-1"
    open_orders = await bounded(rest.fetch_open_orders(SYMBOL))
    assert [o["id"] for o in open_orders] == [placed["id"]] and open_orders[0]["price"] == low
    assert open_orders[0]["remaining"] == 0.01 and open_orders[0]["status"] == "open"
    frozen = await bounded(rest.fetch_balance())
    assert Decimal(str(frozen["USDT"]["used"])) == Decimal(str(low)) * Decimal("0.01")
    canceled = await bounded(rest.cancel_order(placed["id"], SYMBOL))
    assert canceled["id"] == placed["id"]
    assert await bounded(rest.fetch_open_orders(SYMBOL)) == []
    trigger = round(book["bids"][0][0] * 0.8, 2)  # a stop-loss far below: it waits
    stop = await bounded(rest.create_order(SYMBOL, "limit", "sell", 0.01, trigger, {"triggerPrice": trigger}))
    waiting = await bounded(rest.fetch_open_orders(SYMBOL))
    assert [o["id"] for o in waiting] == [stop["id"]] and waiting[0]["triggerPrice"] == trigger
    await bounded(rest.cancel_order(stop["id"], SYMBOL))
    bought = await bounded(rest.create_order(SYMBOL, "market", "buy", 0.002))  # amount in base: stock_market
    assert bought["id"]
    sold = await bounded(rest.create_order(SYMBOL, "market", "sell", 0.001))
    assert sold["id"]
    mine = await bounded(rest.fetch_my_trades(SYMBOL))
    assert {t["order"] for t in mine} >= {bought["id"], sold["id"]}
    assert {t["side"] for t in mine} == {"buy", "sell"} and all(t["fee"]["cost"] > 0 for t in mine)
    closed = await bounded(rest.fetch_closed_orders(SYMBOL))
    assert {bought["id"], sold["id"]} <= {o["id"] for o in closed}
    after = await bounded(rest.fetch_balance())
    assert 1.0009 < after["BTC"]["total"] < 1.001  # +0.002 -0.001 less the fee in BTC on the buy


async def test_ccxt_pro_market_streams(pro: Any) -> None:
    await bounded(pro.load_markets())
    book = await bounded(pro.watch_order_book(SYMBOL, 10))
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    ticker = await bounded(pro.watch_ticker(SYMBOL))
    assert ticker["symbol"] == SYMBOL and ticker["last"] > 0
    trades = await bounded(pro.watch_trades(SYMBOL))
    assert trades and trades[0]["symbol"] == SYMBOL and trades[0]["price"] > 0


async def subscribed(sb: Sandbox) -> None:
    """Until the sandbox has ccxt.pro's order, deal and all-asset balance subscriptions (a loaded machine is slow)."""
    for _ in range(500):
        if any("BTC_USDT" in c.pending and "BTC_USDT" in c.deals and c.balance_all for c in sb.hub.conns):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("ccxt.pro never subscribed to ordersPending, deals and balanceSpot")


async def test_ccxt_pro_private_streams(pro: Any, rest: Any, sb: Sandbox) -> None:
    await bounded(pro.load_markets())
    await bounded(rest.load_markets())
    balance = await bounded(pro.watch_balance())  # balanceSpot_subscribe [] = every asset
    assert "USDT" in balance
    orders = asyncio.ensure_future(pro.watch_orders(SYMBOL))
    fills = asyncio.ensure_future(pro.watch_my_trades(SYMBOL))
    moved = asyncio.ensure_future(pro.watch_balance())
    await subscribed(sb)
    placed = await bounded(rest.create_order(SYMBOL, "market", "buy", 0.001))
    got_orders = await bounded(orders)
    assert placed["id"] in {o["id"] for o in got_orders}
    assert next(o for o in got_orders if o["id"] == placed["id"])["filled"] == 0.001
    got_fills = await bounded(fills)
    assert placed["id"] in {t["order"] for t in got_fills} and got_fills[0]["symbol"] == SYMBOL
    balance = await bounded(moved)  # the fill moved BTC and USDT
    assert balance["BTC"]["total"] > 1 and balance["USDT"]["total"] < 100000
