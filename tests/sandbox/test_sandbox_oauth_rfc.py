"""The sandbox's RFC 6749 mode (`[oauth] dialect = "rfc6749"`), on the wire: RFC 8414 metadata, the authorization
endpoint (PKCE S256 required, `iss` per RFC 9207, errors redirected), the token endpoint (both client authentication
methods, standard answers and §5.2 error bodies, rotation with reuse detection), RFC 7009 revocation, and the API
accepting its Bearer tokens like the WhiteBIT-dialect ones. (The client's side: tests/auth, harness
"sandbox-rfc6749".)"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from botkit.sandbox.config import load_sandbox_config
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config

CLIENT, SECRET = "botkit-demo", "botkit-demo-secret"
REDIRECT = "http://127.0.0.1:8766/callback"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


@pytest_asyncio.fixture
async def rfc() -> AsyncIterator[Sandbox]:
    base = load_sandbox_config(None)
    cfg = test_config(base.model_copy(update={"oauth": base.oauth.model_copy(update={"dialect": "rfc6749"})}))
    async with running_sandbox(cfg) as sb:
        yield sb


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


async def _authorize(c: httpx.AsyncClient, **over: str) -> dict[str, str]:
    q = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "state": "st",
         "code_challenge": CHALLENGE, "code_challenge_method": "S256", **over}
    r = await c.get("/authorize", params={k: v for k, v in q.items() if v != ""})
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    assert loc.startswith(REDIRECT)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))


async def _tokens(c: httpx.AsyncClient, **over: str) -> httpx.Response:
    code = (await _authorize(c))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER,
            **over}
    return await c.post("/token", data={k: v for k, v in form.items() if v != ""}, headers=_basic(CLIENT, SECRET))


async def test_metadata_authorize_and_token_are_standard(rfc: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=rfc.base_url) as c:
        meta = (await c.get("/.well-known/oauth-authorization-server")).json()
        assert meta["issuer"] == rfc.base_url and meta["token_endpoint"] == rfc.base_url + "/token"
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert meta["revocation_endpoint"] == rfc.base_url + "/revoke"
        assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
        # WhiteBIT's own endpoints are not served in this mode
        assert (await c.get("/auth/login", params={"clientId": CLIENT})).status_code == 404
        assert (await c.post("/oauth2/token", data={})).status_code in (404, 405)

        cb = await _authorize(c, scope="users.balances.read general")
        assert cb["iss"] == rfc.base_url and cb["state"] == "st" and "code" in cb
        form = {"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": REDIRECT,
                "code_verifier": VERIFIER, "client_id": CLIENT, "client_secret": SECRET}  # client_secret_post
        r = await c.post("/token", data=form)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
        tok = r.json()
        assert "data" not in tok and tok["token_type"] == "Bearer" and tok["expires_in"] == 300
        assert tok["scope"] == "general users.balances.read"  # space-separated, as asked (a subset of the client's)
        # the sandbox API accepts the token as it accepts WhiteBIT-dialect ones
        auth = {"Authorization": f"Bearer {tok['access_token']}"}
        r = await c.post("/api/v4/accounts/balances/spot", json={}, headers=auth)
        assert r.status_code == 200 and "USDT" in r.json()
        r = await c.post("/api/v4/accounts/orders", json={}, headers=auth)
        assert r.status_code == 403  # users.orders.read was not asked for, so not granted


async def test_authorization_errors_are_redirected_with_iss(rfc: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=rfc.base_url) as c:
        no_pkce = await _authorize(c, code_challenge="", code_challenge_method="")
        assert no_pkce["error"] == "invalid_request" and no_pkce["iss"] == rfc.base_url and no_pkce["state"] == "st"
        plain = await _authorize(c, code_challenge_method="plain")
        assert plain["error"] == "invalid_request" and "S256" in plain["error_description"]
        assert (await _authorize(c, scope="orders.create"))["error"] == "invalid_scope"  # not the client's
        assert (await _authorize(c, response_type="token"))["error"] == "unsupported_response_type"
        # an unknown client or an unregistered redirect never gets a redirect (RFC 6749 §4.1.2.1)
        r = await c.get("/authorize", params={"response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT})
        assert r.status_code == 400
        r = await c.get("/authorize", params={"response_type": "code", "client_id": CLIENT,
                                              "redirect_uri": "http://evil.example/cb"})
        assert r.status_code == 400


async def test_token_endpoint_errors_are_rfc6749_bodies(rfc: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=rfc.base_url) as c:
        r = await _tokens(c, code_verifier="w" * 50)
        assert r.status_code == 400 and r.json() == {"error": "invalid_grant",
                                                     "error_description": "PKCE verification failed."}
        r = await _tokens(c, redirect_uri="")  # named in the authorization request, so required here (§4.1.3)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        code = (await _authorize(c))["code"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
        r = await c.post("/token", data=form, headers=_basic(CLIENT, "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        r = await c.post("/token", data=form, headers=_basic(CLIENT, SECRET))  # a stranger cannot spend our code
        assert r.status_code == 200 and r.json()["refresh_token"]
        r = await c.post("/token", data=form, headers=_basic(CLIENT, SECRET))  # but a code is single-use
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = await c.post("/token", data={"grant_type": "password"}, headers=_basic(CLIENT, SECRET))
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


async def test_refresh_rotates_a_replay_kills_the_grant_and_revocation_works(rfc: Sandbox) -> None:
    rfc.config.oauth.refresh_rate_per_s = 0  # (read per request) no 1/s limit in this test
    async with httpx.AsyncClient(base_url=rfc.base_url) as c:
        first = (await _tokens(c)).json()
        auth = _basic(CLIENT, SECRET)
        r = await c.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                         headers=auth)
        second = r.json()
        assert r.status_code == 200 and second["refresh_token"] != first["refresh_token"]
        wider = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "scope": "orders.create"}
        r = await c.post("/token", data=wider, headers=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"  # never wider than granted (§6)
        # replaying the spent refresh token: invalid_grant, and the whole grant is revoked (RFC 9700 §4.14.2)
        r = await c.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                         headers=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert rfc.oauth.counters.reuse_detected == 1
        r = await c.post("/api/v4/accounts/balances/spot", json={},
                         headers={"Authorization": f"Bearer {second['access_token']}"})
        assert r.status_code == 401

        # RFC 7009: revoking a refresh token ends its grant, access tokens included; an unknown token is 200 too
        live = (await _tokens(c)).json()
        bearer = {"Authorization": f"Bearer {live['access_token']}"}
        assert (await c.post("/api/v4/accounts/balances/spot", json={}, headers=bearer)).status_code == 200
        r = await c.post("/revoke", data={"token": live["refresh_token"], "token_type_hint": "refresh_token"},
                         headers=auth)
        assert r.status_code == 200 and rfc.oauth.counters.revoked == 1
        assert (await c.post("/api/v4/accounts/balances/spot", json={}, headers=bearer)).status_code == 401
        r = await c.post("/token", data={"grant_type": "refresh_token", "refresh_token": live["refresh_token"]},
                         headers=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert (await c.post("/revoke", data={"token": "unknown"}, headers=auth)).status_code == 200
        assert (await c.post("/revoke", data={"token": "unknown"})).status_code == 401  # client auth required
