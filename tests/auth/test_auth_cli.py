"""`botkit auth login|apikey|status|logout` end to end: real loopback listener, real servers, a scripted browser."""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx
import pytest

from botkit.auth.settings import load_auth_settings
from botkit.auth.signing import HmacSigner
from botkit.auth.store import store_for
from botkit.market.grants import Grant
from botkit.whitebit.rest import WhiteBitRest

from .conftest import Cli, free_port, write_config


async def wb_setup(wb_harness, tmp_path, secret_env, **sandbox):
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    h = await wb_harness(**sandbox)
    sb = h.extra["sandbox"]
    sb.oauth._clients[h.base_settings["client_id"]].redirect_uris[:] = [redirect]
    secret_env(h.secret)
    cfg = write_config(tmp_path, dialect="whitebit", base_url=h.base_settings["base_url"],
                       client_id=h.base_settings["client_id"], redirect_uri=redirect, token_dir=str(tmp_path / "tok"),
                       apikey_poll_s=0.05, apikey_lock_backoff_s=0.1)
    return h, sb, cfg, redirect


async def test_login_status_logout_whitebit(wb_harness, tmp_path, secret_env):
    h, sb, cfg, redirect = await wb_setup(wb_harness, tmp_path, secret_env)
    cli = Cli("login", cfg)
    url = await cli.url
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(url)  # sandbox consent (auto-approve) -> our loopback listener
    assert page.status_code == 200 and "close this window" in page.text
    assert await cli.result() == 0, cli.text
    assert sb.oauth.counters.token_ok == 1
    with pytest.raises(httpx.ConnectError):  # exactly one callback, then the listener is gone
        async with httpx.AsyncClient() as again:
            await again.get(redirect)
    stored = store_for(load_auth_settings(cfg)).load()
    assert stored is not None and stored.token is not None and stored.token.refresh_token is not None
    secrets = [stored.token.access_token.get_secret_value(), stored.token.refresh_token.get_secret_value(), h.secret]
    status = Cli("status", cfg)
    assert await status.result() == 0
    assert "users.balances.read" in status.text and "expires in" in status.text
    assert not any(s in status.text or s in cli.text for s in secrets)
    logout = Cli("logout", cfg)
    assert await logout.result() == 0
    assert "no revocation" in logout.text and "local credentials deleted" in logout.text
    assert store_for(load_auth_settings(cfg)).load() is None
    assert await Cli("status", cfg).result() == 1


async def test_login_rejects_a_tampered_state(wb_harness, tmp_path, secret_env):
    _h, sb, cfg, redirect = await wb_setup(wb_harness, tmp_path, secret_env)
    cli = Cli("login", cfg)
    url = await cli.url
    async with httpx.AsyncClient() as browser:
        r = await browser.get(url)
        loc = r.headers["Location"]
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
        q["state"] = "forged-" + q["state"][:10]
        await browser.get(redirect + "?" + urllib.parse.urlencode(q))
    assert await cli.result() == 1
    assert "state" in cli.text and q["code"] not in cli.text
    assert sb.oauth.counters.token_requests == 0  # the code was never exchanged


async def test_login_reports_a_denied_consent_in_words(wb_harness, tmp_path, secret_env):
    h, sb, cfg, _redirect = await wb_setup(wb_harness, tmp_path, secret_env, auto_approve=False)
    cli = Cli("login", cfg)
    url = await cli.url
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(url)
        assert "Approve" in page.text and "Deny" in page.text
        tx = page.text.split('name="tx" value="')[1].split('"')[0]
        await browser.post(h.base_settings["base_url"] + "/auth/login/decision", data={"tx": tx, "decision": "deny"})
    assert await cli.result() == 1
    assert "denied on the consent screen" in cli.text
    assert sb.oauth.counters.token_requests == 0


