"""Client rate limiter (botkit/whitebit/ratelimit.py) and the sandbox's REST limits (botkit/sandbox/limits.py).

Unit tests drive the limiter with an injected clock; the rest run WhiteBitRest against a real sandbox on 127.0.0.1
whose limits are scaled down (counts x 0.001, windows x 0.05: "10000 per 10 s" becomes 10 per 0.5 s) so they are
reachable in a test. There the client's limiter, its retry waits and the sandbox's rate-limit windows share one fake
clock that moves only when the client waits, and only once every request already sent has been answered: a request
reaches the server at the clock time it was granted, so the outcome is the limit arithmetic, never the machine's load
(no wall time is waited). Time assertions are lower bounds that follow from the limit arithmetic.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner
from botkit.market.grants import Grant
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.whitebit.endpoints import DEFAULT_REGISTRY, Endpoint
from botkit.whitebit.errors import WhiteBitNonceRejected, WhiteBitRateLimited
from botkit.whitebit.ratelimit import RateLimiter, SlidingWindow, buckets_for, capacity
from botkit.whitebit.rest import WhiteBitRest, is_gateway_429

COUNT_SCALE = 0.001
WINDOW_SCALE = 0.05
SERVER_WINDOW = 10.0 * WINDOW_SCALE  # 0.5 s
MARGIN = 0.1
CLIENT_WINDOW = SERVER_WINDOW + MARGIN
GLOBAL_CAP = capacity((10000, 10.0), COUNT_SCALE)  # 10 per window, server side
CLIENT_CAP = capacity((10000, 10.0), COUNT_SCALE, 0.9)  # 9: the client keeps 10 % headroom
GRANT = Grant.of("balances.read,deals.read,orders.read")


class FakeTime:
    """A clock that only moves when the limiter sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        self.now += d
        await asyncio.sleep(0)


def ep(name: str, group: str, limit: tuple[int, float] | None) -> Endpoint:
    return Endpoint(name, "POST", f"/x/{name}", frozenset({"hmac"}), rate_group=group, rate_limit=limit)


# ---- unit: the limiter's arithmetic ------------------------------------------------------------------------------


