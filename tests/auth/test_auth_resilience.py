"""Token-manager resilience, against both dialects: refresh-token replay, 5xx/429 retries, keep-alive.

Every case asserts what the *server* counted, not only what the client believes.
"""

from __future__ import annotations

import asyncio

import pytest

from botkit.auth.errors import (
    ReauthRequired,
    TokenEndpointUnavailable,
)
from botkit.auth.manager import TokenManager
from botkit.auth.store import TokenStore


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


async def test_reused_refresh_token_gives_one_reauth_and_no_loop(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    stale = s.manager.token  # a copy of the token set another client might still hold
    await harness.elapse(harness.at_ttl - s.settings.leeway_s + 0.1)
    await s.manager.access_token()  # rotates the refresh token server side
    other_store = TokenStore(tmp_path / "other", s.settings.base_url, s.settings.client_id)
    other = TokenManager(s.client, other_store, s.settings, reauth_command="botkit auth login test.toml",
                         **harness.manager_time())
    await other.install(stale)
    await harness.elapse(1.05)  # respect the 1 request/s refresh limit
    before = await harness.counts()
    outcomes = await asyncio.gather(*(other.force_refresh(stale.access_token.get_secret_value()) for _ in range(10)),
                                    return_exceptions=True)
    assert all(isinstance(o, ReauthRequired) for o in outcomes)
    assert "botkit auth login test.toml" in str(outcomes[0])
    for _ in range(5):  # sticky: no further network traffic, the same error
        with pytest.raises(ReauthRequired):
            await other.access_token()
    d = delta(await harness.counts(), before)
    assert d["refresh"] == 1 and d["refresh_rejected"] == 1


async def test_503_and_429_with_retry_after_are_bounded_waits(harness, tmp_path, http, login):
    waits: list[float] = []

    async def sleep(d: float) -> None:
        waits.append(d)
        await harness.sleep(d if harness.clock is not None else min(d, 1.1))

    s = await login(harness, tmp_path, http, retry_after_cap_s=1.0)
    s.manager._sleep = sleep
    await harness.elapse(1.05)
    await harness.queue_refresh_fault(503, 1)
    await harness.queue_refresh_fault(429, 30)  # capped at retry_after_cap_s
    before = await harness.counts()
    t0 = harness.monotonic()
    await s.manager.force_refresh(s.manager.token.access_token.get_secret_value())
    elapsed = harness.monotonic() - t0
    d = delta(await harness.counts(), before)
    assert d["refresh"] == 3 and d["refresh_ok"] == 1
    retry_waits = [w for w in waits if w >= 0.9]
    assert retry_waits[:2] == [1.0, 1.0]
    assert elapsed < 5


async def test_retries_are_exhausted_into_one_typed_error(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http, retry_attempts=3, retry_after_cap_s=0.2)
    for _ in range(3):
        await harness.queue_refresh_fault(503, 0.1)
    await harness.elapse(1.05)
    before = await harness.counts()
    with pytest.raises(TokenEndpointUnavailable) as ei:
        await s.manager.force_refresh(s.manager.token.access_token.get_secret_value())
    assert ei.value.status == 503
    d = delta(await harness.counts(), before)
    assert d["refresh"] == 3 and d["refresh_ok"] == 0
    await harness.elapse(1.05)
    # not terminal: the next call refreshes fine
    await s.manager.force_refresh(s.manager.token.access_token.get_secret_value())
    assert delta(await harness.counts(), before)["refresh_ok"] == 1
