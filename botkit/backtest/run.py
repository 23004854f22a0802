"""From a validated config to a finished backtest: load data, build the strategy, run, write the report."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

from botkit.backtest.background import Background
from botkit.backtest.books import BookEvents
from botkit.backtest.candle_events import CandleEvents
from botkit.backtest.checks import data_warnings
from botkit.backtest.data import CandleSeries, DataError, parse_timeframe
from botkit.backtest.loading import epoch_ms, load_series, plain_candle_files
from botkit.backtest.replay import Backtest, BacktestError, BacktestResult
from botkit.backtest.tape import Tape, candles_from_trades
from botkit.config import BotConfig
from botkit.market.grants import Grant
from botkit.plugins import build_strategy
from botkit.strategy import Strategy

_log = logging.getLogger("botkit.backtest")


class ProgressBar:
    """Progress of a backtest on stderr, for runs longer than `min_seconds`: a live bar on a terminal, a line per
    quarter otherwise. Called by the engine as `bar(done, total)` after each chunk of candles.

    Built on rich (not tqdm) because its live display redraws elapsed time and the ETA on its own thread between
    the engine's calls (a chunk of a slow strategy can take seconds), it estimates the speed over a sliding window,
    and it takes the clock as a parameter (`get_time`), which makes the rate testable. The clock starts at the
    first call and what was done by then is the baseline, not counted in the speed: counting the first chunk
    against a clock started after it made the old bar 5-10x too fast.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        tty: bool | None = None,
        min_seconds: float = 1.0,
        unit: str = "candles",
    ) -> None:
        self.unit = unit  # what is counted: candles, or trades (a replay of trades)
        self.stream = stream  # None: whatever sys.stderr is when the bar starts
        self.clock = clock
        self.tty = tty
        self.min_seconds = min_seconds
        self.started = 0.0
        self.last_quarter = -1
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._live = False

    def _now(self) -> float:
        return self.clock() - self.started

    def _make(self, done: int, total: int) -> None:
        # imported here: a quiet backtest (-q) never pays for rich
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        out = self.stream or sys.stderr
        tty = out.isatty() if self.tty is None else self.tty
        console = Console(file=out, force_terminal=tty, force_interactive=tty, width=None if tty else 100)
        self._progress = Progress(
            TextColumn("  "),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + self.unit),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            get_time=self._now,
            auto_refresh=tty,
            disable=not tty,
        )
        self._task = self._progress.add_task("backtest", total=total, completed=0, rate="")
        self._progress.update(self._task, completed=done)  # the baseline sample: not counted in the speed

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:  # first call: the clock starts now, with what is done so far as the baseline
            self.started = self.clock()
            self._make(done, total)
            return
        assert self._task is not None
        shown = self._now() >= self.min_seconds or done >= total
        self._progress.update(self._task, completed=done)
        self._progress.update(self._task, rate=self._rate_text())
        if not shown:
            return
        if self._progress.disable:
            self._line(done, total)
        elif not self._live:
            self._live = True
            self._progress.start()
        if done >= total:
            self._progress.refresh()
            self._progress.stop()

    def speed(self) -> float | None:
        """Candles per second since the first call (sliding window of 30 s), or None before two calls."""
        if self._progress is None or self._task is None:
            return None
        return self._progress.tasks[0].speed

    def eta(self) -> float | None:
        if self._progress is None or self._task is None:
            return None
        return self._progress.tasks[0].time_remaining

    def _rate_text(self) -> str:
        sp = self.speed()
        return "" if sp is None else f"{sp:,.0f}/s"

    def _line(self, done: int, total: int) -> None:
        """Not a terminal (a log, CI): a plain line at each quarter and at the end."""
        pct = int(done * 100 / max(total, 1))
        quarter = pct // 25
        if quarter > self.last_quarter or done >= total:
            eta = self.eta()
            rate = self._rate_text() or "n/a"
            tail = "" if done >= total or eta is None else f"  ETA {eta:,.0f} s"
            out = self.stream or sys.stderr
            out.write(f"  {pct:3d}%  {done:,}/{total:,} {self.unit}  {rate}{tail}\n")
            out.flush()
        self.last_quarter = quarter


def series_warnings(cfg: BotConfig, series: list[CandleSeries]) -> list[str]:
    """Data that loaded but does not fit the run (windows, timeframes, price steps): sentences for the user."""
    return data_warnings(series, cfg.market_rules())


