"""Sweep benchmark: 1,000 parameter sets of the SMA crossover over 100,000 one-minute candles, on 1 and 2 workers,
with the local process pool and with Ray.

    python backtests/bench_sweep.py [--rows 100000] [--sets 1000] [--engines process,ray] [--workers 1,2]

Each sweep is a real `botkit sweep` run through the Python API (botkit.backtest.sweep), timed from creating the
workers to the last result, writing nothing but its journal to a temporary folder. Ray runs on a local Ray started
before its own timings and stopped after them, so its processes never run beside the process pool's (its start-up
is printed apart). The data is SYNTHETIC (botkit's seeded generator).
Targets (issue 11): >= 1.8x from 1 to 2 workers, and the whole sweep under 2 minutes on 2 workers. Prints every
figure next to its target and exits 1 when one is missed or when the engines and worker counts disagree on a result.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP, TARGET_SECONDS = 1.8, 120.0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def write_inputs(folder: Path, rows: int, seed: int) -> Path:
    from botkit.backtest.sample import SAMPLE_MARKETS, SAMPLE_START_MS, generate_candles, write_candles_csv

    rules = SAMPLE_MARKETS["BTC_USDT"].rules
    data = folder / "BTC_USDT_1m.synthetic.csv"
    write_candles_csv(generate_candles("BTC_USDT", start_ms=SAMPLE_START_MS, count=rows, seed=seed), data,
                      rules.money_prec, rules.stock_prec)
    cfg = folder / "bench_sweep.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [strategy]
        plugin = "{ROOT / 'strategies' / 'sma_cross.py'}:SmaCross"
        params = {{ fast = 20, slow = 100, fraction = "0.95" }}

        [markets.BTC_USDT]
        stock_prec = 6
        money_prec = 2
        min_amount = "0.00001"
        min_total = "1"

        [balances]
        USDT = "10000"

        [data]
        files = {{ BTC_USDT = "{data}" }}
        """), encoding="utf-8")
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sets", type=int, default=1000)
    ap.add_argument("--engines", default="process,ray")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from botkit.backtest.sweep import Sweep, SweepSpec
    from botkit.backtest.sweep_exec import make_engine
    from botkit.backtest.sweep_report import write_results
    from botkit.backtest.sweep_space import grid_size, parse_space

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    counts = [int(w) for w in args.workers.split(",")]
    # 50 fast x 20 slow = 1,000 sets, every one with fast < slow; fewer sets: a seeded random draw from them
    dims = parse_space(["fast=5..54", "slow=60..250:10"])
    mode = "grid" if args.sets >= (grid_size(dims) or 0) else "random"
    ray_start = None
    if "ray" in engines:
        try:
            import ray  # started below, only for its own timings
        except ImportError:
            print("Ray is not installed (pip install -e .[ray]): measuring the process pool only")
            engines.remove("ray")
    results: dict[tuple[str, int], float] = {}
    cpu: dict[tuple[str, int], tuple[float, float | None]] = {}
    tables: dict[tuple[str, int], str] = {}
    with tempfile.TemporaryDirectory(prefix="botkit-bench-sweep-") as tmp:
        cfg = write_inputs(Path(tmp), args.rows, args.seed)
        n = None
        for engine_kind in engines:
            if engine_kind == "ray":  # started now and stopped after: never running beside the pool's timings
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=max(counts), include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                         object_store_memory=200 * 2**20)
                ray_start = time.perf_counter() - t
            for w in counts:
                out = Path(tmp) / f"{engine_kind}-{w}"
                spec = SweepSpec(cfg, dims, mode, None if mode == "grid" else args.sets, 0, "sharpe", out=out)
                sweep = Sweep(spec)
                t = time.perf_counter()
                parent0, children0 = time.process_time(), _children_cpu()
                engine = make_engine(engine_kind, w, None)
                try:
                    outcome = sweep.run(engine)
                finally:
                    engine.close()
                results[(engine_kind, w)] = time.perf_counter() - t
                n = outcome.ran
                parent = time.process_time() - parent0
                # pool workers are this process's children (their CPU counts once they exit, at close); Ray's are not
                workers_cpu = _children_cpu() - children0 if engine_kind == "process" else None
                cpu[(engine_kind, w)] = (parent, workers_cpu)
                tables[(engine_kind, w)] = write_results(outcome, out / "results.csv").read_text()
                per = "" if workers_cpu is None else f", workers {workers_cpu:.1f} s CPU"
                print(f"  {engine_kind} x{w}: {n} backtests in {results[(engine_kind, w)]:.1f} s; parent "
                      f"{parent:.1f} s CPU{per}", flush=True)
            if engine_kind == "ray":
                ray.shutdown()

    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load[0]:.2f} "
          f"(a busy machine slows every figure); data: {args.rows:,} SYNTHETIC 1m candles; {n} parameter sets of "
          "strategies/sma_cross.py")
    if ray_start is not None:
        print(f"local Ray start-up (not in the timings): {ray_start:.1f} s")
    print(f"\n{'engine':<10}{'workers':>8}{'wall s':>10}{'backtests/s':>13}{'speed-up':>10}{'parent CPU s':>14}"
          f"{'CPU s/backtest':>16}")
    missed = []
    for engine_kind in engines:
        base = results[(engine_kind, counts[0])]
        for w in counts:
            wall = results[(engine_kind, w)]
            parent, workers_cpu = cpu[(engine_kind, w)]
            each = "n/a" if workers_cpu is None or not n else f"{workers_cpu / n:.3f}"
            print(f"{engine_kind:<10}{w:>8}{wall:>10.1f}{(n or 0) / wall:>13.1f}{base / wall:>9.2f}x{parent:>14.1f}"
                  f"{each:>16}")
    print("(CPU s/backtest: the pool workers' CPU, start-up and data load included, over the backtests; the steadier "
          "figure on a shared machine. Ray's workers are not this process's children: n/a)")
    print()
    for engine_kind in engines:
        if 1 in counts and 2 in counts:
            sp = results[(engine_kind, 1)] / results[(engine_kind, 2)]
            ok = sp >= TARGET_SPEEDUP
            print(f"{engine_kind}: speed-up 1 -> 2 workers {sp:.2f}x   (target >= {TARGET_SPEEDUP}x) "
                  f"{'ok' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"{engine_kind} speed-up")
        if 2 in counts:
            wall = results[(engine_kind, 2)]
            ok = wall < TARGET_SECONDS
            print(f"{engine_kind}: whole sweep on 2 workers {wall:.1f} s   (target < {TARGET_SECONDS:.0f} s) "
                  f"{'ok' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"{engine_kind} 2-worker time")
    same = len(set(tables.values())) == 1
    print(f"identical results.csv across engines and worker counts: {'YES' if same else 'NO'}")
    if not same:
        missed.append("identical results")
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
