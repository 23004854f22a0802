"""Faults on purpose (config and admin endpoint), resets, config errors, and the `botkit sandbox` command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import websockets

from botkit.sandbox.config import SandboxConfigError, load_sandbox_config, parse_sandbox_config
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox

from .sandbox_signing import post_signed


async def test_error_rates_give_gateway_bodies(
    sandbox: Sandbox, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    r = await admin.post("/_sandbox/faults", json={"error_rates": {"/api/v4/public/ticker": {"503": 1.0}}})
    assert r.status_code == 200 and r.json()["error_rates"] == {"/api/v4/public/ticker": {"503": 1.0}}
    bad = await client.get("/api/v4/public/ticker")
    assert bad.status_code == 503 and not bad.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.text)
    assert (await client.get("/api/v4/public/ping")).status_code == 200  # other endpoints untouched
    await admin.post("/_sandbox/faults", json={"error_rates": {"/api/v4/order/*": {"429": 1.0}}})
    r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01",
                                                        "price": "1000"})
    assert r.status_code == 429 and "Too many requests." not in r.text  # gateway 429, not the nonce 429
    await admin.post("/_sandbox/faults", json={"error_rates": {"*": {"500": 1.0}}})
    r = await client.get("/api/v4/public/markets")
    assert r.status_code == 500 and r.json() == {"error": ["Internal server error."]}
    assert (await admin.delete("/_sandbox/faults")).json()["error_rates"] == {}
    assert (await client.get("/api/v4/public/markets")).status_code == 200


async def test_partial_error_rate_is_seeded(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.set_faults(error_rates={"/api/v4/public/ping": {"500": 0.5}}, seed=3)
    codes = [(await client.get("/api/v4/public/ping")).status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35 and codes.count(200) == 40 - codes.count(500)


async def test_bad_fault_values_are_refused(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/_sandbox/faults", json={"latency_ms": -5})
    assert r.status_code == 422 and r.json()["details"][0]["key"] == "latency_ms"


async def test_latency_and_clock_skew(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.set_faults(latency_ms=150)
    t = time.perf_counter()
    await client.get("/api/v4/public/ping")
    assert time.perf_counter() - t >= 0.14
    sandbox.set_faults(latency_ms=0, clock_skew_s=-3600)
    assert time.time() - (await client.get("/api/v4/public/time")).json()["time"] > 3500
    # a nonce in the client's true time is now outside the server's window
    r = await post_signed(client, "/api/v4/trade-account/balance")
    assert r.status_code == 429


async def test_maintenance(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.set_faults(maintenance=True)
    assert (await client.get("/api/v4/public/platform/status")).json() == {"status": "system maintenance"}
    assert (await client.get("/api/v4/public/markets")).status_code == 503


async def test_dropped_websockets_and_skipped_depth_ids(
    sandbox: Sandbox, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws.send(json.dumps({"id": 1, "method": "ping", "params": []}))
        await ws.recv()
        assert (await admin.post("/_sandbox/faults", json={"drop_websockets": True})).json()["done"] == [
            "drop_websockets"
        ]
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code != 1000  # dropped, not closed politely
    async with websockets.connect(sandbox.ws_url) as ws:
        await ws.send(json.dumps({"id": 1, "method": "depth_subscribe", "params": ["BTC_USDT", 5, "0", True]}))
        last_id = None
        while last_id is None:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if msg.get("method") == "depth_update" and msg["params"][0] is True:
                last_id = msg["params"][1]["update_id"]
        group = next(g for g in sandbox.hub.groups.values() if g.market == "BTC_USDT")
        sandbox.set_faults(skip_depth_ids=1.0)  # the next delta is lost on the way
        step = 0
        while group.update_id == last_id:
            step += 1
            sandbox.liquidity["BTC_USDT"].tick(sandbox.clock() + 1000 * step)
            await asyncio.sleep(0.05)
        sandbox.set_faults(skip_depth_ids=0.0)
        delta = None
        while delta is None:
            step += 1
            sandbox.liquidity["BTC_USDT"].tick(sandbox.clock() + 1000 * step)
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if msg.get("method") == "depth_update" and msg["params"][0] is False:
                delta = msg["params"][1]
        # What a client sees: the chain is broken, past_update_id names an update it never received.
        assert delta["past_update_id"] != last_id and delta["past_update_id"] > last_id
        assert delta["update_id"] == delta["past_update_id"] + 1


async def test_reset_restores_config_state(
    sandbox: Sandbox, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    r = await post_signed(client, "/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01",
                                                        "price": "1000"})
    assert r.status_code == 200
    sandbox.keys.get("demo-key").enabled = False  # type: ignore[union-attr]
    assert (await admin.post("/_sandbox/reset")).json() == {"status": "reset"}
    bal = await post_signed(client, "/api/v4/trade-account/balance", {"ticker": "USDT"})
    assert bal.json() == {"available": "100000", "freeze": "0"}
    assert (await post_signed(client, "/api/v4/orders", {})).json() == []
    assert Decimal((await client.get("/api/v4/public/ticker")).json()["BTC_USDT"]["last_price"]) > 0


def test_bad_config_names_key_value_and_fix(tmp_path: Path) -> None:
    with pytest.raises(SandboxConfigError) as err:
        parse_sandbox_config({"markets": [{"name": "BTC_USDT", "stock": "BTC", "money": "USDT", "stock_prec": 6,
                                           "money_prec": 2, "min_amount": "abc", "tick": 1}]})
    text = str(err.value)
    assert "markets.0.min_amount = 'abc'" in text and "markets.0.tick" in text and "fix:" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('[[accounts]]\nname = "x"\n[[accounts.api_keys]]\nkey = "k"\nsecret = "s3cr3t"\n'
                   'permissions = ["orders.creat"]\n')
    with pytest.raises(SandboxConfigError) as err:
        load_sandbox_config(bad)
    assert "accounts.0.api_keys.0.permissions" in str(err.value) and "orders.creat" in str(err.value)
    assert "s3cr3t" not in str(err.value)
    with pytest.raises(SandboxConfigError) as err:
        parse_sandbox_config({"accounts": [{"name": "x", "api_keys": [{"secret": "hunter2-secret"}]}]})
    assert "accounts.0.api_keys.0.key" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(SandboxConfigError, match="does not exist"):
        load_sandbox_config(tmp_path / "missing.toml")


async def test_replayed_trades_file_drives_the_market(shared_data: Path) -> None:
    data = shared_data / "trades" / "XRP_ETH_trades.csv"
    last_row = data.read_text().splitlines()[-1].split(",")  # time_ms,id,side,price,amount
    cfg = parse_sandbox_config({
        "server": {"tick_interval": 0.01},
        "markets": [{"name": "XRP_ETH", "stock": "XRP", "money": "ETH", "stock_prec": 1, "money_prec": 8,
                     "liquidity": {"kind": "trades", "file": str(data), "speed": 1_000_000, "loop": False,
                                   "level_amount": "100"}}],
        "accounts": [{"name": "a", "balances": {"ETH": "1"}}],
    })
    async with running_sandbox(cfg) as sb, httpx.AsyncClient(base_url=sb.base_url) as c:
        # 2.5 days of trades at a million times real time: the whole file is replayed within a fraction of a second
        for _ in range(100):
            last = (await c.get("/api/v4/public/ticker")).json()["XRP_ETH"]["last_price"]
            if Decimal(last) == Decimal(last_row[3]):
                break
            await asyncio.sleep(0.05)
        trades = (await c.get("/api/v4/public/trades/XRP_ETH")).json()
        assert len(trades) == 100 and Decimal(trades[0]["price"]) == Decimal(last_row[3])
        assert trades[0]["quote_volume"] == format(Decimal(last_row[4]).normalize(), "f")
        book = (await c.get("/api/v4/public/orderbook/XRP_ETH", params={"limit": 1})).json()
        assert Decimal(book["bids"][0][0]) < Decimal(last_row[3]) < Decimal(book["asks"][0][0])


async def test_replayed_candles_file(shared_data: Path) -> None:
    data = shared_data / "candles" / "XRP_ETH_1m.csv"
    cfg = parse_sandbox_config({
        "server": {"tick_interval": 0.01},
        "markets": [{"name": "XRP_ETH", "stock": "XRP", "money": "ETH", "stock_prec": 1, "money_prec": 8,
                     "liquidity": {"kind": "candles", "file": str(data), "speed": 6000, "level_amount": "100"}}],
    })
    async with running_sandbox(cfg) as sb, httpx.AsyncClient(base_url=sb.base_url) as c:
        await asyncio.sleep(0.3)  # 0.3 s at 6000x = 30 minutes of candles = about 120 prints
        trades = (await c.get("/api/v4/public/trades/XRP_ETH")).json()
        assert len(trades) == 100
        first_rows = data.read_text().splitlines()[1:1000]  # generous: a slow machine replays further
        recorded = {Decimal(v) for row in first_rows for v in row.split(",")[1:5]}
        assert {Decimal(t["price"]) for t in trades} <= recorded


def test_cli_prints_urls_starts_fast_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "botkit.sandbox.cli", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        elapsed = time.perf_counter() - t
        assert "ready" in lines[0], lines
        ready_s = float(re.search(r"ready in ([0-9.]+) s", lines[0]).group(1))  # type: ignore[union-attr]
        assert ready_s < 2.0  # the server's own start-up (process start and imports come on top)
        base = re.search(r"(http://127\.0\.0\.1:\d+)", lines[1]).group(1)  # type: ignore[union-attr]
        assert re.search(r"ws://127\.0\.0\.1:\d+/ws", lines[2])
        assert httpx.get(base + "/api/v4/public/ping").json() == ["pong"]
        assert elapsed < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\ntick_interval = -1\n")
    out = subprocess.run([sys.executable, "-m", "botkit.sandbox.cli", "sandbox", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "server.tick_interval = -1" in out.stderr
