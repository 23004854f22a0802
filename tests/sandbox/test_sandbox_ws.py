"""WebSocket /ws with the plain `websockets` client, messages written from the documented examples (§3)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import websockets

from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock, running_sandbox, test_config

from .sandbox_signing import post_signed


async def rpc(ws: Any, id_: int, method: str, params: list[Any]) -> dict[str, Any]:
    """Send a request and return its response, skipping updates that arrive in between."""
    await ws.send(json.dumps({"id": id_, "method": method, "params": params}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("id") == id_:
            return dict(msg)


async def next_update(ws: Any, method: str, timeout: float = 5) -> list[Any]:
    async def _wait() -> list[Any]:
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("method") == method:
                assert msg["id"] is None
                return list(msg["params"])

    return await asyncio.wait_for(_wait(), timeout)


async def gather_updates(ws: Any, methods: set[str], timeout: float = 5) -> dict[str, list[Any]]:
    """The first update of each method in `methods`, whatever order they arrive in."""
    got: dict[str, list[Any]] = {}

    async def _wait() -> None:
        while set(got) != methods:
            msg = json.loads(await ws.recv())
            if msg.get("method") in methods and msg["method"] not in got:
                got[msg["method"]] = msg["params"]

    await asyncio.wait_for(_wait(), timeout)
    return got


async def test_ping_time_and_errors(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        assert await rpc(ws, 0, "ping", []) == {"id": 0, "result": "pong", "error": None}
        assert isinstance((await rpc(ws, 1, "time", []))["result"], int)
        err = await rpc(ws, 2, "nope_subscribe", [])
        assert err["result"] is None and err["error"] == {"code": 4, "message": "method not found"}
        err = await rpc(ws, 3, "balanceSpot_subscribe", ["USDT"])
        assert err["error"]["code"] == 6  # private channel before authorize


async def test_invalid_json_closes(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws.send("{not json")
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code is not None


async def test_idle_connection_closed_and_request_limit() -> None:
    """On a fake sandbox clock: the requests all come at one instant, then the clock is moved past the idle
    timeout (the next pulse closes the connection) instead of waiting it out."""
    cfg = test_config(ws_idle_timeout=1.0, ws_requests_per_minute=5)
    clock = FakeClock()
    async with running_sandbox(cfg, **clock.clocks()) as sb, websockets.connect(sb.ws_url) as ws:
        results = [await rpc(ws, i, "ping", []) for i in range(6)]
        assert [r["error"] for r in results[:5]] == [None] * 5
        assert results[5]["error"] == {"code": 7, "message": "too many requests"}
        await asyncio.sleep(0.1)
        assert ws.close_code is None  # not idle yet: no time has passed on the sandbox's clock
        clock.advance(1.01)
        await asyncio.wait_for(ws.wait_closed(), 5)  # then silence: closed after the idle timeout
        assert ws.close_code == 1000


async def test_depth_snapshot_then_chained_deltas(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        resp = await rpc(ws, 1, "depth_subscribe", ["BTC_USDT", 20, "0", True])
        assert resp["result"] == {"status": "success"}
        full, data, market = await next_update(ws, "depth_update")
        assert full is True and market == "BTC_USDT" and "past_update_id" not in data
        book = {"asks": {p: q for p, q in data["asks"]}, "bids": {p: q for p, q in data["bids"]}}
        assert len(book["asks"]) == 20 and len(book["bids"]) == 20
        last_id = data["update_id"]
        seen = 0
        while seen < 2:
            # The house requotes on every print (each second); run the walk ahead instead of waiting.
            sandbox.liquidity["BTC_USDT"].tick(sandbox.clock() + 1000 * (seen + 1))
            full, delta, _ = await next_update(ws, "depth_update")
            if full:
                continue
            assert delta["past_update_id"] == last_id
            last_id = delta["update_id"]
            for side in ("asks", "bids"):
                for p, q in delta.get(side, []):
                    if q == "0":
                        book[side].pop(p, None)
                    else:
                        book[side][p] = q
            seen += 1
        rest = (await httpx.AsyncClient().get(sandbox.base_url + "/api/v4/public/orderbook/BTC_USDT",
                                              params={"limit": 20})).json()
        assert sorted(book["asks"].items(), key=lambda x: Decimal(x[0]))[:5] == [tuple(x) for x in rest["asks"][:5]]


async def test_public_channels(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        await rpc(ws, 1, "lastprice_subscribe", ["BTC_USDT"])
        market, price = await next_update(ws, "lastprice_update")
        assert market == "BTC_USDT" and Decimal(price) > 0
        await rpc(ws, 2, "bookTicker_subscribe", ["BTC_USDT"])
        (row,) = await next_update(ws, "bookTicker_update")
        assert row[2] == "BTC_USDT" and len(row) == 8 and Decimal(row[4]) < Decimal(row[6])
        await rpc(ws, 3, "candles_subscribe", ["BTC_USDT", 60])
        (candle,) = await next_update(ws, "candles_update")
        assert len(candle) == 8 and candle[7] == "BTC_USDT" and candle[0] % 60 == 0
        await rpc(ws, 4, "trades_subscribe", ["BTC_USDT"])
        sandbox.exchange.print_trade("BTC_USDT", Decimal("40000.5"), Decimal("0.02"), "buy")
        m, trades = await next_update(ws, "trades_update")
        assert m == "BTC_USDT" and trades[-1]["price"] == "40000.5" and trades[-1]["amount"] == "0.02"
        assert set(trades[-1]) == {"id", "time", "price", "amount", "type", "rpi"}


async def test_private_channels_follow_an_order(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.liquidity.clear()
    token = (await post_signed(client, "/api/v4/profile/websocket_token")).json()["websocket_token"]
    async with websockets.connect(sandbox.ws_url) as ws:
        bad = await rpc(ws, 0, "authorize", ["wrong-token", "public"])
        assert bad["error"] is not None
        ok = await rpc(ws, 1, "authorize", [token, "public"])
        assert ok == {"id": 1, "result": {"status": "success"}, "error": None}
        subscriptions: list[tuple[str, list[Any]]] = [
            ("ordersPending_subscribe", ["BTC_USDT"]),
            ("ordersExecuted_subscribe", [["BTC_USDT"], 0]),
            ("deals_subscribe", [["BTC_USDT"]]),
            ("balanceSpot_subscribe", ["USDT", "BTC"]),
        ]
        for i, (method, params) in enumerate(subscriptions):
            assert (await rpc(ws, 10 + i, method, params))["error"] is None
        (first_bal,) = await next_update(ws, "balanceSpot_update")
        assert first_bal == {"USDT": {"available": "100000", "freeze": "0"}, "BTC": {"available": "1", "freeze": "0"}}
        book = (await client.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 1})).json()
        bid = Decimal(book["bids"][0][0])
        r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01",
                                                            "price": str(bid - 100), "clientOrderId": "ws1"})
        oid = r.json()["orderId"]
        event, order = await next_update(ws, "ordersPending_update")
        assert event == 1 and order["id"] == oid and order["side"] == 2 and order["type"] == 1
        assert order["client_order_id"] == "ws1" and order["left"] == "0.01"
        # a background print through the bid fills the order: event 3, a deal, an executed order
        sandbox.exchange.print_trade("BTC_USDT", bid - 200, Decimal("0.01"), "sell")
        got = await gather_updates(ws, {"ordersPending_update", "deals_update", "ordersExecuted_update"})
        event, order = got["ordersPending_update"]
        assert event == 3 and order["id"] == oid and order["left"] == "0"
        deal = got["deals_update"]
        assert deal[2] == "BTC_USDT" and deal[3] == oid and deal[5] == "0.01" and deal[7] == "ws1" and deal[9] == 1
        (executed,) = got["ordersExecuted_update"]
        assert executed["id"] == oid and executed["deal_stock"] == "0.01"
        seen: dict[str, Any] = {}
        while "BTC" not in seen:
            for item in await next_update(ws, "balanceSpot_update"):
                seen.update(item)
        assert Decimal(seen["BTC"]["available"]) == Decimal("1.01") - Decimal("0.00001")


async def test_modify_is_cancel_then_new(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.liquidity.clear()
    token = (await post_signed(client, "/api/v4/profile/websocket_token")).json()["websocket_token"]
    async with websockets.connect(sandbox.ws_url) as ws:
        await rpc(ws, 1, "authorize", [token, "public"])
        await rpc(ws, 2, "ordersPending_subscribe", ["BTC_USDT"])
        r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "sell", "amount": "0.01",
                                                            "price": "90000", "clientOrderId": "m1"})
        old_id = r.json()["orderId"]
        assert (await next_update(ws, "ordersPending_update"))[0] == 1
        r = await post_signed(client, "/api/v4/order/modify", {"market": "BTC_USDT", "orderId": old_id,
                                                               "price": "91000"})
        new_id = r.json()["orderId"]
        events = [await next_update(ws, "ordersPending_update") for _ in range(2)]
        assert [(e, o["id"]) for e, o in events] == [(3, old_id), (1, new_id)]
        assert events[1][1]["client_order_id"] == "m1" and events[1][1]["price"] == "91000"


async def test_dropped_socket_fault_from_config() -> None:
    base = test_config()
    cfg = base.model_copy(update={"faults": base.faults.model_copy(update={"ws_drop_rate": 1.0})})
    async with running_sandbox(cfg) as sb, websockets.connect(sb.ws_url) as ws:
        await ws.send(json.dumps({"id": 1, "method": "ping", "params": []}))
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed:
            pass
        assert ws.close_code != 1000


async def test_depth_keepalive_snapshot_when_nothing_changes() -> None:
    async with running_sandbox(test_config(depth_keepalive=0.3)) as sb, websockets.connect(sb.ws_url) as ws:
        sb.liquidity.clear()  # a quiet market
        await rpc(ws, 1, "depth_subscribe", ["ETH_USDT", 5, "0", False])
        full, first, _ = await next_update(ws, "depth_update")
        assert full is True
        full, again, market = await next_update(ws, "depth_update", timeout=3)
        assert full is True and market == "ETH_USDT" and "past_update_id" not in again
        assert again["update_id"] > first["update_id"]
        assert again["asks"] == first["asks"] and again["bids"] == first["bids"]
        assert again["timestamp"] - first["timestamp"] >= 0.25


async def test_partial_fill_is_event_2(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.liquidity.clear()
    sandbox.exchange.requote("BTC_USDT", [], [])  # no house quotes: only the two accounts trade
    token = (await post_signed(client, "/api/v4/profile/websocket_token")).json()["websocket_token"]
    async with websockets.connect(sandbox.ws_url) as ws:
        await rpc(ws, 1, "authorize", [token, "public"])
        await rpc(ws, 2, "ordersPending_subscribe", ["BTC_USDT"])
        r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "sell", "amount": "0.02",
                                                            "price": "95000"})
        oid = r.json()["orderId"]
        assert (await next_update(ws, "ordersPending_update"))[0] == 1
        # another account (the read-only one, trading in-process) takes half of it
        sandbox.exchange.place_limit("reader", "BTC_USDT", "buy", "0.01", "95000")
        event, order = await next_update(ws, "ordersPending_update")
        assert event == 2 and order["id"] == oid and order["left"] == "0.01" and order["deal_stock"] == "0.01"
        assert order["status"] == "PARTIALLY_FILLED"
