"""The `botkit` command: backtest, data, sandbox, auth.

Exit codes: 0 success, 1 the strategy or a run failed, 2 bad input (config, data, plugin, arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from botkit import __version__

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def _parse_when(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date/time; use e.g. 2024-01-31 or 2024-01-31T12:00"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


_GAP_REPAIRS = ("fill_gaps", "allow_gaps")


def _repair_list(text: str) -> list[str]:
    """`--repair fill_gaps` or `--repair sort,drop_duplicates`: names checked against the loader's repairs."""
    from botkit.backtest.data import REPAIRS

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in REPAIRS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown repair {', '.join(bad) or repr(text)}: choose from {', '.join(REPAIRS)} "
            "(repeat --repair or separate names with commas)"
        )
    return names


def _merge_repairs(configured: Sequence[str], given: Sequence[str]) -> list[str]:
    """[data] repair plus the --repair names; a gap choice on the command line replaces the config's."""
    out = [r for r in configured if not (r in _GAP_REPAIRS and set(_GAP_REPAIRS) & set(given))]
    return out + [r for r in dict.fromkeys(given) if r not in out]


class _BadArgs(Exception):
    """A backtest argument that cannot work with this config; the message names the flag, the value and the fix."""


def _backtest_overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Config overrides from the flags. --data and --repair are merged into the config's [data] files and repair."""
    from botkit.config import load_config

    data: dict[str, object] = {}
    if args.start is not None:
        data["start"] = args.start
    if args.end is not None:
        data["end"] = args.end
    if args.data or args.repair:
        base = load_config(args.config)
        if args.data:
            dirs = [item for item in args.data if _tape_dir(Path(item))]
            if dirs:  # a recording or a store: replaces the config's data source
                if len(dirs) > 1 or len(args.data) > 1:
                    raise _BadArgs(f"--data {' '.join(args.data)}: give one recording or store directory, "
                                   "not several, and no candle files beside it")
                kind = "recording" if (Path(dirs[0]) / "manifest.json").is_file() else "store"
                data.update({"files": {}, "store": None, "recording": None})
                data[kind] = dirs[0]
            else:
                files = dict(base.data.files)
                for item in args.data:
                    market, path = _data_item(item, args.config, list(base.markets))
                    files[market] = path
                data.update({"files": files, "store": None, "recording": None})
        if args.repair:
            given = [name for group in args.repair for name in group]
            if set(_GAP_REPAIRS) <= set(given):
                raise _BadArgs("--repair fill_gaps and --repair allow_gaps exclude each other: choose one")
            data["repair"] = _merge_repairs(base.data.repair, given)
    overrides: dict[str, dict[str, object]] = {"data": data} if data else {}
    if args.out is not None:
        overrides["output"] = {"dir": str(args.out)}
    return overrides


def _tape_dir(path: Path) -> bool:
    """A `botkit record` recording (manifest.json) or a store (trades/, book/ or candles/ datasets)."""
    return path.is_dir() and ((path / "manifest.json").is_file()
                              or any((path / kind).is_dir() for kind in ("trades", "book", "candles")))


def _data_item(item: str, config: Path, markets: list[str]) -> tuple[str, str]:
    """One --data value: MARKET=PATH, or PATH alone when the config has a single market."""
    market, sep, path = item.partition("=")
    if sep and market not in markets and Path(item).exists():  # a file whose name has '=' in it
        sep = ""
    if not sep:
        if len(markets) != 1:
            raise _BadArgs(
                f"--data {item}: the config has several markets ({', '.join(markets)}); write --data MARKET=PATH"
            )
        return markets[0], item
    if market not in markets:
        raise _BadArgs(
            f"--data {item}: market {market!r} is not in [markets] of {config} ({', '.join(markets)}); "
            f"fix the name or add a [markets.{market}] table"
        )
    if not path:
        raise _BadArgs(f"--data {item}: no file after '='; write --data {market}=path/to/candles.csv")
    return market, path


def _cmd_backtest(args: argparse.Namespace) -> int:
    from botkit.backtest.gcpolicy import rare_young_collections

    with rare_young_collections():  # from the first heavy import to the last report row (botkit/backtest/gcpolicy.py)
        return _backtest(args)


