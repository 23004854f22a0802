"""Whole-command benchmark: `botkit backtest` as a user runs it, from start to all outputs written.

    python backtests/bench_command.py [--rows 1000000] [--repeat 3] [--src DIR]

Writes SYNTHETIC candles (botkit's seeded generator) to a temporary folder, then runs the shipped SMA crossover
(configs/sma_cross.toml pointed at them) as `python -m botkit.cli backtest CONFIG -q` in a fresh process, `repeat`
times, and prints the wall time and the CPU time (user + system, less disturbed by other load on a shared
machine) of each run, and the best of each. `--src DIR` runs another checkout's botkit (e.g. an
older commit unpacked with `git archive`) on the same data, for before/after figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", type=Path, default=ROOT, help="checkout whose botkit and strategies/ to run")
    args = ap.parse_args()

    from botkit.backtest.sample import generate_candles, write_candles_csv

    src = args.src.resolve()
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        data = Path(tmp) / "BTC_USDT_1m.csv"
        start = 1_600_000_000_000 - 1_600_000_000_000 % 86_400_000
        write_candles_csv(generate_candles("BTC_USDT", start_ms=start, count=args.rows, seed=args.seed), data, 2, 6)
        cfg = Path(tmp) / "sma.toml"
        text = (src / "configs" / "sma_cross.toml").read_text(encoding="utf-8")
        text = text.replace("backtests/sample/BTC_USDT_1m.csv", str(data))
        cfg.write_text(text, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(src))
        times, cpus = [], []
        for i in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "botkit.cli", "backtest", str(cfg), "-q", "--out",
                            str(Path(tmp) / "out")], cwd=src, env=env, check=True)
            times.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            print(f"run {i + 1}: {times[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU", flush=True)
        outputs = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    print(f"{args.rows:,} candles, SMA crossover, whole command: best {min(times):.2f} s wall, {min(cpus):.2f} s CPU "
          f"(src {src}; outputs: {', '.join(outputs)})")


if __name__ == "__main__":
    main()
