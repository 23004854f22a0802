"""`botkit sweep`: many backtests of one config with some keys replaced, ranked by a metric.

The plan (which parameter sets, on which windows) is fixed before anything runs and depends only on the command
line and the seed; each backtest is identified by a hash of its full config, its window and the data files' size
and mtime, so a re-run of the same command skips what a journal (`sweep.jsonl` in the output folder) already holds.
Walk-forward mode picks the best set on each in-sample window and then runs it, and only it, on the following
out-of-sample window, so the table shows how much of the in-sample figure survives on data the choice never saw.
Optuna's sampler proposes trials in fixed-size batches and learns from them in trial order, so its proposals, like
everything else here, do not depend on the worker count or the engine.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from botkit.backtest.metrics import Metrics
from botkit.backtest.sweep_exec import Engine, Job, JobResult
from botkit.backtest.sweep_space import Dimension, ParamSet, SpaceError, grid_sets, random_sets, set_path
from botkit.config import BotConfig, load_config

Mode = Literal["grid", "random", "optuna"]
Phase = Literal["all", "in-sample", "out-of-sample"]

EXTRA_METRICS = ("final_equity", "fills")
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration_ms", "volatility_ann", "fees_paid"})
JOURNAL = "sweep.jsonl"


def metric_names() -> list[str]:
    """Every figure a sweep can rank by: the report's metrics plus final equity and fill count."""
    return [f.name for f in dataclasses.fields(Metrics)] + list(EXTRA_METRICS)


class SweepError(Exception):
    """The sweep cannot start as asked (bad key, value, metric or option); CLI exit code 2."""