def test_sliding_window_frees_a_slot_exactly_when_the_oldest_grant_ages_out() -> None:
    w = SlidingWindow(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        assert w.delay(t) == 0.0
        w.record(t)
    assert w.delay(2.0) == 8.0 and w.delay(9.5) == 0.5 and w.delay(10.0) == 0.0
    assert w.count(10.0) == 2
    with pytest.raises(ValueError, match="capacity >= 1"):
        SlidingWindow(0, 10.0)


def test_capacity_applies_scale_and_headroom_but_never_reaches_zero() -> None:
    assert capacity((10000, 10.0)) == 10000
    assert capacity((10000, 10.0), headroom=0.9) == 9000
    assert capacity((12000, 10.0), 0.001, 0.9) == 10
    assert capacity((600, 10.0), 0.001) == 1
    with pytest.raises(ValueError, match="headroom"):
        RateLimiter(headroom=1.5)


def test_every_bucket_applies_endpoint_group_and_global() -> None:
    balance = DEFAULT_REGISTRY.get("trade_balance")
    keys = [k for k, _ in buckets_for(balance)]
    assert keys == ["endpoint:trade_balance", "group:trade-account", "global"]
    assert [k for k, _ in buckets_for(DEFAULT_REGISTRY.get("platform_status"))] == ["group:public", "global"]
    assert DEFAULT_REGISTRY.get("orderbook").rate_limit == (600, 10.0)
    assert DEFAULT_REGISTRY.get("websocket_token").rate_limit == (10, 60.0)
    for e in DEFAULT_REGISTRY:  # every /api/v4/order/* endpoint carries the documented 10000 per 10 s
        if e.path.startswith("/api/v4/order/"):
            assert e.rate_limit == (10000, 10.0), e.name


async def test_the_tightest_bucket_decides_and_a_group_is_shared() -> None:
    ft = FakeTime()
    lim = RateLimiter(headroom=1.0, margin_s=0.0, group_limits={"g": (3, 10.0)}, global_limit=(100, 10.0),
                      clock=ft.clock, sleep=ft.sleep)
    a, b, other = ep("a", "g", (5, 10.0)), ep("b", "g", None), ep("c", "h", None)
    for _ in range(3):
        assert await lim.acquire(a) == 0.0
    assert lim.delay(a) == 10.0 and lim.delay(b) == 10.0  # the group (3) binds before a's own limit (5)
    assert lim.delay(other) == 0.0
    assert await lim.acquire(b) == 10.0 and ft.now == 10.0
    assert lim.stats.granted == 4 and lim.stats.waits == 1 and lim.stats.wait_s == 10.0


async def test_concurrent_callers_are_served_in_order_without_a_thundering_herd() -> None:
    ft = FakeTime()
    lim = RateLimiter(headroom=1.0, margin_s=0.0, group_limits={}, global_limit=(2, 10.0),
                      clock=ft.clock, sleep=ft.sleep)
    e = ep("a", "g", None)
    granted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await lim.acquire(e)
        granted.append((i, ft.now))

    await asyncio.gather(*(one(i) for i in range(7)))
    assert granted == [(0, 0.0), (1, 0.0), (2, 10.0), (3, 10.0), (4, 20.0), (5, 20.0), (6, 30.0)]
    assert ft.sleeps == [10.0, 10.0, 10.0]  # only the head of the queue sleeps, once per window


async def test_gateway_429_backs_off_the_group_with_retry_after_or_doubling() -> None:
    ft = FakeTime()
    lim = RateLimiter(backoff_s=1.0, backoff_max_s=3.0, clock=ft.clock, sleep=ft.sleep)
    a, b, other = ep("a", "g", None), ep("b", "g", None), ep("c", "h", None)
    assert lim.penalize(a, 2.5) == 2.5
    assert lim.delay(b) == 2.5 and lim.delay(other) == 0.0
    assert [lim.penalize(a, None) for _ in range(3)] == [2.0, 3.0, 3.0]  # strikes 2..4: 1 s doubling, capped
    lim.relieve(b)
    assert lim.penalize(a, None) == 1.0 and lim.stats.penalties == 5
    assert await lim.acquire(b) == 3.0  # the longest back-off still in force


def test_a_json_nonce_429_is_not_a_gateway_limit() -> None:
    assert is_gateway_429(b"<html><body>rate limit</body></html>")
    assert is_gateway_429(b"")
    assert is_gateway_429(b'{"success":false,"message":"Too many attempts, slow down","params":[]}')
    assert not is_gateway_429(b'{"code":0,"errors":{},"message":"Too many requests."}')


# ---- against the sandbox -----------------------------------------------------------------------------------------


class LockStep:
    """The fake clock of the sandbox tests: a wait moves it only after every request sent over `http` is answered."""

    def __init__(self) -> None:
        self.time = FakeTime()
        self.sent = self.answered = 0

    async def on_request(self, request: httpx.Request) -> None:
        self.sent += 1

    async def on_response(self, response: httpx.Response) -> None:
        self.answered += 1

    async def sleep(self, d: float) -> None:
        for _ in range(5000):  # the requests in flight are answered in real time (a few ms each)
            if self.answered >= self.sent:
                break
            await asyncio.sleep(0.001)
        else:
            raise AssertionError(f"{self.sent - self.answered} request(s) unanswered for 5 s")
        await self.time.sleep(d)

    def now(self) -> float:
        return self.time.now


@pytest.fixture
def clock() -> LockStep:
    return LockStep()


@pytest_asyncio.fixture
async def sandbox(clock: LockStep) -> AsyncIterator[Sandbox]:
    cfg = test_config(rest_limit_scale=COUNT_SCALE, rest_limit_window_scale=WINDOW_SCALE)
    async with running_sandbox(cfg, monotonic=clock.now) as sb:
        yield sb


@pytest_asyncio.fixture
async def http(clock: LockStep) -> AsyncIterator[httpx.AsyncClient]:
    hooks = {"request": [clock.on_request], "response": [clock.on_response]}
    async with httpx.AsyncClient(timeout=10, event_hooks=hooks) as c:  # type: ignore[arg-type]
        yield c


def limiter(clock: LockStep, backoff_s: float = 1.0) -> RateLimiter:
    return RateLimiter(count_scale=COUNT_SCALE, window_scale=WINDOW_SCALE, margin_s=MARGIN, backoff_s=backoff_s,
                       clock=clock.now, sleep=clock.sleep)


def client(sb: Sandbox, http: httpx.AsyncClient, **kw: object) -> WhiteBitRest:
    """Clock sync off: these tests count every request the sandbox sees (the sync: test_clock_and_outcome.py)."""
    return WhiteBitRest(sb.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                        key_grant=GRANT, time_sync=False, **kw)  # type: ignore[arg-type]


async def test_without_the_limiter_a_burst_is_refused_by_the_sandbox(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    rest = client(sandbox, http, rate_limit=False, retry_attempts=1)
    results = await asyncio.gather(*(rest.call("trade_balance") for _ in range(30)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, WhiteBitRateLimited)]
    ok = [r for r in results if isinstance(r, dict)]
    assert len(refused) + len(ok) == 30
    assert refused and all(r.code is None for r in refused)  # non-JSON gateway 429s
    assert len(ok) >= GLOBAL_CAP
    assert sum(sandbox.rest_limits.rejected.values()) == len(refused)


async def test_with_the_limiter_the_same_burst_is_never_refused(
    sandbox: Sandbox, http: httpx.AsyncClient, clock: LockStep
) -> None:
    lim = limiter(clock)
    rest = client(sandbox, http, limiter=lim, retry_attempts=1)
    n = 30
    t0 = clock.now()
    results = await asyncio.gather(*(rest.call("trade_balance") for _ in range(n)))
    elapsed = clock.now() - t0
    assert all(isinstance(r, dict) for r in results) and rest.attempts == n
    assert sum(sandbox.rest_limits.rejected.values()) == 0
    assert sandbox.rest_limits.accepted["global"] == n
    # at most CLIENT_CAP grants per CLIENT_WINDOW: the last grant comes (ceil(n/cap) - 1) windows after the first
    assert elapsed >= (math.ceil(n / CLIENT_CAP) - 1) * CLIENT_WINDOW
    assert lim.stats.granted == n and lim.stats.waits > 0 and lim.stats.wait_s > 0


async def test_fifty_concurrent_tasks_over_two_endpoints_stay_within_the_limit(
    sandbox: Sandbox, http: httpx.AsyncClient, clock: LockStep
) -> None:
    lim = limiter(clock)
    rest = client(sandbox, http, limiter=lim, retry_attempts=1)
    calls = [rest.call("trade_balance") if i % 2 else rest.call("executed_history", {"limit": 1}) for i in range(50)]
    results = await asyncio.gather(*calls)
    assert len(results) == 50 and rest.attempts == 50
    limits = sandbox.rest_limits
    assert sum(limits.rejected.values()) == 0
    assert limits.accepted["global"] == 50 and limits.accepted["group:trade-account"] == 50
    assert limits.peak["global"] <= GLOBAL_CAP  # counted by the server in its own window


async def test_an_endpoint_limit_below_the_group_limit_is_honoured(
    sandbox: Sandbox, http: httpx.AsyncClient, clock: LockStep
) -> None:
    rest = WhiteBitRest(sandbox.base_url, http, limiter=limiter(clock), retry_attempts=1)
    t0 = clock.now()
    for _ in range(3):  # orderbook: 600 per 10 s -> 1 per window at this scale
        book = await rest.call("orderbook", market="BTC_USDT")
        assert "asks" in book
    assert clock.now() - t0 >= 2 * CLIENT_WINDOW
    limits = sandbox.rest_limits
    assert limits.accepted["endpoint:orderbook"] == 3 and limits.accepted["group:public"] == 3
    assert sum(limits.rejected.values()) == 0


async def test_an_injected_gateway_429_makes_the_client_back_off_then_succeed(
    sandbox: Sandbox, http: httpx.AsyncClient, clock: LockStep
) -> None:
    lim = limiter(clock)
    other = DEFAULT_REGISTRY.get("executed_history")  # same group as trade_balance
    blocked_seen: list[float] = []

    async def sleep(d: float) -> None:  # tenacity's wait before the retry: the group is blocked meanwhile
        blocked_seen.append(lim.delay(other))
        await clock.sleep(d)

    rest = client(sandbox, http, limiter=lim, sleep=sleep)
    sandbox.set_faults(error_counts={"/api/v4/trade-account/balance": {"429": 1}}, retry_after_s=1)
    t0 = clock.now()
    assert isinstance(await rest.call("trade_balance"), dict)
    assert clock.now() - t0 >= 1.0
    assert rest.attempts == 2 and lim.stats.penalties == 1
    assert blocked_seen and blocked_seen[0] > 0.9

    # no Retry-After: the limiter's own back-off, doubling per consecutive 429 (0.2 s, then 0.4 s)
    lim2 = limiter(clock, backoff_s=0.2)
    rest2 = client(sandbox, http, limiter=lim2, retry_max_wait_s=0.01, sleep=clock.sleep)
    sandbox.set_faults(error_counts={"/api/v4/trade-account/balance": {"429": 2}}, retry_after_s=None)
    t0 = clock.now()
    assert isinstance(await rest2.call("trade_balance"), dict)
    assert clock.now() - t0 >= 0.6
    assert rest2.attempts == 3 and lim2.stats.penalties == 2 and lim2.stats.waits >= 2


async def test_a_json_nonce_429_is_a_nonce_error_and_never_a_back_off(
    sandbox: Sandbox, http: httpx.AsyncClient, clock: LockStep
) -> None:
    lim = limiter(clock)
    rest = client(sandbox, http, limiter=lim, retry_attempts=4, retry_max_wait_s=0.01,  # clock sync off
                  sleep=clock.sleep)
    sandbox.set_faults(clock_skew_s=60.0)  # every nonce is now outside the server's 5 s window
    with pytest.raises(WhiteBitNonceRejected) as ei:
        await rest.call("trade_balance")
    assert not isinstance(ei.value, WhiteBitRateLimited) and ei.value.code == 0 and ei.value.status == 429
    assert rest.attempts == 1  # not retried as a rate limit: backing off cannot fix a clock
    assert lim.stats.penalties == 0 and lim.stats.waits == 0
    assert lim.delay(DEFAULT_REGISTRY.get("trade_balance")) == 0.0
    assert sum(sandbox.rest_limits.rejected.values()) == 0
