"""The one event loop, seen through backtests: snapshots of order events, the strategy error policy, Ctrl-C,
market time in logs, and the candle ring buffer live runs use."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from botkit import Context, Strategy
from botkit.market.buffer import CandleBuffer
from botkit.market.orders import Order
from botkit.market.types import Candle

from .helpers import run, series

ROOT = Path(__file__).resolve().parents[2]
FLAT = [(100.0, 101.0, 99.0, 100.0)] * 3 + [(100.0, 100.5, 94.0, 95.0)] + [(95.0, 96.0, 94.5, 95.5)] * 4


class Updates(Strategy):
    """A limit buy that rests then fills, one that is cancelled, one refused; records every update it is given."""

    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Order] = []
        self.i = 0

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.i += 1
        if self.i == 1:
            self.fills_later = ctx.buy(candle.market, "0.1", "96")
            self.cancelled = ctx.buy(candle.market, "0.1", "90")
            self.refused = ctx.buy(candle.market, "0.0000001", "90")
        if self.i == 2:
            ctx.cancel(self.cancelled)

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.seen.append(order)


def test_each_state_change_is_delivered_once_as_a_snapshot() -> None:
    s = Updates()
    run(s, [series(FLAT)])
    by_id: dict[str, list[str]] = {}
    for o in s.seen:
        by_id.setdefault(o.client_id, []).append(o.status.value)
    assert by_id[s.fills_later.client_id] == ["open", "filled"]
    assert by_id[s.cancelled.client_id] == ["open", "cancelled"]
    assert by_id[s.refused.client_id] == ["rejected"]
    first = next(o for o in s.seen if o.client_id == s.fills_later.client_id)
    assert first.status.value == "open" and first.filled == 0 and not first.fills  # not changed by the later fill
    assert s.fills_later.status.value == "filled" and s.fills_later.filled == Decimal("0.1")


def test_snapshot_copies_every_field() -> None:
    o = Order("a", "BTC_USDT", "buy", "limit", Decimal(1), Decimal(2), exchange_id="9", reject_reason="r")
    snap = o.snapshot()
    assert {f: getattr(snap, f) for f in Order.__dataclass_fields__} == {
        f: getattr(o, f) for f in Order.__dataclass_fields__}
    assert snap is not o and snap.fills is not o.fills


class Raises(Strategy):
    scopes = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read"})

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.i, self.stopped = at, 0, False

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self.i += 1
        if self.i == 1:
            ctx.buy(candle.market, "0.1", "50")  # rests far below the market
        if self.i == self.at:
            raise ZeroDivisionError("strategy bug")

    def on_stop(self, ctx: Context) -> None:
        self.stopped = True
        self.open_at_stop = len(ctx.open_orders())


def test_a_raising_strategy_halts_safely_with_a_partial_result() -> None:
    s = Raises(at=4)
    r = run(s, [series(FLAT)])
    assert r.outcome == "halted" and r.partial and r.events == 4
    assert s.stopped and s.open_at_stop == 1  # on_stop ran, then the bot's own open order was cancelled
    assert [o.status.value for o in r.orders] == ["cancelled"]
    assert r.failure is not None and r.failure.callback == "on_candle"
    assert r.failure.where == f"{__file__}:{Raises.on_candle.__code__.co_firstlineno + 5}"
    assert r.failure.time_ms == series(FLAT).time_ms[3] + 60_000  # the close of the 4th candle: market time
    assert "ZeroDivisionError: strategy bug" in r.failure.text()


def test_on_error_continue_logs_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    from botkit.backtest.replay import Backtest
    from botkit.market.grants import Grant

    from .helpers import ETH, RULES

    s = Raises(at=2)
    bt = Backtest(s, [series(FLAT)], {"BTC_USDT": RULES, "ETH_USDT": ETH}, {"USDT": Decimal(10000)},
                  grant=Grant.of("orders.create,orders.delete,orders.read,balances.read"), on_error="continue")
    with caplog.at_level(logging.ERROR):
        r = bt.run()
    assert r.outcome == "complete" and r.events == len(FLAT) and r.strategy_errors == 1
    assert "strategy error in on_candle at market time" in caplog.text and "on_error = continue" in caplog.text


SLOW = """
import pathlib, time
from botkit import Strategy
class Slow(Strategy):
    n = 0
    def on_start(self, ctx):
        pathlib.Path(__file__).with_name("started").write_text("")
    def on_candle(self, ctx, candle):
        time.sleep(0.001)
        self.n += 1
        if self.n == 100:
            pathlib.Path(__file__).with_name("into").write_text("")
