"""Helpers for tests that need a real sandbox exchange on 127.0.0.1.

    from botkit.sandbox.testing import running_sandbox, test_config

    @pytest_asyncio.fixture
    async def sandbox():
        async with running_sandbox(test_config()) as sb:
            yield sb

`test_config()` is the packaged default with test-friendly timings (fast pulses, no kline warm-up beyond an hour),
and accepts overrides for any `[server]` key. `admin_headers(sb)` are the headers the admin endpoints
(/_sandbox/faults, /_sandbox/reset) require: JSON content type and the sandbox's per-process token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


@asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None, *, port: int = 0) -> AsyncIterator[Sandbox]:
    """A started sandbox on an ephemeral loopback port, stopped (and its port freed) on exit."""
    sandbox = Sandbox(config, port=port)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()