async def test_bad_config_is_exit_2_with_field_value_and_fix(tmp_path, secret_env):
    secret_env("x")
    cfg = write_config(tmp_path, dialect="whitebit", client_id="c", leeway_s=-5, redirect_host="0.0.0.0")
    cli = Cli("status", cfg)
    assert await cli.result() == 2
    assert "auth.leeway_s = -5" in cli.text and "auth.redirect_host = '0.0.0.0'" in cli.text
    assert "127.0.0.1" in cli.text
    p = tmp_path / "bot.toml"
    p.write_text('[auth]\nclient_id = "c"\nclient_secret = "oops"\n')
    cli2 = Cli("status", str(p))
    assert await cli2.result() == 2 and "BOTKIT_AUTH__CLIENT_SECRET" in cli2.text and "oops" not in cli2.text
    p.write_text('[auth]\nclient_id = "c"\nclientsecret = 1\n')
    cli3 = Cli("status", str(p))
    assert await cli3.result() == 2 and "auth.clientsecret" in cli3.text and "spelling" in cli3.text


async def test_login_and_logout_against_the_rfc_server(rfc_server, tmp_path, secret_env):
    secret_env("botkit-post-secret")
    cfg = write_config(tmp_path, dialect="rfc6749", base_url=rfc_server.issuer, use_metadata=True,
                       client_id="botkit-post", client_auth="client_secret_post", scopes=["balances.read"],
                       redirect_port=0, token_dir=str(tmp_path / "tok"))
    cli = Cli("login", cfg)
    url = await cli.url
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(url)
    assert page.status_code == 200
    assert await cli.result() == 0, cli.text
    settings = load_auth_settings(cfg)
    stored = store_for(settings).load()
    assert stored is not None and stored.token is not None
    assert stored.token.scopes == {"balances.read"}
    logout = Cli("logout", cfg)
    assert await logout.result() == 0 and "refresh token revoked" in logout.text
    # RFC 7009 really happened: the revoked refresh token is now refused by the server
    from botkit.auth.oauth import InvalidGrant, OAuthClient

    async with httpx.AsyncClient() as http:
        client = OAuthClient(settings, http)
        await client.discover()
        with pytest.raises(InvalidGrant):
            await client.refresh(stored.token)


async def test_fast_api_key_flow_then_signed_trading_on_the_sandbox(wb_harness, tmp_path, secret_env):
    h, sb, cfg, _redirect = await wb_setup(
        wb_harness, tmp_path, secret_env, api_key_ready_after_polls=2, api_key_secret_locks=1
    )
    cli = Cli("apikey", cfg)
    url = await cli.url
    assert "redirect_uri=" in url and "code_challenge_method=S256" in url
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(url)
    assert await cli.result() == 0, cli.text
    c = sb.oauth.counters
    assert c.apikey_info_requests == 3 and c.apikey_secret_requests == 2  # 2 "not yet" polls; one 423
    both = store_for(load_auth_settings(cfg)).load()
    creds = both.api_key if both is not None else None
    assert creds is not None and creds.api_secret.get_secret_value() not in cli.text
    assert "orders.create" in creds.permissions
    key = sb.keys.get(creds.api_key)
    assert key is not None and key.external_id == creds.external_id and key.secret_retrieved
    async with httpx.AsyncClient() as http:
        rest = await WhiteBitRest.from_settings(load_auth_settings(cfg), http)  # what a bot does at start
        balance = await rest.call("trade_balance")  # HMAC with the new key, checked by the sandbox
        main = await rest.call("accounts_balance_main")  # Bearer with the Flow B token
        manual = WhiteBitRest(h.resource_base, http, signer=HmacSigner(creds.api_key, creds.api_secret),
                              key_grant=Grant(creds.permissions))
        assert isinstance(await manual.call("open_orders", {"market": "BTC_USDT"}), list)
    assert isinstance(balance, dict) and isinstance(main, dict)
    # a second run: the one OAuth key already exists and its secret was taken -> 409, explained
    again = Cli("apikey", cfg, api_key=creds.api_key)  # the sandbox redirects no new key: the user passes it
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await again.url)
    assert await again.result() == 1 and "already retrieved" in again.text and "--delete-key" in again.text
    out = Cli("logout", cfg, delete_key=True)
    assert await out.result() == 0
    assert "deleted at the exchange" in out.text and sb.keys.get(creds.api_key) is None


