"""`botkit report RUN_DIR` and `botkit compare RUN_DIR...`: look at finished backtests again without re-running them.

`report` re-renders a run's report.html from its files (the same bytes the backtest wrote, e.g. after an upgrade
of botkit, or when the backtest ran without plotly). `compare` prints the runs' headline figures side by side and
writes an HTML page with their equity curves on one chart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botkit.backtest.html import PlotlyMissing, RunData, RunDirError, compare_rows, load_run, render_compare

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `report` and `compare` commands to the top-level CLI."""
    rep = subparsers.add_parser(
        "report", help="re-render a backtest's report.html from its output folder",
        description="Re-render RUN_DIR/report.html from the files a `botkit backtest` wrote there.",
    )
    rep.add_argument("run_dir", type=Path, help="output folder of a backtest (holds report.json)")
    rep.set_defaults(func=_cmd_report)

    cmp = subparsers.add_parser(
        "compare", help="compare backtest runs side by side (terminal table and an HTML page)",
        description="Print the headline figures of several backtest runs side by side and write an HTML page "
                    "with their equity curves (each divided by its start equity) and the same table.",
    )
    cmp.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="output folders of backtests")
    cmp.add_argument("--html", type=Path, default=Path("compare.html"),
                     help="where to write the HTML page (default: compare.html)")
    cmp.set_defaults(func=_cmd_compare)


def _cmd_report(args: argparse.Namespace) -> int:
    from botkit.backtest.html import write_run_html

    try:
        path = write_run_html(args.run_dir)
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PlotlyMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"wrote {path}")
    return EXIT_OK


def labels_for(dirs: list[Path]) -> list[str]:
    """Short unique labels: the folder names, or their paths when two names clash."""
    names = [d.name or str(d) for d in dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in dirs]


def format_table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for r in [head, *rows]:
        lines.append("  " + "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def _cmd_compare(args: argparse.Namespace) -> int:
    runs: list[RunData] = []
    try:
        for d in args.run_dirs:
            runs.append(load_run(d))
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    labels = labels_for(list(args.run_dirs))
    print(format_table(compare_rows(runs), ["", *labels]))
    for run, label in zip(runs, labels, strict=True):
        for w in run.report.get("warnings", []):
            print(f"  * {label}: {w}")
    try:
        page = render_compare(runs, labels)
    except PlotlyMissing as exc:
        print(f"note: no HTML page: {exc}")
        return EXIT_OK
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(page, encoding="utf-8")
    print(f"wrote {args.html}")
    return EXIT_OK
