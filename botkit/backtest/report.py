"""Backtest output: report.json, trades.csv, roundtrips.csv, lots.csv, equity.csv, prices.csv, report.html, and the
summary table.

Files hold no wall-clock times or durations, so the same inputs give byte-identical outputs. report.html is
rendered from the other files (botkit/backtest/html.py), so `botkit report RUN_DIR` re-renders the same page.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

import numpy as np

from botkit.backtest.analysis import Analysis, TradeStats, analyse, duration, fmt_money
from botkit.backtest.background import Background
from botkit.backtest.html import PRICE_POINTS, PlotlyMissing, RunData, downsample, write_run_html
from botkit.backtest.metrics import CONVENTION, MIN_ANNUAL_DAYS, span_warnings
from botkit.backtest.replay import BacktestResult
from botkit.configfile import SECRET_WORDS
from botkit.loop import iso_ms
from botkit.market.orders import Fill
from botkit.market.rules import fmt
from botkit.run_report import TRADES_COLUMNS, fill_row


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_many(ms: list[int]) -> list[str]:
    """`iso` of many times at once (numpy): strftime per fill is a visible share of writing 100k fills."""
    if not ms:
        return []
    text = np.datetime_as_string(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[s]"))
    return [f"{x}Z" for x in text.tolist()]


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return fmt(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else None)
    return v


_last: tuple[BacktestResult, Analysis] | None = None


def analysis_of(result: BacktestResult) -> Analysis:
    """The report analysis of `result`, computed once even when the summary and the files both need it."""
    global _last
    if _last is None or _last[0] is not result:
        _last = (result, analyse(result))
    return _last[1]


def quote_prec(result: BacktestResult) -> int:
    """Decimals of the quote currency: the finest price precision among the run's markets (all share the quote)."""
    return max((r.money_prec for r in result.rules.values()), default=2)


