"""Benchmark: a bot on an OAuth session for minutes, with tokens far shorter than WhiteBIT's (access 3 s, refresh
8 s, rotating on every refresh), must trade without one failed call: every refresh single-flight and persisted,
0 rejected refreshes, 0 invalid_grant, 0 refused orders.

Run: .venv/bin/python backtests/bench_oauth_run.py [--minutes 5] [--rate 1]

The embedded sandbox (real sockets) plays the exchange and the authorization server; `botkit run` logs in through
the authorization-code flow (`[run] credentials = "oauth"`) and trades a market buy every closed 1 s candle. Figures
are printed next to their targets; the exit code is 1 when one is missed.
`--minutes` is token time. `--rate R` runs token time R times faster than the wall (one ScaledClock shared by the
bot's token layer and the sandbox's authorization server, botkit/auth/clock.py), so the run takes minutes/R; the
default 1 is real time. The suite runs it at a small size with a fast clock (tests/run/test_run_oauth.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from botkit import Candle, Context, Strategy
from botkit.auth.clock import SYSTEM_CLOCK, ScaledClock, TokenClock
from botkit.config import BotConfig
from botkit.runner import LiveRunner
from botkit.sandbox.config import load_sandbox_config
from botkit.sandbox.testing import running_sandbox, test_config

ROOT = Path(__file__).resolve().parents[1]


class SteadyBuyer(Strategy):
    scopes = frozenset({"orders.create"})

    def on_candle(self, ctx: Context, candle: Candle) -> None:
        ctx.buy(candle.market, Decimal("20"))


async def run(seconds: float, rate: float) -> int:
    """`seconds` of token time, `rate` times faster than the wall."""
    base = test_config(load_sandbox_config(None), candles_interval=0.1)
    cfg = base.model_copy(update={"oauth": base.oauth.model_copy(update={"access_ttl": 3.0, "refresh_ttl": 8.0})})
    clock: TokenClock = SYSTEM_CLOCK if rate == 1 else ScaledClock(rate)
    wall = seconds / rate
    async with running_sandbox(cfg) as sb:
        sb.oauth.clock = clock.time  # the authorization server and the API's token checks on the bot's token clock
        with tempfile.TemporaryDirectory() as tmp:
            bot = BotConfig(
                name="bench-oauth", strategy={"plugin": "bench:SteadyBuyer"},
                markets={"BTC_USDT": {}}, auth={"client_id": "botkit-demo"},
                run={"mode": "sandbox", "credentials": "oauth", "interval": 1, "history": 5, "duration_s": wall,
                     "status_every_s": 0},
                output={"dir": tmp},
            )
            runner = LiveRunner(bot, strategy=SteadyBuyer(), sandbox=sb, out=None, handle_signals=False,
                                token_clock=clock)
            t0 = time.monotonic()
            token0 = clock.monotonic()
            summary = await runner.run()
            elapsed = time.monotonic() - t0
            token_elapsed = clock.monotonic() - token0
            tokens = runner.account.tokens if runner.account is not None else None
            made = tokens.refresh_count if tokens is not None else 0
        c = sb.oauth.counters
    refused = sum(summary.rejections.values())
    rows = [
        ("run length (wall)", f"{elapsed:,.0f} s", ""),
        ("token time", f"{token_elapsed:,.0f} s", f">= {seconds:g} s (clock rate {rate:g})"),
        ("refreshes by the bot", f"{made}", f">= {int(seconds / 3)}"),
        ("refresh requests the server saw", f"{c.refresh_requests}", "= refreshes (single-flight)"),
        ("refreshes rejected (invalid_grant, reuse)", f"{c.refresh_rejected}", "0"),
        ("refresh-token reuse detected", f"{c.reuse_detected}", "0"),
        ("orders refused", f"{refused}", "0"),
        ("fills", f"{summary.fills}", f">= {int(wall * 0.8)} (one per candle)"),
        ("venue errors", f"{len(summary.notes)}", "0"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>10}   target {target}" if target else f"  {name:<{width}}  {value:>10}")
    ok = (made >= int(seconds / 3) and c.refresh_requests == made and c.refresh_rejected == 0
          and c.reuse_detected == 0 and refused == 0 and summary.fills >= int(wall * 0.8) and not summary.notes
          and token_elapsed >= seconds * 0.99)
    print("OK" if ok else "MISSED")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="token time (default 5)")
    ap.add_argument("--rate", type=float, default=1.0,
                    help="token time runs this many times faster than the wall (default 1: real time)")
    a = ap.parse_args()
    if not a.rate > 0 or not a.minutes > 0:
        ap.error(f"--minutes {a.minutes:g} --rate {a.rate:g}: both must be positive")
    sys.exit(asyncio.run(run(a.minutes * 60, a.rate)))


if __name__ == "__main__":
    main()
