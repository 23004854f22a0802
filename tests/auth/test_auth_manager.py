"""The token-manager suite, run against both dialects: the WhiteBIT sandbox and oidc-provider (RFC 6749).

Every case asserts what the *server* counted, not only what the client believes.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from botkit.auth.errors import (
    AuthorizationFailed,
    ClientMisconfigured,
    StateMismatch,
)
from botkit.auth.login import code_from_callback, complete_login
from botkit.auth.oauth import OAuthClient
from botkit.market.grants import InsufficientScope
from botkit.whitebit.errors import WhiteBitForbidden


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


async def test_auth_code_pkce_state_happy_path(harness, tmp_path, http, login):
    before = await harness.counts()
    s = await login(harness, tmp_path, http)
    assert await s.rest.call("ok") is not None
    d = delta(await harness.counts(), before)
    assert d["code_exchange"] == 1 and d["refresh"] == 0
    stored = s.store.load()
    assert stored.token is not None and stored.token.refresh_token is not None
    assert {"orders.read"} <= stored.token.scopes or {"users.balances.read"} <= stored.token.scopes
    assert (s.store.path.stat().st_mode & 0o777) == 0o600
    assert (s.store.directory.stat().st_mode & 0o777) == 0o700


async def test_tampered_state_is_rejected_before_any_exchange(harness, tmp_path, http, login):
    s = harness.settings(tmp_path)
    client = OAuthClient(s, http)
    if s.use_metadata:
        await client.discover()
    req = client.authorization_request(s.redirect_uri)
    code, state, iss = await harness.authorize(req)
    before = await harness.counts()
    with pytest.raises(StateMismatch):
        await complete_login(client, req, {"code": code, "state": state[:-2] + "xx", **iss})
    with pytest.raises(StateMismatch):
        await complete_login(client, req, {"code": code, **iss})
    assert delta(await harness.counts(), before)["code_exchange"] == 0
    req2 = client.authorization_request(s.redirect_uri)
    assert req2.state != req.state
    if req.pkce is not None:  # RFC 6749 (and WhiteBIT Flow B): a fresh verifier per attempt
        assert req2.pkce is not None
        assert req2.pkce.verifier.get_secret_value() != req.pkce.verifier.get_secret_value()


def test_error_redirect_is_reported_in_words():
    from botkit.auth.oauth import AuthorizationRequest, Pkce

    req = AuthorizationRequest("https://x/authorize", "st", Pkce.new(), None)
    with pytest.raises(AuthorizationFailed, match="denied on the consent screen") as ei:
        code_from_callback(req, {"error": "access_denied", "state": "st"}, None)
    assert ei.value.error == "access_denied"
    with pytest.raises(AuthorizationFailed, match="mix-up"):
        code_from_callback(req, {"code": "c", "state": "st", "iss": "https://evil"}, "https://good")


async def test_proactive_refresh_before_expiry(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    before = await harness.counts()
    first = s.manager.token.access_token.get_secret_value()
    await harness.elapse(harness.at_ttl - s.settings.leeway_s + 0.1)  # inside the leeway, token not yet expired
    await s.rest.call("ok")
    d = delta(await harness.counts(), before)
    assert d["refresh"] == 1 and d["refresh_ok"] == 1
    assert d["resource_401"] == 0  # refreshed before the server ever saw an expired token
    assert s.manager.token.access_token.get_secret_value() != first
    assert s.store.load().token.access_token.get_secret_value() == s.manager.token.access_token.get_secret_value()


async def test_fifty_concurrent_calls_across_expiry_cause_one_refresh(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    await harness.elapse(harness.at_ttl - s.settings.leeway_s + 0.1)
    before = await harness.counts()
    results = await asyncio.gather(*(s.rest.call("ok") for _ in range(50)))
    d = delta(await harness.counts(), before)
    assert len(results) == 50 and all(r is not None for r in results)
    assert d["refresh"] == 1 and d["refresh_rejected"] == 0 and d["resource_401"] == 0


async def test_narrowed_scope_blocks_calls_before_the_network(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    before = await harness.counts()
    attempts = s.rest.attempts
    with pytest.raises(InsufficientScope) as ei:
        await s.rest.call("needs_deals")
    assert ei.value.missing and s.rest.attempts == attempts
    d = delta(await harness.counts(), before)
    assert all(v == 0 for v in d.values())


async def test_401_mid_life_gives_exactly_one_forced_refresh(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    await s.rest.call("ok")
    await harness.revoke_access(http, s.client, s.manager.token.access_token.get_secret_value())
    before = await harness.counts()
    assert await s.rest.call("ok") is not None
    d = delta(await harness.counts(), before)
    assert d["resource_401"] == 1 and d["refresh"] == 1 and d["refresh_ok"] == 1


async def test_403_never_triggers_a_refresh(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    before = await harness.counts()
    with pytest.raises(WhiteBitForbidden) as ei:
        await s.rest.call("forbidden")
    assert ei.value.status == 403
    d = delta(await harness.counts(), before)
    assert d["refresh"] == 0


async def test_client_secret_never_in_errors(harness, tmp_path, http, login):
    s = harness.settings(tmp_path)
    bad = s.model_copy(update={"client_secret": SecretStr("definitely-wrong-secret")})
    client = OAuthClient(bad, http)
    if bad.use_metadata:
        await client.discover()
    req = client.authorization_request(bad.redirect_uri)
    code, state, iss = await harness.authorize(req)
    with pytest.raises(ClientMisconfigured) as ei:
        await complete_login(client, req, {"code": code, "state": state, **iss})
    assert ei.value.error == "invalid_client"
    assert "definitely-wrong-secret" not in str(ei.value) and code not in str(ei.value)


async def test_refresh_outage_inside_the_leeway_keeps_the_still_valid_token(harness, tmp_path, http, login):
    # one attempt: with WhiteBIT's 1 refresh/s, a second attempt would land after this 2 s token expired
    s = await login(harness, tmp_path, http, retry_attempts=1)
    old = s.manager.token.access_token.get_secret_value()
    await harness.queue_refresh_fault(503, 0.1)
    await harness.elapse(harness.at_ttl - s.settings.leeway_s + 0.05)  # inside the leeway, not expired
    before = await harness.counts()
    first = await s.manager.access_token()  # the refresh attempt fails: the old, still valid token is served
    second = await s.manager.access_token()  # and the next call does not start another attempt at once
    d = delta(await harness.counts(), before)
    assert first == second == old
    assert d["refresh"] == 1 and d["refresh_ok"] == 0
    # The API accepts what we served or, if the token lapsed meanwhile on a loaded machine, its successor after
    # one forced refresh: which of the two is timing, so only the outcome is asserted here.
    assert await s.rest.call("ok") is not None


async def test_refresh_sends_no_scope_and_keepalive_refreshes_without_traffic(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http, keepalive=True)
    before = await harness.counts()
    s.manager.start_keepalive()
    try:
        if harness.clock is None:
            await asyncio.sleep(3 * (harness.at_ttl - s.settings.leeway_s) + 0.5)
        else:  # the keep-alive's own sleeps move the fake clock: wait for its refreshes, not for time
            for _ in range(400):
                if delta(await harness.counts(), before)["refresh_ok"] >= 3:
                    break
                await asyncio.sleep(0.01)
    finally:
        await s.manager.aclose()
    d = delta(await harness.counts(), before)
    assert d["refresh_ok"] >= 2 and d["refresh_rejected"] == 0 and d["refresh_with_scope"] == 0
    # the stored token is the newest one, so a restarted bot carries on
    assert s.store.load().token.access_token.get_secret_value() == s.manager.token.access_token.get_secret_value()