def _config_values(path: str) -> dict[str, Any] | None:
    """The config file as run, with anything that may be a secret left out (for the report's "config" section)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if any(w in k.lower() for w in SECRET_WORDS) or k == "auth":
                out[k] = "(not shown)"
            elif isinstance(v, dict):
                out[k] = clean(v)
            else:
                out[k] = str(v) if not isinstance(v, str | int | float | bool | list) else v
        return out

    return clean(data)


def _stats(s: TradeStats) -> dict[str, Any]:
    return {k: _num(v) for k, v in s.as_dict().items()}


def report_dict(result: BacktestResult, config_name: str) -> dict[str, Any]:
    a = analysis_of(result)
    t = result.event_time_ms
    m = result.metrics
    return {
        "botkit_report": 2,
        "config": config_name,
        "outcome": result.outcome,
        "partial": result.partial,
        "failure": None if result.failure is None else {
            "callback": result.failure.callback, "market_time": iso(result.failure.time_ms),
            "where": result.failure.where, "error": result.failure.error,
        },
        "strategy_errors": result.strategy_errors,
        "config_values": _config_values(config_name),
        "strategy": result.strategy,
        "markets": result.markets,
        "quote": result.quote,
        "quote_prec": quote_prec(result),
        "data": {
            m: {"source": result.sources[m], "repairs": result.repairs.get(m, [])} for m in result.markets
        },
        "period": {"start": iso(int(t[0])) if len(t) else None, "end": iso(int(t[-1])) if len(t) else None,
                   "days": m.span_ms / 86_400_000},
        "events": result.events,
        "event_unit": result.event_unit,
        "start_balances": {k: fmt(v) for k, v in sorted(result.start_balances.items())},
        "final_balances": {k: fmt(v) for k, v in sorted(result.final_balances.items())},
        "start_equity": _num(m.start_equity),
        "final_equity": _num(float(result.equity[-1])) if len(result.equity) else None,
        "buy_and_hold": _num(a.buy_and_hold),
        "metrics": {k: _num(v) for k, v in m.as_dict().items()},
        "trades": {"round_trips": _stats(a.round_trip_stats), "lots": _stats(a.lot_stats)},
        "per_market": [{k: _num(v) for k, v in x.as_dict().items()} for x in a.markets],
        "orders": len(result.orders),
        "order_outcomes": a.order_outcomes,
        "fills": len(result.fills),
        "rejections": a.rejections,
        "round_trips": {
            "closed": sum(1 for r in result.round_trips if r.closed),
            "open": sum(1 for r in result.round_trips if not r.closed),
        },
        "unvalued_assets": result.unvalued_assets,
        "slippage": slippage_summary(result.fills),  # taker fills of the book model vs the best price at decision
        "book": book_dict(result) or None,  # book replays: events, updates, gaps in the update-id chain (resyncs)
        "warnings": list(result.warnings) + span_warnings(m),  # everything worth a look: data, short spans
        "data_warnings": list(result.warnings),  # data mismatches said before the run
        "conventions": {
            "equity": f"mark-to-market in {result.quote} at each "
                      + ("book event's mid price" if result.book else "candle close"),
            "slippage": "taker fills of the book model: (fill price - best opposite price when the order was "
                        "decided) x amount, against the order; bps of that reference notional",
            "sharpe_sortino_volatility": CONVENTION,
            "annualisation": "365-day year; Sharpe, Sortino and volatility from daily returns x sqrt(365)",
            "risk_free_rate": 0,
            "short_span": f"annualised figures are flagged when the run spans fewer than {MIN_ANNUAL_DAYS} days",
            "buy_and_hold": "last close / first close - 1 per market; combined: equal split at the first closes",
            "trades": "win rate, expectancy, SQN etc. of metrics are per round trip (flat to flat); "
                      "trades.lots has them per FIFO lot (every entry fill)",
            "prices": "entry/exit prices are volume-weighted; pnl = (exit - entry) * amount - fees (long)",
        },
    }


def _write_equity(path: Path, t: np.ndarray, e: np.ndarray) -> None:
    """One line per event; each equity is the shortest text that reads back as exactly the same float (Arrow's
    CSV writer: 10000.0 is written "10000"). Text is the cost: ~0.2 s per million lines in Arrow's C++ writer
    against ~1 s for Python's `repr` joined with str.join (the fastest plain-Python way found)."""
    import pyarrow as pa  # here: the loader has usually imported it already; `botkit --help` never does
    import pyarrow.csv as pacsv

    with pa.OSFile(str(path), "wb") as fh:
        fh.write(b"time_ms,equity\n")
        if len(e):
            # Arrays over the numpy buffers: pa.table/pa.array would import pandas (half a second) to check types.
            cols = [pa.Array.from_buffers(typ, len(x), [None, pa.py_buffer(np.ascontiguousarray(x, dtype=dt))])
                    for typ, x, dt in ((pa.int64(), t, np.int64), (pa.float64(), e, np.float64))]
            pacsv.write_csv(pa.Table.from_arrays(cols, names=["time_ms", "equity"]), fh,
                            write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))


class RowDicts(Sequence[dict[str, str]]):
    """Rows of a CSV file as the dicts `csv.DictReader` reads back, each made when it is asked for: the page shows
    the first thousand trips and lots of files that can hold hundreds of thousands."""

    def __init__(self, head: list[str], rows: list[list[str]]) -> None:
        self.head, self.rows = head, rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> dict[str, str]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, str] | list[dict[str, str]]:
        head = self.head
        if isinstance(i, slice):
            return [dict(zip(head, r, strict=True)) for r in self.rows[i]]
        return dict(zip(head, self.rows[i], strict=True))

    def __iter__(self) -> Iterator[dict[str, str]]:
        head = self.head
        return (dict(zip(head, r, strict=True)) for r in self.rows)


