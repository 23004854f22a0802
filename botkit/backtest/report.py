"""Backtest output: report.json, trades.csv, roundtrips.csv, equity.csv, and the summary table.

Files hold no wall-clock times or durations, so the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from botkit.backtest.engine import BacktestResult
from botkit.market.rules import fmt


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return fmt(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else None)
    return v


def report_dict(result: BacktestResult, config_name: str) -> dict[str, Any]:
    rej_counts: dict[str, int] = {}
    for r in result.rejections:
        rej_counts[r.rule] = rej_counts.get(r.rule, 0) + 1
    t = result.event_time_ms
    return {
        "botkit_report": 1,
        "config": config_name,
        "outcome": result.outcome,
        "partial": result.partial,
        "failure": None if result.failure is None else {
            "callback": result.failure.callback, "market_time": iso(result.failure.time_ms),
            "where": result.failure.where, "error": result.failure.error,
        },
        "strategy_errors": result.strategy_errors,
        "strategy": result.strategy,
        "markets": result.markets,
        "quote": result.quote,
        "data": {
            m: {"source": result.sources[m], "repairs": result.repairs.get(m, [])} for m in result.markets
        },
        "warnings": list(result.warnings),  # data mismatches said before the run
        "period": {"start": iso(int(t[0])) if len(t) else None, "end": iso(int(t[-1])) if len(t) else None},
        "events": result.events,
        "start_balances": {a: fmt(v) for a, v in sorted(result.start_balances.items())},
        "final_balances": {a: fmt(v) for a, v in sorted(result.final_balances.items())},
        "final_equity": _num(float(result.equity[-1])) if len(result.equity) else None,
        "metrics": {k: _num(v) for k, v in result.metrics.as_dict().items()},
        "orders": len(result.orders),
        "fills": len(result.fills),
        "rejections": dict(sorted(rej_counts.items())),
        "round_trips": {
            "closed": sum(1 for r in result.round_trips if r.closed),
            "open": sum(1 for r in result.round_trips if not r.closed),
        },
        "unvalued_assets": result.unvalued_assets,
        "conventions": {
            "equity": f"mark-to-market in {result.quote} at each candle close",
            "annualisation": "365-day year of 24h trading; periods per year from the median candle step",
            "risk_free_rate": 0,
        },
    }


def write_report(result: BacktestResult, out_dir: Path, config_name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    p = out_dir / "report.json"
    p.write_text(json.dumps(report_dict(result, config_name), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    paths.append(p)

    p = out_dir / "trades.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["time", "time_ms", "market", "side", "price", "amount", "quote", "fee", "fee_asset",
                    "liquidity", "client_order_id"])
        for f in result.fills:
            w.writerow([iso(f.time_ms), f.time_ms, f.market, f.side, fmt(f.price), fmt(f.amount), fmt(f.quote),
                        fmt(f.fee), f.fee_asset, "maker" if f.maker else "taker", f.client_id])
    paths.append(p)

    p = out_dir / "roundtrips.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["market", "side", "entry_time", "exit_time", "entry_price", "exit_price", "max_amount", "pnl",
                    "fees", "closed"])
        for r in result.round_trips:
            w.writerow([r.market, r.side, iso(r.entry_ms), iso(r.exit_ms), fmt(r.entry_price),
                        fmt(r.exit_price) if r.exit_price is not None else "", fmt(r.amount), repr(r.pnl),
                        repr(r.fees), int(r.closed)])
    paths.append(p)

    p = out_dir / "equity.csv"
    with p.open("w", encoding="utf-8") as fh:
        fh.write("time_ms,equity\n")
        times = result.event_time_ms.tolist()
        eq = result.equity.tolist()
        fh.writelines(f"{t},{e!r}\n" for t, e in zip(times, eq, strict=True))
    paths.append(p)
    return paths


def _pct(v: Any) -> str:
    return "n/a" if v is None else (f"{v * 100:.2f}%" if math.isfinite(v) else str(v))


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def summary_table(result: BacktestResult) -> str:
    m = result.metrics.as_dict()
    dd_ms = m.get("max_drawdown_duration_ms")
    rows = [
        ("Strategy", result.strategy + ("" if not result.partial else f"  (PARTIAL: {result.outcome})")),
        ("Markets", ", ".join(result.markets)),
        ("Period", f"{iso(int(result.event_time_ms[0]))} -> {iso(int(result.event_time_ms[-1]))}"
         if result.events else "n/a"),
        ("Candles", f"{result.events:,}"),
        ("Final equity", f"{_f(float(result.equity[-1]))} {result.quote}" if result.events else "n/a"),
        ("Total return", _pct(m.get("total_return"))),
        ("CAGR", _pct(m.get("cagr"))),
        ("Volatility (ann.)", _pct(m.get("volatility_ann"))),
        ("Sharpe (ann.)", _f(m.get("sharpe"))),
        ("Sortino (ann.)", _f(m.get("sortino"))),
        ("Max drawdown", _pct(m.get("max_drawdown"))),
        ("Max DD duration", "n/a" if dd_ms is None else f"{dd_ms / 3_600_000:.1f} h"),
        ("Calmar", _f(m.get("calmar"))),
        ("Round trips", str(m.get("trades"))),
        ("Win rate", _pct(m.get("win_rate"))),
        ("Profit factor", _f(m.get("profit_factor"))),
        ("Expectancy", f"{_f(m.get('expectancy'), 4)} {result.quote}"),
        ("Exposure", _pct(m.get("exposure"))),
        ("Fees paid", f"{_f(result.fees_paid, 4)} {result.quote}"),
        ("Orders / fills", f"{len(result.orders)} / {len(result.fills)}"),
        ("Rejected orders", str(len(result.rejections))),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
