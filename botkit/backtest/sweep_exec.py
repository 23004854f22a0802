"""Where a sweep's backtests run: a local process pool (default) or Ray actors, one worker per core.

Each worker keeps the candles it loaded (keyed by the config's [data] table), so data is read once per worker, not
once per task; walk-forward windows are cut from it as numpy views. A task carries a fully validated config and
returns only figures (a few hundred bytes), never the fills or the equity curve. Results do not depend on the
engine or the worker count: every backtest is deterministic, and the caller orders results by task.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from botkit.backtest.candle_events import CandleEvents
from botkit.backtest.data import CandleSeries
from botkit.config import BotConfig

_CACHE_SIZE = 4  # distinct [data] tables kept per worker (a sweep over data.start keeps a few)
_KEEP_CANDLES = 500_000  # candles kept built per worker (~310 bytes each: ~150 MB), over all data windows


@dataclass(frozen=True, slots=True)
class Job:
    """One backtest: a validated config, and the window cut from its data (walk-forward) or None for all of it."""

    key: str
    cfg: BotConfig
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass(slots=True)
class JobResult:
    """What a worker sends back: the report's metrics, or why there are none, and who ran it."""

    key: str
    status: str  # "ok", "halted: ..." (the strategy raised), "error: ..." (the backtest could not run)
    metrics: dict[str, Any] = field(default_factory=dict)
    worker: str = ""  # pid@host: which worker ran it
    loads: int = 0  # data loads this worker had done when it finished the job
    seconds: float = 0.0


class _Worker:
    """Per-process state: the data cache and the load count that the tests read back."""

    def __init__(self) -> None:
        self.cache: OrderedDict[str, list[CandleSeries]] = OrderedDict()
        self.events: OrderedDict[tuple[str, int | None, int | None], CandleEvents] = OrderedDict()
        self.loads = 0
        self.name = f"{os.getpid()}@{os.uname().nodename}" + _ray_node()
        logging.getLogger("botkit").setLevel(logging.ERROR)  # rejections etc. are counted in the figures

    @staticmethod
    def _key(cfg: BotConfig) -> str:
        return json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)

    def _series(self, key: str, cfg: BotConfig) -> list[CandleSeries]:
        from botkit.backtest.loading import load_series

        hit = self.cache.get(key)
        if hit is None:
            hit = load_series(cfg)
            self.loads += 1
            self.cache[key] = hit
            while len(self.cache) > _CACHE_SIZE:
                self.cache.popitem(last=False)
            _settle_heap()
        else:
            self.cache.move_to_end(key)
        return hit

    def candle_events(self, cfg: BotConfig, start_ms: int | None, end_ms: int | None) -> CandleEvents:
        """The events of a job's data window, built into candles once and kept for the next parameter set (within
        `_KEEP_CANDLES`; a window beyond that is rebuilt each time, as a single backtest does)."""
        data_key = self._key(cfg)
        key = (data_key, start_ms, end_ms)
        hit = self.events.get(key)
        if hit is not None:
            self.events.move_to_end(key)
            return hit
        series = self._series(data_key, cfg)
        if start_ms is not None or end_ms is not None:
            series = [s.between(start_ms, end_ms) for s in series]
            series = [s for s in series if len(s)]
        events = CandleEvents(series, keep=sum(len(s) for s in series) <= _KEEP_CANDLES)
        if events.keep:
            self.events[key] = events
            while sum(len(e) for e in self.events.values()) > _KEEP_CANDLES:
                self.events.popitem(last=False)
        return events

    def run(self, job: Job) -> JobResult:
        from botkit.backtest.run import backtest_of
        from botkit.plugins import build_strategy

        t0 = time.perf_counter()
        cfg = job.cfg
        try:
            events = self.candle_events(cfg, job.start_ms, job.end_ms)
            built = events.built
            strategy = build_strategy(cfg.strategy.plugin, cfg.strategy.params)
            result = backtest_of(cfg, strategy, list(events.series), events=events).run()
        except Exception as exc:  # a bad window or data for this set: the sweep goes on, the row says why
            return JobResult(job.key, f"error: {type(exc).__name__}: {exc}", worker=self.name, loads=self.loads,
                             seconds=time.perf_counter() - t0)
        if events.built and not built:
            _settle_heap()
        metrics: dict[str, Any] = dict(result.metrics.as_dict())
        metrics["final_equity"] = float(result.equity[-1]) if len(result.equity) else None
        metrics["fills"] = len(result.fills)
        status = "ok" if result.failure is None else f"halted: {result.failure.text()}"
        return JobResult(job.key, status, metrics, self.name, self.loads, time.perf_counter() - t0)


