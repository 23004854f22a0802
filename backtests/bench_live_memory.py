"""Benchmark: a live bot's memory stays flat however many orders it sends (issue target: RSS growth per 1,000
orders < 100 KB once warmed up; a 30-minute run at 10 orders/s keeps a flat RSS).

Run: .venv/bin/python backtests/bench_live_memory.py [--minutes 30 --rate 10 | --orders 3000 --rate 100] [--trace]

A real `botkit sandbox` runs in its own process (so its order book and history do not count); this process is the
bot, in live mode against it over HTTP and WebSocket: a churn strategy places one resting limit order per tick and
cancels the previous one. The bot's RSS (VmRSS) is sampled every 500 orders; after the warm-up (rate-limit windows,
caches and the recently-closed id memory fill up to their bounds), growth per 1,000 orders is printed next to the
target, and the exit code is 1 when the target is missed. RSS moves in allocator-sized steps, so it needs a long run
to mean something; `--trace` also measures the Python heap (tracemalloc), which is exact at any length, and judges
that instead (target: < 100 KB per 1,000 orders: nothing kept per order; a kept order costs ~1 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from botkit import Candle, Context, Strategy
from botkit.config import BotConfig
from botkit.market.orders import Order
from botkit.runner import LiveRunner

TARGET_KB_PER_1000 = 100.0
HEAP_TARGET_KB_PER_1000 = 100.0  # a kept Order is ~1 KB (1,000 KB per 1,000 orders); one-time steps reach ~120 KB
ROOT = Path(__file__).resolve().parents[1]


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class Churn(Strategy):
    """Every tick: cancel the previous order, place a new resting limit buy far below the market."""

    scopes = frozenset({"orders.create", "orders.delete"})

    def __init__(self, every_ms: int, target: int, done: asyncio.Event) -> None:
        super().__init__()
        self.every_ms, self.target, self.done = every_ms, target, done
        self.placed = 0
        self.last: Order | None = None
        self.samples: list[tuple[int, int, int]] = []  # orders, RSS KB, traced Python heap KB (0 untraced)
        self.price: Decimal | None = None

    def on_start(self, ctx: Context) -> None:
        ctx.schedule("churn", self.every_ms)

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.price = (Decimal(str(candle.close)) * Decimal("0.5")).quantize(Decimal("0.01"))

    def on_timer(self, ctx: Context, name: str) -> None:
        if self.price is None or self.placed >= self.target:
            return
        if self.last is not None and self.last.is_open:
            ctx.cancel(self.last)
        self.last = ctx.buy("BTC_USDT", "0.0001", self.price)
        self.placed += 1
        if self.placed % 500 == 0:
            heap = 0
            if tracemalloc.is_tracing():
                gc.collect()  # the heap of live objects: cyclic garbage awaiting a full collection is not kept memory
                heap = tracemalloc.get_traced_memory()[0] // 1024
            self.samples.append((self.placed, rss_kb(), heap))
        if self.placed >= self.target:
            self.done.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def growth(samples: list[tuple[int, int]], warmup: int) -> float | None:
    """KB per 1,000 orders after the warm-up: the least-squares slope over every sample (one allocator step at
    the end of a short run must not decide it)."""
    pts = [(n, kb) for n, kb in samples if n >= warmup]
    if len(pts) < 2:
        return None
    mx = sum(n for n, _ in pts) / len(pts)
    my = sum(kb for _, kb in pts) / len(pts)
    den = sum((n - mx) ** 2 for n, _ in pts)
    return sum((n - mx) * (kb - my) for n, kb in pts) / den * 1000 if den else None


async def run(orders: int, rate: float, warmup: int, trace: bool = False) -> int:
    port = free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "botkit.cli", "sandbox", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            await asyncio.sleep(0.1)
        with TemporaryDirectory() as tmp:
            done = asyncio.Event()
            strategy = Churn(max(1, int(1000 / rate)), orders, done)
            cfg = BotConfig(
                name="bench-memory",
                strategy={"plugin": "bench:Churn"},
                markets={"BTC_USDT": {"stock_prec": 6, "money_prec": 2, "min_amount": "0.00001", "min_total": "1"}},
                balances={},
                run={"mode": "live", "base_url": f"http://127.0.0.1:{port}", "ws_url": f"ws://127.0.0.1:{port}/ws",
                     "api_key": "demo-key", "api_secret": "demo-secret", "interval": 1, "history": 5,
                     "status_every_s": 0},
                grant={"scopes": ["orders.create", "orders.delete", "orders.read", "balances.read",
                                  "orders_history.read"]},
                output={"dir": tmp},
            )
            runner = LiveRunner(cfg, strategy=strategy, out=None, handle_signals=False)
            task = asyncio.create_task(runner.run())
            t0 = time.monotonic()
            waiter = asyncio.create_task(done.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            runner.stop_event.set()
            await task
            elapsed = time.monotonic() - t0
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    samples = strategy.samples
    print(f"orders placed: {strategy.placed:,} in {elapsed:.1f} s ({strategy.placed / elapsed:,.0f}/s); "
          "each cancelled by the next")
    for n, kb, heap in samples:
        extra = f"  Python heap {heap / 1024:7.2f} MiB" if trace else ""
        print(f"  after {n:>7,} orders  RSS {kb / 1024:8.1f} MiB{extra}")
    rss = growth([(n, kb) for n, kb, _ in samples], warmup)
    if rss is None:
        print(f"not enough orders after the {warmup:,}-order warm-up to measure growth")
        return 1
    ok = rss < TARGET_KB_PER_1000
    print(f"RSS growth after warm-up: {rss:+.1f} KB per 1,000 orders   target < {TARGET_KB_PER_1000:.0f} KB   "
          f"{'OK' if ok else 'MISSED'}{'   (not judged: a short run; see --trace)' if trace else ''}")
    if trace:
        heap = growth([(n, h) for n, _, h in samples], warmup) or 0.0
        ok = heap < HEAP_TARGET_KB_PER_1000
        print(f"Python heap growth after warm-up: {heap:+.1f} KB per 1,000 orders   target < "
              f"{HEAP_TARGET_KB_PER_1000:.0f} KB   {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, help="orders to send (default: minutes x 60 x rate)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=10.0, help="orders per second")
    ap.add_argument("--warmup", type=int, help="orders before the baseline sample (default: a third of the run)")
    ap.add_argument("--trace", action="store_true", help="also measure the Python heap, and judge it (short runs)")
    a = ap.parse_args()
    if a.trace:
        tracemalloc.start()
    orders = a.orders if a.orders is not None else int(a.minutes * 60 * a.rate)
    warmup = a.warmup if a.warmup is not None else max(500, orders // 3 // 500 * 500)
    sys.exit(asyncio.run(run(orders, a.rate, warmup, a.trace)))


if __name__ == "__main__":
    main()
