"""Bearer-authenticated account reads (/api/v4/accounts/*), with a token obtained over the sandbox's own OAuth."""

from __future__ import annotations

import urllib.parse

import httpx

from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox

from .sandbox_signing import post_signed


async def access_token(client: httpx.AsyncClient) -> str:
    r = await client.get("/auth/login", params={"clientId": "botkit-demo", "state": "s1"}, follow_redirects=False)
    assert r.status_code == 302, r.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)
    assert query["state"] == ["s1"]
    form = {"client_id": "botkit-demo", "client_secret": "botkit-demo-secret", "code": query["code"][0]}
    tok = await client.post("/oauth2/token", data=form)
    assert tok.status_code == 200, tok.text
    return str(tok.json()["data"]["access_token"])


async def test_account_reads_with_scopes_and_revocation(client: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    token = await access_token(client)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    r = await client.post("/api/v4/accounts/balances/spot", json={}, headers=auth)
    assert r.status_code == 200 and r.json()["USDT"] == {"available": "100000", "freeze": "0"}
    # an order placed with the HMAC key of the same account shows up in the Bearer order history
    placed = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01",
                                                             "price": "1000"})
    oid = placed.json()["orderId"]
    await post_signed(client, "/api/v4/order/cancel", {"market": "BTC_USDT", "orderId": oid})
    hist = (await client.post("/api/v4/accounts/orders", json={"market": "BTC_USDT"}, headers=auth)).json()
    assert hist["BTC_USDT"][0]["id"] == oid and hist["BTC_USDT"][0]["status"] == "CANCELED"
    # the demo client is not granted users.transactions.read
    r = await client.post("/api/v4/accounts/transactions", json={}, headers=auth)
    assert r.status_code == 403 and r.json()["code"] == 4
    r = await client.post("/api/v4/accounts/balances/spot", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized request."
    assert (await admin.post("/_sandbox/faults", json={"revoke_access_tokens": True})).status_code == 200
    r = await client.post("/api/v4/accounts/balances/spot", json={}, headers=auth)
    assert r.status_code == 401


async def test_refresh_outage_switched_from_the_admin_endpoint(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    r = await client.get("/auth/login", params={"clientId": "botkit-demo", "state": "s2"}, follow_redirects=False)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)["code"][0]
    form = {"client_id": "botkit-demo", "client_secret": "botkit-demo-secret", "code": code}
    refresh = (await client.post("/oauth2/token", data=form)).json()["data"]["refresh_token"]
    assert (await admin.post("/_sandbox/faults", json={"refresh_outage": True})).json()["refresh_outage"] is True
    body = {"client_id": "botkit-demo", "client_secret": "botkit-demo-secret", "token": refresh}
    assert (await client.post("/oauth2/refresh_token", data=body)).status_code == 503
    await admin.delete("/_sandbox/faults")
    r = await client.post("/oauth2/refresh_token", data=body)
    assert r.status_code == 200 and r.json()["data"]["refresh_token"] != refresh


async def test_trading_with_bearer_needs_the_scope(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    order = {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "1000"}
    auth = {"Authorization": f"Bearer {await access_token(client)}"}
    # off by default (WhiteBIT documents HMAC only for trading): a Bearer token is not an HMAC signature
    r = await client.post("/api/v4/order/new", json=order, headers=auth)
    assert r.status_code == 401 and r.json()["code"] == 10
    for path in ("/api/v4/order/cancel", "/api/v4/orders", "/api/v4/trade-account/balance",
                 "/api/v4/profile/websocket_token"):
        r = await client.post(path, json={"market": "BTC_USDT", "orderId": 1}, headers=auth)
        assert r.status_code == 401 and r.json()["code"] == 10, (path, r.text)
    assert not sandbox.exchange.ws_tokens
    sandbox.config.server.bearer_trading = True  # read per request
    # a Bearer trader needs its private stream: any valid access token gets a WebSocket token (no scope needed) ...
    r = await client.post("/api/v4/profile/websocket_token", json={}, headers=auth)
    assert r.status_code == 200 and sandbox.exchange.account_for_ws_token(r.json()["websocket_token"]) == "demo"
    # ... an unknown one does not
    r = await client.post("/api/v4/profile/websocket_token", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["code"] == 10
    r = await client.post("/api/v4/order/new", json=order, headers=auth)
    assert r.status_code == 403 and r.json()["code"] == 4 and "orders.create" in r.json()["message"]
    trader = sandbox.config.oauth.clients[0].model_copy(update={"scopes": ["orders.create", "orders.delete"]})
    cfg = sandbox.config.model_copy(update={"oauth": sandbox.config.oauth.model_copy(update={"clients": [trader]})})
    async with running_sandbox(cfg) as sb, httpx.AsyncClient(base_url=sb.base_url) as c:
        auth = {"Authorization": f"Bearer {await access_token(c)}"}
        placed = await c.post("/api/v4/order/new", json=order, headers=auth)
        assert placed.status_code == 200 and placed.json()["left"] == "0.01"
        gone = await c.post("/api/v4/order/cancel", json={"market": "BTC_USDT", "orderId": placed.json()["orderId"]},
                            headers=auth)
        assert gone.status_code == 200 and gone.json()["status"] == "CANCELED"
        assert (await c.post("/api/v4/orders", json={}, headers=auth)).status_code == 403  # no orders.read