"""


def test_ctrl_c_in_a_backtest_exits_130_with_a_partial_report(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    cfg = cfg.replace('plugin = "strategies/sma_cross.py:SmaCross"', f'plugin = "{tmp_path}/slow.py:Slow"')
    cfg = cfg.replace('params = { fast = 20, slow = 100, fraction = "0.95" }', "")
    (tmp_path / "slow.toml").write_text(cfg)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "botkit.cli", "backtest", str(tmp_path / "slow.toml"), "-q",
                          "--out", str(tmp_path / "out")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60  # a real process and a real signal: this test waits on wall time
    while not (tmp_path / "into").exists() and time.monotonic() < deadline:  # 100 candles into the replay
        time.sleep(0.02)
    assert (tmp_path / "started").exists()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "PARTIAL" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["partial"] is True and report["outcome"] == "interrupted"
    assert 0 < report["events"] < 20_160


def test_backtest_log_lines_carry_market_time(tmp_path: Path) -> None:
    bad = """
from botkit import Strategy
class Refused(Strategy):
    def on_candle(self, ctx, candle):
        if not hasattr(self, "done"):
            self.done = ctx.buy(candle.market, "0.0000001", "1")
"""
    (tmp_path / "refused.py").write_text(bad)
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    cfg = cfg.replace('plugin = "strategies/sma_cross.py:SmaCross"', f'plugin = "{tmp_path}/refused.py:Refused"')
    cfg = cfg.replace('params = { fast = 20, slow = 100, fraction = "0.95" }', "")
    (tmp_path / "refused.toml").write_text(cfg)
    r = subprocess.run([sys.executable, "-m", "botkit.cli", "backtest", str(tmp_path / "refused.toml"), "-q",
                        "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if "rejected" in x)  # shown at the default level
    assert line.startswith("2026-01-05T00:01:00.000Z WARNING"), line  # the first candle's close, not today


def test_live_candle_buffer_is_a_fixed_ring_of_read_only_views() -> None:
    buf = CandleBuffer.live(4)
    for k in range(11):
        assert buf.append(k * 60_000, 1.0 + k, 2.0 + k, 0.5 + k, 1.5 + k, 10.0) is not None
        buf.cur += 1 if buf.cur + 1 < 8 else 0
        buf.cur = buf.cur  # the loop publishes the index it was given
    a = buf.arrays(None)
    assert len(a) == 4 and a.time_ms.tolist() == [7 * 60_000, 8 * 60_000, 9 * 60_000, 10 * 60_000]
    assert not a.close.flags.writeable and a.close.flags.c_contiguous
    assert buf.arrays(2).close.tolist() == [10.5, 11.5]
    assert buf.append(5 * 60_000, 1, 1, 1, 1, 1) is None  # never out of order
    assert buf.t.nbytes == 8 * 8  # memory fixed at twice the capacity whatever the run length
    assert np.all(np.diff(buf.arrays(None).time_ms) > 0)


def test_an_on_stop_error_is_a_halt_and_on_stop_runs_once() -> None:
    class BadStop(Strategy):
        scopes = frozenset({"orders.create"})

        def __init__(self) -> None:
            super().__init__()
            self.stops = 0

        def on_stop(self, ctx: Context) -> None:
            self.stops += 1
            raise RuntimeError("cleanup bug")

    s = BadStop()
    r = run(s, [series(FLAT)])
    assert r.outcome == "halted" and r.failure is not None and r.failure.callback == "on_stop"
    assert s.stops == 1 and r.events == len(FLAT)


def test_a_strategy_that_fails_in_on_start_still_gets_a_partial_report() -> None:
    class BadStart(Strategy):
        scopes = frozenset({"orders.create"})

        def on_start(self, ctx: Context) -> None:
            raise ValueError("fast (50) must be shorter than slow (20)")

    r = run(BadStart(), [series(FLAT)])
    assert r.outcome == "halted" and r.events == 0 and r.failure is not None and r.failure.callback == "on_start"
    assert len(r.equity) == 1 and r.equity[0] == 10000.0
