"""Stop orders (trigger on the last price, docs/whitebit.md §2.4) and the kill switch as a dead-man switch."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import websockets

from botkit.sandbox.server import Sandbox

from .sandbox_signing import post_signed
from .test_sandbox_ws import next_update, rpc


async def ws_login(client: httpx.AsyncClient, ws: Any) -> None:
    token = (await post_signed(client, "/api/v4/profile/websocket_token")).json()["websocket_token"]
    assert (await rpc(ws, 1, "authorize", [token, "public"]))["result"] == {"status": "success"}


def last(sandbox: Sandbox) -> Decimal:
    return sandbox.exchange.markets["BTC_USDT"].last_price


async def test_stop_limit_waits_then_triggers_on_the_last_price(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.liquidity.clear()  # the test moves the price itself
    px = last(sandbox)
    stop, limit = px - 100, px + 500  # a limit above the house bids, so it rests once triggered
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws_login(client, ws)
        assert (await rpc(ws, 2, "ordersPending_subscribe", ["BTC_USDT"]))["error"] is None
        r = await post_signed(client, "/api/v4/order/stop_limit", {
            "market": "BTC_USDT", "side": "sell", "amount": "0.01", "price": str(limit),
            "activation_price": str(stop), "clientOrderId": "sl1"})
        assert r.status_code == 200, r.text
        o = r.json()
        assert o["type"] == "stop limit" and o["activated"] == 0 and o["activationCondition"] == "lte"
        assert Decimal(o["activation_price"]) == stop and o["left"] == "0.01"
        event, row = await next_update(ws, "ordersPending_update")
        assert event == 1 and row["id"] == o["orderId"] and row["type"] == 3  # 3 = stop limit on WebSocket
        assert row["status"] == "OPEN"
        listed = (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json()
        assert [x["orderId"] for x in listed] == [o["orderId"]] and listed[0]["activated"] == 0
        bal = (await post_signed(client, "/api/v4/trade-account/balance", {"ticker": "BTC"})).json()
        assert bal == {"available": "0.99", "freeze": "0.01"}  # frozen at placement
        sandbox.exchange.print_trade("BTC_USDT", stop + 1, Decimal("0.001"), "sell")  # above the trigger: waits
        assert (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json()[0]["activated"] == 0
        sandbox.exchange.print_trade("BTC_USDT", stop, Decimal("0.001"), "sell")  # at the trigger: fires
        event, row = await next_update(ws, "ordersPending_update")
        assert event == 1 and row["id"] == o["orderId"]  # activation: a second event 1 with the same id
        assert row["type"] == 3 and row["status"] == "OPEN"  # unchanged on activation
        listed = (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json()
        assert listed[0]["activated"] == 1 and listed[0]["orderId"] == o["orderId"]
        book = (await client.get("/api/v4/public/orderbook/BTC_USDT")).json()
        assert (limit, Decimal("0.01")) in [(Decimal(p), Decimal(q)) for p, q in book["asks"]]  # resting now
        gone = await post_signed(client, "/api/v4/order/cancel", {"market": "BTC_USDT", "orderId": o["orderId"]})
        assert gone.json()["status"] == "CANCELED"
        hist = (await post_signed(client, "/api/v4/trade-account/order/history", {"market": "BTC_USDT"})).json()
        assert hist["BTC_USDT"][0]["type"] == "stop limit" and hist["BTC_USDT"][0]["activated"] == 1


async def test_stop_market_buy_fills_when_the_price_rises(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.liquidity.clear()
    px = last(sandbox)
    r = await post_signed(client, "/api/v4/order/stop_market", {
        "market": "BTC_USDT", "side": "buy", "amount": "100", "activation_price": str(px + 50)})
    o = r.json()
    assert r.status_code == 200 and o["type"] == "stop market" and o["activationCondition"] == "gte"
    usdt = (await post_signed(client, "/api/v4/trade-account/balance", {"ticker": "USDT"})).json()
    assert usdt["freeze"] == "100"  # amount is quote on a buy
    sandbox.exchange.print_trade("BTC_USDT", px + 50, Decimal("0.001"), "buy")
    assert (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json() == []
    deals = (await post_signed(client, "/api/v4/trade-account/order", {"orderId": o["orderId"]})).json()["records"]
    assert deals and all(d["role"] == 2 for d in deals)
    spent = sum(Decimal(d["deal"]) for d in deals)
    assert Decimal("99") < spent <= Decimal("100")
    usdt = (await post_signed(client, "/api/v4/trade-account/balance", {"ticker": "USDT"})).json()
    assert usdt["freeze"] == "0" and Decimal(usdt["available"]) == Decimal("100000") - spent


async def test_stop_validation(client: httpx.AsyncClient) -> None:
    base = {"market": "BTC_USDT", "side": "sell", "amount": "0.01", "price": "30000"}
    r = await post_signed(client, "/api/v4/order/stop_limit", {**base, "activation_price": "abc"})
    assert r.status_code == 422 and r.json()["code"] == 30 and "activation_price" in r.json()["errors"]
    r = await post_signed(client, "/api/v4/order/stop_limit", {**base, "amount": "500", "activation_price": "1"})
    assert r.json() == {"code": 32, "message": "Validation failed", "errors": {"amount": ["Not enough balance."]}}


async def test_kill_switch_cancels_the_orders_of_a_client_that_went_silent(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    """A bot arms the dead-man switch, places orders and stops talking; when the timer runs out the sandbox's own
    pulse cancels them (seen on the private stream). Time is advanced with the clock-skew fault, not a sleep."""
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws_login(client, ws)
        await rpc(ws, 2, "ordersPending_subscribe", ["BTC_USDT"])
        r = await post_signed(client, "/api/v4/order/kill-switch", {"market": "BTC_USDT", "timeout": "5",
                                                                    "types": ["spot"]})
        assert r.status_code == 200
        deadline = r.json()["cancellationTime"]
        placed = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy",
                                                                 "amount": "0.01", "price": "1000"})
        stop = await post_signed(client, "/api/v4/order/stop_limit", {
            "market": "BTC_USDT", "side": "sell", "amount": "0.01", "price": "1000", "activation_price": "1000"})
        ids = {placed.json()["orderId"], stop.json()["orderId"]}
        for _ in ids:
            assert (await next_update(ws, "ordersPending_update"))[0] == 1
        # silence; the sandbox's clock is moved to 2 s before the deadline (nothing happens), then past it
        sandbox.set_faults(clock_skew_s=deadline - 2 - time.time())
        await asyncio.sleep(0.1)  # several pulses
        status = sandbox.exchange.kill_switch_status("demo", "BTC_USDT")
        assert len(status) == 1 and len(sandbox.exchange.account_orders("demo")) == 2
        sandbox.set_faults(clock_skew_s=deadline + 1 - time.time())
        finished = set()
        while finished != ids:
            event, row = await next_update(ws, "ordersPending_update", timeout=5)
            assert event == 3 and row["status"] == "CANCELED"
            finished.add(row["id"])
    assert sandbox.exchange.account_orders("demo") == [] and sandbox.exchange.kill_switch_status("demo") == []


async def test_new_websocket_methods(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.liquidity.clear()
    ask = (await client.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 1})).json()["asks"][0]
    filled = (await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy",
                                                              "amount": "0.001", "price": ask[0]})).json()
    async with websockets.connect(sandbox.ws_url) as ws:
        stats = (await rpc(ws, 1, "market_request", ["BTC_USDT", 86400]))["result"]
        assert set(stats) == {"period", "last", "open", "close", "high", "low", "volume", "deal"}
        assert stats["period"] == 86400 and stats["last"] == ask[0]
        assert (await rpc(ws, 2, "market_subscribe", ["BTC_USDT"]))["result"] == {"status": "success"}
        market, body = await next_update(ws, "market_update")
        assert market == "BTC_USDT" and body["period"] == 86400
        assert (await rpc(ws, 3, "marketToday_subscribe", ["ETH_USDT"]))["error"] is None
        market, body = await next_update(ws, "marketToday_update")
        assert market == "ETH_USDT" and set(body) == {"last", "open", "high", "low", "volume", "deal"}
        today = (await rpc(ws, 4, "marketToday_query", ["BTC_USDT"]))["result"]
        assert today["last"] == ask[0]
        trades = (await rpc(ws, 5, "trades_request", ["BTC_USDT", 3, 0]))["result"]
        assert len(trades) == 3 and trades[0]["price"] == ask[0] and trades[0]["type"] == "buy"
        newer = (await rpc(ws, 6, "trades_request", ["BTC_USDT", 100, trades[1]["id"]]))["result"]
        assert [t["id"] for t in newer] == [trades[0]["id"]]
        assert (await rpc(ws, 7, "deals_request", ["BTC_USDT", 0, 10]))["error"]["code"] == 6  # not authorized
        await ws_login(client, ws)
        deals = (await rpc(ws, 8, "deals_request", ["BTC_USDT", 0, 10]))["result"]
        assert deals["offset"] == 0 and deals["limit"] == 10 and deals["records"][0]["order_id"] == filled["orderId"]
        executed = (await rpc(ws, 9, "ordersExecuted_request", [{"market": "BTC_USDT", "order_types": [1, 2]}, 0,
                                                                 10]))["result"]
        assert executed["records"][0]["id"] == filled["orderId"] and executed["records"][0]["status"] == "FILLED"
        none = (await rpc(ws, 10, "ordersExecuted_request", [{"market": "BTC_USDT", "order_types": [2]}, 0,
                                                             10]))["result"]
        assert none["records"] == []


async def test_balance_subscribe_with_an_empty_list_means_every_asset(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws_login(client, ws)
        assert (await rpc(ws, 2, "balanceSpot_subscribe", []))["result"] == {"status": "success"}
        (first,) = await next_update(ws, "balanceSpot_update")
        assert set(first) == {"BTC", "ETH", "USDT"}
        await post_signed(client, "/api/v4/order/new", {"market": "ETH_USDT", "side": "sell", "amount": "1",
                                                        "price": "99999"})
        (update,) = await next_update(ws, "balanceSpot_update")
        assert update == {"ETH": {"available": "9", "freeze": "1"}}
        raw = json.dumps(update)
        assert "USDT" not in raw  # only what changed
