"""A sweep's files: results.csv (every backtest, ranked), walkforward.csv (in-sample vs out-of-sample per fold) and
heatmap.html (the metric over two parameters: a plain HTML table coloured with CSS, so it opens offline).

Files hold no times, worker names or durations: the same sweep gives the same bytes on any engine or worker count.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botkit.backtest.sweep import Row, SweepOutcome, metric_names

MAX_HEAT_VALUES = 60  # distinct values per axis; continuous random/Optuna draws have no useful heat map


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    return v


def _iso(ms: int | None) -> str:
    from botkit.backtest.report import iso

    return iso(ms)


def write_results(outcome: SweepOutcome, path: Path) -> Path:
    spec = outcome.spec
    names = [d.name for d in spec.dims]
    metrics = [spec.metric] + [m for m in metric_names() if m != spec.metric]
    wf = bool(outcome.folds)
    head = (["fold", "phase", "start", "end"] if wf else []) + ["rank", *names, "status", *metrics]
    rows: list[Row] = []
    if wf:
        for f in outcome.folds:
            rows.extend(outcome.ranked("in-sample", f.index))
            rows.extend(outcome.ranked("out-of-sample", f.index))
    else:
        rows = outcome.ranked()
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(head)
        for r in rows:
            res = r.result
            lead = [r.fold, r.phase, _iso(r.start_ms), _iso(r.end_ms)] if wf else []
            rank = r.rank if r.phase != "out-of-sample" else ""
            status = res.status if res is not None else "not run"
            vals = [_cell(res.metrics.get(m)) if res is not None else "" for m in metrics]
            w.writerow([*lead, rank, *(_cell(r.params[n]) for n in names), status, *vals])
    return path


def write_walkforward(outcome: SweepOutcome, path: Path) -> Path:
    spec = outcome.spec
    names = [d.name for d in spec.dims]
    m = spec.metric
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["fold", "in_sample_start", "in_sample_end", "out_of_sample_start", "out_of_sample_end", *names,
                    f"in_sample_{m}", f"out_of_sample_{m}"])
        for f in outcome.folds:
            params = f.best.params if f.best is not None else {}
            w.writerow([
                f.index, _iso(f.is_window[0]), _iso(f.is_window[1]), _iso(f.oos_window[0]), _iso(f.oos_window[1]),
                *(_cell(params.get(n)) for n in names),
                _cell(f.best.value(m) if f.best is not None else None),
                _cell(f.oos.value(m) if f.oos is not None else None),
            ])
    return path


def walkforward_summary(outcome: SweepOutcome) -> tuple[float | None, float | None]:
    """Mean in-sample and mean out-of-sample metric of the chosen sets over the folds."""
    m = outcome.spec.metric
    ins = [v for f in outcome.folds if f.best is not None and (v := f.best.value(m)) is not None]
    outs = [v for f in outcome.folds if f.oos is not None and (v := f.oos.value(m)) is not None]
    return (sum(ins) / len(ins) if ins else None, sum(outs) / len(outs) if outs else None)


def heat_grid(
    rows: Sequence[Row], x: str, y: str, metric: str, maximise: bool
) -> tuple[list[Any], list[Any], dict[tuple[Any, Any], float]] | None:
    """The best metric per (x, y) over the other parameters (mean over folds in walk-forward), or None when an
    axis has too many distinct values."""
    per: dict[tuple[Any, Any], dict[str, list[float]]] = {}
    for r in rows:
        v = r.value(metric)
        if v is None:
            continue
        rest = repr(sorted((k, val) for k, val in r.params.items() if k not in (x, y)))
        per.setdefault((r.params[x], r.params[y]), {}).setdefault(rest, []).append(v)
    xs = sorted({r.params[x] for r in rows}, key=_sort_key)
    ys = sorted({r.params[y] for r in rows}, key=_sort_key)
    if len(xs) > MAX_HEAT_VALUES or len(ys) > MAX_HEAT_VALUES:
        return None
    pick = max if maximise else min
    cells = {xy: pick(sum(v) / len(v) for v in groups.values()) for xy, groups in per.items()}
    return xs, ys, cells


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def write_heatmap(outcome: SweepOutcome, path: Path, axes: tuple[str, str] | None = None) -> Path | None:
    """heatmap.html for two parameters (the first two, unless `axes` says), or None when it would say nothing."""
    spec = outcome.spec
    names = [d.name for d in spec.dims]
    if axes is None:
        if len(names) < 2:
            return None
        axes = (names[0], names[1])
    x, y = axes
    phase = "in-sample" if outcome.folds else "all"
    rows = [r for r in outcome.rows if r.phase == phase]
    grid = heat_grid(rows, x, y, spec.metric, spec.maximise)
    if grid is None:
        return None
    xs, ys, cells = grid
    finite = [v for v in cells.values() if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)

    def colour(v: float) -> str:
        if not math.isfinite(v):
            good = (v > 0) == spec.maximise
            return "hsl(120,60%,45%)" if good else "hsl(0,70%,55%)"
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        if not spec.maximise:
            t = 1 - t
        return f"hsl({round(120 * t)},65%,{round(50 + 20 * (1 - abs(2 * t - 1)))}%)"

    others = [n for n in names if n not in axes]
    how = []
    if others:
        how.append(f"best over {', '.join(others)}")
    if outcome.folds:
        how.append(f"in-sample, mean over {len(outcome.folds)} folds")
    note = f" ({'; '.join(how)})" if how else ""
    better = "higher" if spec.maximise else "lower"
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>botkit sweep: {e(spec.metric)} by {e(x)} and {e(y)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#f4f4f4}td.none{background:#eee;color:#999}caption{text-align:left;margin-bottom:.5em}"
        "</style></head><body>",
        f"<h1>{e(spec.metric)} by {e(x)} (columns) and {e(y)} (rows)</h1>",
        f"<p>Config {e(str(spec.config))}; {len(rows)} backtests{e(note)}. Green is better ({better} is better); "
        "grey: no figure (failed run or undefined metric).</p>",
        "<table>",
        f"<tr><th>{e(y)} \\ {e(x)}</th>" + "".join(f"<th>{e(str(v))}</th>" for v in xs) + "</tr>",
    ]
    for yv in ys:
        tds = []
        for xv in xs:
            v = cells.get((xv, yv))
            if v is None:
                tds.append('<td class="none">-</td>')
            else:
                tds.append(f'<td style="background:{colour(v)}" title="{e(x)}={e(str(xv))} {e(y)}={e(str(yv))}">'
                           f"{e(_fmt(v))}</td>")
        out.append(f"<tr><th>{e(str(yv))}</th>{''.join(tds)}</tr>")
    out += ["</table>", "</body></html>", ""]
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}"


def write_all(outcome: SweepOutcome, out_dir: Path, axes: tuple[str, str] | None = None) -> list[Path]:
    paths = [write_results(outcome, out_dir / "results.csv")]
    if outcome.folds:
        paths.append(write_walkforward(outcome, out_dir / "walkforward.csv"))
    heat = write_heatmap(outcome, out_dir / "heatmap.html", axes)
    if heat is not None:
        paths.append(heat)
    return paths
