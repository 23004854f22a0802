"""Lock-step replays (`pace = "step"`) and zero-spread house quotes: the sandbox moves only when told, on the data's
own candle boundaries, and a market order fills at exactly the replayed price (botkit/sandbox/liquidity.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from botkit.sandbox.config import SandboxConfig, SandboxConfigError, parse_sandbox_config
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import admin_headers, running_sandbox, test_config

from .sandbox_signing import post_signed

ROWS = [  # time_ms, open, high, low, close: the second candle opens at the first one's close, as real data does
    (1_767_571_200_000, "30000.00", "30020.00", "29990.00", "30010.00"),
    (1_767_571_260_000, "30010.00", "30015.00", "29980.00", "29985.50"),
    (1_767_571_320_000, "29985.50", "29999.00", "29970.00", "29990.00"),
]


def replay_config(tmp: Path, **liquidity: object) -> SandboxConfig:
    path = tmp / "candles.csv"
    path.write_text("time_ms,open,high,low,close,volume\n" + "".join(f"{','.join(map(str, r))},1\n" for r in ROWS))
    cfg = test_config()
    markets = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={
        "kind": "candles", "file": path, "pace": "step", "level_amount": Decimal("5"), **liquidity})})
        if m.name == "BTC_USDT" else m for m in cfg.markets]
    return cfg.model_copy(update={"markets": markets})


@pytest_asyncio.fixture
async def stepped(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(replay_config(tmp_path, zero_spread=True)) as sb:
        yield sb


async def test_a_stepped_replay_prints_only_when_told_on_the_data_s_candle_boundaries(stepped: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=stepped.base_url, timeout=10) as c:
        await asyncio.sleep(0.1)  # ten pulses of the server (tick_interval 0.01 s)
        before = (await c.get("/api/v4/public/trades/BTC_USDT")).json()
        assert before == []  # nothing printed at start, nor by time
        admin = admin_headers(stepped)
        r = await c.post("/_sandbox/replay", json={"market": "BTC_USDT", "prints": 1}, headers=admin)
        step = r.json()
        assert r.status_code == 200 and step["printed"] == 1 and step["left"] == 4 * len(ROWS) - 1
        shift = step["time"] - ROWS[0][0] / 1000
        assert shift % 86400 == 0 and step["time"] > time.time()  # whole days ahead of the wall clock
        (first,) = (await c.get("/api/v4/public/trades/BTC_USDT")).json()
        assert Decimal(first["price"]) == Decimal(ROWS[0][1]) and first["trade_timestamp"] == int(step["time"])
        for _ in ROWS:
            stepped.replay_step("BTC_USDT", 3 if _ is ROWS[0] else 4)
        assert stepped.replay_step("BTC_USDT", 5)["printed"] == 0  # the file is done; a stepped replay never loops
        k = (await c.get("/api/v1/public/kline", params={"market": "BTC_USDT", "interval": "1m"})).json()["result"]
        # [time, open, close, high, low, ...]: each candle of the file, at its own boundary moved by whole days
        assert [(int(x[0]) - int(shift), *(Decimal(v) for v in (x[1], x[3], x[4], x[2]))) for x in k] == [
            (t // 1000, *(Decimal(v) for v in (o, h, lo, c_))) for t, o, h, lo, c_ in ROWS]


async def test_zero_spread_fills_market_orders_at_exactly_the_replayed_price(stepped: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=stepped.base_url, timeout=10) as c:
        stepped.replay_step("BTC_USDT", 4)  # the first candle, closing at 30010.00
        stepped.replay_step("BTC_USDT", 1)  # the second opens at that same price (a requote at a swept level)
        book = (await c.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 2})).json()
        assert Decimal(book["bids"][0][0]) == Decimal(book["asks"][0][0]) == Decimal(ROWS[1][1])  # bid = ask = last
        buy = (await post_signed(c, "/api/v4/order/market", {"market": "BTC_USDT", "side": "buy",
                                                               "amount": "100"})).json()
        sell = (await post_signed(c, "/api/v4/order/stock_market", {"market": "BTC_USDT", "side": "sell",
                                                                      "amount": "0.002"})).json()
        for o in (buy, sell):
            assert Decimal(o["dealMoney"]) / Decimal(o["dealStock"]) == Decimal(ROWS[1][1])


async def test_replay_errors_name_the_fix(stepped: Sandbox, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=stepped.base_url, timeout=10) as c:
        admin = admin_headers(stepped)
        assert (await c.post("/_sandbox/replay", json={"market": "BTC_USDT"})).status_code == 403  # no token
        r = await c.post("/_sandbox/replay", json={"market": "ETH_USDT", "prints": 1}, headers=admin)
        assert r.status_code == 422 and 'pace = "step"' in r.json()["error"]
        r = await c.post("/_sandbox/replay", json={"market": "XRP_ETH", "prints": 1}, headers=admin)
        assert r.status_code == 422 and "not a sandbox market" in r.json()["error"]
        r = await c.post("/_sandbox/replay", json={"market": "BTC_USDT", "prints": 0}, headers=admin)
        assert r.status_code == 422 and "whole number" in r.json()["error"]
        assert stepped.liquidity["BTC_USDT"].replay_left == 4 * len(ROWS)  # none of it printed
    with pytest.raises(SandboxConfigError, match="pace"):
        parse_sandbox_config({"markets": [{"name": "BTC_USDT", "stock": "BTC", "money": "USDT", "stock_prec": 6,
                                           "money_prec": 2, "liquidity": {"pace": "step"}}]})


async def test_without_zero_spread_the_house_keeps_its_spread(tmp_path: Path) -> None:
    async with running_sandbox(replay_config(tmp_path)) as sb, httpx.AsyncClient(base_url=sb.base_url) as c:
        sb.replay_step("BTC_USDT", 1)
        book = (await c.get("/api/v4/public/orderbook/BTC_USDT", params={"limit": 1})).json()
        assert Decimal(book["bids"][0][0]) < Decimal(ROWS[0][1]) < Decimal(book["asks"][0][0])
