"""`botkit data sample | check | bench | import | fetch | store`: the synthetic sample, candle checks, the loader
benchmark, imports into the columnar store, candle backfills from WhiteBIT's kline, and the store's contents.

`check` exists so a user finds a bad line in seconds instead of in a backtest report; it exits 2 on bad data with
the same file:line message the loader raises. Each subcommand sets `func(args) -> exit code` on the parsed args.
"""

from __future__ import annotations

# What only a `data` subcommand uses is imported in it: every `botkit` start (a backtest too) imports this module.
import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from botkit.backtest.data import REPAIRS, CandleSeries, DataError, format_timeframe, iso_time, load_candles

DEFAULT_SAMPLE_DIR = Path("backtests") / "sample"
DEFAULT_STORE = Path("data") / "store"
DEFAULT_FETCH_DIR = Path("data") / "candles"
IMPORT_KINDS = ("trades", "candles", "book", "recording")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `data` command (with `sample` and `check`) to the top-level CLI."""
    data = subparsers.add_parser("data", help="candle data: regenerate the synthetic sample, validate a file")
    sub = data.add_subparsers(dest="data_command", required=True,
                              metavar="{sample,check,bench,import,fetch,store}")

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

    imp = sub.add_parser(
        "import", help="import trades, candles, an order book or a recording into the columnar store",
        description="Validate a file and store it as Parquet columns (one dataset per market and kind, one file per "
                    "UTC day). An unchanged source is not imported again; a changed one is rebuilt.")
    imp.add_argument("kind", choices=IMPORT_KINDS, help="trades | candles | book | recording (a `botkit record` dir)")
    imp.add_argument("files", nargs="+", type=Path,
                     help="the file; book: SNAPSHOT UPDATES (Binance-style) or one wide top-N file; recording: DIR")
    imp.add_argument("--market", help="WhiteBIT market name to map the data onto, e.g. XRP_ETH (not for recording)")
    imp.add_argument("--format", dest="fmt", choices=("auto", "csv", "freqtrade"), default="auto",
                     help="trades and candles: the file format (default: detected)")
    imp.add_argument("--timeframe", default=None, help="candles: e.g. 1m, 5m (default: the most common step)")
    imp.add_argument("--repair", action="append", default=[], metavar="NAME",
                     help="trades: sort, drop_duplicates; candles: sort, drop_duplicates, fill_gaps, allow_gaps; "
                          "book: mark_gaps (keep updates after an update-id gap, marked as a resync point)")
    imp.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"store directory (default {DEFAULT_STORE})")
    imp.set_defaults(func=_cmd_import)

    fetch = sub.add_parser(
        "fetch", help="backfill candles from WhiteBIT's v1 kline endpoint (resumable) into a CSV and the store",
        description="Page through GET /api/v1/public/kline (at most 1,440 candles a request, within the endpoint's "
                    "rate limits). Re-running the same command continues after the last complete line of --out.")
    fetch.add_argument("--market", required=True, help="WhiteBIT market, e.g. BTC_USDT")
    fetch.add_argument("--interval", required=True, help="kline interval: 1m, 5m, 1h, 1d, ...")
    fetch.add_argument("--from", dest="start", required=True, type=_when, help="start (UTC), e.g. 2024-01-01")
    fetch.add_argument("--to", dest="end", required=True, type=_when, help="end (UTC, exclusive)")
    fetch.add_argument("--out", type=Path, default=None,
                       help=f"candle CSV to write or continue (default {DEFAULT_FETCH_DIR}/MARKET_INTERVAL.csv)")
    fetch.add_argument("--store", type=Path, default=DEFAULT_STORE,
                       help=f"also import the result into this store (default {DEFAULT_STORE}); --no-store skips")
    fetch.add_argument("--no-store", action="store_true", help="only write the CSV")
    fetch.add_argument("--base-url", default="https://whitebit.com", help="REST base URL (a sandbox's, in tests)")
    fetch.add_argument("--page-size", type=int, default=1440, help="candles per request, 2..1440 (default 1440)")
    fetch.set_defaults(func=_cmd_fetch)

    st = sub.add_parser("store", help="list the store's datasets: rows, days, span and source")
    st.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"store directory (default {DEFAULT_STORE})")
    st.set_defaults(func=_cmd_store)


def _when(text: str) -> int:
    """ISO date/time (UTC unless it says otherwise) -> seconds since the epoch."""
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date/time; use e.g. 2024-01-31 or 2024-01-31T12:00") \
            from None
    return int((dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt).timestamp())


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cmd_import(args: argparse.Namespace) -> int:
    from botkit.backtest.datasets import import_book, import_candles, import_trades
    from botkit.backtest.recordings import to_store
    from botkit.backtest.store import Store
    from botkit.recorder import describe, read_manifest

    store = Store(args.store)
    kind: str = args.kind
    files: list[Path] = args.files
    try:
        if kind == "recording":
            if len(files) != 1 or args.repair:
                raise ValueError("give one recording directory (no --repair: recordings are stored as received)")
            print(f"recording: {describe(read_manifest(files[0]))}")
            results = to_store(files[0], store, progress=_say)
        else:
            if not args.market:
                raise ValueError(f"{kind}: --market is required (the WhiteBIT name to map the data onto)")
            if kind == "trades":
                one = import_trades(store, _single(files), args.market, fmt=args.fmt, repair=args.repair,
                                    progress=_say)
            elif kind == "candles":
                one = import_candles(store, _single(files), args.market, fmt=args.fmt, timeframe=args.timeframe,
                                     repair=args.repair, progress=_say)
            else:
                one = import_book(store, files, args.market, repair=args.repair, progress=_say)
            results = {f"{kind}/{args.market}": one}
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, res in results.items():
        what = "imported" if res.rebuilt else "unchanged"
        print(f"{name}: {what}: {res.reason}; {res.table.num_rows:,} rows, sha256 {res.sha256[:16]}... "
              f"-> {args.store / name}")
    return 0


def _single(files: list[Path]) -> Path:
    if len(files) != 1:
        raise ValueError(f"give one file, got {len(files)}")
    return files[0]


def _cmd_fetch(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    from botkit.backtest.datasets import import_candles
    from botkit.backtest.fetch import FetchError, fetch_candles
    from botkit.backtest.store import Store
    from botkit.whitebit.errors import WhiteBitError
    from botkit.whitebit.rest import WhiteBitRest

    out: Path = args.out or DEFAULT_FETCH_DIR / f"{args.market}_{args.interval}.csv"

    async def go() -> int:
        async with httpx.AsyncClient(timeout=30.0) as http:
            rest = WhiteBitRest(args.base_url, http)
            res = await fetch_candles(rest, args.market, args.interval, args.start, args.end, out,
                                      page_size=args.page_size, progress=_say)
        if res.resumed_from_s is not None:
            print(f"resumed after {iso_time(res.resumed_from_s * 1000)} ({res.rows_before:,} candles already in {out})")
        print(f"{res.rows_written:,} candles fetched in {res.requests} request(s); {out} holds "
              f"{res.rows_before + res.rows_written:,}")
        if not args.no_store and res.rows_before + res.rows_written:
            got = import_candles(Store(args.store), out, args.market, timeframe=args.interval,
                                 repair=["allow_gaps"], progress=_say)
            print(f"store: candles/{args.market} {'imported' if got.rebuilt else 'unchanged'}, "
                  f"{got.table.num_rows:,} rows -> {args.store} (gaps are hours without trades; kept, not filled)")
        return 0

    try:
        return asyncio.run(go())
    except (FetchError, WhiteBitError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) and not isinstance(exc, DataError) else 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {out} keeps every complete page; run the same command again to continue",
              file=sys.stderr)
        return 130


def _cmd_store(args: argparse.Namespace) -> int:
    from botkit.backtest.store import TIME_COLUMN, Store

    store = Store(args.store)
    sets = store.datasets()
    if not sets:
        print(f"{args.store}: no datasets (botkit data import / fetch, or botkit record then data import recording)")
        return 0
    for kind, market in sets:
        info = store.info(kind, market) or {}
        table = store.read(kind, market)
        tcol, _ = TIME_COLUMN[kind]
        t = table.column(tcol).to_numpy()
        scale = 1000 if tcol == "time_us" else 1
        span = f"{iso_time(int(t[0]) // scale)} .. {iso_time(int(t[-1]) // scale)}" if len(t) else "empty"
        files = ", ".join(f["path"] for f in info.get("files", [])[:2])
        more = len(info.get("files", [])) - 2
        print(f"{kind}/{market}: {info.get('rows', 0):,} rows, {info.get('days', 0)} day(s), {span}, "
              f"from {files}{f' and {more} more' if more > 0 else ''}")
    return 0


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
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(path)], capture_output=True, text=True, check=False, timeout=600
    )
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]
        return f"the probe process failed: {last[0]}"
    return int(out.stdout.strip().splitlines()[-1])


def _cmd_bench(args: argparse.Namespace) -> int:
    """Time and measure loading a big SYNTHETIC file; figures go next to the target the issue sets."""
    import gzip
    import shutil
    import tempfile
    import tracemalloc

    from botkit.backtest.sample import SAMPLE_START_MS, generate_candles, write_candles_csv

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
    from botkit.backtest.sample import SAMPLE_MARKETS, write_sample

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
