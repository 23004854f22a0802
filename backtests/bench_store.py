"""Benchmark: reading trades from the columnar store (issue target: at least 10 million rows/s on this machine).

Run: .venv/bin/python backtests/bench_store.py [--rows 20000000 --days 10 --repeat 5]

SYNTHETIC trades (a random walk, made here, in a temporary directory) are written once into a Store as one dataset
partitioned by day; then the whole dataset is read back `--repeat` times into numpy columns (TradeSeries.from_arrow,
what a backtest uses) and the best time gives rows/s. The files are in the page cache, as they are for a backtest
run soon after an import. Exit code 1 when the target is missed, 2 when the rows read differ from those written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from botkit.backtest.importers import TradeSeries
from botkit.backtest.store import Store

TARGET_ROWS_PER_S = 10_000_000
DAY_MS = 86_400_000


def synthetic_trades(rows: int, days: int, seed: int) -> TradeSeries:
    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000 // DAY_MS * DAY_MS
    t = np.sort(rng.integers(start, start + days * DAY_MS, rows, dtype=np.int64))
    price = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows)))
    amount = rng.exponential(0.5, rows)
    side = np.where(rng.random(rows) < 0.5, 1, -1).astype(np.int8)
    return TradeSeries("BTC_USDT", t, np.arange(rows, dtype=np.int64), price, amount, side, "SYNTHETIC")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="botkit-bench-store-") as tmp:
        store = Store(Path(tmp))
        t0 = time.perf_counter()
        trades = synthetic_trades(args.rows, args.days, args.seed)
        table = trades.to_arrow()
        store.write("trades", "BTC_USDT", table, {"files": [], "sha256": "synthetic", "options": {}})
        made = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            back = TradeSeries.from_arrow(store.read("trades", "BTC_USDT"), "BTC_USDT", "store")
            times.append(time.perf_counter() - t0)
        if len(back) != args.rows or not np.array_equal(back.price, trades.price) \
                or not np.array_equal(back.time_ms, trades.time_ms):
            print("error: the store gave back different trades than were written", file=sys.stderr)
            return 2
    best = min(times)
    rate = args.rows / best
    print(f"SYNTHETIC trades: {args.rows:,} rows over {args.days} day partitions, {size / 1e6:.0f} MB of Parquet "
          f"(made and written in {made:.1f} s)")
    print(f"store read: best {best:.3f} s of {args.repeat} = {rate / 1e6:.1f} M rows/s   "
          f"target: >= {TARGET_ROWS_PER_S / 1e6:.0f} M rows/s   {'OK' if rate >= TARGET_ROWS_PER_S else 'MISSED'}")
    return 0 if rate >= TARGET_ROWS_PER_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