def _backtest(args: argparse.Namespace) -> int:
    from botkit.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, _backtest_overrides(args))
    except (ConfigError, _BadArgs) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cfg.data.files and cfg.data.store is None and cfg.data.recording is None:
        print(f"error: {args.config}: [data] files is empty; add e.g. files = {{ BTC_USDT = \"path.csv\" }}, "
              "a [data] store or recording, or pass --data MARKET=PATH (or --data DIR: a store or a recording)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if set(_GAP_REPAIRS) <= set(cfg.data.repair):
        print(f"error: {args.config}: [data] repair has both fill_gaps and allow_gaps, which exclude each other; "
              "keep one (a --repair fill_gaps or --repair allow_gaps replaces the config's choice)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from botkit.backtest.loading import load_series_in_background

    loading = load_series_in_background(cfg)  # Arrow parses the files on a second core while the rest is imported
    from botkit.backtest.data import DataError
    from botkit.backtest.replay import BacktestError
    from botkit.backtest.report import summary_table, write_report
    from botkit.backtest.run import ProgressBar, replays_trades, run_backtest
    from botkit.market.grants import InsufficientScope
    from botkit.plugins import PluginError

    show = cfg.backtest.progress and not args.quiet
    t0 = time.perf_counter()

    def warn(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr, flush=True)

    try:
        unit = "trades" if replays_trades(cfg) else "book events" if cfg.backtest.fills == "book" else "candles"
        bar = ProgressBar(unit=unit) if show else None
        result = run_backtest(cfg, bar, on_warning=warn, loading=loading)
    except (PluginError, DataError, BacktestError, InsufficientScope) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted before the replay started; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    elapsed = time.perf_counter() - t0
    out_dir = cfg.out_dir
    paths = write_report(result, out_dir, str(args.config))
    if not args.quiet:
        for market, source in result.sources.items():
            note = "  (SYNTHETIC sample data)" if "synthetic" in source.lower() or "/sample/" in source else ""
            print(f"data {market}: {source}{note}")
            for rep in result.repairs.get(market, []):
                print(f"  repaired: {rep}")
        print(f"\nBacktest {cfg.name}")
        print(summary_table(result))
        if result.warnings:
            print(f"\n{len(result.warnings)} data warning(s), listed at the start and in report.json")
        rate = result.events / elapsed if elapsed > 0 else 0.0
        print(f"\n{result.events:,} {result.event_unit} in {elapsed:.2f} s ({rate:,.0f}/s)")
        print("wrote " + ", ".join(str(p) for p in paths))
    if result.outcome == "interrupted":
        print(f"\ninterrupted (Ctrl-C) after {result.events:,} candles: the report is PARTIAL", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.failure is not None:
        print(f"\nerror: {result.failure.text()}\nthe backtest halted: on_stop ran and the report is PARTIAL (set "
              '[strategy] on_error = "continue" to log such errors and go on)', file=sys.stderr)
        logging.getLogger("botkit.backtest").debug("%s", result.failure.traceback)
        return EXIT_FAIL
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
                    help="candle file for one market (repeatable), replacing only that market's [data] files entry; "
                         "PATH alone when the config has one market; or a directory: a `botkit record` recording "
                         "or a store, whose trades are replayed (replacing the config's data source)")
    bt.add_argument("--repair", action="append", type=_repair_list, metavar="NAME[,NAME]",
                    help="add a data repair to [data] repair (repeatable or comma list): sort, drop_duplicates, "
                         "fill_gaps, allow_gaps; fill_gaps/allow_gaps replaces the config's gap choice")
    bt.add_argument("--out", type=Path, help="output folder (default: [output] dir)")
    bt.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bar and no summary (errors and data warnings still go to stderr)")
    bt.set_defaults(func=_cmd_backtest)

    from botkit.backtest import data_cli

    data_cli.register(sub)
    # Every command's module is imported as such: a broken import is an error, never a command that vanishes.
    for modname in ("botkit.backtest.report_cli", "botkit.sandbox.cli", "botkit.auth_cli", "botkit.run_cli",
                    "botkit.record_cli", "botkit.backtest.sweep_cli"):
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, hard_exit: bool = False) -> int:
    """Run one command; returns its exit status. `hard_exit` (the `botkit` console script only): see `_exit_now`."""
    from botkit.backtest.gcpolicy import rare_young_collections

    with rare_young_collections():  # the commands' modules import numpy, pydantic, ...: see gcpolicy.py
        parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    handler = logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s",
                                  datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime  # UTC, like market data (a backtest's log lines carry market time)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler])
    from botkit.auth.redact import install as install_redaction

    install_redaction()  # every handler scrubs tokens, secrets, codes and verifiers
    code: int = args.func(args)
    if hard_exit and args.command in _HARD_EXIT_COMMANDS:
        _exit_now(code)
    return code


# Batch commands that start no process, thread or server outliving them: once their outputs are written, nothing
# is left for the interpreter's normal exit to do but free what they built.
_HARD_EXIT_COMMANDS = frozenset({"backtest", "report", "compare"})


def _exit_now(code: int) -> NoReturn:
    """Flush the streams and the log handlers, then leave without the interpreter's clean-up: freeing a 1M-candle
    backtest's objects and tearing down numpy, Arrow and pydantic one object at a time takes ~0.3 s after the last
    output is written (mypy exits the same way for the same reason). Never used when `main` is called in-process."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not turn a finished run into a traceback
            stream.flush()
    os._exit(code)


def entry() -> NoReturn:
    """The `botkit` console script."""
    sys.exit(main(hard_exit=True))


if __name__ == "__main__":
    entry()
