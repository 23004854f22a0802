"""The `botkit` command: backtest, data, sandbox, auth.

Exit codes: 0 success, 1 the strategy or a run failed, 2 bad input (config, data, plugin, arguments).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from botkit import __version__

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _parse_when(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date/time; use e.g. 2024-01-31 or 2024-01-31T12:00"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _cmd_backtest(args: argparse.Namespace) -> int:
    from botkit.auth.grants import InsufficientScope
    from botkit.backtest.data import DataError
    from botkit.backtest.engine import BacktestError
    from botkit.backtest.report import summary_table, write_report
    from botkit.backtest.runner import ProgressBar, run_backtest
    from botkit.config import ConfigError, load_config
    from botkit.plugins import PluginError

    overrides: dict[str, dict[str, object]] = {}
    data: dict[str, object] = {}
    if args.start is not None:
        data["start"] = args.start
    if args.end is not None:
        data["end"] = args.end
    if args.data:
        files: dict[str, str] = {}
        for item in args.data:
            market, sep, path = item.partition("=")
            if not sep:
                files["*"] = item
            else:
                files[market] = path
        data["files"] = files
    if data:
        overrides["data"] = data
    if args.out is not None:
        overrides["output"] = {"dir": str(args.out)}
    try:
        if "files" in data and "*" in data["files"]:  # type: ignore[operator]
            cfg0 = load_config(args.config)
            if len(cfg0.markets) != 1:
                print(f"error: --data PATH needs MARKET=PATH when the config has several markets "
                      f"({', '.join(cfg0.markets)})", file=sys.stderr)
                return EXIT_BAD_INPUT
            data["files"] = {next(iter(cfg0.markets)): data["files"]["*"]}  # type: ignore[index]
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cfg.data.files:
        print(f"error: {args.config}: [data] files is empty; add e.g. files = {{ BTC_USDT = \"path.csv\" }} "
              "or pass --data MARKET=PATH", file=sys.stderr)
        return EXIT_BAD_INPUT
    show = cfg.backtest.progress and not args.quiet
    t0 = time.perf_counter()
    try:
        result = run_backtest(cfg, ProgressBar() if show else None)
    except (PluginError, DataError, BacktestError, InsufficientScope) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    elapsed = time.perf_counter() - t0
    out_dir = Path(cfg.output.dir)
    paths = write_report(result, out_dir, str(args.config))
    if not args.quiet:
        for market, source in result.sources.items():
            note = "  (SYNTHETIC sample data)" if "synthetic" in source.lower() or "/sample/" in source else ""
            print(f"data {market}: {source}{note}")
            for rep in result.repairs.get(market, []):
                print(f"  repaired: {rep}")
        print(f"\nBacktest {cfg.name}")
        print(summary_table(result))
        rate = result.events / elapsed if elapsed > 0 else 0.0
        print(f"\n{result.events:,} candles in {elapsed:.2f} s ({rate:,.0f}/s)")
        print("wrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botkit", description="OAuth-scoped trading bots for WhiteBIT.")
    parser.add_argument("--version", action="version", version=f"botkit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    bt = sub.add_parser("backtest", help="backtest a strategy on recorded candles",
                        description="Backtest the strategy of CONFIG on the candle files in its [data] section.")
    bt.add_argument("config", type=Path, help="bot config file (TOML), e.g. configs/sma_cross.toml")
    bt.add_argument("--from", dest="start", type=_parse_when, help="start (UTC), e.g. 2024-01-01")
    bt.add_argument("--to", dest="end", type=_parse_when, help="end (UTC, exclusive)")
    bt.add_argument("--data", action="append", metavar="MARKET=PATH",
                    help="candle file per market (repeatable); PATH alone when the config has one market")
    bt.add_argument("--out", type=Path, help="output folder (default: [output] dir)")
    bt.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    bt.set_defaults(func=_cmd_backtest)

    from botkit.backtest import data_cli

    data_cli.register(sub)
    __import__("botkit.backtest.report_cli", fromlist=["register"]).register(sub)
    for modname in ("botkit.sandbox.cli", "botkit.auth.cli", "botkit.run_cli"):
        try:
            module = __import__(modname, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from botkit.auth.redact import install as install_redaction

    install_redaction()  # every handler scrubs tokens, secrets, codes and verifiers
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
