"""A sweep worker builds each data window's candles once and replays them for every parameter set: the figures equal
a plain backtest's, windows are kept apart, the budget is kept, and what it keeps is out of the collector's sight."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit.backtest import sweep_exec
from botkit.backtest.run import run_backtest
from botkit.backtest.sweep_exec import Job, _Worker
from botkit.config import BotConfig, load_config

from .helpers import make_config

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_config(tmp_path_factory.mktemp("workerdata"))


@pytest.fixture(autouse=True)
def thaw() -> Iterator[None]:
    yield
    gc.unfreeze()  # the worker freezes what it keeps; a test process must not keep it forever


def config(path: Path, fast: int, slow: int) -> BotConfig:
    return load_config(path, {"strategy": {"params": {"fast": fast, "slow": slow, "fraction": "0.95"}}})


def test_each_window_is_built_once_and_every_set_matches_a_plain_backtest(cfg_path: Path) -> None:
    w = _Worker()
    sets = [(5, 20), (10, 40), (8, 30)]
    results = [w.run(Job(f"{f}-{s}", config(cfg_path, f, s))) for f, s in sets]
    assert [r.status for r in results] == ["ok"] * 3
    assert w.loads == 1 and len(w.events) == 1
    (events,) = w.events.values()
    assert events.built and len(events) == 3000
    for (f, s), r in zip(sets, results, strict=True):
        plain = run_backtest(config(cfg_path, f, s))
        assert r.metrics["final_equity"] == float(plain.equity[-1])
        assert r.metrics["fills"] == len(plain.fills) > 0
    t = events.close_t
    lo, hi = int(t[500]), int(t[1999])
    window = w.run(Job("win", config(cfg_path, 5, 20), lo, hi))
    assert window.status == "ok" and len(w.events) == 2 and w.loads == 1  # a window of the loaded data
    again = w.run(Job("win2", config(cfg_path, 10, 40), lo, hi))
    assert again.status == "ok" and len(w.events) == 2
    assert window.metrics != results[0].metrics  # the window replays less data than the whole


def test_windows_beyond_the_budget_are_rebuilt_not_kept(cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_exec, "_KEEP_CANDLES", 2500)
    w = _Worker()
    whole = w.run(Job("a", config(cfg_path, 5, 20)))
    assert whole.status == "ok" and len(w.events) == 0  # 3,000 candles: over the budget
    t = w.cache[next(iter(w.cache))][0].time_ms
    w.run(Job("b", config(cfg_path, 5, 20), int(t[0]), int(t[1499])))
    w.run(Job("c", config(cfg_path, 5, 20), int(t[1500]), int(t[2999])))
    assert len(w.events) == 1  # two windows of 1,500 do not fit together: the older one went
    assert [k[1] for k in w.events] == [int(t[1500])]
    assert w.run(Job("d", config(cfg_path, 5, 20))).metrics == whole.metrics


def test_kept_candles_are_frozen_out_of_the_collectors_sight(cfg_path: Path) -> None:
    gc.unfreeze()
    w = _Worker()
    w.run(Job("a", config(cfg_path, 5, 20)))
    assert gc.get_freeze_count() > 3000  # what it keeps, the modules it imported and the data it loaded
