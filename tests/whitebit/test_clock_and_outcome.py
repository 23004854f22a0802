"""HMAC nonces on the exchange's clock, and order requests whose outcome is unknown, against the sandbox exchange.

The sandbox's `clock_skew_s` fault moves its clock (HMAC nonce window, /api/v4/public/time); its `error_counts`
fault answers a gateway 503 (non-JSON) before the handler runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner
from botkit.market.grants import Grant
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.whitebit.errors import (
    OutcomeUnknown,
    WhiteBitNonceRejected,
    WhiteBitRateLimited,
    WhiteBitUnavailable,
)
from botkit.whitebit.ratelimit import RateLimiter
from botkit.whitebit.rest import WhiteBitRest

GRANT = Grant.of("orders.create,orders.read,balances.read,orders_history.read")


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(test_config()) as sb:
        yield sb


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def client(sb: Sandbox, http: httpx.AsyncClient, **kw: Any) -> WhiteBitRest:
    kw.setdefault("signer", HmacSigner("demo-key", SecretStr("demo-secret")))
    return WhiteBitRest(sb.base_url, http, key_grant=GRANT, retry_max_wait_s=0.01, **kw)


def order(cid: str) -> dict[str, Any]:
    return {"market": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "30000", "clientOrderId": cid}


@pytest.mark.parametrize("skew", [8.0, -8.0])
async def test_orders_succeed_on_an_exchange_clock_8_s_off(sandbox, http, skew):
    sandbox.set_faults(clock_skew_s=skew)  # outside the 5 s nonce window: every local-clock nonce is refused
    lim = RateLimiter()
    rest = client(sandbox, http, limiter=lim)
    placed = await rest.call("order_new", order("skew-1"))
    assert placed["clientOrderId"] == "skew-1"
    assert rest.attempts == 1 and rest.clock_syncs == 1  # synced before the first signed request, no rejection
    assert rest.signer is not None and abs(rest.signer.clock_offset_ms - skew * 1000) < 1500
    assert isinstance(await rest.call("open_orders", {"market": "BTC_USDT"}), list)
    assert rest.attempts == 2 and rest.clock_syncs == 1 and lim.stats.penalties == 0


async def test_a_nonce_error_resyncs_once_and_is_never_a_rate_limit(sandbox, http):
    lim = RateLimiter()
    rest = client(sandbox, http, limiter=lim)
    await rest.call("trade_balance")
    assert rest.clock_syncs == 1
    sandbox.set_faults(clock_skew_s=-9.0)  # the exchange's clock steps back after the sync
    placed = await rest.call("order_new", order("skew-2"))  # refused once (not processed), re-synced, resent
    assert placed["clientOrderId"] == "skew-2"
    assert rest.attempts == 3 and rest.clock_syncs == 2
    assert lim.stats.penalties == 0 and sum(sandbox.rest_limits.rejected.values()) == 0  # no back-off
    assert sum(1 for o in sandbox.exchange.open_orders.values() if o.client_order_id == "skew-2") == 1
    sandbox.set_faults(clock_skew_s=7.0)  # and forward again, under ten concurrent requests: one re-sync for all
    results = await asyncio.gather(*(rest.call("trade_balance") for _ in range(10)))
    assert all(isinstance(r, dict) for r in results)
    assert rest.clock_syncs == 3 and rest.attempts == 3 + 20


async def test_a_nonce_error_a_resync_cannot_fix_is_raised_typed_after_one_resend(sandbox, http):
    rest = client(sandbox, http, signer=HmacSigner("demo-key", SecretStr("demo-secret"), nonce_window=False),
                  retry_attempts=5)
    key = sandbox.keys.get("demo-key")
    assert key is not None
    key.last_nonce = 2**62  # the server has seen a nonce far above anything our clock gives
    with pytest.raises(WhiteBitNonceRejected) as ei:
        await rest.call("trade_balance")
    assert not isinstance(ei.value, WhiteBitRateLimited) and ei.value.code == 0
    assert rest.attempts == 2 and rest.clock_syncs == 2  # one resend after one re-sync, no retry loop


async def test_a_gateway_503_on_order_new_is_never_resent(sandbox, http):
    rest = client(sandbox, http, retry_attempts=5)
    sandbox.set_faults(error_counts={"/api/v4/order/new": {"503": 1}}, retry_after_s=0)
    with pytest.raises(OutcomeUnknown) as ei:
        await rest.call("order_new", order("amb-1"))
    assert isinstance(ei.value, WhiteBitUnavailable)  # what botkit/venues/whitebit.py `_submit` resolves by lookup
    assert ei.value.status == 503 and ei.value.path == "/api/v4/order/new"
    assert rest.attempts == 1  # sent once, never again
    # reads are idempotent: the same fault there is retried through
    sandbox.set_faults(error_counts={"/api/v4/orders": {"503": 1}})
    assert isinstance(await rest.call("open_orders", {"market": "BTC_USDT"}), list)
    assert rest.attempts == 3
    # a gateway 429 means "not processed": an order may be resent, with a fresh nonce
    sandbox.set_faults(error_counts={"/api/v4/order/new": {"429": 1}})
    assert (await rest.call("order_new", order("amb-2")))["clientOrderId"] == "amb-2"
    assert rest.attempts == 5
