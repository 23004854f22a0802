"""`botkit run` in sandbox mode against a real sandbox on 127.0.0.1: candles, orders, fills, and the exchange's own
state agree with the engine's; a strategy that needs a scope the key lacks never starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from botkit.market.grants import InsufficientScope
from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, run_driven
from .run_strategies import Prober, WantsApiKeys

ROOT = Path(__file__).resolve().parents[2]


async def test_sandbox_run_trades_and_agrees_with_the_exchange() -> None:
    """A 4.5 s run; the bot and the sandbox on one fake clock driven at 5x (times below are on that clock)."""
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _trades_and_agrees(sandbox, clock, rest)


async def _trades_and_agrees(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest) -> None:
    strategy = Prober()
    runner = LiveRunner(bot_config("Prober", duration_s=4.5), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)
    engine = runner.engine
    assert engine is not None

    # closed candles only, in time order, 1 s apart at most a few gaps, each delivered after it closed
    times = [c.time_ms for c, _ in strategy.candles]
    assert len(times) >= 3, times
    assert times == sorted(set(times))
    for c, received in strategy.candles:
        assert c.close_time_ms - c.time_ms == 1000
        assert received >= c.close_time_ms
        assert c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close)
    assert strategy.started and strategy.stopped
    ticks = strategy.timer_times  # every 500 ms of the bot's clock, never early
    assert len(ticks) >= 6
    assert all(t >= strategy.scheduled_at + 500 * (k + 1) for k, t in enumerate(ticks)), ticks

    limit, market = strategy.limit, strategy.market
    assert limit is not None and market is not None
    assert (limit.client_id, "open") in strategy.updates
    assert (limit.client_id, "cancelled") in strategy.updates
    assert limit.status.value == "cancelled" and limit.filled == 0
    assert (market.client_id, "filled") in strategy.updates
    assert market.status.value == "filled" and market.filled > 0
    mfills = [f for f in strategy.fills if f.client_id == market.client_id]
    assert mfills and sum(f.amount for f in mfills) == market.filled
    assert sum(f.quote for f in mfills) <= Decimal("20")

    sell = strategy.market_sell
    assert sell is not None and sell.status.value == "filled" and sell.filled == Decimal("0.0002")
    assert all(f.amount > 0 for f in strategy.fills)

    # the exchange's own view, over signed REST
    assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []
    hist = (await rest.call("order_history", {"market": "BTC_USDT", "limit": 100}))["BTC_USDT"]
    by_cid = {h["clientOrderId"]: h for h in hist}
    assert set(by_cid) == {limit.client_id, market.client_id, sell.client_id}
    assert Decimal(by_cid[sell.client_id]["dealMoney"]) == sell.filled_quote
    assert Decimal(by_cid[sell.client_id]["dealFee"]) == sell.fee
    assert Decimal(by_cid[market.client_id]["dealStock"]) == market.filled
    assert Decimal(by_cid[market.client_id]["dealMoney"]) == market.filled_quote
    assert Decimal(by_cid[market.client_id]["dealFee"]) == market.fee
    assert Decimal(by_cid[limit.client_id]["dealStock"]) == 0
    assert str(market.exchange_id) == str(by_cid[market.client_id]["id"])

    balances = await rest.call("trade_balance", {})
    for asset in ("BTC", "USDT"):
        mine = summary.final_balances[asset]
        assert Decimal(balances[asset]["available"]) == mine.available, asset
        assert Decimal(balances[asset]["freeze"]) == mine.frozen, asset
    # and the money moved as the fill says: BTC up by the amount minus the fee, USDT down by the quote spent
    start = summary.start_balances
    assert summary.final_balances["BTC"].total - start["BTC"].total == market.filled - market.fee - sell.filled
    assert (start["USDT"].total - summary.final_balances["USDT"].total
            == market.filled_quote - (sell.filled_quote - sell.fee))


async def test_missing_scope_refuses_to_start(sandbox: Sandbox, rest: WhiteBitRest) -> None:
    strategy = WantsApiKeys()
    runner = LiveRunner(bot_config("WantsApiKeys", duration_s=3), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False)
    with pytest.raises(InsufficientScope) as err:
        await runner.run()
    assert "apikeys.read" in str(err.value)
    assert not strategy.started and not strategy.candles
    assert sandbox.hub.conns == set()  # not even a WebSocket was opened
    assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []
    assert (await rest.call("order_history", {"limit": 100})) == {}


def test_cli_reader_account_refuses_then_demo_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The command's entry point, embedded sandbox: a read-only key cannot start a trading strategy (exit 2, the fix
    named); the packaged example runs out of the box as a real process, until SIGINT."""
    from botkit.cli import main

    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    cfg = cfg.replace('plugin = "strategies/sma_cross.py:SmaCross"',
                      f'plugin = "{ROOT / "strategies" / "sma_cross.py"}:SmaCross"')
    bad = tmp_path / "reader.toml"
    bad.write_text(cfg + '\n[run]\naccount = "reader"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(bad), "--duration", "2"]) == 2  # in this process: no interpreter start-up
    err = capsys.readouterr().err
    assert "orders.create" in err and "grant lacks" in err
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # no --duration: runs until SIGINT, then stops cleanly with a summary
    p = subprocess.Popen([sys.executable, "-m", "botkit.cli", "run", str(ROOT / "configs" / "sma_cross.toml"),
                          "--speed", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=ROOT)
    try:
        assert p.stdout is not None
        banner = p.stdout.readline()
        assert "running SmaCross in sandbox mode on http://127.0.0.1:" in banner and "until Ctrl-C" in banner
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "run sandbox: SmaCross" in out and "balances (start -> end):" in out and "Traceback" not in err
