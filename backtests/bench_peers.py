"""botkit against its peers: the same two strategies on the same candles through botkit, backtesting.py, backtrader
and vectorbt.

    pip install -e .[peers]          # backtesting.py, backtrader, vectorbt: for this benchmark only
    python backtests/bench_peers.py [--rows 200000] [--seed 7] [--write backtests/PEERS.md]

Strategies (both long-only spot, 0.1 % fee per fill, cash 1e9 so that whole-unit sizing in backtesting.py rounds
away nothing that matters):
- sma: SMA(20) / SMA(100) crossover, market orders at the next candle's open, 95 % of the cash in, all out
  (strategies/sma_cross.py's rule: ties within float noise do not count, a cross is a change of the last sign).
- limit: a dip buyer with limit orders. While flat, bid 0.5 % under the close (rounded down to the cent), valid for
  one candle; once filled, a take-profit limit sell 0.5 % above the fill (rounded up). A limit fills when the candle
  reaches it, at its price, or at the open when the open is already past it. vectorbt has no limit orders in its
  open-source edition (its maintainer: "Limit orders are only supported in pro"), so there the same rule runs in
  Portfolio.from_order_func with a Numba callback, which is how its users write them.

Each engine and strategy runs in its own process: candles/s is run time only (data loaded and converted before the
clock starts; vectorbt's Numba functions compiled by a warm-up run on 1,000 candles first, its compile time is
printed apart), peak memory is the process's RSS high-water mark (VmHWM) above its RSS after imports. Engines that
are not installed are skipped with the reason. The data is SYNTHETIC (botkit's seeded generator).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAST, SLOW, FRACTION, FEE, CASH = 20, 100, 0.95, 0.001, 1_000_000_000
DIP, TAKE = 0.005, 0.005
ENGINES = ("botkit", "backtesting.py", "backtrader", "vectorbt")
MODULES = {"botkit": "botkit", "backtesting.py": "backtesting", "backtrader": "backtrader", "vectorbt": "vectorbt"}
STRATEGIES = ("sma", "limit")


def _status(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return 0.0


def bid(close: float) -> float:
    return math.floor(close * (1 - DIP) * 100) / 100


def target(fill: float) -> float:
    return math.ceil(fill * (1 + TAKE) * 100 - 1e-6) / 100


def load_frame(csv_path: str) -> Any:
    import numpy as np
    import pandas as pd

    raw = np.loadtxt(csv_path, delimiter=",", skiprows=1)
    return pd.DataFrame({"Open": raw[:, 1], "High": raw[:, 2], "Low": raw[:, 3], "Close": raw[:, 4],
                         "Volume": raw[:, 5]}, index=pd.to_datetime(raw[:, 0].astype("int64"), unit="ms"))


# ---- botkit -----------------------------------------------------------------------------------------------------

def run_botkit(csv_path: str, strategy: str) -> tuple[float, int, float]:
    from botkit import Context, Strategy
    from botkit.backtest.data import load_candles
    from botkit.backtest.replay import Backtest
    from botkit.backtest.sample import SAMPLE_MARKETS
    from botkit.market.grants import Grant
    from botkit.market.orders import Fill, Order
    from botkit.market.types import Candle
    from botkit.plugins import load_strategy_class
    from botkit.venues.simulated import FillModel

    series = load_candles(csv_path, "BTC_USDT")
    r0 = SAMPLE_MARKETS["BTC_USDT"].rules
    rules = type(r0)(**{**{f: getattr(r0, f) for f in r0.__slots__}, "maker_fee": Decimal(FEE * 100),
                        "taker_fee": Decimal(FEE * 100), "max_total": Decimal(0)})

    class DipLimit(Strategy):
        scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

        def on_start(self, ctx: Context) -> None:
            self.entry: Order | None = None

        def on_candle(self, ctx: Context, candle: Candle) -> None:
            if self.entry is not None and self.entry.is_open:
                ctx.cancel(self.entry)  # valid for one candle
            self.entry = None
            if ctx.open_orders("BTC_USDT") or ctx.balance("BTC").available >= rules.min_amount:
                return  # the take-profit is working
            price = Decimal(repr(bid(candle.close))).quantize(Decimal("0.01"), ROUND_FLOOR)
            quote = ctx.balance("USDT").available * Decimal(repr(FRACTION))
            self.entry = ctx.buy("BTC_USDT", quote / price, price)

        def on_fill(self, ctx: Context, fill: Fill) -> None:
            if fill.side == "buy":
                tp = Decimal(repr(target(float(fill.price)))).quantize(Decimal("0.01"), ROUND_CEILING)
                ctx.sell("BTC_USDT", ctx.balance("BTC").available, tp)

    if strategy == "sma":
        cls = load_strategy_class(f"{ROOT / 'strategies' / 'sma_cross.py'}:SmaCross")
        strat: Strategy = cls(cls.Params(fast=FAST, slow=SLOW, fraction=Decimal(repr(FRACTION))))
    else:
        strat = DipLimit()
    bt = Backtest(strat, [series], {"BTC_USDT": rules}, {"USDT": Decimal(CASH)},
                  grant=Grant.of("orders.create,orders.delete,orders.read,balances.read"),
                  fill_model=FillModel(touch=True))
    t = time.perf_counter()
    res = bt.run()
    run_s = time.perf_counter() - t
    buys = sum(1 for f in res.fills if f.side == "buy")
    return run_s, buys, float(res.equity[-1])


# ---- backtesting.py ---------------------------------------------------------------------------------------------

def run_backtesting_py(csv_path: str, strategy: str) -> tuple[float, int, float]:
    import warnings

    import pandas as pd
    from backtesting import Backtest, Strategy

    warnings.filterwarnings("ignore")
    df = load_frame(csv_path)

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)
            self.last_sign = 0

        def next(self) -> None:
            diff = self.fast[-1] - self.slow[-1]
            if math.isnan(diff) or abs(diff) < 1e-9 * self.data.Close[-1]:
                return
            sign = 1 if diff > 0 else -1
            prev, self.last_sign = self.last_sign, sign
            if prev < 0 < sign:
                self.buy(size=FRACTION)
            elif prev > 0 > sign:
                self.position.close()

    class DipLimit(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            pass

        def next(self) -> None:
            for o in list(self.orders):
                if o.is_long:
                    o.cancel()  # an unfilled entry is valid for one candle
            if self.position:
                if not self.orders:
                    fill = self.trades[-1].entry_price
                    self.sell(size=self.position.size, limit=target(fill))
                return
            self.buy(size=FRACTION, limit=bid(self.data.Close[-1]))

    bt = Backtest(df, SmaCross if strategy == "sma" else DipLimit, cash=CASH, commission=FEE, trade_on_close=False,
                  finalize_trades=False)
    t = time.perf_counter()
    stats = bt.run()
    run_s = time.perf_counter() - t
    trades = stats["_trades"]
    return run_s, len(trades) + (1 if _open_position(stats) else 0), float(stats["Equity Final [$]"])


def _open_position(stats: Any) -> bool:
    strat = stats["_strategy"]
    return bool(getattr(strat, "position", None))


# ---- backtrader -------------------------------------------------------------------------------------------------

def run_backtrader(csv_path: str, strategy: str) -> tuple[float, int, float]:
    import backtrader as bt

    df = load_frame(csv_path)

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.last_sign = 0
            self.buys = 0

        def next(self) -> None:
            diff = self.fast[0] - self.slow[0]
            if abs(diff) < 1e-9 * self.data.close[0]:
                return
            sign = 1 if diff > 0 else -1
            prev, self.last_sign = self.last_sign, sign
            if prev < 0 < sign:
                self.buy(size=FRACTION * self.broker.getcash() / self.data.close[0])
                self.buys += 1
            elif prev > 0 > sign and self.position:
                self.close()

    class DipLimit(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.entry: Any = None
            self.exit: Any = None
            self.buys = 0

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed and order.isbuy():
                self.buys += 1
                self.entry = None
                self.exit = self.sell(size=order.executed.size, exectype=bt.Order.Limit,
                                      price=target(order.executed.price))
            elif order.status == order.Completed:
                self.exit = None

        def next(self) -> None:
            if self.entry is not None:
                self.cancel(self.entry)  # valid for one candle
                self.entry = None
            if self.position or self.exit is not None:
                return
            price = bid(self.data.close[0])
            self.entry = self.buy(size=FRACTION * self.broker.getcash() / price, exectype=bt.Order.Limit, price=price)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(SmaCross if strategy == "sma" else DipLimit)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=FEE)
    t = time.perf_counter()
    strat = cerebro.run()[0]
    run_s = time.perf_counter() - t
    return run_s, int(strat.buys), float(cerebro.broker.getvalue())


# ---- vectorbt ---------------------------------------------------------------------------------------------------

def run_vectorbt(csv_path: str, strategy: str) -> tuple[float, int, float, float]:
    import warnings

    import numpy as np
    import vectorbt as vbt

    warnings.filterwarnings("ignore")
    df = load_frame(csv_path)

    def sma_run(frame: Any) -> Any:
        close = frame["Close"]
        diff = (vbt.MA.run(close, FAST).ma - vbt.MA.run(close, SLOW).ma).to_numpy()
        sign = np.where(np.abs(diff) < 1e-9 * close.to_numpy(), 0.0, np.sign(np.nan_to_num(diff)))
        last = np.where(sign != 0, sign, np.nan)
        last = frame.assign(s=last)["s"].ffill().fillna(0).to_numpy()
        prev = np.concatenate([[0.0], last[:-1]])
        entries = (prev < 0) & (last > 0)
        exits = (prev > 0) & (last < 0)
        # decided at a candle's close, executed at the next candle's open
        ent = np.concatenate([[False], entries[:-1]])
        ex = np.concatenate([[False], exits[:-1]])
        return vbt.Portfolio.from_signals(close, ent, ex, price=frame["Open"], size=FRACTION, size_type="percent",
                                          fees=FEE, init_cash=CASH)

    def limit_run(frame: Any) -> Any:
        o, h, lo, c = (frame[k].to_numpy() for k in ("Open", "High", "Low", "Close"))
        state = np.zeros(2)  # [working bid, working take-profit]; 0 = none
        return vbt.Portfolio.from_order_func(frame["Close"], _dip_order_nb(), o, h, lo, c, state,
                                             init_cash=CASH)

    run = sma_run if strategy == "sma" else limit_run
    t = time.perf_counter()
    run(df.iloc[:1000])  # compile the Numba functions
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    pf = run(df)
    run_s = time.perf_counter() - t
    orders = pf.orders.records_readable
    buys = int((orders["Side"] == "Buy").sum())
    return run_s, buys, float(pf.final_value()), compile_s


_DIP_NB: Any = None


def _dip_order_nb() -> Any:
    """The dip buyer as a vectorbt order function (Numba): state[0] the bid working on this candle, state[1] the
    take-profit; a new bid is made at a flat candle's close for the next candle."""
    global _DIP_NB
    if _DIP_NB is not None:
        return _DIP_NB
    import numpy as np
    from numba import njit
    from vectorbt.portfolio.enums import NoOrder
    from vectorbt.portfolio.nb import order_nb

    @njit  # type: ignore[misc]
    def dip(c: Any, o: Any, h: Any, lo: Any, cl: Any, state: Any) -> Any:
        i = c.i
        if c.position_now > 0:
            tp = state[1]
            if tp > 0 and (o[i] >= tp or h[i] >= tp):
                px = o[i] if o[i] >= tp else tp
                state[1] = 0.0
                state[0] = np.floor(cl[i] * (1 - DIP) * 100) / 100  # flat again at the close: bid for the next
                return order_nb(-c.position_now, px, fees=FEE)
            return NoOrder
        b = state[0]
        state[0] = 0.0
        if b > 0 and (o[i] <= b or lo[i] <= b):
            px = o[i] if o[i] <= b else b
            size = np.floor(FRACTION * c.cash_now / b * 1e6) / 1e6
            state[1] = np.ceil(px * (1 + TAKE) * 100 - 1e-6) / 100
            return order_nb(size, px, fees=FEE)
        state[0] = np.floor(cl[i] * (1 - DIP) * 100) / 100
        return NoOrder

    _DIP_NB = dip
    return dip