async def test_apikey_without_public_key_says_how_to_pass_it(wb_harness, tmp_path, secret_env):
    _h, sb, cfg, _redirect = await wb_setup(wb_harness, tmp_path, secret_env, api_key_redirect_param=None)
    cli = Cli("apikey", cfg)
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await cli.url)
    assert await cli.result() == 1 and "--api-key" in cli.text
    assert sb.oauth.counters.apikey_secret_requests == 0  # nothing fetched that we could not store


async def test_rfc_error_redirect_is_reported_in_words(rfc_server, tmp_path, secret_env):
    secret_env("botkit-basic-secret")
    cfg = write_config(tmp_path, dialect="rfc6749", base_url=rfc_server.issuer, use_metadata=True,
                       client_id="botkit-basic", scopes=["balances.read"], token_dir=str(tmp_path / "tok"))
    async with httpx.AsyncClient() as admin:
        await admin.get(rfc_server.issuer + "/_admin/deny", params={"on": "1"})
        try:
            cli = Cli("login", cfg)
            async with httpx.AsyncClient(follow_redirects=True) as browser:
                await browser.get(await cli.url)
            assert await cli.result() == 1
        finally:
            await admin.get(rfc_server.issuer + "/_admin/deny", params={"on": "0"})
    assert "denied on the consent screen" in cli.text and "user said no" in cli.text
    assert store_for(load_auth_settings(cfg)).load() is None


async def test_apikey_after_login_keeps_the_login_session(wb_harness, tmp_path, secret_env):
    _h, _sb, cfg, _redirect = await wb_setup(wb_harness, tmp_path, secret_env)
    login = Cli("login", cfg)
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await login.url)
    assert await login.result() == 0, login.text
    session = store_for(load_auth_settings(cfg)).load()
    assert session is not None and session.token is not None and session.token.refresh_token is not None
    apikey = Cli("apikey", cfg)
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await apikey.url)
    assert await apikey.result() == 0, apikey.text
    both = store_for(load_auth_settings(cfg)).load()
    assert both is not None and both.api_key is not None and both.key_token is not None
    assert both.token == session.token  # the Flow A session is untouched ...
    assert both.key_token.refresh_token is None  # ... and the Flow B token sits beside it
    status = Cli("status", cfg)
    assert await status.result() == 0
    assert "refresh:  rt=" in status.text and "none (cannot refresh)" not in status.text
    assert "api key:  " in status.text and "key flow token:" in status.text
    async with httpx.AsyncClient() as http:  # a bot started now refreshes the session and signs with the key
        rest = await WhiteBitRest.from_settings(load_auth_settings(cfg), http)
        assert rest.tokens is not None and rest.tokens.slot == "token" and rest.signer is not None
        assert isinstance(await rest.call("trade_balance"), dict)


async def test_logout_waits_for_the_store_lock_and_removes_what_a_refresh_just_saved(rfc_server, tmp_path,
                                                                                      secret_env):
    """A bot refreshing (holding the store lock) while `logout` runs: logout waits, then revokes and deletes the
    rotated token the bot saved, not the spent one it read before."""
    from botkit.auth.oauth import InvalidGrant, OAuthClient
    from botkit.auth.store import StoredCredentials

    secret_env("botkit-post-secret")
    cfg = write_config(tmp_path, dialect="rfc6749", base_url=rfc_server.issuer, use_metadata=True,
                       client_id="botkit-post", client_auth="client_secret_post", scopes=["balances.read"],
                       token_dir=str(tmp_path / "tok"))
    cli = Cli("login", cfg)
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await cli.url)
    assert await cli.result() == 0, cli.text
    settings = load_auth_settings(cfg)
    store = store_for(settings)
    old = store.load().token
    async with httpx.AsyncClient() as http:
        client = OAuthClient(settings, http)
        await client.discover()
        async with store.locked():  # "the bot": lock, refresh (rotates), persist
            logout = Cli("logout", cfg)
            await asyncio.sleep(0.3)
            assert not logout.task.done() and store.path.exists()  # logout waits for the lock
            new = await client.refresh(old)
            store.save(StoredCredentials(token=new))
        assert await logout.result() == 0, logout.text
        assert "refresh token revoked" in logout.text and not store.path.exists()
        with pytest.raises(InvalidGrant):  # the rotated refresh token, the one that was live, is revoked
            await client.refresh(new)
