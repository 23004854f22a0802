"""`botkit sweep CONFIG --grid KEY=VALUES ... [--search N] --metric NAME`: the command line of botkit.backtest.sweep.

Exit codes: 0 done, 1 no backtest gave a figure, 2 bad arguments (key, value, metric, option), 130 Ctrl-C (finished
backtests are kept; the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run many backtests with parameters replaced and rank them by a metric",
        description="Backtest CONFIG once per parameter set and rank the sets by --metric. Keys are strategy params "
        "(fast) or dotted config keys (backtest.slippage_pct). Writes results.csv, heatmap.html (two parameters) "
        "and, with --walk-forward, walkforward.csv; re-running the same command skips finished backtests.",
    )
    p.add_argument("config", type=Path, help="bot config file (TOML)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=SPEC",
                   help="a swept key (repeatable): KEY=v1,v2,... or KEY=LOW..HIGH[:STEP]; a bare KEY is a strategy "
                        "param, a dotted one any config key (backtest.slippage_pct)")
    p.add_argument("--search", type=int, metavar="N", help="try N sets drawn from the space instead of the full grid")
    p.add_argument("--sampler", choices=("random", "optuna"), default="random",
                   help="with --search: seeded random draws (default) or Optuna's TPE sampler (pip install "
                        "'botkit[optuna]')")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and Optuna samplers (default 0)")
    p.add_argument("--metric", default="sharpe", help="report metric to rank by (default sharpe)")
    p.add_argument("--direction", choices=("max", "min"),
                   help="higher or lower is better (default: lower for drawdowns, volatility and fees)")
    p.add_argument("--walk-forward", dest="folds", type=int, metavar="FOLDS",
                   help="walk-forward: pick the best set on each in-sample window, score it on the next "
                        "out-of-sample window")
    p.add_argument("--train-ratio", type=float, default=3.0,
                   help="walk-forward: in-sample window length / out-of-sample length (default 3)")
    p.add_argument("--engine", choices=("process", "ray"), default="process",
                   help="local process pool (default) or Ray (pip install 'botkit[ray]')")
    p.add_argument("--address", help="Ray cluster address (e.g. 10.0.0.5:6379 or auto); default: a local Ray")
    p.add_argument("--workers", type=int, help="worker processes / Ray actors (default: all cores)")
    p.add_argument("--batch", type=int, default=16, help="Optuna: trials proposed at once (default 16)")
    p.add_argument("--heatmap", metavar="X,Y", help="the two parameters of heatmap.html (default: the first two)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranking printed (default 10)")
    p.add_argument("--out", type=Path, help="output folder (default: out/<config name>/sweep)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=_cmd_sweep)


@dataclass
class SweepProgress:
    """done/total, rate, ETA and the best figure so far on stderr: redrawn on a terminal, every 10 % otherwise."""

    stream: TextIO | None = None
    started: float = field(default_factory=time.perf_counter)
    last_decile: int = -1
    last_draw: float = 0.0

    def __call__(self, done: int, total: int, best: str) -> None:
        out = self.stream or sys.stderr
        now = time.perf_counter()
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        line = f"{done:,}/{total:,} backtests  {rate:.1f}/s  ETA {_clock(eta)}  {best}"
        if out.isatty():
            if now - self.last_draw < 0.2 and done < total:
                return
            self.last_draw = now
            pct = done * 100 // max(total, 1)
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            out.write(f"\r  [{bar}] {pct:3d}%  {line}\033[K" + ("\n" if done >= total else ""))
            out.flush()
            return
        decile = done * 10 // max(total, 1)
        if decile > self.last_decile or done >= total:
            self.last_decile = decile
            out.write(f"  {done * 100 // max(total, 1):3d}%  {line}\n")
            out.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _cmd_sweep(args: argparse.Namespace) -> int:
    from botkit.backtest.sweep import Mode, Sweep, SweepError, SweepInterrupted, SweepSpec
    from botkit.backtest.sweep_exec import make_engine
    from botkit.backtest.sweep_report import walkforward_summary, write_all
    from botkit.backtest.sweep_space import SpaceError, parse_space

    def bad(text: str) -> int:
        print(f"error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.address and args.engine != "ray":
        return bad("--address is for --engine ray")
    if args.workers is not None and args.workers < 1:
        return bad("--workers must be at least 1")
    if args.search is None and args.sampler != "random":
        return bad("--sampler needs --search N")
    axes = None
    if args.heatmap:
        parts = [a.strip() for a in args.heatmap.split(",")]
        names = [g.partition("=")[0].strip() for g in args.grid]
        if len(parts) != 2 or any(a not in names for a in parts) or parts[0] == parts[1]:
            return bad(f"--heatmap {args.heatmap}: name two different --grid keys, e.g. --heatmap "
                       f"{','.join(names[:2]) or 'fast,slow'}")
        axes = (parts[0], parts[1])
    if args.sampler == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            return bad("--sampler optuna needs Optuna: pip install 'botkit[optuna]'")
    try:
        dims = parse_space(args.grid)
        name_cfg = args.config.stem
        out = args.out if args.out is not None else Path("out") / name_cfg / "sweep"
        mode: Mode = "grid" if args.search is None else ("optuna" if args.sampler == "optuna" else "random")
        spec = SweepSpec(args.config, dims, mode, args.search, args.seed, args.metric, args.direction, args.folds,
                         args.train_ratio, args.batch, out)
        sweep = Sweep(spec, None if args.quiet else SweepProgress())
        if mode == "grid":
            from botkit.backtest.sweep_space import grid_sets

            for ps in grid_sets(dims):  # every value is checked before any worker starts
                sweep.config_for(ps)
    except (SpaceError, SweepError) as exc:
        return bad(str(exc))
    if sweep.done and not args.quiet:
        print(f"resuming: {len(sweep.done)} finished backtests in {sweep.journal_path}", file=sys.stderr)
    try:
        engine = make_engine(args.engine, args.workers, args.address)
    except Exception as exc:
        return bad(f"--engine {args.engine}: {exc}")
    if not args.quiet:
        where = f"Ray at {args.address}" if args.engine == "ray" and args.address else (
            "a local Ray" if args.engine == "ray" else "local processes")
        print(f"sweep {args.config}: {engine.workers} workers ({where}), ranking by {spec.metric} "
              f"({'higher' if spec.maximise else 'lower'} is better)", file=sys.stderr)
    try:
        outcome = sweep.run(engine)
    except SweepInterrupted as exc:
        print(f"\ninterrupted: {exc}; finished backtests are kept in {sweep.journal_path}. Run the same command to "
              "resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished backtests are kept in {sweep.journal_path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SweepError as exc:
        return bad(str(exc))
    finally:
        engine.close()
    outcome.paths = write_all(outcome, out, axes)
    if not args.quiet:
        _print(outcome, args.top)
        avg_in, avg_out = walkforward_summary(outcome) if outcome.folds else (None, None)
        if outcome.folds:
            print(f"\nwalk-forward, {spec.metric} of the chosen set: in-sample mean {_f(avg_in)}, "
                  f"out-of-sample mean {_f(avg_out)}")
        loads = sum(outcome.workers.values())
        print(f"\n{outcome.ran} backtests run, {outcome.resumed} resumed, in {outcome.elapsed_s:.1f} s; data "
              f"loaded {loads} times by {len(outcome.workers)} workers")
        print("wrote " + ", ".join(str(p) for p in outcome.paths))
    ok = [r for r in outcome.rows if r.value(spec.metric) is not None]
    return EXIT_OK if ok else EXIT_FAIL


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _print(outcome: object, top: int) -> None:
    from botkit.backtest.sweep import SweepOutcome

    assert isinstance(outcome, SweepOutcome)
    spec = outcome.spec
    names = [d.name for d in spec.dims]
    extra = [m for m in ("total_return", "max_drawdown", "trades") if m != spec.metric]
    head = ["rank", *names, spec.metric, *extra, "status"]
    if outcome.folds:
        head = ["fold", *names, f"in-sample {spec.metric}", f"out-of-sample {spec.metric}"]
        table = [[str(f.index), *(str(f.best.params[n]) if f.best else "-" for n in names),
                  _f(f.best.value(spec.metric) if f.best else None), _f(f.oos.value(spec.metric) if f.oos else None)]
                 for f in outcome.folds]
    else:
        table = []
        for r in outcome.ranked()[:top]:
            res = r.result
            status = res.status if res is not None else "not run"
            table.append([str(r.rank), *(str(r.params[n]) for n in names), _f(r.value(spec.metric)),
                          *(_f(r.value(m)) for m in extra), status if len(status) < 60 else status[:57] + "..."])
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
