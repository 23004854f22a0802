"""`botkit data sample | check | bench`: regenerate the synthetic sample, validate a candle file, time the loader.

`check` exists so a user finds a bad line in seconds instead of in a backtest report; it exits 2 on bad data with
the same file:line message the loader raises. Each subcommand sets `func(args) -> exit code` on the parsed args.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from botkit.backtest.data import REPAIRS, CandleSeries, DataError, format_timeframe, iso_time, load_candles
from botkit.backtest.sample import SAMPLE_MARKETS, SAMPLE_START_MS, generate_candles, write_candles_csv, write_sample

DEFAULT_SAMPLE_DIR = Path("backtests") / "sample"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `data` command (with `sample` and `check`) to the top-level CLI."""
    data = subparsers.add_parser("data", help="candle data: regenerate the synthetic sample, validate a file")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{sample,check,bench}")

    sample = sub.add_parser("sample", help="regenerate the SYNTHETIC sample candles (byte-identical per seed)")
    sample.add_argument(
        "--out", type=Path, default=DEFAULT_SAMPLE_DIR, help=f"directory (default {DEFAULT_SAMPLE_DIR})"
    )
    sample.add_argument("--seed", type=int, default=7, help="random seed (default 7, the committed sample)")
    sample.set_defaults(func=_cmd_sample)

    check = sub.add_parser("check", help="validate a candle file (CSV or freqtrade JSON) and summarise it")
    check.add_argument("file", type=Path)
    check.add_argument("--market", required=True, help="WhiteBIT market name to map the data onto, e.g. BTC_USDT")
    check.add_argument("--timeframe", default=None, help="e.g. 1m, 5m, 1h (default: the most common step)")
    check.add_argument("--format", dest="fmt", choices=("auto", "csv", "freqtrade"), default="auto")
    check.add_argument(
        "--repair",
        action="append",
        default=[],
        choices=REPAIRS,
        help="apply a repair; repeat for several (default: none, any problem is an error)",
    )
    check.set_defaults(func=_cmd_check)

    bench = sub.add_parser(
        "bench", help="time loading a big SYNTHETIC file and measure its peak memory (made in a temporary directory)"
    )
    bench.add_argument("--rows", type=int, default=1_000_000)
    bench.add_argument("--seed", type=int, default=7)
    bench.add_argument("--repeat", type=int, default=3)
    bench.add_argument(
        "--kind", choices=("csv", "iso", "json"), default="csv", help="time_ms CSV, ISO 8601 CSV or freqtrade JSON"
    )
    bench.add_argument("--gzip", action="store_true", help="gzip the file first (.csv.gz / .json.gz)")
    bench.set_defaults(func=_cmd_bench)


# Run in a fresh interpreter: its RSS high-water mark (VmHWM) is its own. getrusage's ru_maxrss is not usable for
# this: Linux carries the parent's peak RSS over fork and exec, so a child of this process (which just generated
# the candles) would report the parent's peak, not its own.
_RSS_PROBE = """
import sys
from botkit.backtest.data import load_candles

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise SystemExit("no " + key + " in /proc/self/status")

before = status("VmRSS:")
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
except OSError:
    pass  # VmHWM then holds the interpreter's start-up peak, which is below `before` in practice
series = load_candles(sys.argv[1], "BTC_USDT")
print(status("VmHWM:") - before)
"""