# ---- driver -----------------------------------------------------------------------------------------------------

def child(engine: str, csv_path: str, strategy: str) -> dict[str, Any]:
    __import__(MODULES[engine])
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    base = _status("VmRSS:")
    with open(csv_path) as fh:
        rows = sum(1 for _ in fh) - 1
    compile_s = None
    if engine == "botkit":
        run_s, trades, equity = run_botkit(csv_path, strategy)
    elif engine == "backtesting.py":
        run_s, trades, equity = run_backtesting_py(csv_path, strategy)
    elif engine == "backtrader":
        run_s, trades, equity = run_backtrader(csv_path, strategy)
    else:
        run_s, trades, equity, compile_s = run_vectorbt(csv_path, strategy)
    return {"engine": engine, "strategy": strategy, "rows": rows, "run_s": run_s, "rate": rows / run_s,
            "peak_mb": _status("VmHWM:") - base, "trades": trades, "equity": equity, "compile_s": compile_s}


def _version(engine: str) -> str | None:
    import importlib.metadata as md

    name = {"backtesting.py": "backtesting"}.get(engine, engine)
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--write", type=Path, help="also write the table as Markdown to this file (backtests/PEERS.md)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    import importlib.util

    from botkit.backtest.sample import SAMPLE_MARKETS, generate_candles, write_candles_csv

    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    skipped = {e: f"not installed (pip install -e .[peers] brings {MODULES[e]})" for e in wanted
               if importlib.util.find_spec(MODULES[e]) is None}
    results: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="botkit-peers-") as tmp:
        csv_path = Path(tmp) / "BTC_USDT_1m.synthetic.csv"
        rules = SAMPLE_MARKETS["BTC_USDT"].rules
        write_candles_csv(generate_candles("BTC_USDT", start_ms=1_577_836_800_000, count=args.rows, seed=args.seed),
                          csv_path, rules.money_prec, rules.stock_prec)
        for strategy in STRATEGIES:
            for engine in wanted:
                if engine in skipped:
                    continue
                print(f"  {engine} {strategy} ...", flush=True)
                out = subprocess.run([sys.executable, __file__, "--child", engine, str(csv_path), strategy],
                                     capture_output=True, text=True, check=False)
                if out.returncode:
                    failed[f"{engine} {strategy}"] = (out.stderr.strip().splitlines() or ["?"])[-1]
                    continue
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        load = max(load, os.getloadavg()[0])
    lines = table(results, args.rows, skipped, failed, load)
    print("\n".join(lines))
    if args.write:
        args.write.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"\nwrote {args.write}")
    return 1 if failed or not any(r["engine"] == "botkit" for r in results) else 0