class SweepInterrupted(Exception):
    """Ctrl-C: finished backtests are in the journal; the same command resumes."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} backtests done")
        self.done, self.total = done, total


@dataclass(frozen=True, slots=True)
class SweepSpec:
    config: Path
    dims: Sequence[Dimension]
    mode: Mode = "grid"
    n: int | None = None  # --search N: sets to try (per fold in walk-forward)
    seed: int = 0
    metric: str = "sharpe"
    direction: Literal["max", "min"] | None = None  # None: by metric (drawdowns, volatility, fees: min)
    folds: int | None = None  # walk-forward folds
    train_ratio: float = 3.0  # walk-forward: in-sample length / out-of-sample length
    batch: int = 16  # Optuna: trials proposed at once
    out: Path = Path("out/sweep")

    @property
    def maximise(self) -> bool:
        return (self.direction or ("min" if self.metric in LOWER_IS_BETTER else "max")) == "max"


@dataclass(slots=True)
class Row:
    """One backtest of the plan and, once run or resumed, its result."""

    params: ParamSet
    phase: Phase
    fold: int | None
    start_ms: int | None
    end_ms: int | None
    key: str
    result: JobResult | None = None
    rank: int | None = None

    def value(self, metric: str) -> float | None:
        if self.result is None or self.result.status != "ok":
            return None
        v = self.result.metrics.get(metric)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@dataclass(slots=True)
class Fold:
    index: int
    is_window: tuple[int, int]
    oos_window: tuple[int, int]
    best: Row | None = None
    oos: Row | None = None


@dataclass(slots=True)
class SweepOutcome:
    spec: SweepSpec
    rows: list[Row]
    folds: list[Fold]
    ran: int  # backtests run now
    resumed: int  # taken from the journal
    workers: dict[str, int] = field(default_factory=dict)  # worker -> data loads it did
    elapsed_s: float = 0.0
    paths: list[Path] = field(default_factory=list)

    def ranked(self, phase: Phase = "all", fold: int | None = None) -> list[Row]:
        rows = [r for r in self.rows if r.phase == phase and r.fold == fold]
        return sorted(rows, key=lambda r: r.rank if r.rank is not None else 1 << 30)


Progress = Callable[[int, int, str], None]


class Sweep:
    """Plan, run (resuming from the journal), rank. `run(engine)` returns the outcome; writing files is the
    caller's choice (botkit.backtest.sweep_report)."""

    def __init__(self, spec: SweepSpec, progress: Progress | None = None) -> None:
        self.spec = spec
        self.progress = progress
        if spec.metric not in metric_names():
            names = ", ".join(metric_names())
            raise SweepError(f"--metric {spec.metric!r} is not a report metric; choose from {names}")
        if not spec.dims:
            raise SweepError("nothing to sweep: give at least one --grid KEY=VALUES")
        if spec.mode != "grid" and (spec.n is None or spec.n < 1):
            raise SweepError("--search N needs N >= 1")
        if spec.folds is not None and spec.folds < 1:
            raise SweepError("--walk-forward needs at least 1 fold")
        if spec.train_ratio <= 0:
            raise SweepError("--train-ratio must be positive")
        if spec.batch < 1:
            raise SweepError("--batch must be at least 1")
        try:
            self.base = load_config(spec.config)
            self.raw = tomllib.loads(spec.config.read_text(encoding="utf-8"))
        except Exception as exc:
            raise SweepError(str(exc)) from None
        self._cfgs: dict[str, BotConfig] = {}
        self._stamps: dict[str, Any] = {}
        self._check_param_names()
        self._base_abs = _absolute_paths(self.base.model_copy(deep=True))
        self.series_span = self._check_data()
        self.journal_path = spec.out / JOURNAL
        self.done: dict[str, JobResult] = self._read_journal()
        self.ran = 0
        self.resumed = 0
        self.total = 0
        self.finished = 0
        self.workers: dict[str, int] = {}
        self._best: float | None = None
        self._ran_keys: set[str] = set()
        self._resumed_keys: set[str] = set()

    # ---- config of one parameter set ----------------------------------------------------------------------------

    def config_for(self, params: ParamSet) -> BotConfig:
        """The base config with the swept keys replaced, validated like `botkit backtest` would, plugin checked."""
        memo = json.dumps(params, sort_keys=True)
        hit = self._cfgs.get(memo)
        if hit is not None:
            return hit
        by_name = {d.name: d for d in self.spec.dims}
        strategy_params = copy.deepcopy(self.base.strategy.params)
        overrides: dict[str, Any] = {}
        for name, value in params.items():
            path = by_name[name].path
            try:
                if path[:2] == ("strategy", "params") and len(path) > 2:
                    set_path(strategy_params, path[2:], value)
                elif len(path) == 1:
                    overrides[path[0]] = value
                else:
                    if path[0] not in overrides:
                        base = self.raw.get(path[0], {})
                        if not isinstance(base, dict):
                            raise SpaceError(f"{path[0]} is a value in the config, not a table")
                        overrides[path[0]] = copy.deepcopy(base)
                    set_path(overrides[path[0]], path[1:], value)
            except SpaceError as exc:
                raise SweepError(f"--grid {name}: {exc}") from None
        if overrides:  # config keys: validated as `botkit backtest` would (environment overrides included)
            overrides.setdefault("strategy", copy.deepcopy(self.raw.get("strategy", {})))["params"] = strategy_params
            try:
                cfg = load_config(self.spec.config, overrides)
            except Exception as exc:
                raise SweepError(f"with {_show(params)}: {exc}") from None
        else:  # strategy params only: the base config, already validated (doing it again costs ~10 ms a set)
            base = self._base_abs
            cfg = base.model_copy(update={"strategy": base.strategy.model_copy(update={"params": strategy_params})})
        from botkit.plugins import PluginError, build_strategy

        try:
            build_strategy(cfg.strategy.plugin, cfg.strategy.params)
        except PluginError as exc:
            raise SweepError(f"with {_show(params)}: {exc}") from None
        if overrides:
            cfg = _absolute_paths(cfg)
        self._cfgs[memo] = cfg
        return cfg

    def _check_param_names(self) -> None:
        """A swept strategy param must be one the strategy has: say which, with the nearest name."""
        import difflib

        from botkit.plugins import PluginError, load_strategy_class

        try:
            cls = load_strategy_class(self.base.strategy.plugin)
        except PluginError as exc:
            raise SweepError(str(exc)) from None
        known = list(cls.Params.model_fields)
        for d in self.spec.dims:
            if d.path[:2] == ("strategy", "params") and len(d.path) == 3 and d.path[2] not in known:
                near = difflib.get_close_matches(d.path[2], known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise SweepError(f"--grid {d.name}: {cls.__name__} has no parameter {d.path[2]!r}{hint}; "
                                 f"its parameters: {', '.join(known) or 'none'}")

    def _check_data(self) -> tuple[int, int]:
        """Load the base config's data once here: bad data stops the sweep before any worker starts, and
        walk-forward needs the span."""
        from botkit.backtest.data import DataError
        from botkit.backtest.loading import load_series

        if not self.base.data.files:
            raise SweepError(f"{self.spec.config}: [data] files is empty; a sweep needs candle files (a [data] store "
                             "or recording is backtested by `botkit backtest`, not swept yet)")
        try:
            series = load_series(self.base)
        except DataError as exc:
            raise SweepError(str(exc)) from None
        start = min(int(s.time_ms[0]) for s in series if len(s))
        end = max(int(s.time_ms[-1]) + s.timeframe_ms for s in series if len(s))
        self._timeframe = min(s.timeframe_ms for s in series)
        return start, end

    def _key(self, cfg: BotConfig, start_ms: int | None, end_ms: int | None) -> str:
        ident = {
            "config": cfg.model_dump(mode="json", exclude={"output", "run", "auth", "name"}),
            "window": [start_ms, end_ms],
            "files": {m: self._stamp(p) for m, p in sorted(cfg.data.files.items())},
            "plugin": self._stamp(cfg.strategy.plugin.rpartition(":")[0]),
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _stamp(self, path: str) -> Any:
        """Size and mtime of a file (data changed: results are stale), or None when `path` is no file."""
        if path not in self._stamps:
            p = Path(path)
            st = p.stat() if p.is_file() else None
            self._stamps[path] = None if st is None else [st.st_size, st.st_mtime_ns]
        return self._stamps[path]

    def row(self, params: ParamSet, phase: Phase, fold: int | None, window: tuple[int, int] | None) -> Row:
        cfg = self.config_for(params)
        start, end = window if window is not None else (None, None)
        return Row(dict(params), phase, fold, start, end, self._key(cfg, start, end))

    # ---- journal --------------------------------------------------------------------------------------------------

    def _read_journal(self) -> dict[str, JobResult]:
        done: dict[str, JobResult] = {}
        if not self.journal_path.is_file():
            return done
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                done[rec["key"]] = JobResult(rec["key"], rec["status"], rec["metrics"], rec.get("worker", ""))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill: that backtest runs again
        return done

    def _record(self, row: Row, res: JobResult) -> None:
        rec = {"key": res.key, "params": row.params, "phase": row.phase, "fold": row.fold,
               "window": [row.start_ms, row.end_ms], "status": res.status, "metrics": res.metrics}
        with self.journal_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=True, default=_json_default) + "\n")

    # ---- running --------------------------------------------------------------------------------------------------

    def execute(self, engine: Engine, rows: Sequence[Row]) -> None:
        """Fill in every row's result: from the journal, or by running it (each distinct backtest once)."""
        todo: dict[str, Row] = {}
        for r in rows:
            if r.key in self.done:
                if r.result is None and r.key not in self._ran_keys and r.key not in self._resumed_keys:
                    self.resumed += 1  # from the journal (a set Optuna proposes twice runs once, resumed never)
                    self._resumed_keys.add(r.key)
                r.result = self.done[r.key]
                self._tick(r)
            elif r.key not in todo:
                todo[r.key] = r
        waiting: dict[str, list[Row]] = {k: [] for k in todo}  # the rows each backtest fills in, in row order
        for r in rows:
            if r.key in waiting:
                waiting[r.key].append(r)
        jobs = [Job(k, self.config_for(r.params), r.start_ms, r.end_ms) for k, r in todo.items()]
        try:
            for res in engine.run(jobs):
                self.ran += 1
                self._ran_keys.add(res.key)
                self.done[res.key] = res
                self.workers[res.worker] = max(res.loads, self.workers.get(res.worker, 0))
                first = waiting[res.key][0]
                self._record(first, res)
                for r in waiting[res.key]:
                    r.result = res
                    self._tick(r)
        except KeyboardInterrupt:
            raise SweepInterrupted(self.finished, self.total) from None

    def _tick(self, row: Row) -> None:
        self.finished += 1
        v = row.value(self.spec.metric)
        if v is not None and row.phase != "out-of-sample" and (
            self._best is None or (v > self._best if self.spec.maximise else v < self._best)
        ):
            self._best = v
        if self.progress is not None:
            best = "" if self._best is None else f"best {self.spec.metric} {self._best:.4g}"
            self.progress(self.finished, self.total, best)

    def propose(self, engine: Engine, phase: Phase, fold: int | None, window: tuple[int, int] | None) -> list[Row]:
        """Run one search (grid, random or Optuna) on one window and return its rows."""
        spec = self.spec
        if spec.mode == "grid":
            rows = [self.row(ps, phase, fold, window) for ps in grid_sets(spec.dims)]
        elif spec.mode == "random":
            assert spec.n is not None
            rows = [self.row(ps, phase, fold, window) for ps in random_sets(spec.dims, spec.n, spec.seed + (fold or 0))]
        else:
            return self._optuna(engine, phase, fold, window)
        self.execute(engine, rows)
        return rows

    def _optuna(self, engine: Engine, phase: Phase, fold: int | None, window: tuple[int, int] | None) -> list[Row]:
        import optuna
        from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        spec = self.spec
        assert spec.n is not None
        dists: dict[str, BaseDistribution] = {}
        for d in spec.dims:
            if d.choices:
                dists[d.name] = CategoricalDistribution(d.choices)
            elif d.integer:
                assert d.low is not None and d.high is not None
                dists[d.name] = IntDistribution(int(d.low), int(d.high), step=int(d.step or 1))
            else:
                assert d.low is not None and d.high is not None
                dists[d.name] = FloatDistribution(d.low, d.high, step=d.step)
        study = optuna.create_study(
            direction="maximize" if spec.maximise else "minimize",
            sampler=optuna.samplers.TPESampler(seed=spec.seed + (fold or 0)),
        )
        rows: list[Row] = []
        seen: set[str] = set()
        while len(rows) < spec.n:
            trials = [study.ask(dists) for _ in range(min(spec.batch, spec.n - len(rows)))]
            batch = []
            for t in trials:
                ps = {d.name: _plain(t.params[d.name]) for d in spec.dims}
                batch.append(self.row(ps, phase, fold, window))
            self.execute(engine, batch)
            for t, r in zip(trials, batch, strict=True):
                v = r.value(spec.metric)
                if v is None:
                    study.tell(t, state=TrialState.FAIL)
                else:  # +inf (no losing trade) is the best a ratio gets; the sampler needs a finite number
                    study.tell(t, max(-1e300, min(1e300, v)))
                rows.append(r)
        unique = []
        for r in rows:  # the sampler may propose a set twice: it ran once and is listed once
            if r.key not in seen:
                seen.add(r.key)
                unique.append(r)
        return unique

    def rank(self, rows: Sequence[Row]) -> list[Row]:
        """Best first by the metric; undefined figures and failed runs last; ties in plan order."""
        sign = -1.0 if self.spec.maximise else 1.0
        m = self.spec.metric
        order = sorted(enumerate(rows), key=lambda ir: (ir[1].value(m) is None, sign * (ir[1].value(m) or 0.0), ir[0]))
        for k, (_, r) in enumerate(order, 1):
            r.rank = k
        return [r for _, r in order]

    def folds(self) -> list[Fold]:
        """Rolling walk-forward: in-sample windows of train_ratio x the out-of-sample length, the out-of-sample
        windows following each other to the end of the data, never overlapping their own in-sample window."""
        assert self.spec.folds is not None
        k, ratio = self.spec.folds, self.spec.train_ratio
        start, end = self.series_span
        tf = self._timeframe
        test = (end - start) / (ratio + k)
        test_ms = int(test // tf) * tf
        train_ms = int(ratio * test // tf) * tf
        if test_ms < 2 * tf or train_ms < 2 * tf:
            raise SweepError(f"--walk-forward {k}: the data ({(end - start) // tf} candles) is too short for {k} folds")
        out = []
        for i in range(k):
            is_start = start + i * test_ms
            is_end = is_start + train_ms
            oos_end = end if i == k - 1 else is_end + test_ms
            out.append(Fold(i + 1, (is_start, is_end), (is_end, oos_end)))
        return out

    def run(self, engine: Engine) -> SweepOutcome:
        t0 = time.perf_counter()
        self.spec.out.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        per_search = len(grid_sets(spec.dims)) if spec.mode == "grid" else (
            len(random_sets(spec.dims, spec.n or 0, spec.seed)) if spec.mode == "random" else spec.n or 0)
        if spec.folds is None:
            self.total = per_search
            rows = self.propose(engine, "all", None, None)
            self.rank(rows)
            folds: list[Fold] = []
        else:
            folds = self.folds()
            self.total = (per_search + 1) * len(folds)
            rows = []
            if spec.mode != "optuna":  # grid and random plans do not depend on results: all folds at once
                is_rows = [self.row(ps, "in-sample", f.index, f.is_window)
                           for f in folds for ps in self._plan(f.index)]
                self.execute(engine, is_rows)
                rows.extend(is_rows)
            else:
                for f in folds:
                    rows.extend(self.propose(engine, "in-sample", f.index, f.is_window))
            oos_rows = []
            for f in folds:
                ranked = self.rank([r for r in rows if r.fold == f.index])
                f.best = ranked[0] if ranked and ranked[0].value(spec.metric) is not None else None
                if f.best is not None:
                    f.oos = self.row(f.best.params, "out-of-sample", f.index, f.oos_window)
                    oos_rows.append(f.oos)
                else:
                    self.total -= 1
            self.execute(engine, oos_rows)
            rows.extend(oos_rows)
        return SweepOutcome(spec, rows, folds, self.ran, self.resumed, dict(self.workers),
                            time.perf_counter() - t0)

    def _plan(self, fold: int) -> list[ParamSet]:
        if self.spec.mode == "grid":
            return grid_sets(self.spec.dims)
        assert self.spec.n is not None
        return random_sets(self.spec.dims, self.spec.n, self.spec.seed + fold)


def _plain(v: Any) -> Any:
    """Optuna hands back numpy-free Python values, but floats from stepped ranges carry float noise."""
    if isinstance(v, float):
        return float(f"{v:.12g}")
    return v


def _show(params: ParamSet) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _json_default(v: Any) -> Any:
    return str(v)


def _absolute_paths(cfg: BotConfig) -> BotConfig:
    """Plugin file and data files as absolute paths: workers (Ray's above all) may run in another directory."""
    ref = cfg.strategy.plugin
    file_part, sep, cls = ref.rpartition(":")
    if sep and file_part.endswith(".py") and Path(file_part).is_file():
        cfg.strategy.plugin = f"{Path(file_part).resolve()}:{cls}"
    cfg.data.files = {m: str(Path(p).resolve()) for m, p in cfg.data.files.items()}
    return cfg