def _rss_peak(path: Path) -> int | str:
    """Peak RSS above the RSS before loading, in bytes, from a fresh process; or why it could not be measured."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(path)], capture_output=True, text=True, check=False, timeout=600
    )
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]
        return f"the probe process failed: {last[0]}"
    return int(out.stdout.strip().splitlines()[-1])


def _cmd_bench(args: argparse.Namespace) -> int:
    """Time and measure loading a big SYNTHETIC file; figures go next to the target the issue sets."""
    rows: int = args.rows
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        path = Path(tmp) / f"bench_{rows}.csv"
        t0 = time.perf_counter()
        series = generate_candles("BTC_USDT", start_ms=SAMPLE_START_MS, count=rows, seed=args.seed)
        if args.kind == "iso":
            _write_iso_csv(series, path)
        elif args.kind == "json":
            path = path.with_suffix(".json")
            _write_freqtrade_json(series, path)
        else:
            write_candles_csv(series, path, 2, 6)
        del series
        if args.gzip:
            packed = path.with_name(path.name + ".gz")
            with path.open("rb") as raw, gzip.open(packed, "wb", compresslevel=6) as out:
                shutil.copyfileobj(raw, out)
            path.unlink()
            path = packed
        made = time.perf_counter() - t0
        size = path.stat().st_size
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            loaded = load_candles(path, "BTC_USDT")
            times.append(time.perf_counter() - t0)
            del loaded
        tracemalloc.start()
        loaded = load_candles(path, "BTC_USDT")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = _rss_peak(path)
    best = min(times)
    kind = {"csv": "time_ms CSV", "iso": "ISO timestamp CSV", "json": "freqtrade JSON"}[args.kind]
    packing = " (gzip)" if args.gzip else ""
    print(f"SYNTHETIC data: {rows:,} one-minute candles, {kind}{packing} of {size / 1e6:.1f} MB (made in {made:.2f} s)")
    print(
        f"load time:   best {best:.3f} s of {args.repeat} ({rows / best / 1e6:.2f} M rows/s)   target: a few s at most"
    )
    cols = loaded.nbytes
    print(
        f"peak memory: {peak / 1e6:.0f} MB during load (tracemalloc), columns {cols / 1e6:.0f} MB "
        f"= {peak / cols:.2f}x the columns"
    )
    if isinstance(rss, str):
        print(f"peak RSS:    not measured ({rss})")
    else:
        print(
            f"peak RSS:    {rss / 1e6:.0f} MB above the RSS before loading (fresh process, VmHWM) "
            f"= {rss / cols:.2f}x the columns   target: < 3x in backtests/bench_backtest.py"
        )
    return 0


def _write_iso_csv(series: CandleSeries, path: Path) -> None:
    """The ISO flavour (timestamp,open,...) that exports such as BTC-PERP_1m.csv use, for the ISO parse path."""
    stamps = np.datetime_as_string(series.time_ms.astype("datetime64[ms]")).astype(str)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        cols = zip(
            np.char.replace(stamps, "T", " ").tolist(),
            series.open.tolist(),
            series.high.tolist(),
            series.low.tolist(),
            series.close.tolist(),
            series.volume.tolist(),
            strict=True,
        )
        fh.writelines(f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.6f}\n" for t, o, h, lo, c, v in cols)


def _write_freqtrade_json(series: CandleSeries, path: Path) -> None:
    cols = zip(
        series.time_ms.tolist(),
        series.open.tolist(),
        series.high.tolist(),
        series.low.tolist(),
        series.close.tolist(),
        series.volume.tolist(),
        strict=True,
    )
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[" + ", ".join(f"[{t}, {o}, {h}, {lo}, {c}, {v:.6f}]" for t, o, h, lo, c, v in cols) + "]")


def _cmd_sample(args: argparse.Namespace) -> int:
    out: Path = args.out
    paths = write_sample(out, seed=args.seed)
    print(f"SYNTHETIC sample data (seed {args.seed}) - generated, not recorded from any exchange:")
    for p in paths:
        print(f"  wrote {p} ({p.stat().st_size:,} bytes)")
    print(f"markets: {', '.join(SAMPLE_MARKETS)}; see {out / 'README.md'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        series = load_candles(args.file, args.market, fmt=args.fmt, timeframe=args.timeframe, repair=args.repair)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad option values (timeframe, repair combination)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    took = time.perf_counter() - started
    tf = series.timeframe_ms
    steps = np.diff(series.time_ms)
    gaps = steps > tf
    missing = int((steps[gaps] // tf - 1).sum())
    first, last = int(series.time_ms[0]), int(series.time_ms[-1])
    print(f"file:      {series.source}")
    print(f"market:    {series.market}   timeframe: {format_timeframe(tf)}")
    print(f"rows:      {len(series):,}")
    print(f"span:      {iso_time(first)} .. {iso_time(last)} (open times)")
    print(f"gaps:      {int(gaps.sum())} ({missing} missing candles)")
    print(f"prices:    low {series.low.min():.10g}, high {series.high.max():.10g}")
    print(f"repairs:   {'; '.join(series.repairs) if series.repairs else 'none'}")
    print(f"loaded in: {took:.3f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m botkit.backtest.data_cli data check ...`) until the top-level CLI hooks it."""
    parser = argparse.ArgumentParser(prog="botkit")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
