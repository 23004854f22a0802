"""Conformance: WhiteBIT's official Python SDK (`whitebit-python-sdk`, Fern-generated, sync) against the sandbox,
unchanged except for its environment's base URL, signing with the SDK's own `HmacTransport`.

The SDK declares `websockets<11` and `urllib3<2` (it has no WebSocket code), which conflict with botkit's own
dependencies, so it cannot sit in the `dev` extra; install it with `pip install --no-deps whitebit-python-sdk==1.1.17`
(its real imports, httpx and pydantic, are already there). Without it this module is skipped with that reason.
The SDK is synchronous: each call runs in a worker thread while the sandbox serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config

whitebit = pytest.importorskip(
    "whitebit", reason="install the official SDK with: pip install --no-deps whitebit-python-sdk==1.1.17 "
    "(its declared websockets<11 pin conflicts with botkit's dependencies)")
from whitebit.environment import WhitebitApiEnvironment  # noqa: E402
from whitebit.hmac_transport import HmacTransport  # noqa: E402

T = TypeVar("T")


async def call(fn: Callable[..., T], /, **kw: Any) -> T:
    """One SDK call in a thread, bounded in time (the httpx client also has a 10 s timeout)."""
    return await asyncio.wait_for(asyncio.to_thread(fn, **kw), 20)


def local_only(sb: Sandbox) -> httpx.BaseTransport:
    """The SDK's own signing transport over a transport that refuses any host but the sandbox."""
    inner = httpx.HTTPTransport()

    class LocalOnly(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            assert str(request.url).startswith(sb.base_url + "/"), f"the SDK tried to reach {request.url}"
            return inner.handle_request(request)

    return HmacTransport(api_secret="demo-secret", wrapped=LocalOnly())


@pytest_asyncio.fixture
async def sdk() -> AsyncIterator[tuple[Any, Sandbox]]:
    async with running_sandbox(test_config()) as sb:
        env = WhitebitApiEnvironment(base=sb.base_url, production=sb.ws_url, eu=sb.ws_url)
        http = httpx.Client(transport=local_only(sb), timeout=10)
        api = whitebit.WhitebitApi(environment=env, api_key="demo-key", txc_payload="", txc_signature="",
                                   httpx_client=http)
        try:
            yield api, sb
        finally:
            http.close()


async def test_sdk_public(sdk: tuple[Any, Sandbox]) -> None:
    api, _ = sdk
    pub = api.public_api_v4
    markets = await call(pub.market_info)
    assert {m.name for m in markets} == {"BTC_USDT", "ETH_USDT"}
    ticker = await call(pub.market_activity)
    assert Decimal(ticker["BTC_USDT"].last_price) > 0
    assets = await call(pub.asset_status_list)
    assert set(assets) == {"BTC", "ETH", "USDT"}
    fees = await call(pub.fee)
    assert "USDT" in fees
    book = await call(pub.orderbook, market="BTC_USDT", limit=5)
    assert len(book.asks) == 5 and Decimal(book.bids[0][0]) < Decimal(book.asks[0][0])
    trades = await call(pub.recent_trades, market="BTC_USDT")
    assert trades and Decimal(trades[0].price) > 0
    assert (await call(pub.server_time)).time > 0
    assert await call(pub.server_status) == ["pong"]


async def test_sdk_trading(sdk: tuple[Any, Sandbox]) -> None:
    api, sb = sdk
    spot = api.spot_trading
    sign = {"request": "", "nonce": 0}  # the SDK's generated signatures demand them; HmacTransport fills them
    balance = await call(spot.trade_account_balance, ticker=None)
    assert Decimal(balance["USDT"].available) == 100000
    bid = (await call(api.public_api_v4.orderbook, market="BTC_USDT", limit=1)).bids[0][0]
    low = str((Decimal(bid) * Decimal("0.9")).quantize(Decimal("0.01")))
    placed = await call(spot.create_limit_order, market="BTC_USDT", side="buy", amount="0.01", price=low,
                        client_order_id="sdk-1", **sign)
    assert placed.client_order_id == "sdk-1" and placed.left == "0.01"
    active = await call(spot.get_active_orders, market="BTC_USDT", **sign)
    assert [o.order_id for o in active] == [placed.order_id]
    stop = await call(spot.create_stop_limit_order, market="BTC_USDT", side="sell", amount="0.01", price="1000",
                      activation_price="1000", **sign)
    assert stop.type == "stop limit"
    canceled = await call(spot.cancel_order, market="BTC_USDT", order_id=placed.order_id, **sign)
    assert canceled.status == "CANCELED"
    bulk = await call(spot.cancel_bulk_orders, orders=[{"market": "BTC_USDT", "orderId": stop.order_id}], **sign)
    assert bulk[0].result is not None and bulk[0].result.order_id == stop.order_id
    bought = await call(spot.create_market_order, market="BTC_USDT", side="buy", amount="50", **sign)
    assert Decimal("49") < Decimal(bought.deal_money) <= 50 and bought.status == "FILLED"  # amount is quote
    sold = await call(spot.create_stock_market_order, market="BTC_USDT", side="sell", amount="0.001", **sign)
    assert sold.deal_stock == "0.001"
    deals = await call(spot.get_order_deals, order_id=bought.order_id, **sign)
    assert deals.records and deals.records[0].role == 2
    executed = await call(spot.get_executed_order_history, market="BTC_USDT", **sign)
    assert len(executed) >= 2
    history = await call(spot.get_order_history, market="BTC_USDT", **sign)
    assert {placed.order_id, bought.order_id, sold.order_id} <= {o.id for o in history["BTC_USDT"]}
    ks = await call(spot.set_kill_switch, market="BTC_USDT", timeout="10", types=["spot"], **sign)
    assert ks.market == "BTC_USDT"
    fee = await call(api.market_fee.get_market_fee)
    assert fee.taker == "0.1"
    assert sb.exchange.account_orders("demo") == []
