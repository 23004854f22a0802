"""Backtest engine benchmark: botkit vs backtesting.py on the same 1,000,000 one-minute candles.

    python backtests/bench_backtest.py [--rows 1000000] [--seed 7] [--smoke]

Needs the bench extra (`pip install -e .[bench]`, which brings backtesting.py). Prints, side by side:
candles/s for a no-op strategy and for the SMA crossover (botkit's strategies/sma_cross.py and the same rules in
backtesting.py, both filling at the next candle's open with a 0.1 % fee), peak memory of each run against the
raw data size, and whether both engines made the same trades. Each case runs in its own process so peak memory is
that run's alone. The data is SYNTHETIC (botkit's seeded generator), written to a temporary CSV and loaded back.
Targets (issue "Foundation"): SMA >= 3x backtesting.py, no-op >= 1,000,000 events/s, peak memory < 3x raw data.
Exit status: 0 when every target is met and both engines made the same trades, 1 when a target is missed, 2 when the
trades differ. `--smoke` (the tiny run in tests/bench) reports the targets without enforcing them: speed and memory
ratios of a tiny run on a shared machine mean nothing, but the trades must still be the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Cash is huge because fees of thousands of round trips shrink equity ~0.2 % each, and backtesting.py buys whole
# units only: with a small account it stops trading part-way and the trade lists stop being comparable.
FAST, SLOW, FRACTION, FEE_PCT, CASH = 20, 100, "0.95", "0.1", 10**15


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: on Linux a child inherits its parent's peak there."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def case_botkit(csv_path: str, which: str, trades_out: str | None) -> dict[str, object]:
    import pyarrow.csv  # noqa: F401  # the loader's CSV reader: a fixed import cost, not memory the data needs

    from botkit import Strategy
    from botkit.backtest.data import load_candles
    from botkit.backtest.replay import Backtest
    from botkit.backtest.sample import SAMPLE_MARKETS
    from botkit.market.grants import Grant
    from botkit.plugins import load_strategy_class

    base = _rss_mb()
    t = time.perf_counter()
    series = load_candles(csv_path, "BTC_USDT")
    load_s = time.perf_counter() - t
    rules = SAMPLE_MARKETS["BTC_USDT"].rules
    rules = type(rules)(**{**{f: getattr(rules, f) for f in rules.__slots__}, "maker_fee": Decimal(FEE_PCT),
                           "taker_fee": Decimal(FEE_PCT), "max_total": Decimal(0)})

    class Noop(Strategy):
        def on_candle(self, ctx, candle):  # type: ignore[no-untyped-def]
            pass

    if which == "noop":
        strategy: Strategy = Noop()
    else:
        cls = load_strategy_class(f"{ROOT / 'strategies' / 'sma_cross.py'}:SmaCross")
        strategy = cls(cls.Params(fast=FAST, slow=SLOW, fraction=Decimal(FRACTION)))
    bt = Backtest(strategy, [series], {"BTC_USDT": rules}, {"USDT": Decimal(CASH)},
                  grant=Grant.of("orders.create,orders.delete,orders.read,balances.read"))
    t = time.perf_counter()
    res = bt.run()
    run_s = time.perf_counter() - t
    if trades_out:
        trips = [(r.entry_ms, str(r.entry_price), r.exit_ms, str(r.exit_price)) for r in res.round_trips if r.closed]
        Path(trades_out).write_text(json.dumps(trips))
    return {"engine": "botkit", "case": which, "rows": len(series), "load_s": load_s, "run_s": run_s,
            "rate": len(series) / run_s, "peak_mb": _peak_mb() - base, "raw_mb": series.nbytes / 2**20,
            "trades": sum(1 for r in res.round_trips if r.closed)}


def case_backtesting_py(csv_path: str, trades_out: str | None) -> dict[str, object]:
    import warnings

    import numpy as np
    import pandas as pd
    from backtesting import Backtest, Strategy

    warnings.filterwarnings("ignore")
    base = _rss_mb()
    t = time.perf_counter()
    raw = np.loadtxt(csv_path, delimiter=",", skiprows=1)
    df = pd.DataFrame({"Open": raw[:, 1], "High": raw[:, 2], "Low": raw[:, 3], "Close": raw[:, 4],
                       "Volume": raw[:, 5]}, index=pd.to_datetime(raw[:, 0].astype("int64"), unit="ms"))
    del raw
    load_s = time.perf_counter() - t

    def sma(values: object, n: int) -> object:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)
            self.last_sign = 0

        def next(self) -> None:
            # Same rule as strategies/sma_cross.py: ties (within float noise) do not decide the sign, and a cross
            # is a change of sign since the last untied candle.
            diff = self.fast[-1] - self.slow[-1]
            if abs(diff) < 1e-9 * self.data.Close[-1]:
                return
            sign = 1 if diff > 0 else -1
            prev, self.last_sign = self.last_sign, sign
            if prev < 0 < sign:
                self.buy(size=float(FRACTION))
            elif prev > 0 > sign:
                self.position.close()

    bt = Backtest(df, SmaCross, cash=CASH, commission=float(FEE_PCT) / 100, trade_on_close=False)
    t = time.perf_counter()
    stats = bt.run()
    run_s = time.perf_counter() - t
    tr = stats["_trades"]
    if trades_out:
        trips = [(int(pd.Timestamp(e).value // 1_000_000), repr(float(ep)), int(pd.Timestamp(x).value // 1_000_000),
                  repr(float(xp))) for e, ep, x, xp in zip(tr.EntryTime, tr.EntryPrice, tr.ExitTime, tr.ExitPrice,
                                                          strict=True)]
        Path(trades_out).write_text(json.dumps(trips))
    return {"engine": "backtesting.py", "case": "sma", "rows": len(df), "load_s": load_s, "run_s": run_s,
            "rate": len(df) / run_s, "peak_mb": _peak_mb() - base, "raw_mb": len(df) * 6 * 8 / 2**20,
            "trades": len(tr)}


def _child(args: list[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"benchmark child {args} failed:\n{out.stderr}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def compare_trades(ours_path: Path, theirs_path: Path) -> tuple[int, int, list[str]]:
    ours = json.loads(ours_path.read_text())
    theirs = json.loads(theirs_path.read_text())
    n = min(len(ours), len(theirs))
    diffs = []
    for a, b in zip(ours[:n], theirs[:n], strict=True):
        same = a[0] == b[0] and a[2] == b[2] and Decimal(a[1]) == Decimal(b[1]) and Decimal(a[3]) == Decimal(b[3])
        if not same:
            diffs.append(f"botkit {a} vs backtesting.py {b}")
    return n, len(ours) - len(theirs), diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic 1m candles (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the synthetic data (default 7)")
    ap.add_argument("--smoke", action="store_true", help="tiny end-to-end check: report targets, do not enforce them")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, csv_path, *rest = args.child
        trades_out = rest[0] if rest else None
        if kind == "backtesting.py":
            res = case_backtesting_py(csv_path, trades_out)
        else:
            res = case_botkit(csv_path, kind, trades_out)
        print(json.dumps(res))
        return 0

    from botkit.backtest.sample import SAMPLE_MARKETS, generate_candles, write_candles_csv

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "BTC_USDT_1m.synthetic.csv"
        print(f"generating {args.rows:,} SYNTHETIC 1m candles (seed {args.seed}) ...", flush=True)
        rules = SAMPLE_MARKETS["BTC_USDT"].rules
        series = generate_candles("BTC_USDT", start_ms=1_577_836_800_000, count=args.rows, seed=args.seed)
        write_candles_csv(series, csv_path, rules.money_prec, rules.stock_prec)
        csv_mb = csv_path.stat().st_size / 2**20
        del series
        ours_t, theirs_t = Path(tmp) / "ours.json", Path(tmp) / "theirs.json"
        runs = [
            _child(["noop", str(csv_path)]),
            _child(["sma", str(csv_path), str(ours_t)]),
            _child(["backtesting.py", str(csv_path), str(theirs_t)]),
        ]
        n, count_diff, diffs = compare_trades(ours_t, theirs_t)

    noop, sma, ref = runs
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; data: {args.rows:,} candles, "
          f"CSV {csv_mb:.1f} MiB, numpy columns {noop['raw_mb']:.1f} MiB\n")
    print(f"{'engine':<16}{'strategy':<10}{'candles/s':>14}{'run s':>9}{'load s':>9}{'peak MiB':>10}"
          f"{'/raw':>7}{'trades':>8}")
    for r in runs:
        ratio = float(r["peak_mb"]) / float(noop["raw_mb"])  # type: ignore[arg-type]
        print(f"{r['engine']:<16}{r['case']:<10}{r['rate']:>14,.0f}{r['run_s']:>9.2f}{r['load_s']:>9.2f}"
              f"{r['peak_mb']:>10.1f}{ratio:>7.2f}{r['trades']:>8}")
    speedup = float(sma["rate"]) / float(ref["rate"])  # type: ignore[arg-type]
    worst = max(float(r["peak_mb"]) for r in runs[:2]) / float(noop["raw_mb"])  # type: ignore[arg-type]
    noop_rate = float(noop["rate"])  # type: ignore[arg-type]
    checks = [
        ("SMA speed-up vs backtesting.py", f"{speedup:.2f}x", ">= 3x", speedup >= 3),
        ("no-op events/s", f"{noop_rate:,.0f}", ">= 1,000,000", noop_rate >= 1_000_000),
        ("botkit peak memory / raw data", f"{worst:.2f}x", "< 3x", worst < 3),
    ]
    print()
    print(f"{'figure':<32}{'measured':>14}   {'target':<13} met")
    for name, value, target, met in checks:
        print(f"{name:<32}{value:>14}   {target:<13} {'yes' if met else 'NO'}")
    same = not diffs and count_diff == 0
    print(f"trades, both filling at the next open: {'SAME' if same else 'DIFFERENT'} ({n} compared; count "
          f"difference {count_diff}; {len(diffs)} mismatches)")
    for d in diffs[:5]:
        print("  ", d)
    missed = [name for name, _, _, met in checks if not met]
    print(f"\nall targets met: {not missed}" + (f" (missed: {', '.join(missed)})" if missed else ""))
    if not same:
        return 2
    if missed and not args.smoke:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
