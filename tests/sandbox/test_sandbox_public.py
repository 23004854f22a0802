"""Public REST, driven with plain httpx and compared with the documented shapes (docs/whitebit.md §2.2)."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from botkit.market.rules import MarketRules

MARKET_KEYS = {
    "name", "stock", "money", "stockPrec", "moneyPrec", "feePrec", "makerFee", "takerFee", "minAmount", "minTotal",
    "maxTotal", "tradesEnabled", "isCollateral", "type", "isTradFiFutures", "delistedAt",
}


async def test_markets_shape_and_rules_round_trip(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v4/public/markets")
    assert r.status_code == 200
    markets = r.json()
    btc = next(m for m in markets if m["name"] == "BTC_USDT")
    assert set(btc) == MARKET_KEYS
    assert btc["stockPrec"] == "6" and btc["moneyPrec"] == "2" and btc["minTotal"] == "1"
    rules = MarketRules.from_whitebit(btc)
    assert rules.min_amount == Decimal("0.00001") and rules.taker_fee == Decimal("0.1")


async def test_ticker_shape(client: httpx.AsyncClient) -> None:
    t = (await client.get("/api/v4/public/ticker")).json()["BTC_USDT"]
    assert set(t) == {"base_id", "quote_id", "last_price", "quote_volume", "base_volume", "isFrozen", "change"}
    assert isinstance(t["base_id"], int) and isinstance(t["last_price"], str)
    assert Decimal(t["base_volume"]) > 0 and Decimal(t["quote_volume"]) > Decimal(t["base_volume"])


async def test_orderbook_sorted_limited_and_uncrossed(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 5, "level": 0})
    book = r.json()
    assert set(book) == {"ticker_id", "timestamp", "asks", "bids"} and book["ticker_id"] == "BTC_USDT"
    assert len(book["asks"]) == 5 and len(book["bids"]) == 5
    asks = [Decimal(p) for p, _ in book["asks"]]
    bids = [Decimal(p) for p, _ in book["bids"]]
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
    assert bids[0] < asks[0]
    assert all(isinstance(q, str) and Decimal(q) > 0 for _, q in book["asks"] + book["bids"])


async def test_orderbook_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v4/public/orderbook/NOPE_USDT")
    assert r.status_code == 422 and r.json() == {"market": ["Market is not available."]}
    r = await client.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 101})
    assert r.status_code == 422 and "limit" in r.json()


async def test_depth_within_two_percent(client: httpx.AsyncClient) -> None:
    last = Decimal((await client.get("/api/v4/public/ticker")).json()["BTC_USDT"]["last_price"])
    d = (await client.get("/api/v4/public/orderbook/depth/BTC_USDT")).json()
    assert d["asks"] and d["bids"]
    assert all(Decimal(p) <= last * Decimal("1.02") for p, _ in d["asks"])
    assert all(Decimal(p) >= last * Decimal("0.98") for p, _ in d["bids"])


async def test_trades_swapped_volume_names(client: httpx.AsyncClient) -> None:
    trades = (await client.get("/api/v4/public/trades/BTC_USDT")).json()
    assert 0 < len(trades) <= 100
    t = trades[0]
    assert set(t) == {"tradeID", "price", "quote_volume", "base_volume", "trade_timestamp", "type", "rpi"}
    # sic: quote_volume is the BTC amount, base_volume the USDT amount.
    assert Decimal(t["quote_volume"]) * Decimal(t["price"]) == Decimal(t["base_volume"])
    sells = (await client.get("/api/v4/public/trades/BTC_USDT", params={"type": "sell"})).json()
    assert sells and all(x["type"] == "sell" for x in sells)


async def test_time_ping_status_and_unknown_route(client: httpx.AsyncClient) -> None:
    assert abs((await client.get("/api/v4/public/time")).json()["time"] - time.time()) < 5
    assert (await client.get("/api/v4/public/ping")).json() == ["pong"]
    assert (await client.get("/api/v4/public/platform/status")).json() == {"status": "system operational"}
    r = await client.get("/api/v4/public/nothing-here")
    assert r.status_code == 404 and r.content == b""


async def test_kline_column_order_and_http_200_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/public/kline", params={"market": "BTC_USDT", "interval": "1m", "limit": 30})
    body = r.json()
    assert r.status_code == 200 and body["success"] is True and body["message"] is None
    rows = body["result"]
    assert 0 < len(rows) <= 30
    for t, o, c, h, lo, vs, vm in rows:  # [time, open, CLOSE, high, low, volume_stock, volume_money]
        assert isinstance(t, int) and t % 60 == 0
        assert Decimal(h) >= max(Decimal(o), Decimal(c)) and Decimal(lo) <= min(Decimal(o), Decimal(c))
        assert Decimal(vm) > Decimal(vs) > 0
    # the third column is the close: the last candle closes at the last trade's price
    last_trade = (await client.get("/api/v4/public/trades/BTC_USDT")).json()[0]
    assert Decimal(rows[-1][2]) == Decimal(last_trade["price"])
    bad = await client.get("/api/v1/public/kline", params={"market": "NOPE_USDT", "interval": "7m"})
    assert bad.status_code == 200
    err = bad.json()
    assert err["success"] is False and err["result"] is None
    assert set(err["message"]) == {"market", "interval"}