def _csv_text(head: list[str], rows: list[list[str]]) -> str | None:
    """What `csv.writer(lineterminator="\\n")` writes for these rows when no field needs quoting (no comma, quote or
    newline in any: the usual case), joined at C speed; None otherwise. csv.writer looks each character up in its
    line terminator, a quarter of writing a report's trade files."""
    n = len(head)
    if n < 2 or any(len(r) != n for r in rows):  # (a lone empty field is written '""')
        return None
    try:
        text = "\n".join([",".join(head), *(",".join(r) for r in rows)]) + "\n"
    except TypeError:  # a field that is not text: csv.writer converts it
        return None
    lines = len(rows) + 1
    if text.count(",") != lines * (n - 1) or text.count("\n") != lines or '"' in text or "\r" in text:
        return None  # a field holds a comma, a quote or a line break: left to csv.writer, which quotes what needs it
    return text


def _write_csv(path: Path, head: list[str], rows: list[list[str]]) -> RowDicts:
    """Write the rows (all strings, so reading the file back gives exactly them) and return them as dicts."""
    text = _csv_text(head, rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        if text is not None:
            fh.write(text)
        else:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(head)
            w.writerows(rows)
    return RowDicts(head, rows)


def write_report(result: BacktestResult, out_dir: Path, config_name: str, *, html: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    import pyarrow.csv  # noqa: F401  (for _write_equity: imported here, not on its thread beside other imports)

    equity_csv = out_dir / "equity.csv"
    # The longest file (a line per event), written by Arrow without the GIL while the other files are made.
    equity = Background("botkit-equity-csv", _write_equity, equity_csv, result.event_time_ms, result.equity)
    try:
        paths = _write_files(result, out_dir, config_name, html, equity_csv)
    except BaseException:
        equity.wait()  # the first error is the one to see
        raise
    equity.result()
    return paths


def _write_files(result: BacktestResult, out_dir: Path, config_name: str, html: bool, equity_csv: Path) -> list[Path]:
    a = analysis_of(result)
    paths = []
    p = out_dir / "report.json"
    report_text = json.dumps(report_dict(result, config_name), indent=2, sort_keys=False) + "\n"
    p.write_text(report_text, encoding="utf-8")
    paths.append(p)

    p = out_dir / "trades.csv"
    fills = list(_write_csv(p, [*TRADES_COLUMNS, "type", "reason", "slippage", "slippage_bps"], [
        [*fill_row(f, when), a.order_types.get(f.client_id, ""), a.reasons.get(f.client_id, ""), *_slip_cells(f)]
        for f, when in zip(result.fills, iso_many([f.time_ms for f in result.fills]), strict=True)
    ]))  # every fill is a marker on the page: made into dicts once, here
    paths.append(p)

    p = out_dir / "roundtrips.csv"
    t_in = iso_many([r.entry_ms for r in result.round_trips])
    t_out = iso_many([r.exit_ms or 0 for r in result.round_trips])  # an open trip has no exit time: ""
    trips = _write_csv(p, ["market", "side", "entry_time", "exit_time", "entry_price", "exit_price", "amount",
                           "max_amount", "pnl", "fees", "fills", "closed", "exit_reason"], [
        [r.market, r.side, entry, exit_ if r.exit_ms is not None else "", _price(r.entry_price),
         _price(r.exit_price), fmt(r.closed_amount), fmt(r.amount), repr(r.pnl), repr(r.fees), str(r.fills),
         str(int(r.closed)), r.exit_reason]
        for r, entry, exit_ in zip(result.round_trips, t_in, t_out, strict=True)
    ])
    paths.append(p)

    p = out_dir / "lots.csv"
    entries, exits = iso_many([x.entry_ms for x in a.lots]), iso_many([x.exit_ms for x in a.lots])
    lot_rows = _write_csv(p, ["market", "side", "entry_time", "exit_time", "entry_price", "exit_price", "amount",
                              "pnl", "fees", "closed", "entry_order", "exit_reason"], [
        [x.market, x.side, t_in, t_out, _price(x.entry_price), _price(x.exit_price), fmt(x.amount), repr(x.pnl),
         repr(x.fees), str(int(x.closed)), x.entry_id, x.exit_reason]
        for x, t_in, t_out in zip(a.lots, entries, exits, strict=True)
    ])
    paths.append(p)

    paths.append(equity_csv)  # being written meanwhile (write_report)

    p = out_dir / "prices.csv"
    prices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with p.open("w", encoding="utf-8") as fh:
        fh.write("market,time_ms,close\n")
        for s in result.series:
            ts, vs = downsample(s.time_ms + s.timeframe_ms, s.close, PRICE_POINTS)
            prices[s.market] = (ts, vs)
            fh.writelines(f"{s.market},{x},{y!r}\n" for x, y in zip(ts.tolist(), vs.tolist(), strict=True))
    paths.append(p)

    if html:
        # The page from the same values the files hold (what `botkit report` reads back), without re-reading them.
        run = RunData(name=config_name, report=json.loads(report_text), time_ms=result.event_time_ms,
                      equity=result.equity, fills=fills, round_trips=trips, lots=lot_rows, prices=prices)
        try:
            paths.append(write_run_html(out_dir, run=run))
        except PlotlyMissing as exc:
            print(f"note: {exc}")
    return paths


def slippage_of(f: Fill) -> tuple[Decimal, float] | None:
    """A taker fill of the book model against the best opposite price when its order was decided: (quote lost,
    basis points), positive when worse than that price. None for fills without a reference (candles, makers)."""
    ref = f.ref_price
    if ref is None or ref <= 0:
        return None
    diff = f.price - ref if f.side == "buy" else ref - f.price
    return diff * f.amount, float(diff / ref) * 10_000


def _slip_cells(f: Fill) -> list[str]:
    s = slippage_of(f)
    return ["", ""] if s is None else [fmt(s[0]), f"{s[1]:.4f}"]


def slippage_summary(fills: list[Fill]) -> dict[str, Any] | None:
    """Totals over the fills that have a reference price: quote lost, per fill, and bps of the reference notional
    (so the mean is weighted by size)."""
    total, notional, n, worst = Decimal(0), Decimal(0), 0, 0.0
    for f in fills:
        s = slippage_of(f)
        if s is None:
            continue
        n += 1
        total += s[0]
        notional += f.ref_price * f.amount  # type: ignore[operator]
        worst = max(worst, s[1])
    if not n:
        return None
    return {"fills": n, "total_quote": fmt(total), "mean_quote": fmt(total / n),
            "mean_bps": round(float(total / notional) * 10_000, 4) if notional else None,
            "max_bps": round(worst, 4)}


def book_dict(result: BacktestResult) -> dict[str, Any]:
    return {m: {"events": st.events, "updates": st.updates, "resyncs": len(st.resync_times_ms),
                "resync_times": [iso_ms(t) for t in st.resync_times_ms], "skipped_updates": st.skipped_updates,
                "skipped_events": st.skipped_events} for m, st in result.book.items()}


def _price(v: Decimal | None) -> str:
    """A volume-weighted price: 12 significant digits are plenty and keep the CSV readable.

    The same text as `fmt(Decimal(format(v, ".12g")))`: a plain (no exponent) 12-digit text reads back as a Decimal
    whose str is that text, so fmt would only cut its trailing zeros, done here on the text itself."""
    if v is None:
        return ""
    if not v:
        return "0"
    text = format(v, ".12g")
    if "e" in text or "E" in text:
        return fmt(Decimal(text))
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(v: Any) -> str:
    return "n/a" if v is None else (f"{v * 100:.2f}%" if math.isfinite(v) else str(v))


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def rejection_line(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


def summary_table(result: BacktestResult) -> str:
    a = analysis_of(result)
    m = result.metrics
    prec = quote_prec(result)
    q = result.quote
    warn = span_warnings(m)
    star = " *" if warn else ""
    bh = _pct(a.buy_and_hold)
    if len(a.markets) > 1:
        bh += "  (" + ", ".join(f"{x.market} {_pct(x.buy_and_hold)}" for x in a.markets) + ")"
    days = m.span_ms / 86_400_000
    rows = [
        ("Strategy", result.strategy + ("" if not result.partial else f"  (PARTIAL: {result.outcome})")),
        ("Markets", ", ".join(result.markets)),
        ("Period", f"{iso(int(result.event_time_ms[0]))} -> {iso(int(result.event_time_ms[-1]))} ({days:.1f} days)"
         if result.events else "n/a"),
        ("Book events" if result.book else result.event_unit.capitalize(), f"{result.events:,}"),
        ("Start equity", f"{fmt_money(m.start_equity, prec)} {q}"),
        ("Final equity", f"{fmt_money(float(result.equity[-1]), prec)} {q}" if result.events else "n/a"),
        ("Total return", _pct(m.total_return)),
        ("Buy & hold", bh),
        ("CAGR", _pct(m.cagr) + star),
        ("Volatility (ann.)", _pct(m.volatility_ann) + star),
        ("Sharpe (ann.)", _f(m.sharpe) + star),
        ("Sortino (ann.)", _f(m.sortino) + star),
        ("Max drawdown", _pct(m.max_drawdown)),
        ("Max DD duration", duration(m.max_drawdown_duration_ms)),
        ("Calmar", _f(m.calmar) + star),
        ("Exposure", _pct(m.exposure)),
        ("Fees paid", f"{fmt_money(result.fees_paid, prec)} {q}"),
        ("Orders / fills", f"{len(result.orders)} / {len(result.fills)}"),
        ("Rejected orders", rejection_line(a.rejections)),
    ]
    slip = slippage_summary(result.fills)
    if slip is not None:
        rows.append(("Slippage", f"{slip['total_quote']} {q} over {slip['fills']} taker fills: mean "
                                 f"{slip['mean_quote']} {q} / {slip['mean_bps']:.2f} bps (max {slip['max_bps']:.2f})"))
    for market, st in result.book.items():
        rows.append((f"Book resyncs {market}" if len(result.book) > 1 else "Book resyncs",
                     f"{len(st.resync_times_ms)} ({st.skipped_updates:,} updates skipped until a snapshot)"))
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v}" for k, v in rows]
    rt, lt = a.round_trip_stats, a.lot_stats
    trade_rows = [
        ("", "round trips", "lots (FIFO)"),
        ("Trades closed / open", f"{rt.closed} / {rt.open}", f"{lt.closed} / {lt.open}"),
        ("Win rate", _pct(rt.win_rate), _pct(lt.win_rate)),
        ("Profit factor", _f(rt.profit_factor), _f(lt.profit_factor)),
        ("Expectancy", f"{fmt_money(rt.expectancy, prec)} {q}", f"{fmt_money(lt.expectancy, prec)} {q}"),
        ("SQN", _f(rt.sqn), _f(lt.sqn)),
        ("Avg duration", duration(rt.avg_duration_ms), duration(lt.avg_duration_ms)),
        ("Max duration", duration(rt.max_duration_ms), duration(lt.max_duration_ms)),
    ]
    c1 = max(width, *(len(r[0]) for r in trade_rows))
    c2 = max(len(r[1]) for r in trade_rows)
    lines.append("")
    lines += [f"  {r[0]:<{c1}}  {r[1]:<{c2}}  {r[2]}" for r in trade_rows]
    if len(a.markets) > 1:
        lines.append("")
        head = ("Market", "fills", "lots", "win", f"P&L {q}", "exposure", "buy & hold")
        body = [(x.market, str(x.fills), str(x.lots), _pct(x.lot_win_rate), fmt_money(x.pnl, prec),
                 _pct(x.exposure), _pct(x.buy_and_hold)) for x in a.markets]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        for r in [head, *body]:
            lines.append("  " + "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                          for i, c in enumerate(r)))
    for w in warn:
        lines.append(f"\n  * {w}")
    return "\n".join(lines)
