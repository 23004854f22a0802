"""report.html and compare.html: one self-contained page per run (or per comparison) that opens offline.

Charts are drawn by plotly.js, embedded in the page from the `plotly` Python package (its file only: importing
plotly's Python API would cost a backtest ~0.2 s for nothing). Every page is rendered from a run's files
(report.json, equity.csv, trades.csv, roundtrips.csv, lots.csv, prices.csv), so `botkit report RUN_DIR` gives the
same bytes as the backtest that wrote them; long series are downsampled (first/min/max/last per bucket, which
draws like the full line), so a million candles make a page of a few megabytes.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from botkit.backtest.analysis import duration, fmt_money

CHART_POINTS = 4000  # per line: beyond a screen's width in pixels, more points add bytes, not detail
PRICE_POINTS = CHART_POINTS  # per market in prices.csv
MAX_MARKERS = 5000  # fill markers per market on the price chart
MAX_ROWS = 1000  # rows per trade table; the CSV files have them all
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PlotlyMissing(RuntimeError):
    """plotly (which ships plotly.js) is not installed."""


def plotly_js() -> str:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise PlotlyMissing("report.html needs plotly: pip install plotly (the other report files are written)")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.exists():
        raise PlotlyMissing(f"plotly is installed but {path} is missing: reinstall plotly")
    return path.read_text(encoding="utf-8")


@dataclass(slots=True)
class RunData:
    """A finished run as its files describe it."""

    name: str
    report: dict[str, Any]
    time_ms: np.ndarray
    equity: np.ndarray
    fills: Sequence[dict[str, str]]
    round_trips: Sequence[dict[str, str]]
    lots: Sequence[dict[str, str]]
    prices: dict[str, tuple[np.ndarray, np.ndarray]]


class RunDirError(Exception):
    """A folder that is not a finished backtest run."""


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_equity(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = path.read_text(encoding="utf-8")
    body = text.split("\n", 1)[1].strip() if "\n" in text else ""
    if not body:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    cells = body.replace("\n", ",").split(",")
    return np.array(cells[0::2], dtype=np.int64), np.array(cells[1::2], dtype=np.float64)


def load_run(run_dir: Path, equity: tuple[np.ndarray, np.ndarray] | None = None) -> RunData:
    """Read a run folder; `equity` (times, values) saves re-reading a long equity.csv the caller just wrote."""
    report_path = run_dir / "report.json"
    if not report_path.exists():
        raise RunDirError(f"{run_dir}: no report.json here; give the output folder of a `botkit backtest` run")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    t, e = equity if equity is not None else read_equity(run_dir / "equity.csv")
    prices: dict[str, tuple[list[int], list[float]]] = {}
    for row in _rows(run_dir / "prices.csv"):
        ts, vs = prices.setdefault(row["market"], ([], []))
        ts.append(int(row["time_ms"]))
        vs.append(float(row["close"]))
    return RunData(
        name=str(report.get("config", run_dir.name)),
        report=report,
        time_ms=np.asarray(t, dtype=np.int64),
        equity=np.asarray(e, dtype=np.float64),
        fills=_rows(run_dir / "trades.csv"),
        round_trips=_rows(run_dir / "roundtrips.csv"),
        lots=_rows(run_dir / "lots.csv"),
        prices={m: (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.float64)) for m, (a, b) in prices.items()},
    )


# ---- numbers ------------------------------------------------------------------------------------------------


def downsample(t: np.ndarray, v: np.ndarray, points: int = CHART_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` points that draw like the full line: per bucket its first, lowest, highest and last
    value, in time order (M4). Short series come back whole."""
    n = len(v)
    if n <= points:
        return t, v
    buckets = max(1, points // 4)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    if bool(np.isfinite(v).all()):
        # A thousand buckets: argmin/argmax per bucket (the first index of its min / max, as below) is ~3x faster
        # than the whole-array passes, which stay for data with NaN or inf (same result otherwise).
        bounds = edges.tolist()
        pick = np.empty(4 * buckets, dtype=np.int64)
        argmin, argmax = np.ndarray.argmin, np.ndarray.argmax
        k = 0
        for a, b in itertools.pairwise(bounds):
            part = v[a:b]
            i, j = a + int(argmin(part)), a + int(argmax(part))
            pick[k:k + 4] = (a, i, j, b - 1) if i <= j else (a, j, i, b - 1)
            k += 4
        pick = pick[np.append(True, pick[1:] != pick[:-1])]
        return t[pick], v[pick]
    starts = edges[:-1]
    ends = edges[1:] - 1
    lo = np.minimum.reduceat(v, starts)
    hi = np.maximum.reduceat(v, starts)
    # position of the min / max inside each bucket: the first index where the value equals it
    seg = np.repeat(np.arange(buckets), np.diff(edges))
    is_lo = v == lo[seg]
    is_hi = v == hi[seg]
    idx_lo = np.full(buckets, n, dtype=np.int64)
    idx_hi = np.full(buckets, n, dtype=np.int64)
    np.minimum.at(idx_lo, seg[is_lo], np.flatnonzero(is_lo))
    np.minimum.at(idx_hi, seg[is_hi], np.flatnonzero(is_hi))
    idx = np.sort(np.stack([starts, idx_lo, idx_hi, ends], axis=1), axis=1).reshape(-1)
    keep = np.append(True, idx[1:] != idx[:-1])
    idx = idx[keep]
    return t[idx], v[idx]


def drawdown(e: np.ndarray) -> np.ndarray:
    """Fraction below the running peak (0 at a new high, -0.25 = 25 % below it)."""
    if len(e) == 0:
        return e
    peak = np.maximum.accumulate(e)
    if peak.dtype == np.float64 and peak[0] > 0 and not np.isnan(peak[-1]):  # every peak > 0, no NaN in e:
        # the same values in two passes instead of five
        fast: np.ndarray = np.divide(e, peak, out=peak)
        fast -= 1.0
        return fast
    out: np.ndarray = np.where(peak > 0, e / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    return out


def _month_ends(t: np.ndarray) -> np.ndarray:
    """Index of each month's last bar (by close time: a bar closing at 00:00 on the 1st ends the month before),
    for bars in time order; found by a binary search per month rather than a date per bar."""
    t = np.asarray(t, dtype=np.int64)
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):  # out of order: month changes bar by bar
        month = ((t - 1).astype("datetime64[ms]")).astype("datetime64[M]").astype(np.int64)
        return np.flatnonzero(np.append(month[1:] != month[:-1], True))
    first, last = (np.asarray([t[0], t[-1]]) - 1).astype("datetime64[ms]").astype("datetime64[M]")
    starts = np.arange(first + 1, last + 1).astype("datetime64[ms]").astype(np.int64)  # of the months after the 1st
    ends = np.searchsorted(t, starts, side="right") - 1  # last bar with t - 1 < the next month's start
    ends = np.append(ends, len(t) - 1)
    out: np.ndarray = ends[np.append(True, ends[1:] != ends[:-1])]  # months without a bar: no entry
    return out


def monthly_returns(t: np.ndarray, e: np.ndarray) -> list[tuple[int, list[float | None], float]]:
    """(year, 12 monthly returns, the year's return) from month-end equity (UTC, by bar close time); the first
    month is measured from the first bar."""
    if len(e) < 2:
        return []
    last = _month_ends(t)
    month = ((t[last] - 1).astype("datetime64[ms]")).astype("datetime64[M]").astype(np.int64)  # since 1970-01
    closes = e[last]
    base = np.concatenate(([e[0]], closes[:-1]))
    rets = np.where(base > 0, closes / np.where(base > 0, base, 1.0) - 1.0, 0.0)
    by_year: dict[int, list[float | None]] = {}
    year_growth: dict[int, float] = {}
    for mo, r in zip(month.tolist(), rets.tolist(), strict=True):
        y, m = 1970 + mo // 12, mo % 12
        by_year.setdefault(y, [None] * 12)[m] = r
        year_growth[y] = year_growth.get(y, 1.0) * (1.0 + r)
    return [(y, by_year[y], year_growth[y] - 1.0) for y in sorted(by_year)]


# ---- page pieces ----------------------------------------------------------------------------------------------


def _js(obj: Any) -> str:
    """JSON safe inside <script>: no "</" can end the element early."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _pct(v: Any) -> str:
    if v is None or isinstance(v, str):
        return "n/a" if v is None else v
    return f"{float(v) * 100:.2f}%"


def _num(v: Any, nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return f"{v:,}"
    return f"{float(v):,.{nd}f}"


def _money(v: Any, prec: int) -> str:
    return v if isinstance(v, str) else fmt_money(None if v is None else float(v), prec)


def _dur(v: Any) -> str:
    return duration(None if v is None else float(v))


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    e = html.escape
    out = [f'<table class="{cls}"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
    out.append("</tbody></table>")
    return "".join(out)


def _kv(rows: list[tuple[str, str]]) -> str:
    e = html.escape
    return '<table class="kv">' + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows) + "</table>"


def _equity_figure(run: RunData) -> dict[str, Any]:
    t, e = run.time_ms, run.equity
    et, ev = downsample(t, e)
    dt, dv = downsample(t, drawdown(e) * 100.0)
    quote = run.report.get("quote", "")
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": f"equity ({quote})", "x": et.tolist(), "y": ev.tolist(),
             "line": {"color": "#1f77b4", "width": 1.5}, "xaxis": "x", "yaxis": "y"},
            {"type": "scatter", "mode": "lines", "name": "drawdown %", "x": dt.tolist(), "y": dv.tolist(),
             "fill": "tozeroy", "line": {"color": "#d62728", "width": 1}, "fillcolor": "rgba(214,39,40,0.35)",
             "xaxis": "x", "yaxis": "y2"},
        ],
        "layout": {
            "height": 520, "margin": {"l": 70, "r": 20, "t": 30, "b": 40}, "showlegend": True,
            "legend": {"orientation": "h", "y": 1.08},
            "xaxis": {"type": "date", "anchor": "y2"},
            "yaxis": {"domain": [0.34, 1.0], "title": {"text": f"equity {quote}"}},
            "yaxis2": {"domain": [0.0, 0.28], "title": {"text": "drawdown %"}, "rangemode": "tozero"},
            "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
        },
    }


def _price_figure(run: RunData, market: str) -> dict[str, Any]:
    t, v = run.prices[market]
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "name": f"{market} close", "x": t.tolist(), "y": v.tolist(),
         "line": {"color": "#555555", "width": 1}},
    ]
    fills = [f for f in run.fills if f["market"] == market]
    note = ""
    if len(fills) > MAX_MARKERS:
        pick = np.linspace(0, len(fills) - 1, MAX_MARKERS).astype(np.int64)
        note = f" ({MAX_MARKERS:,} of {len(fills):,} fills shown)"
        fills = [fills[i] for i in pick.tolist()]
    for side, color, symbol in (("buy", "#2ca02c", "triangle-up"), ("sell", "#d62728", "triangle-down")):
        fs = [f for f in fills if f["side"] == side]
        if not fs:
            continue
        data.append({
            "type": "scatter", "mode": "markers", "name": f"{side}s",
            "x": [int(f["time_ms"]) for f in fs], "y": [float(f["price"]) for f in fs],
            "text": [f"{f.get('type', '')} {f.get('reason', '')} {f['amount']}" for f in fs],
            "marker": {"color": color, "symbol": symbol, "size": 9, "line": {"width": 0.5, "color": "#000000"}},
        })
    return {
        "data": data,
        "layout": {
            "height": 420, "margin": {"l": 70, "r": 20, "t": 40, "b": 40},
            "title": {"text": f"{market}: price, entries and exits{note}", "font": {"size": 14}},
            "xaxis": {"type": "date"}, "legend": {"orientation": "h", "y": -0.12},
            "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
        },
    }


def _monthly_table(run: RunData) -> str:
    rows = monthly_returns(run.time_ms, run.equity)
    if not rows:
        return "<p>Too short for monthly returns.</p>"
    body = [[str(y), *("" if r is None else f"{r * 100:.2f}%" for r in months), f"{total * 100:.2f}%"]
            for y, months, total in rows]
    return _table(["Year", *MONTHS, "Year"], body, "num")


def _metric_rows(rep: dict[str, Any]) -> list[tuple[str, str]]:
    m = rep.get("metrics", {})
    prec = int(rep.get("quote_prec", 2))
    q = rep.get("quote", "")
    star = " *" if rep.get("warnings") else ""
    rej = rep.get("rejections", {})
    rej_text = str(sum(rej.values()))
    if rej:
        rej_text += " (" + ", ".join(f"{k} {v}" for k, v in rej.items()) + ")"
    book = rep.get("book") or {}
    slip = rep.get("slippage")
    extra = []
    if slip:
        extra.append(("Slippage", f"{slip['total_quote']} {q} over {slip['fills']} taker fills, mean "
                                  f"{slip['mean_bps']:.2f} bps (max {slip['max_bps']:.2f})"))
    for market, st in book.items():
        extra.append((f"Book resyncs {market}", f"{st['resyncs']} ({st['skipped_updates']:,} updates skipped)"))
    return [
        ("Strategy", str(rep.get("strategy", ""))),
        ("Markets", ", ".join(rep.get("markets", []))),
        ("Period", f"{rep['period']['start']} -> {rep['period']['end']} ({rep['period'].get('days', 0):.1f} days)"),
        ("Book events" if book else str(rep.get("event_unit", "candles")).capitalize(), _num(rep.get("events"))),
        ("Start equity", f"{_money(rep.get('start_equity'), prec)} {q}"),
        ("Final equity", f"{_money(rep.get('final_equity'), prec)} {q}"),
        ("Total return", _pct(m.get("total_return"))),
        ("Buy & hold", _pct(rep.get("buy_and_hold"))),
        ("CAGR", _pct(m.get("cagr")) + star),
        ("Volatility (ann.)", _pct(m.get("volatility_ann")) + star),
        ("Sharpe (ann.)", _num(m.get("sharpe")) + star),
        ("Sortino (ann.)", _num(m.get("sortino")) + star),
        ("Max drawdown", _pct(m.get("max_drawdown"))),
        ("Max DD duration", _dur(m.get("max_drawdown_duration_ms"))),
        ("Calmar", _num(m.get("calmar")) + star),
        ("Exposure", _pct(m.get("exposure"))),
        ("Fees paid", f"{_money(m.get('fees_paid'), prec)} {q}"),
        ("Orders / fills", f"{rep.get('orders')} / {rep.get('fills')}"),
        ("Rejected orders", rej_text),
        *extra,
    ]


def _trade_stats_table(rep: dict[str, Any]) -> str:
    tr = rep.get("trades", {})
    rt, lt = tr.get("round_trips", {}), tr.get("lots", {})
    prec = int(rep.get("quote_prec", 2))
    rows = [
        ["Closed / open", f"{rt.get('closed')} / {rt.get('open')}", f"{lt.get('closed')} / {lt.get('open')}"],
        ["Win rate", _pct(rt.get("win_rate")), _pct(lt.get("win_rate"))],
        ["Profit factor", _num(rt.get("profit_factor")), _num(lt.get("profit_factor"))],
        ["Expectancy", _money(rt.get("expectancy"), prec), _money(lt.get("expectancy"), prec)],
        ["SQN", _num(rt.get("sqn")), _num(lt.get("sqn"))],
        ["Avg duration", _dur(rt.get("avg_duration_ms")), _dur(lt.get("avg_duration_ms"))],
        ["Max duration", _dur(rt.get("max_duration_ms")), _dur(lt.get("max_duration_ms"))],
        ["P&L (incl. open)", _money(rt.get("pnl"), prec), _money(lt.get("pnl"), prec)],
    ]
    return _table(["", "round trips (flat to flat)", "lots (FIFO)"], rows, "num")


def _per_market_table(rep: dict[str, Any]) -> str:
    prec = int(rep.get("quote_prec", 2))
    rows = [[str(x["market"]), _num(x["fills"]), _money(x["volume"], prec), _money(x["fees"], prec),
             _money(x["pnl"], prec), _num(x["lots"]), _pct(x["lot_win_rate"]), _pct(x["exposure"]),
             _pct(x["buy_and_hold"])] for x in rep.get("per_market", [])]
    return _table(["Market", "fills", "volume", "fees", "P&L", "lots", "lot win rate", "exposure", "buy & hold"],
                  rows, "num")


def _trades_table(rows: Sequence[dict[str, str]], cols: list[str], what: str, file: str) -> str:
    shown = rows[:MAX_ROWS]
    note = f"<p>{len(rows):,} {what}" + (f"; the first {MAX_ROWS:,} shown, all in {file}" if len(rows) > MAX_ROWS
                                          else f" (also in {file})") + ".</p>"
    return note + _table(cols, [[r.get(c, "") for c in cols] for r in shown], "num small")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:4px 0} th,td{padding:3px 8px;border:1px solid #e3e3e3}
th{background:#f5f5f5;text-align:left} table.num td{text-align:right} table.small{font-size:12px}
table.num td:first-child{text-align:left}
table.kv th{width:170px} .warn{background:#fff4d6;border:1px solid #e6c200;padding:8px;margin:8px 0}
.grid{display:grid;grid-template-columns:minmax(320px,1fr) minmax(320px,1fr);gap:24px}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto} .chart{width:100%}
.scroll{max-height:480px;overflow:auto}
"""


def _page(title: str, body: str, figures: dict[str, dict[str, Any]]) -> str:
    script = "\n".join(
        f'Plotly.newPlot("{div}",{_js(fig["data"])},{_js(fig["layout"])},'
        '{"displaylogo":false,"responsive":true});'
        for div, fig in figures.items()
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>{body}"
        f"<script>{script}\ndocument.body.setAttribute(\"data-charts\",\"{len(figures)}\");</script>"
        "</body></html>\n"
    )


def render_run(run: RunData) -> str:
    rep = run.report
    e = html.escape
    figures: dict[str, dict[str, Any]] = {"chart-equity": _equity_figure(run)}
    for i, market in enumerate(run.prices):
        figures[f"chart-price-{i}"] = _price_figure(run, market)
    warn = "".join(f'<div class="warn">* {e(w)}</div>' for w in rep.get("warnings", []))
    data_rows = [(m, f"{d['source']}" + (f"  (repairs: {', '.join(d['repairs'])})" if d.get("repairs") else ""))
                 for m, d in rep.get("data", {}).items()]
    outcomes = ", ".join(f"{k} {v}" for k, v in rep.get("order_outcomes", {}).items())
    body = [
        f"<h1>Backtest: {e(str(rep.get('strategy')))} on {e(', '.join(rep.get('markets', [])))}</h1>",
        f"<p>config {e(str(rep.get('config')))} · {e(rep['period']['start'] or '')} → "
        f"{e(rep['period']['end'] or '')} · {rep.get('events', 0):,} candles</p>",
        warn,
        '<h2>Equity and drawdown</h2><div id="chart-equity" class="chart"></div>',
        '<h2>Metrics</h2><div class="grid"><div>', _kv(_metric_rows(rep)), "</div><div>",
        _trade_stats_table(rep), "<h3>Per market</h3>", _per_market_table(rep),
        f"<p>Orders by outcome: {e(outcomes)}</p>", "</div></div>",
        "<h2>Price with entries and exits</h2>",
        "".join(f'<div id="chart-price-{i}" class="chart"></div>' for i in range(len(run.prices))),
        "<h2>Monthly returns</h2>", _monthly_table(run),
        "<h2>Trades</h2><h3>Round trips (flat to flat)</h3>",
        '<div class="scroll">', _trades_table(run.round_trips, ["market", "side", "entry_time", "exit_time",
                                                                 "entry_price", "exit_price", "amount", "pnl",
                                                                 "fees", "fills", "exit_reason"],
                                              "round trips", "roundtrips.csv"), "</div>",
        "<h3>Lots (FIFO: one per entry fill)</h3>",
        '<div class="scroll">', _trades_table(run.lots, ["market", "side", "entry_time", "exit_time", "entry_price",
                                                          "exit_price", "amount", "pnl", "fees", "exit_reason"],
                                              "lots", "lots.csv"), "</div>",
        "<h2>Data and config</h2>", _kv(data_rows),
        f"<pre>{e(json.dumps(rep.get('config_values'), indent=2, sort_keys=True))}</pre>",
        "<h2>Conventions</h2>", _kv([(k, str(v)) for k, v in rep.get("conventions", {}).items()]),
    ]
    return _page(f"botkit backtest {rep.get('config', '')}", "".join(body), figures)


def write_run_html(run_dir: Path, run: RunData | None = None) -> Path:
    """Render RUN_DIR/report.html from the run's files, or from `run` when the caller holds the same values."""
    run = run if run is not None else load_run(run_dir)
    path = run_dir / "report.html"
    path.write_text(render_run(run), encoding="utf-8")
    return path


# ---- compare ------------------------------------------------------------------------------------------------


COMPARE_ROWS: list[tuple[str, str]] = [
    ("Strategy", "strategy"), ("Markets", "markets"), ("Period", "period"), ("Candles", "events"),
    ("Start equity", "start_equity"), ("Final equity", "final_equity"), ("Total return", "m.total_return"),
    ("Buy & hold", "buy_and_hold"), ("CAGR", "m.cagr"), ("Volatility (ann.)", "m.volatility_ann"),
    ("Sharpe (ann.)", "m.sharpe"), ("Sortino (ann.)", "m.sortino"), ("Max drawdown", "m.max_drawdown"),
    ("Calmar", "m.calmar"), ("Exposure", "m.exposure"), ("Round trips", "rt.closed"), ("RT win rate", "rt.win_rate"),
    ("Lots", "lot.closed"), ("Lot win rate", "lot.win_rate"), ("Lot expectancy", "lot.expectancy"),
    ("Lot SQN", "lot.sqn"), ("Fees paid", "m.fees_paid"), ("Fills", "fills"), ("Rejected", "rejections"),
]
_PCT = {"m.total_return", "buy_and_hold", "m.cagr", "m.volatility_ann", "m.max_drawdown", "m.exposure",
        "rt.win_rate", "lot.win_rate"}
_MONEY = {"start_equity", "final_equity", "lot.expectancy", "m.fees_paid"}


def compare_cell(rep: dict[str, Any], key: str) -> str:
    prec = int(rep.get("quote_prec", 2))
    trades = rep.get("trades", {})
    src: Any
    if key.startswith("m."):
        v = rep.get("metrics", {}).get(key[2:])
    elif key.startswith("rt."):
        v = trades.get("round_trips", {}).get(key[3:])
    elif key.startswith("lot."):
        v = trades.get("lots", {}).get(key[4:])
    elif key == "period":
        src = rep.get("period", {})
        return f"{(src.get('start') or '')[:10]} → {(src.get('end') or '')[:10]}"
    elif key == "markets":
        return ", ".join(rep.get("markets", []))
    elif key == "rejections":
        return str(sum(rep.get("rejections", {}).values()))
    else:
        v = rep.get(key)
    if key in _PCT:
        return _pct(v)
    if key in _MONEY:
        return _money(v, prec) + ("" if v is None else f" {rep.get('quote', '')}")
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "n/a" if v is None else str(v)


def compare_rows(runs: list[RunData]) -> list[list[str]]:
    rows = [[label, *(compare_cell(r.report, key) for r in runs)] for label, key in COMPARE_ROWS]
    rows.append(["Warnings", *("yes *" if r.report.get("warnings") else "" for r in runs)])
    return rows


def render_compare(runs: list[RunData], labels: list[str]) -> str:
    traces = []
    for run, label in zip(runs, labels, strict=True):
        t, e = downsample(run.time_ms, run.equity)
        base = float(e[0]) if len(e) else 1.0
        traces.append({"type": "scatter", "mode": "lines", "name": label, "x": t.tolist(),
                       "y": (e / base).tolist() if base else e.tolist(), "line": {"width": 1.5}})
    fig = {"data": traces, "layout": {
        "height": 460, "margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": "equity / start equity"}}, "legend": {"orientation": "h", "y": -0.15},
        "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff"}}
    body = ("<h1>Backtests side by side</h1>"
            '<h2>Equity (each run divided by its start equity)</h2><div id="chart-compare" class="chart"></div>'
            "<h2>Metrics</h2>" + _table(["", *labels], compare_rows(runs), "num")
            + "".join(f'<div class="warn">* {html.escape(lb)}: {html.escape(w)}</div>'
                      for r, lb in zip(runs, labels, strict=True) for w in r.report.get("warnings", [])))
    return _page("botkit compare", body, {"chart-compare": fig})
