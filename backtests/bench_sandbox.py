"""Benchmark of the sandbox exchange on loopback; prints figures next to their targets and the command that ran them.

    .venv/bin/python backtests/bench_sandbox.py [--seconds 5] [--clients 20] [--subscribers 10] [--smoke]

1. Signed order round trips: `--clients` concurrent clients, each with its own API key, place a resting limit order
   (POST /api/v4/order/new) and cancel it (POST /api/v4/order/cancel), HMAC-signed as WhiteBIT documents.
   Target: >= 500 round trips/s (1,000 signed requests/s) with p99 request latency < 50 ms.
2. WebSocket depth: `--subscribers` connections subscribe to depth on every market of a fast-moving config and
   count the depth_update messages delivered. Target: >= 20,000 messages/s in total.

The server runs in its own process (`botkit.sandbox.cli`), the clients in this one, as a bot and an exchange would.
All clients share one IP (127.0.0.1), and the sandbox enforces WhiteBIT's per-IP REST limits (10,000 requests per
10 s globally, below the 1,000 signed requests/s target), so the benchmark's sandbox runs with `[server]
rest_limit_scale = 100` (limits x100; the output says so) and counts every refusal as an error.
Exit status: 0 when every target is met, 1 when one is missed, 2 on errors (refused requests, update-id gaps).
`--smoke` is the tiny run of the test suite (tests/bench): it checks the script end to end and exits 0 even when a
target is missed, since a tiny run on a shared machine says nothing about speed; errors still exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
MARKETS = ["AAA_USDT", "BBB_USDT", "CCC_USDT", "DDD_USDT"]
LIMIT_SCALE = 100  # the sandbox's REST limits x100: one IP, many clients (stated in the output)


def bench_config(clients: int, fast_depth: bool) -> str:
    lines = ["[server]", f"rest_limit_scale = {LIMIT_SCALE}"]
    if fast_depth:
        lines += ["tick_interval = 0.001", "depth_interval = 0.0", "ws_requests_per_minute = 1000"]
    names = MARKETS if fast_depth else ["BTC_USDT"]
    for i, name in enumerate(names):
        stock, money = name.split("_")
        lines += [
            "[[markets]]", f'name = "{name}"', f'stock = "{stock}"', f'money = "{money}"', "stock_prec = 6",
            "money_prec = 2", 'min_amount = "0.00001"', 'min_total = "1"',
            "[markets.liquidity]", f"seed = {i + 1}", 'start_price = "40000"', "history_minutes = 10",
            f"tick_interval = {0.001 if fast_depth else 1.0}", f"levels = {10 if fast_depth else 20}",
        ]
    for c in range(clients):
        lines += [
            "[[accounts]]", f'name = "bench{c}"', 'balances = { USDT = "100000000", BTC = "100" }',
            "[[accounts.api_keys]]", f'key = "bench-key-{c}"', f'secret = "bench-secret-{c}"',
        ]
    return "\n".join(lines) + "\n"


class Server:
    """`botkit sandbox` in a child process on a free port."""

    def __init__(self, config_text: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "bench.toml"
        path.write_text(config_text)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "botkit.sandbox.cli", "sandbox", "--config", str(path), "--port", "0"],
            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        head = "".join(self.proc.stdout.readline() for _ in range(3))
        found = re.search(r"(http://127\.0\.0\.1:\d+)", head)
        if found is None:
            self.stop()
            raise RuntimeError(f"sandbox did not start: {head!r}")
        self.base = found.group(1)
        self.ws = self.base.replace("http://", "ws://") + "/ws"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def signed(path: str, params: dict[str, object], key: str, secret: bytes, nonce: int) -> tuple[dict[str, str], bytes]:
    body = {**params, "request": path, "nonce": nonce, "nonceWindow": True}
    raw = json.dumps(body, separators=(",", ":")).encode()
    payload = base64.b64encode(raw)
    headers = {
        "Content-Type": "application/json", "X-TXC-APIKEY": key, "X-TXC-PAYLOAD": payload.decode(),
        "X-TXC-SIGNATURE": hmac.new(secret, payload, hashlib.sha512).hexdigest(),
    }
    return headers, raw


async def round_trips(base: str, clients: int, seconds: float) -> dict[str, float]:
    request_ms: list[float] = []
    trip_ms: list[float] = []
    errors = 0
    nonces = [0] * clients

    def next_nonce(c: int) -> int:
        """Per key, as a real client keeps it: a ms timestamp, strictly increasing."""
        nonces[c] = max(nonces[c] + 1, int(time.time() * 1000))
        return nonces[c]

    async def one_client(c: int, session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal errors
        key, secret = f"bench-key-{c}", f"bench-secret-{c}".encode()
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            h, raw = signed("/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.001",
                                                  "price": "20000", "clientOrderId": f"b{c}-{i}"}, key, secret,
                            next_nonce(c))
            async with session.post(base + "/api/v4/order/new", data=raw, headers=h) as r:
                text = await r.text()  # a refusal may be the gateway's HTML 429, not JSON
                ok = r.status == 200
            t1 = time.perf_counter()
            if not ok:
                errors += 1
                if errors <= 3:
                    print(f"   order/new refused: {r.status} {text[:200]}", file=sys.stderr)
                continue
            body = json.loads(text)
            h, raw = signed("/api/v4/order/cancel", {"market": "BTC_USDT", "orderId": body["orderId"]}, key,
                            secret, next_nonce(c))
            async with session.post(base + "/api/v4/order/cancel", data=raw, headers=h) as r:
                text = await r.text()
                if r.status != 200:
                    errors += 1
                    if errors <= 3:
                        print(f"   order/cancel refused: {r.status} {text}", file=sys.stderr)
            t2 = time.perf_counter()
            request_ms.extend(((t1 - t0) * 1000, (t2 - t1) * 1000))
            trip_ms.append((t2 - t0) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(one_client(c, session, warm) for c in range(clients)))
        request_ms.clear()
        trip_ms.clear()
        errors = 0
        start = time.perf_counter()
        await asyncio.gather(*(one_client(c, session, start + seconds) for c in range(clients)))
        elapsed = time.perf_counter() - start
    if len(trip_ms) < 2:  # everything refused: report the errors (exit 2), nothing to measure
        trip_ms, request_ms = [float("nan")] * 2, [float("nan")] * 2
    q = statistics.quantiles(request_ms, n=100)
    t = statistics.quantiles(trip_ms, n=100)
    return {
        "round_trips_per_s": sum(1 for x in trip_ms if x == x) / elapsed,
        "requests_per_s": sum(1 for x in request_ms if x == x) / elapsed,
        "p50_ms": q[49], "p99_ms": q[98], "trip_p50_ms": t[49], "trip_p99_ms": t[98], "errors": errors,
    }


async def depth_fanout(ws_url: str, subscribers: int, seconds: float) -> dict[str, float]:
    counts = [0] * subscribers
    gaps = 0
    ready = asyncio.Event()
    stop_at = [0.0]

    async def sub(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal gaps
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            for j, market in enumerate(MARKETS):
                await ws.send_str(json.dumps({"id": j + 1, "method": "depth_subscribe",
                                              "params": [market, 10, "0", True]}))
            last: dict[str, int] = {}
            await ready.wait()
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("method") == "depth_update":
                    full, body, market = data["params"]
                    if not full and last.get(market) not in (None, body["past_update_id"]):
                        gaps += 1
                    last[market] = body["update_id"]
                    if stop_at[0] and time.perf_counter() < stop_at[0]:
                        counts[i] += 1
                if stop_at[0] and time.perf_counter() >= stop_at[0]:
                    return

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(sub(i, session)) for i in range(subscribers)]
        await asyncio.sleep(0.5)
        ready.set()
        await asyncio.sleep(0.5)  # warm-up
        start = time.perf_counter()
        stop_at[0] = start + seconds
        await asyncio.wait(tasks, timeout=seconds + 5)
        for task in tasks:
            task.cancel()
    return {"messages_per_s": sum(counts) / seconds, "per_subscriber_per_s": sum(counts) / seconds / subscribers,
            "sequence_gaps": gaps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per part (default 5)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent signing clients (default 20)")
    ap.add_argument("--subscribers", type=int, default=10, help="WebSocket depth subscribers (default 10)")
    ap.add_argument("--smoke", action="store_true", help="tiny end-to-end check: report targets, do not enforce them")
    args = ap.parse_args()
    command = " ".join([".venv/bin/python", "backtests/bench_sandbox.py", *sys.argv[1:]])
    print(f"command: {command}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}")
    print(f"sandbox: REST rate limits x{LIMIT_SCALE} ([server] rest_limit_scale = {LIMIT_SCALE}): all clients share "
          "one IP, and WhiteBIT's 10,000 requests per 10 s per IP is below the target")

    t0 = time.perf_counter()
    server = Server(bench_config(args.clients, fast_depth=False))
    print(f"sandbox process up in {time.perf_counter() - t0:.2f} s (target < 2 s for the server; includes imports)")
    try:
        rt = asyncio.run(round_trips(server.base, args.clients, args.seconds))
    finally:
        server.stop()
    server = Server(bench_config(0, fast_depth=True))
    try:
        depth = asyncio.run(depth_fanout(server.ws, args.subscribers, args.seconds))
    finally:
        server.stop()

    checks = [  # (figure, value, target text, met)
        ("round trips/s", f"{rt['round_trips_per_s']:,.0f}", ">= 500", rt["round_trips_per_s"] >= 500),
        ("signed req/s", f"{rt['requests_per_s']:,.0f}", ">= 1,000", rt["requests_per_s"] >= 1000),
        ("request p50", f"{rt['p50_ms']:.2f} ms", "", True),
        ("request p99", f"{rt['p99_ms']:.2f} ms", "< 50 ms", rt["p99_ms"] < 50),
        ("round trip p50/p99", f"{rt['trip_p50_ms']:.2f} / {rt['trip_p99_ms']:.2f} ms", "", True),
        ("depth messages/s", f"{depth['messages_per_s']:,.0f}", ">= 20,000", depth["messages_per_s"] >= 20_000),
        ("depth per subscriber", f"{depth['per_subscriber_per_s']:,.0f}", "", True),
    ]
    print(f"\n1. signed place+cancel, {args.clients} concurrent clients, {args.seconds:g} s; "
          f"2. WebSocket depth to {args.subscribers} subscribers ({len(MARKETS)} markets each), {args.seconds:g} s")
    print(f"   {'figure':<22}{'measured':>18}   {'target':<10} met")
    for name, value, target, met in checks:
        print(f"   {name:<22}{value:>18}   {target:<10} {('yes' if met else 'NO') if target else ''}")
    print(f"   {'errors':<22}{rt['errors']:>18,.0f}   {'0':<10} {'yes' if not rt['errors'] else 'NO'}")
    print(f"   {'update-id gaps':<22}{depth['sequence_gaps']:>18,.0f}   {'0':<10} "
          f"{'yes' if not depth['sequence_gaps'] else 'NO'}")
    broken = rt["errors"] > 0 or depth["sequence_gaps"] > 0
    missed = [name for name, _, target, met in checks if target and not met]
    print(f"\nall targets met: {not missed}" + (f" (missed: {', '.join(missed)})" if missed else ""))
    if broken:
        return 2
    if missed and not args.smoke:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