def table(results: list[dict[str, Any]], rows: int, skipped: dict[str, str], failed: dict[str, str],
          load: float) -> list[str]:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{e} {_version(e)}" for e in ENGINES if _version(e))
    out = [
        "# botkit vs backtesting.py, backtrader, vectorbt",
        "",
        f"Command: `python backtests/bench_peers.py --rows {rows}`. Machine: {_cpu()}, {os.cpu_count()} cores, "
        f"{ram:.0f} GiB RAM, Python {sys.version.split()[0]}, load average up to {load:.1f} during the run "
        f"(other work on the machine slows every engine alike). Versions: {versions}.",
        "",
        f"Data: {rows:,} SYNTHETIC one-minute candles (botkit's seeded generator). candles/s: run time only; peak MiB: "
        "RSS high-water mark above the RSS after imports (data included); x botkit: the peer's figure divided by "
        "botkit's for the same strategy (speed above 1 = faster than botkit). trades: entries filled. "
        "Strategies and rules: see the docstring of backtests/bench_peers.py.",
        "",
        "| strategy | engine | candles/s | x botkit | peak MiB | x botkit | trades | final equity |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy in STRATEGIES:
        ref = next((r for r in results if r["engine"] == "botkit" and r["strategy"] == strategy), None)
        for r in (r for r in results if r["strategy"] == strategy):
            sp = f"{r['rate'] / ref['rate']:.2f}" if ref else "-"
            mem = f"{r['peak_mb'] / ref['peak_mb']:.2f}" if ref and ref["peak_mb"] > 0 else "-"
            note = f" (+{r['compile_s']:.1f} s Numba compile)" if r.get("compile_s") else ""
            out.append(f"| {strategy} | {r['engine']}{note} | {r['rate']:,.0f} | {sp} | {r['peak_mb']:,.0f} | {mem} | "
                       f"{r['trades']:,} | {r['equity']:,.0f} |")
    for e, why in skipped.items():
        out.append(f"\nskipped {e}: {why}")
    for e, why in failed.items():
        out.append(f"\nFAILED {e}: {why}")
    return out


if __name__ == "__main__":
    sys.exit(main())
