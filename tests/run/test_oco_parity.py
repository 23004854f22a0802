"""A stop-loss + take-profit OCO strategy gives the same fills in a backtest and against the sandbox replaying the same
candles (issue 9).

The shipped strategies/sma_oco.py (SMA cross entries at market, then an OCO bracket: take-profit limit + stop) runs
(a) as a backtest of its config on 70 candles of the project's sample data, and (b) with the LiveRunner in sandbox
mode against an in-process sandbox that replays the same 70 candles. Both take the same engine path for the OCO:
WhiteBIT has no spot OCO, so the execution layer holds the stop (botkit/execution/oco.py) and, in the backtest,
`[backtest] oco = "emulated"` (the default) makes the simulated venue report no native OCO.

How the sandbox run is made exact, with no wall-clock race:
- Lock-step replay (`pace = "step"`): the sandbox prints only when the test says so, each print stamped with the
  candle's own time moved whole days ahead (the sandbox's market time follows it; being ahead of the wall clock, the
  bot's candle watchdog never closes a candle early). A candle is four prints: open, extremes, close.
- For each candle the test prints its open (which closes the previous candle for the bot), waits until the bot has
  handled that candle and everything it caused is settled (every order the sandbox holds for the account is known to
  the strategy with the same status and filled amount, nothing in flight), then prints the other three and waits
  again. So the bot's orders meet the next candle's open first, exactly as the backtest's fill model has them.
  The waits poll for those conditions (no sleeps that must be long enough, no timed assertion); a generous
  deadline only turns a hang into a failure.
- Zero spread (`zero_spread = true`): the house quotes bid = ask = the last print, so a market order (the entry,
  and the held stop sent at market) fills at exactly the candle's open, as the backtest fills it with
  `slippage_pct = 0`.
- `touch = true` in the backtest: the sandbox fills a resting take-profit when a print reaches its price, so the
  backtest's limit orders fill on touch too.
Hence the test asserts exact equality of every order: type, side, amount, price, stop, final status and reason,
filled amount, quote and fee, and the candle on which the strategy placed it.

The bot never sees the last replayed candle closed (nothing prints after it); the data is chosen so the strategy
places nothing on its last candles, and the test asserts that premise.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from botkit.backtest.data import CandleSeries
from botkit.backtest.run import backtest_of
from botkit.config import BotConfig
from botkit.market.orders import OCO_REASON, Order
from botkit.plugins import load_strategy_class
from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.strategy import Context

ROOT = Path(__file__).resolve().parents[2]
SmaOco: Any = load_strategy_class(f"{ROOT / 'strategies' / 'sma_oco.py'}:SmaOco")
SAMPLE = ROOT / "backtests" / "sample" / "BTC_USDT_1m.csv"
FIRST, COUNT = 35, 70  # rows of the sample: 2 take-profit and 2 stop exits (asserted below)
PARAMS = {"fast": 3, "slow": 8, "quote": "100", "take_profit_pct": "0.05", "stop_pct": "0.05"}
DEADLINE_S = 60.0  # per wait; only a hang reaches it


class Recording(SmaOco):
    """SmaOco, remembering each order's latest snapshot and the candle on which it was placed."""

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.candles_seen = 0
        self.last: dict[str, Order] = {}
        self.placed_at: dict[str, int] = {}

    def on_candle(self, ctx: Context, candle: Any) -> None:
        self.candles_seen += 1
        super().on_candle(ctx, candle)

    def on_order_update(self, ctx: Context, order: Order) -> None:
        self.last[order.client_id] = order
        self.placed_at.setdefault(order.client_id, self.candles_seen)


@dataclass(frozen=True)
class Seen:
    candle: int
    type: str
    side: str
    amount: Decimal
    price: Decimal | None
    stop: Decimal | None
    status: str
    reason: str | None
    filled: Decimal
    quote: Decimal
    fee: Decimal


def outcome(s: Recording) -> list[Seen]:
    """Every order the strategy placed, by the candle it was placed on (the take-profit and the held stop of one
    bracket are reported in a different order live, where the take-profit waits for the exchange's answer)."""
    seen = (Seen(s.placed_at[cid], o.type, o.side, o.amount, o.price, o.stop_price, o.status.value, o.reject_reason,
                 o.filled, o.filled_quote, o.fee) for cid, o in s.last.items())
    return sorted(seen, key=lambda x: (x.candle, x.type))


def rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="") as fh:
        return list(csv.DictReader(fh))[FIRST:FIRST + COUNT]


def config(tmp: Path) -> BotConfig:
    return BotConfig(
        name="oco-parity",
        strategy={"plugin": f"{ROOT / 'strategies' / 'sma_oco.py'}:SmaOco", "params": PARAMS},
        markets={"BTC_USDT": {"stock_prec": 6, "money_prec": 2, "min_amount": "0.00001", "min_total": "1",
                              "max_total": "10000000000"}},
        balances={"USDT": "100000", "BTC": "1"},  # the sandbox's demo account
        fees={"maker": "0.1", "taker": "0.1"},
        backtest={"touch": True},  # oco = "emulated" by default
        run={"mode": "sandbox", "interval": "1m", "history": 0, "staleness_s": 3600, "status_every_s": 0},
        output={"dir": str(tmp / "out")},
    )