def _settle_heap() -> None:
    """Move what the worker keeps (data, built candles, imported modules) out of the garbage collector's sight: a
    full collection would walk it after every few backtests (~10 ms each) and never free any of it."""
    gc.collect()
    gc.freeze()


def _ray_node() -> str:
    """`/node-id` inside a Ray worker (several Ray nodes can share one host), else empty."""
    ray: Any = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return ""
    return "/" + str(ray.get_runtime_context().get_node_id())[:12]


_WORKER: _Worker | None = None


def _init_process() -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool cleanly
    _WORKER = _Worker()


def _run_in_process(job: Job) -> JobResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(job)


class Engine(Protocol):
    workers: int

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """Results in the order they finish."""
        ...

    def close(self) -> None: ...


class ProcessEngine:
    """A pool of `workers` processes on this machine (spawned, so no state leaks from the parent)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or len(os.sched_getaffinity(0))
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_process
        )

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        # Keep a bounded number of jobs queued, so an interrupted sweep has little to cancel.
        pending: set[Future[JobResult]] = set()
        todo = iter(jobs)
        limit = self.workers * 4
        exhausted = False
        with _ctrl_c_between_steps() as interrupted:
            while True:
                while not exhausted and len(pending) < limit:
                    job = next(todo, None)
                    if job is None:
                        exhausted = True
                        break
                    pending.add(self._pool.submit(_run_in_process, job))
                if not pending:
                    return
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                if interrupted():
                    raise KeyboardInterrupt
                for fut in done:
                    yield fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _ctrl_c_between_steps() -> Iterator[Callable[[], bool]]:
    """Ctrl-C noted, then raised by the caller between two steps: a KeyboardInterrupt raised inside the pool's
    `submit` (half-way through writing to its wake-up pipe) can leave the pool unable to shut down, and the sweep
    hangs after saying it was interrupted. Off the main thread (no signal handlers there) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    seen = False

    def note(signum: int, frame: object) -> None:
        nonlocal seen
        seen = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield lambda: seen
    finally:
        signal.signal(signal.SIGINT, previous)


class RayEngine:
    """One Ray actor per worker (one CPU each) on a cluster at `address`, or a local Ray when address is None.

    Paths in the config are made absolute before sending, so every node must see the data and plugin files at the
    same paths (a shared filesystem, or the same checkout on each node).
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:  # typed as Any: Ray is an optional extra and its own hints are partial
            ray: Any = importlib.import_module("ray")
            actor_pool: Any = importlib.import_module("ray.util").ActorPool
        except ImportError:
            raise RuntimeError("the Ray engine needs Ray: pip install 'botkit[ray]'") from None
        self._ray = ray
        self._owns_ray = not ray.is_initialized()  # a Ray the caller started is the caller's to shut down
        opts: dict[str, Any] = {} if address else {"include_dashboard": False}  # a cluster has its own settings
        ray.init(address=address, ignore_reinit_error=True, logging_level=logging.WARNING, log_to_driver=False, **opts)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus)
        actor = ray.remote(num_cpus=1)(_Worker)
        self._actors = [actor.remote() for _ in range(self.workers)]
        self._pool = actor_pool(self._actors)

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        pool = self._pool
        yield from pool.map_unordered(lambda a, job: a.run.remote(job), list(jobs))

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        if self._owns_ray:
            self._ray.shutdown()


def make_engine(kind: str, workers: int | None, address: str | None) -> Engine:
    if kind == "ray":
        return RayEngine(address, workers)
    return ProcessEngine(workers)
