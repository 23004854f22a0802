"""Private REST v4 with HMAC, written from the documented examples (docs/whitebit.md §2.3-2.5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from botkit.sandbox.server import Sandbox

from .sandbox_signing import next_nonce, post_signed, signed_request

TOO_MANY = {"code": 0, "errors": {}, "message": "Too many requests."}
OUTSIDE_WINDOW = {"code": 0, "errors": {}, "message": "Your nonce is more than 5 seconds lesser than the current nonce"}
ORDER_KEYS = {
    "orderId", "clientOrderId", "market", "side", "type", "timestamp", "dealMoney", "dealStock", "amount", "left",
    "dealFee", "feeAsset", "price", "postOnly", "ioc", "status", "stp", "rpi",  # OrderResponse, docs §2.4
}


async def balances(client: httpx.AsyncClient, key: str = "demo-key", secret: str = "demo-secret") -> dict[str, Any]:
    r = await post_signed(client, "/api/v4/trade-account/balance", key=key, secret=secret)
    assert r.status_code == 200, r.text
    return dict(r.json())


def assert_non_negative(bal: dict[str, Any]) -> None:
    for asset, b in bal.items():
        assert Decimal(b["available"]) >= 0 and Decimal(b["freeze"]) >= 0, (asset, b)


async def best(client: httpx.AsyncClient, market: str = "BTC_USDT") -> tuple[Decimal, Decimal]:
    book = (await client.get(f"/api/v4/public/orderbook/{market}", params={"limit": 1})).json()
    return Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])


async def test_balance_shape(client: httpx.AsyncClient) -> None:
    bal = await balances(client)
    assert bal["USDT"] == {"available": "100000", "freeze": "0"}
    one = await post_signed(client, "/api/v4/trade-account/balance", {"ticker": "BTC"})
    assert one.json() == {"available": "1", "freeze": "0"}


async def test_auth_failures_are_whitebit_shaped(client: httpx.AsyncClient) -> None:
    path = "/api/v4/trade-account/balance"
    # unknown key
    r = await post_signed(client, path, key="nobody", secret="x")
    assert r.status_code == 401 and r.json()["code"] == 10 and r.json()["message"] == "Unauthorized request."
    # wrong secret -> bad signature
    r = await post_signed(client, path, secret="wrong")
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized request."
    # spaced JSON body while the payload is compact: the body bytes are not the signed bytes
    headers, raw = signed_request(path)
    r = await client.post(path, content=raw.replace(b",", b", "), headers=headers)
    assert r.status_code == 400 and r.json() == {"code": 9, "message": "Invalid payload.", "errors": {}}
    # `request` must equal the path
    headers, raw = signed_request("/api/v4/orders")
    r = await client.post(path, content=raw, headers=headers)
    assert r.status_code == 401
    # a signature header that is not even hex
    headers, raw = signed_request(path)
    r = await client.post(path, content=raw, headers={**headers, "X-TXC-SIGNATURE": b"zz\xe9"})
    assert r.status_code == 401 and r.json()["code"] == 10
    # missing payload header
    r = await client.post(path, content=b"{}", headers={"X-TXC-APIKEY": "demo-key"})
    assert r.status_code == 401 and r.json()["message"] == "Payload not provided."


async def test_nonce_rules(client: httpx.AsyncClient) -> None:
    path = "/api/v4/trade-account/balance"
    n = next_nonce()
    assert (await post_signed(client, path, nonce=n, nonce_window=None)).status_code == 200
    # without nonceWindow: must be strictly greater than the last one
    r = await post_signed(client, path, nonce=n, nonce_window=None)
    assert r.status_code == 429 and r.json() == TOO_MANY
    assert (await post_signed(client, path, nonce=n + 1, nonce_window=None)).status_code == 200
    # with nonceWindow: within +-5 s of server time and unused, order does not matter
    w = next_nonce() + 2000
    assert (await post_signed(client, path, nonce=w, nonce_window=True)).status_code == 200
    assert (await post_signed(client, path, nonce=w - 1000, nonce_window=True)).status_code == 200
    assert (await post_signed(client, path, nonce=w, nonce_window=True)).json() == TOO_MANY  # reused
    # outside the window: the documented nonce message, not "Too many requests." (docs/whitebit.md §2.3)
    r = await post_signed(client, path, nonce=next_nonce() - 60_000, nonce_window=True)
    assert r.status_code == 429 and r.json() == OUTSIDE_WINDOW  # a minute old
    r = await post_signed(client, path, nonce=next_nonce() // 1000, nonce_window=True)  # seconds, not ms
    assert r.status_code == 429 and r.json() == OUTSIDE_WINDOW


async def test_permissions_enforced(client: httpx.AsyncClient) -> None:
    order = {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "30000"}
    r = await post_signed(client, "/api/v4/order/new", order, key="reader-key", secret="reader-secret")
    assert r.status_code == 403 and r.json()["code"] == 4
    r = await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"}, key="reader-key", secret="reader-secret")
    assert r.status_code == 200 and r.json() == []


async def test_limit_order_rests_freezes_and_cancels(client: httpx.AsyncClient) -> None:
    bid, _ = await best(client)
    price = bid - Decimal(500)
    body = {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": str(price), "postOnly": False,
            "ioc": False, "clientOrderId": "order1987111", "stp": "no"}
    r = await post_signed(client, "/api/v4/order/new", body)
    assert r.status_code == 200, r.text
    o = r.json()
    assert set(o) == ORDER_KEYS
    assert o["left"] == "0.01" and o["dealStock"] == "0" and o["type"] == "limit"
    assert o["clientOrderId"] == "order1987111"
    bal = await balances(client)
    assert Decimal(bal["USDT"]["freeze"]) == price * Decimal("0.01")
    assert Decimal(bal["USDT"]["available"]) + Decimal(bal["USDT"]["freeze"]) == Decimal(100000)
    listed = (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json()
    assert [x["orderId"] for x in listed] == [o["orderId"]]
    # duplicate open clientOrderId in the same market
    dup = await post_signed(client, "/api/v4/order/new", body)
    assert dup.status_code == 422 and dup.json()["code"] == 36 and "clientOrderId" in dup.json()["errors"]
    c = await post_signed(client, "/api/v4/order/cancel", {"market": "BTC_USDT", "orderId": o["orderId"]})
    assert c.status_code == 200 and c.json()["status"] == "CANCELED" and "takerFee" in c.json()
    assert (await balances(client))["USDT"] == {"available": "100000", "freeze": "0"}
    again = await post_signed(client, "/api/v4/order/cancel", {"market": "BTC_USDT", "orderId": o["orderId"]})
    assert again.status_code == 400
    assert again.json() == {"code": 2, "message": "Inner validation failed",
                            "errors": {"orderId": ["Unexecuted order was not found."]}}


async def test_validation_errors(client: httpx.AsyncClient) -> None:
    def order(**kw: Any) -> dict[str, Any]:
        return {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "30000", **kw}

    r = await post_signed(client, "/api/v4/order/new", order(amount="0.0000001"))
    assert r.status_code == 422 and r.json()["code"] == 32 and r.json()["message"] == "Validation failed"
    assert "Min amount step = 0.000001" in r.json()["errors"]["amount"]
    r = await post_signed(client, "/api/v4/order/new", order(price="30000.001"))
    assert r.json()["code"] == 33 and r.json()["errors"]["price"] == ["Min price step = 0.01"]
    r = await post_signed(client, "/api/v4/order/new", order(amount="0.00002", price="100"))
    assert r.json()["code"] == 30 and "total" in r.json()["errors"]
    r = await post_signed(client, "/api/v4/order/new", order(postOnly=True, ioc=True))
    assert r.status_code == 422 and r.json()["code"] == 37
    r = await post_signed(client, "/api/v4/order/new", order(market="NOPE_USDT"))
    assert r.json()["code"] == 31 and "market" in r.json()["errors"]
    r = await post_signed(client, "/api/v4/order/new", order(amount="10", price="30000"))  # 300k USDT > balance
    assert r.status_code == 400
    assert r.json() == {"code": 10, "message": "Inner validation failed", "errors": {"amount": ["Not enough balance."]}}
    assert_non_negative(await balances(client))


async def test_taker_fill_moves_balances_exactly(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.liquidity.clear()  # freeze the house book for exact arithmetic
    _, ask = await best(client)
    asks = (await client.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 1})).json()["asks"]
    ask_qty = Decimal(asks[0][1])
    amount = min(ask_qty, Decimal("0.1"))
    r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": str(amount),
                                                        "price": str(ask + 1000), "clientOrderId": "t1"})
    o = r.json()
    assert Decimal(o["dealStock"]) == amount and o["left"] == "0" and o["status"] == "FILLED"
    assert Decimal(o["dealMoney"]) == amount * ask  # filled at the maker's price, not the limit
    fee = amount * Decimal("0.001")
    assert Decimal(o["dealFee"]) == fee
    bal = await balances(client)
    assert Decimal(bal["BTC"]["available"]) == 1 + amount - fee
    assert Decimal(bal["USDT"]["available"]) == 100000 - amount * ask and bal["USDT"]["freeze"] == "0"
    deals = (await post_signed(client, "/api/v4/trade-account/executed-history", {"market": "BTC_USDT"})).json()
    assert deals[0]["orderId"] == o["orderId"] and deals[0]["role"] == 2 and deals[0]["feeAsset"] == "BTC"
    grouped = (await post_signed(client, "/api/v4/trade-account/executed-history", {})).json()
    assert list(grouped) == ["BTC_USDT"]
    hist = (await post_signed(client, "/api/v4/trade-account/order/history", {"market": "BTC_USDT"})).json()
    assert hist["BTC_USDT"][0]["id"] == o["orderId"] and hist["BTC_USDT"][0]["status"] == "FILLED"


async def test_market_orders(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.liquidity.clear()
    r = await post_signed(client, "/api/v4/order/market", {"market": "BTC_USDT", "side": "buy", "amount": "50",
                                                           "clientOrderId": "x1"})
    o = r.json()
    assert r.status_code == 200 and o["type"] == "market"
    assert Decimal(o["dealMoney"]) <= 50 and Decimal(o["dealStock"]) > 0
    r = await post_signed(client, "/api/v4/order/stock_market", {"market": "BTC_USDT", "side": "sell",
                                                                 "amount": "0.001"})
    o = r.json()
    assert o["type"] == "stock market" and o["dealStock"] == "0.001"
    bal = await balances(client)
    assert_non_negative(bal)
    assert bal["USDT"]["freeze"] == "0" and bal["BTC"]["freeze"] == "0"
    r = await post_signed(client, "/api/v4/order/stock_market", {"market": "BTC_USDT", "side": "buy", "amount": "5"})
    assert r.status_code == 400 and r.json()["errors"] == {"amount": ["Not enough balance."]}


async def test_bulk_modify_cancel_all(client: httpx.AsyncClient) -> None:
    bid, _ = await best(client)
    p = str(bid - 1000)
    orders = [
        {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": p, "clientOrderId": "b1"},
        {"market": "BTC_USDT", "side": "buy", "amount": "0.0000001", "price": p},
        {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": p, "clientOrderId": "b3"},
    ]
    r = await post_signed(client, "/api/v4/order/bulk", {"orders": orders, "stopOnFail": False})
    items = r.json()
    assert [i["error"] is None for i in items] == [True, False, True]
    assert items[1]["error"]["code"] == 32
    first = items[0]["result"]
    m = await post_signed(client, "/api/v4/order/modify", {"market": "BTC_USDT", "clientOrderId": "b1",
                                                           "price": str(bid - 900)})
    new = m.json()
    assert m.status_code == 200 and new["orderId"] != first["orderId"] and new["clientOrderId"] == "b1"
    assert new["price"] == str(bid - 900)
    assert (await post_signed(client, "/api/v4/order/cancel/all", {"market": "BTC_USDT"})).json() == []
    assert (await post_signed(client, "/api/v4/orders", {})).json() == []
    assert (await balances(client))["USDT"] == {"available": "100000", "freeze": "0"}


async def test_kill_switch_cancels_on_time(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    bid, _ = await best(client)
    await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01",
                                                    "price": str(bid - 1000)})
    r = await post_signed(client, "/api/v4/order/kill-switch", {"market": "BTC_USDT", "timeout": "5",
                                                                "types": ["spot"]})
    ks = r.json()
    assert r.status_code == 200 and ks["cancellationTime"] - ks["startTime"] == 5 and ks["types"] == ["spot"]
    status = (await post_signed(client, "/api/v4/order/kill-switch/status", {"market": "BTC_USDT"})).json()
    assert status == [ks]
    sandbox.exchange.fire_kill_switches(ks["cancellationTime"] + 0.1)  # no need to wait 5 s of wall time
    assert (await post_signed(client, "/api/v4/orders", {"market": "BTC_USDT"})).json() == []
    r = await post_signed(client, "/api/v4/order/kill-switch", {"market": "BTC_USDT", "timeout": "1"})
    assert r.status_code == 422 and "timeout" in r.json()["errors"]


async def test_websocket_token(client: httpx.AsyncClient) -> None:
    r = await post_signed(client, "/api/v4/profile/websocket_token")
    token = r.json()["websocket_token"]
    assert r.status_code == 200 and isinstance(token, str) and len(token) > 16


async def test_websocket_token_rate_limit(client: httpx.AsyncClient) -> None:
    codes = [(await post_signed(client, "/api/v4/profile/websocket_token")).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    r = await post_signed(client, "/api/v4/profile/websocket_token")
    assert r.status_code == 429 and not r.headers["content-type"].startswith("application/json")
