"""`botkit run` on the shared event loop: paper fills where a backtest fills, one update per state change, a raising
strategy halts safely, one writer per journal, each bot reports only its own orders, no network fails at start, and
10,000 orders from one callback drain at the venue's pace with the bot responsive."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from botkit.backtest.loading import load_series
from botkit.backtest.run import run_backtest
from botkit.config import load_config
from botkit.execution.journal import SqliteJournal
from botkit.market.types import Candle
from botkit.runner import CandleReplay, LiveRunner, RunError, RunFailed, RunHalted
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.venues.whitebit import WhiteBitVenue
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, run_driven
from .run_strategies import Flood, HaltsAfterResting, Resting

ROOT = Path(__file__).resolve().parents[2]
FILL_COLUMNS = ("time_ms", "market", "side", "price", "amount", "quote", "fee", "fee_asset", "liquidity")


def _fills(path: Path) -> list[tuple[str, ...]]:
    with path.open(newline="") as fh:
        return [tuple(row[c] for c in FILL_COLUMNS) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("config", ["sma_cross", "bollinger", "grid", "sma_oco"])
async def test_paper_fills_exactly_where_the_backtest_fills(config: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "configs" / f"{config}.toml",
                      {"output": {"dir": str(tmp_path / "bt")}, "backtest": {"progress": False}})
    from botkit.backtest.report import write_report

    write_report(run_backtest(cfg), tmp_path / "bt", config)
    candles = [Candle(s.market, t, t + s.timeframe_ms, o, h, lo, c, v)
               for s in load_series(cfg)
               for t, o, h, lo, c, v in zip(s.time_ms.tolist(), s.open.tolist(), s.high.tolist(), s.low.tolist(),
                                            s.close.tolist(), s.volume.tolist(), strict=True)]
    paper = cfg.model_copy(update={"run": cfg.run.model_copy(update={"mode": "paper", "history": 0}),
                                   "output": cfg.output.model_copy(update={"dir": tmp_path / "paper"})})
    summary = await LiveRunner(paper, source=CandleReplay(candles), out=None, handle_signals=False).run()
    backtest = _fills(tmp_path / "bt" / "trades.csv")
    live = _fills(tmp_path / "paper" / "paper" / "trades.csv")
    assert len(backtest) > 5 and summary.fills == len(backtest)
    assert live == backtest  # same times, prices, amounts, fees, maker/taker


async def test_a_raising_strategy_halts_the_bot_safely(tmp_path: Path) -> None:
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _halts_safely(sandbox, clock, rest, tmp_path)


async def _halts_safely(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest, tmp_path: Path) -> None:
    strategy = HaltsAfterResting()
    cfg = bot_config("HaltsAfterResting", duration_s=20, journal=str(tmp_path / "j.sqlite"))
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": tmp_path})})
    runner = LiveRunner(cfg, strategy=strategy, sandbox=sandbox, out=None, handle_signals=False,
                        **clock.clocks())
    t0 = clock.monotonic()
    with pytest.raises(RunHalted) as halted:
        await run_driven(runner, clock)
    assert clock.monotonic() - t0 < 15  # halted at the third candle, not at the deadline
    failure = halted.value.failure
    assert failure.callback == "on_candle" and "KeyError" in failure.error and "run_strategies.py" in failure.where
    assert strategy.stopped  # on_stop ran
    limit, market = strategy.limit, strategy.market
    assert limit is not None and market is not None
    # each state change once, in order, as it was at the time
    assert [s for cid, s in strategy.updates if cid == market.client_id] == ["open", "filled"]
    assert [s for cid, s in strategy.updates if cid == limit.client_id] == ["open"]  # halted: no more callbacks
    # the bot's own resting order was cancelled on the exchange, and the journal knows it
    assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        assert j.order(limit.client_id).status.value == "cancelled"  # type: ignore[union-attr]
    report = json.loads((tmp_path / "sandbox" / "report.json").read_text())
    assert report["outcome"] == "halted" and report["failure"]["callback"] == "on_candle"


async def test_one_journal_has_one_writer(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "shared.sqlite"
    with SqliteJournal(journal, exclusive=True):
        runner = LiveRunner(bot_config("Recorder", duration_s=2, journal=str(journal)), sandbox=sandbox, out=None,
                            handle_signals=False)
        with pytest.raises(RunError, match="in use by another running bot"):
            await runner.run()
    assert not list(tmp_path.glob("*.tmp"))


async def test_two_bots_on_one_account_each_report_their_own_orders(tmp_path: Path) -> None:
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _two_bots(sandbox, clock, rest, tmp_path)


async def _two_bots(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest, tmp_path: Path) -> None:
    first = Resting()
    await run_driven(LiveRunner(bot_config("Resting", duration_s=2.5, journal=str(tmp_path / "a.sqlite")),
                                strategy=first, sandbox=sandbox, out=None, handle_signals=False,
                                **clock.clocks()), clock)
    assert first.limit is not None and first.limit.status.value == "open"  # left resting on the exchange
    second = Resting()
    runner = LiveRunner(bot_config("Resting", duration_s=2.5, journal=str(tmp_path / "b.sqlite")), strategy=second,
                        sandbox=sandbox, out=None, handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)
    assert summary.adopted == 0 and summary.orders == 1  # the first bot's order is not this bot's
    assert runner.engine is not None and first.limit.client_id not in runner.engine.open
    rows = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100})
    assert {r["clientOrderId"] for r in rows} == {first.limit.client_id, second.limit.client_id}  # type: ignore[union-attr]


async def test_paper_without_network_fails_at_start(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    cfg = bot_config("Recorder", mode="paper", duration_s=30, base_url=dead, ws_url="ws://127.0.0.1:9/ws",
                     connect_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match="cannot read the market rules from http://127.0.0.1:9/api/v4/public/markets"):
        await LiveRunner(cfg, out=None, handle_signals=False).run()
    assert time.monotonic() - t0 < 10


async def test_a_stream_that_cannot_connect_fails_at_start(sandbox: Sandbox) -> None:
    cfg = bot_config("Recorder", mode="paper", duration_s=30, base_url=sandbox.base_url,
                     ws_url="ws://127.0.0.1:9/ws", connect_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match="cannot connect to the market data stream ws://127.0.0.1:9/ws within 1 s"):
        await LiveRunner(cfg, out=None, handle_signals=False).run()
    assert time.monotonic() - t0 < 10


async def test_ten_thousand_orders_from_one_callback_drain_in_order(sandbox: Sandbox, rest: WhiteBitRest,
                                                                   tmp_path: Path) -> None:
    strategy = Flood()
    cfg = bot_config("Flood", duration_s=4, journal=str(tmp_path / "j.sqlite"), max_in_flight=4)
    t0 = time.monotonic()
    summary = await LiveRunner(cfg, strategy=strategy, sandbox=sandbox, out=None, handle_signals=False).run()
    elapsed = time.monotonic() - t0
    assert len(strategy.placed) == Flood.N
    assert elapsed < 4 + 10, elapsed  # --duration honoured: stopped, answered the in-flight ones, dropped the queue
    assert strategy.ticks >= 10  # timers kept firing while orders drained: the loop stayed responsive
    rows: list[dict[str, object]] = []
    offset = 0
    while True:
        page = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100, "offset": offset})
        rows += page
        if len(page) < 100:
            break
        offset += 100
    sent = {str(r["clientOrderId"]) for r in rows}
    statuses = [o.status.value for o in strategy.placed]
    assert statuses.count("open") == len(sent) > 0
    assert statuses.count("cancelled") == Flood.N - len(sent)  # never sent: reported, never dropped silently
    # sent strictly in the order placed: the sent ones are a prefix of the placement order
    assert {o.client_id for o in strategy.placed[: len(sent)]} == sent
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        counts: dict[str, int] = {}
        for o in j.orders_since(0):
            counts[o.status.value] = counts.get(o.status.value, 0) + 1
    assert counts == {"open": len(sent), "cancelled": Flood.N - len(sent)}
    assert summary.orders == Flood.N


async def test_market_rules_come_from_the_exchange(tmp_path: Path) -> None:
    async with clocked_sandbox() as (sandbox, clock, _rest):
        await _rules_from_exchange(sandbox, clock, tmp_path)


async def _rules_from_exchange(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> None:
    cfg = bot_config("Recorder", duration_s=1.5)
    cfg = cfg.model_copy(update={"markets": {"BTC_USDT": cfg.markets["BTC_USDT"].model_copy(
        update={"money_prec": 4}, deep=True)}})
    cfg.markets["BTC_USDT"].model_fields_set.add("money_prec")
    from botkit.config import ConfigError

    with pytest.raises(ConfigError) as err:
        await LiveRunner(cfg, sandbox=sandbox, out=None, handle_signals=False, **clock.clocks()).run()
    assert "markets.BTC_USDT.money_prec = 4 in the config, but the exchange says 2" in str(err.value)

    bare = load_config(_bare_config(tmp_path))  # [markets.BTC_USDT] with no keys: everything from the exchange
    runner = LiveRunner(bare, sandbox=sandbox, out=None, handle_signals=False, **clock.clocks())
    await run_driven(runner, clock)
    rules = runner.rules["BTC_USDT"]
    expected = next(m for m in sandbox.config.markets if m.name == "BTC_USDT")
    assert (rules.stock_prec, rules.money_prec) == (expected.stock_prec, expected.money_prec)
    assert rules.min_total == expected.min_total


def _bare_config(tmp: Path) -> Path:
    p = tmp / "bare.toml"
    p.write_text(f"""
