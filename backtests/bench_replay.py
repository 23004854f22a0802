"""Benchmark: replaying public trades through a strategy that holds resting orders (issue 10 target: at least
500,000 trade events/s on one core).

Run: .venv/bin/python backtests/bench_replay.py [--trades 2000000] [--file ../shared/data/trades/XRP_ETH_trades.csv]

The strategy is a small market maker: a bid and an ask always rest around the last fill (re-quoted on every fill),
so the simulated venue checks every trade against them (trades fill model, queue estimate 0.5 base) and fills
regularly. The SYNTHETIC trades (a random walk made here) or, with --file, real recorded trades (repeated until
--trades rows, times shifted forward, so the rate is measured on a long tape) are replayed twice:

- `on_trades`: the strategy takes trades in column batches (the target applies to this mode, which a backtest uses
  whenever a strategy overrides `on_trades`);
- `on_trade`: one Trade object per trade (the live-style API; shown for comparison, no target).

Each fill costs the execution layer a cancel and two new orders (~0.1 ms), so the rate depends on fills per trade:
the default tape and `--file ../shared/data/trades/XRP_ETH_trades.csv --half-spread 1` both fill about 1.3 times per
1,000 trades; a tighter spread (more fills) is slower. Both replays must give the same fills (the maker
decides only on order events), else exit 2. Exit 1 when the target is missed (not with --smoke, which runs a tiny
tape to prove the script works).
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from botkit import Context, Strategy, Trade, TradeBatch
from botkit.backtest.importers import TradeSeries, load_trades
from botkit.backtest.replay import Backtest, BacktestResult
from botkit.backtest.tape import Tape
from botkit.market.grants import Grant
from botkit.market.orders import Fill
from botkit.market.rules import MarketRules
from botkit.venues.simulated import FillModel

TARGET = 500_000
MARKET = "BTC_USDT"
RULES = MarketRules(MARKET, "BTC", "USDT", stock_prec=6, money_prec=2, maker_fee=Decimal("0.1"),
                    taker_fee=Decimal("0.1"))


class Maker(Strategy):
    """A bid and an ask `half` away from the last fill's price (from `start` at first), re-quoted on each fill."""

    def __init__(self, start: float, half: float) -> None:
        super().__init__()
        self.mid = start
        self.half = half
        self.seen = 0

    def quote(self, ctx: Context) -> None:
        ctx.buy(MARKET, "0.01", f"{self.mid - self.half:.2f}")
        ctx.sell(MARKET, "0.01", f"{self.mid + self.half:.2f}")

    def on_start(self, ctx: Context) -> None:
        self.quote(ctx)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        if ctx.open_orders(MARKET):
            ctx.cancel_all(MARKET)
        self.mid = float(fill.price)
        self.quote(ctx)


class OneByOne(Maker):
    def on_trade(self, ctx: Context, trade: Trade) -> None:
        self.seen += 1


class Batched(Maker):
    def on_trades(self, ctx: Context, trades: TradeBatch) -> None:
        self.seen += len(trades)


def synthetic(rows: int, seed: int = 11) -> TradeSeries:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000_000 + np.cumsum(rng.integers(0, 40, rows)).astype(np.int64)
    price = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows))), 2)
    amount = rng.exponential(0.5, rows)
    side = np.where(rng.random(rows) < 0.5, 1, -1).astype(np.int8)
    return TradeSeries(MARKET, t, np.arange(rows, dtype=np.int64), price, amount, side, "SYNTHETIC random walk")


def tiled(path: Path, rows: int) -> TradeSeries:
    """Real trades, repeated until `rows` (each copy shifted past the previous one), prices scaled to ~100."""
    base = load_trades(path, MARKET)
    k = max(1, -(-rows // len(base)))
    span = int(base.time_ms[-1] - base.time_ms[0]) + 1
    t = np.concatenate([base.time_ms + i * span for i in range(k)])[:rows]
    scale = 100.0 / float(np.median(base.price))
    price = np.round(np.tile(base.price, k)[:rows] * scale, 2)
    amount = np.tile(base.amount, k)[:rows] / scale
    side = np.tile(base.side, k)[:rows]
    return TradeSeries(MARKET, t.astype(np.int64), np.arange(rows, dtype=np.int64), price, amount,
                       side.astype(np.int8), f"{path} (real, repeated x{k})")


def replay(strategy: Maker, trades: TradeSeries) -> tuple[BacktestResult, float, float]:
    """The result, wall seconds and CPU seconds of this (single-threaded) process."""
    bt = Backtest(strategy, [], {MARKET: RULES}, {"USDT": Decimal("1000000"), "BTC": Decimal("1000")},
                  grant=Grant.of("orders.create,orders.delete,orders.read,balances.read"),
                  fill_model=FillModel(kind="trades", queue_ahead=Decimal("0.5")), tape=Tape([trades]))
    t0, c0 = time.perf_counter(), time.process_time()
    res = bt.run()
    return res, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=int, default=2_000_000, help="trades replayed (default 2,000,000)")
    ap.add_argument("--file", type=Path, help="real trades file (e.g. ../shared/data/trades/XRP_ETH_trades.csv)")
    ap.add_argument("--half-spread", type=float, default=0.3, help="quote distance from the last fill (price units)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: the script works; no exit 1 on a missed target")
    args = ap.parse_args(argv)
    rows = 20_000 if args.smoke else args.trades
    trades = tiled(args.file, rows) if args.file else synthetic(rows)
    start = float(trades.price[0])
    print(f"tape: {len(trades):,} trades, {trades.source}; strategy: market maker holding a bid and an ask "
          f"{args.half_spread} from the last fill; fills = \"trades\"")
    res_b, el_b, cpu_b = replay(Batched(start, args.half_spread), trades)
    res_1, el_1, cpu_1 = replay(OneByOne(start, args.half_spread), trades)
    same = [(f.time_ms, f.price, f.amount) for f in res_b.fills] == [(f.time_ms, f.price, f.amount)
                                                                       for f in res_1.fills]
    rate_b = res_b.events / cpu_b
    rate_1 = res_1.events / cpu_1
    per_k = 1000 * len(res_b.fills) / max(len(trades), 1)
    print(f"  fills: {len(res_b.fills):,} ({per_k:.1f} per 1,000 trades; {len(res_b.orders):,} orders), the same in "
          f"both modes: {same}")
    print("  rates per CPU second of this one-threaded process (one core; wall time in brackets, shared machine)")
    print(f"  trade events/s, on_trades batches   {rate_b:>12,.0f}   target >= {TARGET:,}  "
          f"({res_b.events:,} in {cpu_b:.2f} s CPU, {el_b:.2f} s wall)")
    print(f"  trade events/s, on_trade one by one {rate_1:>12,.0f}   (no target; {cpu_1:.2f} s CPU, "
          f"{el_1:.2f} s wall)")
    if not same or res_b.events != len(trades) or res_1.events != len(trades):
        print("error: the two replays differ (fills or events)", file=sys.stderr)
        return 2
    met = rate_b >= TARGET
    print("all targets met: yes" if met else f"missed: trade events/s {rate_b:,.0f} < {TARGET:,}")
    return 0 if met or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
