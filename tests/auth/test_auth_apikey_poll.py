"""Fast API Key polling and the locked-secret backoff run on the shared retry policy with an injected clock: the real
sandbox answers over a real socket, the waits between looks cost no wall time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.auth.errors import ApiKeyFlowError
from botkit.auth.login import complete_login
from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.store import store_for
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.apikey import FastApiKey

REDIRECT = "http://127.0.0.1/callback"


async def _flow(wb_harness: Any, tmp_path: Path, http: httpx.AsyncClient, clock: FakeClock,
                **over: Any) -> tuple[FastApiKey, Any]:
    """Consent with PKCE on the sandbox (Flow B), then the key flow with the fake clock's sleep and time."""
    poll = {k: over.pop(k) for k in list(over) if k.startswith("apikey_")}
    h = await wb_harness(**over)
    s = h.settings(tmp_path, **poll)
    client = OAuthClient(s, http)
    req = client.authorization_request(REDIRECT, flow="apikey")
    code, state, iss = await h.authorize(req)
    token = await complete_login(client, req, {"code": code, "state": state, **iss})
    manager = TokenManager(client, store_for(s, environ={}), s, slot="key_token")
    await manager.install(token)
    return FastApiKey(s, http, manager, sleep=clock.sleep, clock=clock.monotonic), h.extra["sandbox"]


async def test_wait_for_key_polls_at_its_interval_until_the_key_appears(wb_harness, tmp_path, http):
    clock = FakeClock()
    flow, sb = await _flow(wb_harness, tmp_path, http, clock, api_key_ready_after_polls=3, apikey_poll_s=1.5)
    info = await flow.wait_for_key()
    assert info["exists"] and info["isEnabled"] and info["externalId"]
    assert sb.keys.by_external_id(info["externalId"]) is not None
    assert sb.oauth.counters.apikey_info_requests == 4  # three "not yet", then the key
    assert clock.waits == [1.5, 1.5, 1.5]


async def test_wait_for_key_gives_up_at_its_timeout_in_clock_time(wb_harness, tmp_path, http):
    clock = FakeClock()
    flow, sb = await _flow(wb_harness, tmp_path, http, clock, api_key_ready_after_polls=10_000,
                           apikey_poll_s=1.5, apikey_poll_timeout_s=30.0)
    with pytest.raises(ApiKeyFlowError, match=r"no API key appeared within 30 s after consent"):
        await flow.wait_for_key()
    # looks at t = 0, 1.5, ..., 28.5; the next wait would end at the 30 s bound, so it stops there
    assert sb.oauth.counters.apikey_info_requests == 20
    assert clock.waits == [1.5] * 19 and sum(clock.waits) == pytest.approx(28.5)


async def test_a_disabled_key_is_an_error_at_once_not_a_poll(wb_harness, tmp_path, http):
    clock = FakeClock()
    flow, sb = await _flow(wb_harness, tmp_path, http, clock)
    for key in sb.keys._by_key.values():
        if key.oauth_client_id is not None:
            key.enabled = False
    with pytest.raises(ApiKeyFlowError, match="exists but is disabled"):
        await flow.wait_for_key()
    assert sb.oauth.counters.apikey_info_requests == 1 and clock.waits == []


async def test_a_secret_locked_past_its_timeout_is_reported_after_backoff_in_clock_time(wb_harness, tmp_path, http):
    clock = FakeClock()
    flow, sb = await _flow(wb_harness, tmp_path, http, clock, api_key_secret_locks=10_000,
                           apikey_lock_backoff_s=5.0, apikey_lock_timeout_s=180.0)
    info = await flow.wait_for_key()
    with pytest.raises(ApiKeyFlowError, match=r"stayed locked \(423\)"):
        await flow.fetch_secret(str(info["externalId"]))
    spent = sum(clock.waits)  # the waits: full-jitter backoff from 5 s, each at most 60 s
    assert clock.waits and all(0.0 <= w <= 60.0 for w in clock.waits)
    assert 180.0 - 60.0 <= spent < 180.0  # stopped only when the next wait (<= 60 s) would cross the bound
    assert sb.oauth.counters.apikey_secret_requests == len(clock.waits) + 1
    assert sb.keys.by_external_id(str(info["externalId"])).secret_retrieved is False