[strategy]
plugin = "{Path(__file__).with_name('run_strategies.py')}:Recorder"
[markets.BTC_USDT]
[run]
interval = 1
history = 5
duration_s = 1.5
[output]
dir = "{tmp / 'out'}"
""")
    return p


async def test_oco_on_whitebit_rests_the_take_profit_and_holds_the_stop_in_the_execution_layer(tmp_path: Path) -> None:
    """WhiteBIT has no spot OCO (and both exits would each lock the full amount): the take-profit goes to the
    exchange, the stop is held and journaled by the execution layer (botkit/execution/oco.py) and reported open."""
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _oco_held(sandbox, clock, rest, tmp_path)


async def _oco_held(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest, tmp_path: Path) -> None:
    import io

    from .run_strategies import OcoTrier

    strategy = OcoTrier()
    cfg = bot_config("OcoTrier", duration_s=2.5, journal=str(tmp_path / "j.sqlite"))
    out = io.StringIO()
    await run_driven(LiveRunner(cfg, strategy=strategy, sandbox=sandbox, out=out, handle_signals=False,
                                **clock.clocks()), clock)
    tp, stop = strategy.pair
    (line,) = [x for x in out.getvalue().splitlines() if f"[{stop.client_id}]" in x]
    assert "stop-market" in line and "-> open (held locally, not on the exchange" in line
    assert tp.status.value == "open" and tp.exchange_id is not None and not tp.held
    assert stop.status.value == "open" and stop.held and stop.exchange_id is None and stop.type == "stop_market"
    on_exchange = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100})
    assert [o["clientOrderId"] for o in on_exchange] == [tp.client_id]
    with SqliteJournal(tmp_path / "j.sqlite") as j:
        assert [e.kind for e in j.events(stop.client_id)] == ["held"]
        assert [(o.client_id, o.held) for o in j.open_orders()] == [(tp.client_id, False), (stop.client_id, True)]


async def test_a_key_without_history_read_refuses_to_start(tmp_path: Path) -> None:
    """The venue resolves a lost answer through order history: a key that cannot read it must not start trading,
    listing every scope that is missing (the table comes from the endpoint registry)."""
    from botkit.sandbox.testing import running_sandbox

    from .conftest import fast_config

    cfg = fast_config()
    demo = next(a for a in cfg.accounts if a.name == "demo")
    key = demo.api_keys[0]
    perms = [p for p in key.permissions if p != "orders_history.read"]
    weak = demo.model_copy(update={"name": "nohist", "api_keys": [key.model_copy(update={"key": "nohist-key",
                                                                                    "permissions": perms})]})
    cfg = cfg.model_copy(update={"accounts": [*cfg.accounts, weak]})
    async with running_sandbox(cfg) as sb:
        from botkit.market.grants import InsufficientScope

        runner = LiveRunner(bot_config("Recorder", duration_s=2, account="nohist"), sandbox=sb, out=None,
                            handle_signals=False)
        with pytest.raises(InsufficientScope) as err:
            await runner.run()
        assert err.value.missing == frozenset({"orders_history.read"})
        assert sb.hub.conns == set()  # refused before a socket opened


async def test_a_run_prints_each_order_event_and_writes_its_trades(tmp_path: Path) -> None:
    """A 3.5 s run with a status line every second, on a fake clock shared with the sandbox (driven at 5x)."""
    import io

    from .run_strategies import SteadyBuyer

    out = io.StringIO()
    cfg = bot_config("SteadyBuyer", duration_s=3.5, status_every_s=1)
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": tmp_path})})
    strategy = SteadyBuyer()
    async with clocked_sandbox() as (sandbox, clock, _rest):
        summary = await run_driven(LiveRunner(cfg, strategy=strategy, sandbox=sandbox, out=out, handle_signals=False,
                                              **clock.clocks()), clock)
    text = out.getvalue()
    assert text.count("status ") >= 3  # one a second of the run's clock
    market = strategy.placed[0]
    lines = [line for line in text.splitlines() if f"[{market.client_id}]" in line]
    assert [("-> open" in line, " FILL " in line, "-> filled" in line) for line in lines] == [
        (True, False, False), (False, True, False), (False, False, True)], lines
    assert lines[0].split()[0].endswith("Z")  # a time on every line
    assert "status " in text and "open orders" in text and "feed lag" in text and "token none (API key)" in text
    trades = (tmp_path / "sandbox" / "trades.csv").read_text().splitlines()
    assert len(trades) == summary.fills + 1 and market.client_id in trades[1]
    report = json.loads((tmp_path / "sandbox" / "report.json").read_text())
    assert report["fills"] == summary.fills and report["outcome"] == "complete" and report["pnl"]


async def test_stop_market_orders_rest_then_fill_when_the_price_reaches_them(tmp_path: Path) -> None:
    """The WhiteBIT venue sends stop-market orders to order/stop_market; they rest untriggered on the exchange and
    fill when the last price reaches them (the sandbox triggers on its last price, as WhiteBIT does). The sandbox
    quotes a deep book here, so a triggered stop always finds liquidity."""

    from botkit.sandbox.testing import running_sandbox

    from .conftest import fast_config

    cfg = fast_config()
    deep = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"levels": 200})}) for m in cfg.markets]
    async with running_sandbox(cfg.model_copy(update={"markets": deep})) as sandbox:
        await _stops_fill(sandbox)


async def _stops_fill(sandbox: Sandbox) -> None:
    import asyncio
    from decimal import Decimal

    from .run_strategies import Stops

    strategy = Stops()
    runner = LiveRunner(bot_config("Stops", duration_s=20), strategy=strategy, sandbox=sandbox, out=None,
                        handle_signals=False)
    task = asyncio.create_task(runner.run())
    try:
        while strategy.buy_stop is None or strategy.buy_stop.status.value == "new" or \
                strategy.sell_stop is None or strategy.sell_stop.status.value == "new":
            assert not task.done(), task
            await asyncio.sleep(0.05)
        sell, buy = strategy.sell_stop, strategy.buy_stop
        assert sell.stop_price is not None and buy.stop_price is not None
        sandbox.exchange.print_trade("BTC_USDT", sell.stop_price - Decimal("1"), Decimal("0.01"), "sell")
        sandbox.exchange.print_trade("BTC_USDT", buy.stop_price + Decimal("1"), Decimal("0.01"), "buy")
        for _ in range(200):
            if sell.status.value == "filled" and buy.status.value == "filled":
                break
            await asyncio.sleep(0.05)
    finally:
        runner.stop_event.set()
        await task
    assert sell.status.value == "filled" and sell.filled == Decimal("0.001")
    assert buy.status.value == "filled" and buy.filled > 0  # a stop buy is sized in quote on the wire
    assert buy.filled_quote <= (Decimal("0.001") * buy.stop_price).quantize(Decimal("0.01"))
    statuses = [s for cid, s in strategy.updates if cid == sell.client_id]
    assert statuses == ["open", "filled"], statuses


async def test_the_kill_switch_is_re_armed_while_the_bot_runs_and_fires_after_it_stops() -> None:
    """[run] kill_switch_s = 5 on a 7 s run: the resting order survives the run (re-armed from the main loop), and
    once the bot is gone the exchange's dead-man switch cancels it (the clock is moved past the deadline).

    The sandbox and the bot's run timing share one fake clock, driven at 5x: the 7 s run takes about 1.5 s, and a
    re-arm that stopped would still let the order be cancelled mid-run (its 5 s deadline passes on the same clock)."""
    import asyncio

    async with clocked_sandbox() as (sandbox, clock, rest):
        strategy = Resting()
        runner = LiveRunner(bot_config("Resting", duration_s=7, kill_switch_s=5), strategy=strategy, sandbox=sandbox,
                            out=None, handle_signals=False, **clock.clocks())
        summary = await run_driven(runner, clock)
        assert summary.seconds >= 7  # the whole run, on the clock the exchange's kill switch uses
        assert strategy.limit is not None and strategy.limit.status.value == "open"
        assert isinstance(runner.venue, WhiteBitVenue)
        assert runner.venue.kill_switch_arms >= 4  # armed at the start, then every 5/3 s
        rows = await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100})
        assert [r["clientOrderId"] for r in rows] == [strategy.limit.client_id]
        clock.advance(10.0)  # nobody re-arms it now: the deadline passes
        for _ in range(100):
            if not await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}):
                break
            await asyncio.sleep(0.05)
        assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []


def test_run_outputs_and_journal_live_under_the_configs_own_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/sma_cross.toml run in sandbox mode: out/sma_cross/sandbox/{trades.csv,report.json,journal.sqlite},
    the name said once (it used to be out/sma_cross/sma_cross/journal.sqlite)."""
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "configs" / "sma_cross.toml")
    runner = LiveRunner(cfg, out=None, handle_signals=False)
    assert runner.out_dir() == Path("out") / "sma_cross" / "sandbox"
    assert runner.journal_path() == Path("out") / "sma_cross" / "sandbox" / "journal.sqlite"
