"""One strategy, one recorded window, three fill models: `[backtest] fills = "candles"`, `"trades"` and `"book"`.

Run: .venv/bin/python backtests/compare_fills.py [--seconds 30] [--rec DIR] [--smoke]

Records the real sandbox over its WebSocket (`botkit record`: trades, depth and 1s candles of BTC_USDT) for
--seconds (or reuses the recording in --rec), then backtests the same decisions on that window under each model and
prints, per run: orders, fills (taker / maker), mean fill price, final equity, fees and the book model's slippage.

The decisions (`WindowCross`) are a fixed schedule on the window's 1s candles built from the recorded trades (the
candles the candle model replays and `ctx.candles()` shows in the trades model): a buy at the close of candle 2, a
sell two candles later, and so on, alternating every EVERY candles. They depend on candles only, so a window of any
length and any price path has them (an SMA cross needs the walk to turn, and a short window of a random walk often
has one turn or none). They are worked out once here and handed to the strategy as (close time, side, close)
signals, so every model acts on identical decisions at the first event at or after each candle close; only the fills
differ. Variants: `market` (a market buy of `size` quote, a market sell of the position) and `limit` (a limit at the
candle's close, resting if not marketable; unfilled orders are cancelled at the next signal). The market variant
also runs the book model at 40x its size to show slippage growing with size. Exit 0 (there is no target: the
figures are for reading).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from botkit import Context, Strategy
from botkit.backtest.replay import BacktestResult
from botkit.backtest.report import slippage_summary
from botkit.market.orders import Fill
from botkit.market.types import BookSnapshot, Candle

MARKET = "BTC_USDT"
EVERY = 2  # candles between decisions
SEED = 164  # the sandbox walk's seed (a fixed one: the printed figures come from the same walk)
SELF = Path(__file__).resolve()


class WindowCrossParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[tuple[int, str, float]]  # (candle close time ms, "buy" / "sell", close price)
    variant: Literal["market", "limit"] = "market"
    size: Decimal = Decimal("1000")  # market: quote per buy; limit: base per buy
    out: str | None = None  # decisions as JSON (time acted, signal time, side), written in on_stop


class WindowCross(Strategy):
    """Acts on each signal at the first event (candle, trade batch or book event) at or after its time."""

    Params = WindowCrossParams
    scopes = frozenset({"orders.create", "orders.delete", "balances.read"})

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self.next = 0
        self.decisions: list[tuple[int, int, str]] = []

    def _act(self, ctx: Context) -> None:
        sigs = self.params.signals
        while self.next < len(sigs) and sigs[self.next][0] <= ctx.now:
            t, side, close = sigs[self.next]
            self.next += 1
            self.decisions.append((ctx.now, t, side))
            rules = ctx.rules(MARKET)
            ctx.cancel_all(MARKET)
            price = rules.round_price(Decimal(repr(close)), side) if self.params.variant == "limit" else None
            if side == "buy":
                ctx.buy(MARKET, self.params.size, price)
                continue
            held = rules.truncate_amount(ctx.balance(rules.stock).available)
            if held > 0:
                ctx.sell(MARKET, held, price)

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        self._act(ctx)

    def on_book(self, ctx: Context, book: BookSnapshot) -> None:
        self._act(ctx)

    def on_stop(self, ctx: Context) -> None:
        if self.params.out:
            Path(self.params.out).write_text(json.dumps(self.decisions))


def record(rec: Path, seconds: float, seed: int = SEED) -> None:
    """`botkit record` of the sandbox (busy: a print every 50 ms of a walk seeded with `seed`) into `rec`."""
    from botkit.cli import main
    from botkit.sandbox.testing import running_sandbox, test_config

    cfg = test_config()
    markets = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"tick_interval": 0.05, "seed": seed})})
               for m in cfg.markets]

    async def go() -> int:
        async with running_sandbox(cfg.model_copy(update={"markets": markets})) as sb:
            return await asyncio.to_thread(main, [
                "record", "--market", MARKET, "--channels", "trades,depth,candles", "--interval", "1s",
                "--url", sb.ws_url, "--seconds", str(seconds), "--out", str(rec)])

    if asyncio.run(go()) != 0:
        raise SystemExit(f"recording the sandbox into {rec} failed")


def config(rec: Path, fills: str, params: dict[str, Any], plugin: str = f"{SELF}:WindowCross",
           **backtest: Any) -> Any:
    """The backtest config of one run on the recording `rec` (trades runs also replay the book: on_book and the
    queue ahead of resting orders)."""
    from botkit.config import BotConfig

    return BotConfig(**{
        "name": f"compare_{fills}",
        "strategy": {"plugin": plugin, "params": params},
        "markets": {MARKET: {"stock_prec": 6, "money_prec": 2, "min_total": "1"}},
        "balances": {"USDT": "1000000"},
        "data": {"recording": str(rec), "timeframe": "1s",
                 "feed": ["trades", "book"] if fills == "trades" else ["trades"]},
        "backtest": {"fills": fills, "progress": False, **backtest},
    })


def signals(rec: Path) -> list[tuple[int, str, float]]:
    """Alternating buy/sell decisions at every EVERY-th close of the window's 1s candles built from its trades (what
    the candle model replays), starting with a buy at the second close; none in the last second, so every model
    still has events after each one."""
    from botkit.backtest.run import load_tape, timeframe_ms
    from botkit.backtest.tape import candles_from_trades

    cfg = config(rec, "trades", {"signals": []})
    tape = load_tape(cfg)
    cs, _ = candles_from_trades(tape.trades[0], timeframe_ms(cfg))
    closes, ends = cs.close.tolist(), (cs.time_ms + cs.timeframe_ms).tolist()
    end = int(tape.trades[0].time_ms[-1]) - 1000
    out: list[tuple[int, str, float]] = []
    for i in range(1, len(closes), EVERY):
        if ends[i] <= end:
            out.append((int(ends[i]), "buy" if len(out) % 2 == 0 else "sell", float(closes[i])))
    return out


@dataclass
class Run:
    label: str
    fills_model: str
    result: BacktestResult
    decisions: list[tuple[int, int, str]]


def run(rec: Path, fills: str, variant: str, size: str, sigs: list[tuple[int, str, float]], work: Path,
        label: str | None = None) -> Run:
    from botkit.backtest.run import run_backtest

    out = work / f"decisions-{fills}-{variant}-{size}.json"
    result = run_backtest(config(rec, fills, {"signals": sigs, "variant": variant, "size": size,
                                              "out": str(out)}))
    if result.outcome != "complete":
        raise SystemExit(f"{fills}/{variant}: {result.outcome}: {result.failure}")
    return Run(label or f"{variant} {fills}", fills, result, [tuple(d) for d in json.loads(out.read_text())])


def mean_price(fills: list[Fill], side: str) -> Decimal | None:
    mine = [f for f in fills if f.side == side]
    base = sum((f.amount for f in mine), Decimal(0))
    return (sum((f.quote for f in mine), Decimal(0)) / base).quantize(Decimal("0.01")) if base else None


def table(runs: list[Run]) -> str:
    rows = [("run", "decisions", "orders", "fills taker/maker", "mean buy", "mean sell", "final equity", "fees",
             "slippage (book)")]
    for r in runs:
        res = r.result
        slip = slippage_summary(res.fills)
        taker = sum(1 for f in res.fills if not f.maker)
        rows.append((r.label, str(len(r.decisions)), str(len(res.orders)), f"{taker}/{len(res.fills) - taker}",
                     str(mean_price(res.fills, "buy") or "-"), str(mean_price(res.fills, "sell") or "-"),
                     f"{float(res.equity[-1]):,.2f}", f"{res.fees_paid:,.2f}",
                     f"{Decimal(slip['total_quote']):.2f} USDT, {slip['mean_bps']:.2f} bps" if slip else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def compare(rec: Path, work: Path, size: str = "1000", base: str = "0.02") -> list[Run]:
    """The market variant (`size` quote per buy) and the limit variant (`base` BTC per buy) under the three models,
    and the market variant under the book model at 40x the size."""
    sigs = signals(rec)
    runs = [run(rec, f, "market", size, sigs, work) for f in ("candles", "trades", "book")]
    big = str(Decimal(size) * 40)
    runs.append(run(rec, "book", "market", big, sigs, work, f"market book x40 ({big} USDT)"))
    runs += [run(rec, f, "limit", base, sigs, work) for f in ("candles", "trades", "book")]
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the sandbox recording")
    ap.add_argument("--rec", type=Path, default=None, help="an existing recording directory (no new recording)")
    ap.add_argument("--smoke", action="store_true", help="a short recording (8 s), to prove the script works")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rec = args.rec
        if rec is None:
            rec = work / "rec"
            record(rec, 8.0 if args.smoke else args.seconds)
        sigs = signals(rec)
        print(f"window: {rec}  ({MARKET}, a decision every {EVERY} of the 1s candles built from the recorded trades: "
              f"{len(sigs)} signals)")
        print(table(compare(rec, work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