def _import_hint(kind: str, market: str, store: Path) -> str:
    if kind == "book":
        return (f"import one with `botkit data import book SNAPSHOT.csv UPDATES.csv --market {market} --store "
                f"{store}`, or record depth with `botkit record --market {market} --channels trades,depth`")
    return (f"import one with `botkit data import trades FILE --market {market} --store {store}`, or record with "
            f"`botkit record --market {market} --channels trades`")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def load_tape(cfg: BotConfig) -> Tape:
    """Trades (and, with [data] feed = ["trades", "book"], book events) of every market from [data] store or
    [data] recording, in the [data] start/end window; with fills = "book", the book events only (no trades). A
    recording goes into the store first (rebuilt only when its files changed). Missing data is a DataError naming
    the dataset and how to get it."""
    from botkit.backtest.datasets import book_from_store, trades_from_store
    from botkit.backtest.store import Store

    d = cfg.data
    if d.recording is not None:
        from botkit.backtest.recordings import to_store

        rec = Path(d.recording)
        if not (rec / "manifest.json").is_file():
            raise DataError(str(rec), None, "not a recording (no manifest.json)",
                            "Give the directory `botkit record` wrote, or use [data] store for a store.")
        root = Path(d.store) if d.store is not None else rec / "store"
        store = Store(root)
        try:
            to_store(rec, store, progress=lambda text: _log.info("%s", text))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(str(rec), None, f"cannot read the recording: {exc}",
                            "Check the directory (a recording cut off mid-file replays its readable part).") from None
        where = f"recording {rec}"
    elif d.store is not None:
        root = Path(d.store)
        if not root.is_dir():
            raise DataError(str(root), None, "no such store directory",
                            "Import data with `botkit data import` (or record with `botkit record`) first.")
        store = Store(root)
        where = f"store {root}"
    else:
        raise BacktestError(f'fills = "{cfg.backtest.fills}" replays recorded data: set [data] store (a directory of '
                            '`botkit data import`) or [data] recording (a `botkit record` directory), or pass '
                            '--data DIR')
    start, end = epoch_ms(d.start), epoch_ms(d.end)
    trades = []
    books = {}
    book_fills = cfg.backtest.fills == "book"
    for market in cfg.markets:
        if book_fills or "book" in d.feed:
            why = 'fills = "book"' if book_fills else '[data] feed has "book"'
            try:
                books[market] = book_from_store(store, market, start * 1000 if start is not None else None,
                                                end * 1000 if end is not None else None)
            except FileNotFoundError:
                raise DataError(where, None, f"no book dataset for {market} ({why})",
                                _sentence(_import_hint("book", market, root))) from None
            if not len(books[market]):
                raise DataError(where, None, f"the book of {market} is empty in the window "
                                f"{d.start or 'start'} .. {d.end or 'end'}", "Widen [data] start/end.")
        if book_fills:
            continue
        try:
            tr = trades_from_store(store, market, start, end)
        except FileNotFoundError:
            raise DataError(where, None, f"no trades dataset for {market}",
                            _sentence(_import_hint("trades", market, root))) from None
        if not len(tr):
            raise DataError(where, None, f"the trades of {market} are empty in the window "
                            f"{d.start or 'start'} .. {d.end or 'end'}", "Widen [data] start/end or record longer.")
        trades.append(dataclasses.replace(tr, source=f"{where} trades/{market}"))
    return Tape(trades, books)


def timeframe_ms(cfg: BotConfig) -> int:
    """Candles built from trades: [data] timeframe, default 1m."""
    try:
        return parse_timeframe(cfg.data.timeframe) if cfg.data.timeframe else 60_000
    except ValueError as exc:
        raise DataError("[data] timeframe", None, str(exc), "Fix [data] timeframe in the config.") from None


def replays_trades(cfg: BotConfig) -> bool:
    """The backtest replays trades (a tape) rather than candles or book events."""
    return cfg.backtest.fills == "trades"


def run_backtest(
    cfg: BotConfig,
    progress: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    loading: Background[list[CandleSeries]] | None = None,
) -> BacktestResult:
    """Load, check, run. Each data warning goes to `on_warning` before the first candle (default: the log).
    `loading`: the candles already being loaded (`load_series_in_background`); its errors are raised here, after
    the strategy's, as if loaded here."""
    if not cfg.balances:
        raise BacktestError("[balances] is empty: a backtest needs starting balances, e.g. [balances] USDT = \"10000\"")
    strategy = build_strategy(cfg.strategy.plugin, cfg.strategy.params)
    if not plain_candle_files(cfg):
        tape = load_tape(cfg)
        if cfg.backtest.fills == "book":  # the order-book model replays the book events (on_book), not trades
            result = backtest_of(cfg, strategy, [], progress, books=list(tape.books.values())).run()
        elif cfg.backtest.fills == "candles":  # candle fills on candles built from the trades
            series = [candles_from_trades(tr, timeframe_ms(cfg))[0] for tr in tape.trades]
            result = backtest_of(cfg, strategy, series, progress).run()
        else:
            result = backtest_of(cfg, strategy, [], progress, tape=tape).run()
        return result
    series = loading.result() if loading is not None else load_series(cfg)
    warnings = series_warnings(cfg, series)
    for text in warnings:
        (on_warning or _log.warning)(text)
    result = backtest_of(cfg, strategy, series, progress).run()
    result.warnings = warnings + result.warnings  # the data's, then what the replay found (book gaps)
    return result


def backtest_of(cfg: BotConfig, strategy: Strategy, series: list[CandleSeries],
                progress: Callable[[int, int], None] | None = None, tape: Tape | None = None,
                books: list[BookEvents] | None = None, events: CandleEvents | None = None) -> Backtest:
    """The Backtest a config describes, on series already loaded (a sweep loads them once per worker), on a tape
    of trades (`load_tape`), or on book events (the order-book model)."""
    return Backtest(
        strategy,
        series,
        cfg.market_rules(),
        dict(cfg.balances),
        grant=Grant.of(cfg.grant.scopes, "config"),
        risk=cfg.risk_limits(),
        fill_model=cfg.fill_model(),
        oco=cfg.oco_mode(),
        progress=progress,
        on_error=cfg.strategy.on_error,
        book_depth=cfg.backtest.book_depth,
        books=books or (),
        tape=tape,
        timeframe_ms=timeframe_ms(cfg),
        events=events,
    )

