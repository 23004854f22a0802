"""Fixtures for the `botkit run` tests: a real sandbox on 127.0.0.1 with 1 s candles and fast synthetic prints."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner
from botkit.config import BotConfig
from botkit.market.grants import Grant
from botkit.runner import LiveRunner, RunSummary
from botkit.sandbox.config import SandboxConfig
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock, running_sandbox, test_config
from botkit.whitebit.rest import WhiteBitRest

HERE = Path(__file__).parent
STRATEGIES = HERE / "run_strategies.py"


def fast_config(**server: Any) -> SandboxConfig:
    """Default sandbox, quick loops, one synthetic print every 50 ms (so 1 s candles close with trades in them)."""
    cfg = test_config(candles_interval=0.1, **server)
    markets = [
        m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"tick_interval": 0.05})})
        for m in cfg.markets
    ]
    return cfg.model_copy(update={"markets": markets})


def bot_config(strategy: str, **run: Any) -> BotConfig:
    run = {"interval": 1, "history": 5, "staleness_s": 5, **run}
    return BotConfig(
        name="test",
        strategy={"plugin": f"{STRATEGIES}:{strategy}"},
        markets={"BTC_USDT": {"stock_prec": 6, "money_prec": 2, "min_amount": "0.00001", "min_total": "1"}},
        balances={"USDT": "1000", "BTC": "0.01"},  # paper mode only
        run=run,
        output={"dir": tempfile.mkdtemp(prefix="botkit-run-test-")},  # journals go here, not into ./out
    )


@asynccontextmanager
async def clocked_sandbox(**server: Any) -> AsyncIterator[tuple[Sandbox, FakeClock, WhiteBitRest]]:
    """The fast sandbox on a fake clock (see `run_driven`), and demo REST on it. It accepts nonces within 60 s: the
    clients' signers keep the real clock while the exchange's runs ahead."""
    clock = FakeClock()
    async with running_sandbox(fast_config(nonce_window_ms=60_000, **server), **clock.clocks()) as sb, \
            httpx.AsyncClient(timeout=10) as http:
        yield sb, clock, demo_rest(sb, http)


@asynccontextmanager
async def driving(clock: FakeClock, step_s: float = 0.25, every_s: float = 0.05) -> AsyncIterator[FakeClock]:
    """Drive `clock` (see `run_driven`) for the duration of the block: for tests that run a bot as a task."""
    driver = asyncio.create_task(clock.drive(step_s, every_s))
    try:
        yield clock
    finally:
        driver.cancel()


async def run_driven(runner: LiveRunner, clock: FakeClock, step_s: float = 0.25, every_s: float = 0.05) -> RunSummary:
    """Run a bot built with `LiveRunner(..., **clock.clocks())` whose exchange runs on `clock` too, advancing it
    `step_s` every `every_s` of real time (5x by default): a 7 s run takes about 1.5 s. The bot's loop looks at the
    clock at least every 0.1 s of real time, so its timers stay within half a clock second of where they are due."""
    driver = asyncio.create_task(clock.drive(step_s, every_s))
    try:
        return await runner.run()
    finally:
        driver.cancel()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(fast_config()) as sb:
        yield sb


def demo_rest(sandbox: Sandbox, http: httpx.AsyncClient) -> WhiteBitRest:
    """Plain signed REST on the demo account, outside the bot."""
    perms = next(k for a in sandbox.config.accounts if a.name == "demo" for k in a.api_keys).permissions
    return WhiteBitRest(sandbox.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                        key_grant=Grant.of(perms))


@pytest_asyncio.fixture
async def rest(sandbox: Sandbox) -> AsyncIterator[WhiteBitRest]:
    """Plain signed REST on the demo account, outside the bot."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield demo_rest(sandbox, http)