def sandbox_config(candles: Path) -> Any:
    cfg = test_config(candles_interval=0.02, lastprice_interval=0.05)
    markets = [
        m.model_copy(update={"liquidity": m.liquidity.model_copy(update={
            "kind": "candles", "file": candles, "pace": "step", "zero_spread": True, "levels": 5,
            "level_amount": Decimal("5")})}) if m.name == "BTC_USDT" else m
        for m in cfg.markets
    ]
    return cfg.model_copy(update={"markets": markets})


async def until(what: str, cond: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"the sandbox run never reached: {what}")
        await asyncio.sleep(0.005)


def settled(sb: Sandbox, runner: LiveRunner, s: Recording) -> bool:
    """Nothing in flight, and the strategy knows every order the sandbox holds for the account as the sandbox does."""
    venue, engine = runner.venue, runner.engine
    if venue is None or engine is None or not hasattr(s, "last"):
        return False
    if venue._tasks or getattr(venue, "queued", 0) or not runner.queue.empty() or engine.has_events:  # type: ignore[union-attr]
        return False
    status = {"FILLED": "filled", "CANCELED": "cancelled"}
    for o in [*sb.exchange.account_orders("demo"), *sb.exchange.history.get("demo", [])]:
        mine = s.last.get(o.client_order_id)
        if mine is None or mine.filled != o.deal_stock:
            return False
        want = status.get(o.status) if o.ftime else None
        if (want is not None and mine.status.value != want) or (want is None and not mine.is_open):
            return False
    return True


def seeing(runner: LiveRunner, t: int) -> bool:
    """The bot's candle stream has the candle that starts at `t` (s) in progress (so it closes the one before)."""
    st = runner.feeds[0].parser.candles if runner.feeds else None
    return st is not None and st.current is not None and int(st.current[0]) == t


def test_the_parity_data_exercises_both_exits_and_ends_quiet() -> None:
    res, s = backtest(Path("/nonexistent"))
    seen = outcome(s)
    assert [o.status for o in seen if o.type == "stop_market"].count("filled") >= 2
    assert [o.status for o in seen if o.type == "limit"].count("filled") >= 2
    assert sum(o.reason == OCO_REASON for o in seen) >= 2  # held stops cancelled by their take-profit
    assert sum(o.type == "limit" and o.status == "cancelled" and o.reason is None for o in seen) >= 2  # by a stop
    assert max(o.candle for o in seen) < COUNT - 1  # nothing placed on the last candle (the bot never sees it)
    assert not any(o.status == "open" for o in seen)
    assert res.fills and all(f.price == f.price.quantize(Decimal("0.01")) for f in res.fills)


def backtest(tmp: Path) -> tuple[Any, Recording]:
    data = rows()
    series = CandleSeries("BTC_USDT", 60_000, np.array([int(r["time_ms"]) for r in data], dtype=np.int64),
                          *(np.array([float(r[k]) for r in data]) for k in ("open", "high", "low", "close", "volume")),
                          "sample")
    cfg = config(tmp)
    assert cfg.oco_mode() == "emulated"
    s = Recording(SmaOco.Params(**PARAMS))
    return backtest_of(cfg, s, [series]).run(), s


@pytest.mark.asyncio
async def test_sma_oco_fills_the_same_in_a_backtest_and_against_the_sandbox_replay(tmp_path: Path) -> None:
    _, expected = backtest(tmp_path)
    want = outcome(expected)

    data = rows()
    csv_path = tmp_path / "candles.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["time_ms", "open", "high", "low", "close", "volume"])
        w.writeheader()
        w.writerows({k: r[k] for k in w.fieldnames} for r in data)

    s = Recording(SmaOco.Params(**PARAMS))
    cfg = config(tmp_path)
    async with running_sandbox(sandbox_config(csv_path)) as sb:
        runner = LiveRunner(cfg, strategy=s, sandbox=sb, out=None, handle_signals=False)
        task = asyncio.create_task(runner.run())

        def subscribed() -> bool:
            if task.done():
                task.result()  # a failed start fails the test with its own error
            return runner.loop is not None and any(c.candles is not None for c in sb.hub.conns) and \
                settled(sb, runner, s)

        await until("the bot subscribed to candles", subscribed)
        try:
            for k in range(COUNT):
                step = sb.replay_step("BTC_USDT", 1)  # the open: closes candle k - 1 for the bot
                assert step["printed"] == 1
                await until(f"candle {k - 1} handled and candle {k} seen",
                            lambda k=k, t=int(step["time"]): runner.candles == k and seeing(runner, t)
                            and settled(sb, runner, s))
                assert sb.replay_step("BTC_USDT", 3)["printed"] == 3  # extremes and close
                await until(f"candle {k} printed and settled", lambda: settled(sb, runner, s))
            assert sb.liquidity["BTC_USDT"].replay_left == 0
        finally:
            runner.stop_event.set()
            await task
    got = outcome(s)
    assert runner.candles == COUNT - 1
    assert got == want
