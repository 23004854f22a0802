"""Helpers for tests that need a real sandbox exchange on 127.0.0.1.

    from botkit.sandbox.testing import running_sandbox, test_config

    @pytest_asyncio.fixture
    async def sandbox():
        async with running_sandbox(test_config()) as sb:
            yield sb

`FakeClock` is a clock for tests that would otherwise wait: give `clock.time` to `Sandbox(clock=...)` and the
same clock to the client side (TokenManager, OAuthClient, LiveRunner, a retry policy); sockets stay real.

`test_config()` is the packaged default with test-friendly timings (fast pulses, no kline warm-up beyond an hour),
and accepts overrides for any `[server]` key. `admin_headers(sb)` are the headers the admin endpoints
(/_sandbox/faults, /_sandbox/reset) require: JSON content type and the sandbox's per-process token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from botkit.sandbox.config import SandboxConfig, load_sandbox_config
from botkit.sandbox.faults import ADMIN_HEADER
from botkit.sandbox.server import Sandbox


def admin_headers(sandbox: Sandbox) -> dict[str, str]:
    """Headers for POST/GET/DELETE /_sandbox/*: the admin token, and the JSON content type POSTs need."""
    return {ADMIN_HEADER: sandbox.admin_token, "Content-Type": "application/json"}


def test_config(base: SandboxConfig | None = None, **server: Any) -> SandboxConfig:
    """The default config (or `base`) with quick server loops; `server` overrides `[server]` keys."""
    cfg = base if base is not None else load_sandbox_config(None)
    timings: dict[str, Any] = {"tick_interval": 0.01, "depth_interval": 0.02, "lastprice_interval": 0.1,
                               "candles_interval": 0.1}
    timings.update(server)
    markets = [
        m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"history_minutes": 60})})
        for m in cfg.markets
    ]
    return cfg.model_copy(
        update={"server": cfg.server.model_copy(update=timings), "markets": markets}
    )


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


class FakeClock:
    """Wall and monotonic seconds (one value) that move only when a test advances them or when code sleeps on
    them: `sleep` moves the clock by its length at once and records it in `waits`. Starts at the real time, so
    timestamps look ordinary."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def clocks(self) -> dict[str, Callable[[], float]]:
        """`clock=` and `monotonic=` for the seams that take both (Sandbox, LiveRunner, TokenManager, WsClient)."""
        return {"clock": self.time, "monotonic": self.monotonic}

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    async def wait(self, seconds: float) -> None:
        """A sleep for code running while the clock is driven (see `drive`): returns once the clock has moved on by
        `seconds`, looking every 5 ms of real time. (`sleep` moves the clock itself, for code nobody drives.)"""
        end = self.now + seconds
        while self.now < end:
            await asyncio.sleep(0.005)

    async def drive(self, step_s: float, every_s: float, until: Callable[[], bool] = lambda: False) -> None:
        """Advance `step_s` every `every_s` of real time (a run of N clock seconds takes N * every_s / step_s real
        seconds), until `until()` holds or the task is cancelled."""
        while not until():
            await asyncio.sleep(every_s)
            self.now += step_s


@asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None, *, port: int = 0,
                          clock: Callable[[], float] = time.time,
                          monotonic: Callable[[], float] = time.monotonic) -> AsyncIterator[Sandbox]:
    """A started sandbox on an ephemeral loopback port, stopped (and its port freed) on exit. `clock` (wall time)
    and `monotonic` (REST rate-limit windows) are the sandbox's clocks: inject a FakeClock's to move them."""
    sandbox = Sandbox(config, port=port, clock=clock, monotonic=monotonic)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()
