"""Login against real servers: redirect URIs, RFC 9207 `iss`, the wait, and everything checked before the browser.

`botkit auth login` runs as a task with the real loopback listener; the test plays the browser (conftest / the Cli
helper of test_auth_cli.py). Servers: the sandbox (WhiteBIT dialect) and oidc-provider (RFC 6749).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import urllib.parse
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from botkit.auth.errors import AuthError, AuthorizationFailed
from botkit.auth.login import LoopbackListener, complete_login, interactive_login
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import SANDBOX_REDIRECT_PORT, AuthSettings, ConfigError, auth_settings_from_mapping
from botkit.auth.store import store_for

from .conftest import WB_CLIENT, Cli, _rfc_harness, browse_until, callback_params, free_port, write_config


# -- redirect hosts (item: `localhost` is not a loopback address) -----------------------------------------------------
def test_localhost_is_refused_as_redirect_host_with_the_key_and_the_fix():
    with pytest.raises(ConfigError) as ei:
        auth_settings_from_mapping({"client_id": "c", "redirect_uri": "http://localhost:8765/callback"}, {})
    text = str(ei.value)
    assert "auth.redirect_uri" in text and "'localhost' is not allowed" in text
    assert "http://127.0.0.1:8765/callback" in text  # the fix, spelled out
    with pytest.raises(ConfigError, match=r"auth\.redirect_host = 'localhost'.*'127\.0\.0\.1'"):
        auth_settings_from_mapping({"client_id": "c", "redirect_host": "localhost"}, {})
    with pytest.raises(ValueError, match="loopback"):
        LoopbackListener("localhost")
    ok = auth_settings_from_mapping({"client_id": "c", "redirect_uri": "http://[::1]:8765/callback"}, {})
    assert ok.redirect_uri == "http://[::1]:8765/callback"
    assert LoopbackListener("::1", 8765).redirect_uri == "http://[::1]:8765/callback"


async def test_an_ipv6_loopback_redirect_completes_a_login(rfc_server, tmp_path, secret_env):
    secret_env("botkit-post-secret")
    cfg = write_config(tmp_path, dialect="rfc6749", base_url=rfc_server.issuer, use_metadata=True,
                       client_id="botkit-post", client_auth="client_secret_post", scopes=["balances.read"],
                       redirect_host="::1", token_dir=str(tmp_path / "tok"))
    cli = Cli("login", cfg)
    url = await cli.url
    assert "redirect_uri=http%3A%2F%2F%5B%3A%3A1%5D%3A" in url  # http://[::1]:PORT/callback
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        assert (await browser.get(url)).status_code == 200
    assert await cli.result() == 0, cli.text


# -- RFC 9207 (item: `iss` is required when the server advertises it) ------------------------------------------------
async def test_iss_is_required_when_the_metadata_advertises_it(rfc_server, tmp_path, http):
    h = await _rfc_harness(rfc_server)
    s = h.settings(tmp_path)
    client = OAuthClient(s, http)
    meta = await client.discover()
    assert meta["authorization_response_iss_parameter_supported"] is True
    req = client.authorization_request(s.redirect_uri)
    code, state, iss = await h.authorize(req)
    before = await h.counts()
    with pytest.raises(AuthorizationFailed, match="no `iss`.*RFC 9207"):
        await complete_login(client, req, {"code": code, "state": state})  # iss stripped (mix-up attacker)
    with pytest.raises(AuthorizationFailed, match="mix-up"):
        await complete_login(client, req, {"code": code, "state": state, "iss": "http://127.0.0.1:1"})
    assert (await h.counts())["code_exchange"] == before["code_exchange"]  # the code was never sent anywhere
    token = await complete_login(client, req, {"code": code, "state": state, **iss})
    assert token.refresh_token is not None and client.iss_required


# -- expires_in (item: 0 is "already expired", negative is refused) --------------------------------------------------
async def test_expires_in_zero_is_already_expired(wb_harness, tmp_path, http, login):
    h = await wb_harness(access_ttl=0)
    s = await login(h, tmp_path, http)
    t = s.manager.token
    assert t.expires_at == t.obtained_at  # not the 300 s default


async def test_a_negative_expires_in_is_refused_naming_the_value(wb_harness, tmp_path, http, login):
    h = await wb_harness(access_ttl=-5)
    with pytest.raises(AuthError, match=r"expires_in = -5.*0 or more seconds"):
        await login(h, tmp_path, http)
    assert store_for(h.settings(tmp_path), environ={}).load() is None  # nothing stored


# -- client_secret_basic (item: form-encoded before base64, RFC 6749 §2.3.1) -----------------------------------------
async def test_basic_credentials_are_form_encoded(tmp_path, http):
    seen: list[str] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"access_token": "a" * 20, "token_type": "Bearer", "expires_in": 60})

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        client_id, secret = "bot kit+id", "s3cr et/+%:é~*"
        s = AuthSettings(dialect="rfc6749", base_url=f"http://127.0.0.1:{port}", client_id=client_id,
                         client_secret=SecretStr(secret), client_auth="client_secret_basic", token_dir=tmp_path)
        await OAuthClient(s, http).exchange_code(SecretStr("code"), None, None)
    finally:
        await runner.cleanup()
    scheme, _, value = seen[0].partition(" ")
    user, _, pw = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic"
    assert (user, pw) == ("bot+kit%2Bid", "s3cr+et%2F%2B%25%3A%C3%A9~%2A")  # application/x-www-form-urlencoded
    assert (urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)) == (client_id, secret)


async def test_basic_credentials_with_reserved_characters_work_against_the_rfc_server(rfc_server, tmp_path, http):
    h = await _rfc_harness(rfc_server)
    s = h.settings(tmp_path, client_id="botkit-basic-special")
    s = s.model_copy(update={"client_secret": SecretStr("botkit special: secret+/%&~*")})
    client = OAuthClient(s, http)
    await client.discover()
    req = client.authorization_request(s.redirect_uri)
    code, state, iss = await h.authorize(req)
    token = await complete_login(client, req, {"code": code, "state": state, **iss})
    assert token.refresh_token is not None


# -- redirect_uri in the login URL and the token request ---------------------------------------------------------------
async def test_whitebit_login_names_its_redirect_and_repeats_it_in_the_token_request(
    wb_sandbox_factory, tmp_path
):
    sb = await wb_sandbox_factory()  # the client's registered redirect: http://127.0.0.1/callback (any port)
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    s = AuthSettings(dialect="whitebit", base_url=sb.base_url, client_id=WB_CLIENT, redirect_uri=redirect,
                     client_secret=SecretStr("botkit-test-secret-value-0123456789"), token_dir=tmp_path)
    bodies: dict[str, bytes] = {}

    async def record(request: httpx.Request) -> None:
        bodies[request.url.path] = request.content

    urls: list[str] = []
    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        task = asyncio.create_task(interactive_login(s, http, out=urls.append, open_browser=False))
        while not urls:
            await asyncio.sleep(0.01)
        url = urls[0].splitlines()[1].strip()
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert query["redirect_uri"] == redirect
        assert "code_challenge" not in query  # with redirect_uri + a challenge, WhiteBIT would run Flow B
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            assert (await browser.get(url)).status_code == 200  # the sandbox sent it to *our* port
        _client, token, _ = await asyncio.wait_for(task, 10)
    assert token.refresh_token is not None  # a Flow A session, not a Flow B key token
    form = dict(urllib.parse.parse_qsl(bodies["/oauth2/token"].decode()))
    assert form["redirect_uri"] == redirect  # RFC 6749 §4.1.3: the very same value


async def test_login_on_a_port_of_its_choice_works_against_the_sandbox(wb_sandbox_factory, tmp_path, secret_env):
    """The registered redirect is not on this port: only a URL that names its redirect_uri gets the code here."""
    sb = await wb_sandbox_factory()
    sb.oauth._clients[WB_CLIENT].redirect_uris[:] = [f"http://127.0.0.1:{SANDBOX_REDIRECT_PORT}/callback"]
    secret_env("botkit-test-secret-value-0123456789")
    port = free_port()
    cfg = write_config(tmp_path, dialect="whitebit", base_url=sb.base_url, client_id=WB_CLIENT,
                       redirect_uri=f"http://127.0.0.1:{port}/callback", token_dir=str(tmp_path / "tok"))
    cli = Cli("login", cfg)
    async with httpx.AsyncClient() as browser:
        got = await browse_until(browser, await cli.url, "http://127.0.0.1:")
        assert urllib.parse.urlsplit(got).port == port
        assert "code" in callback_params(got)
        await browser.get(got)
    assert await cli.result() == 0, cli.text


# -- the sandbox's demo client, out of the box ------------------------------------------------------------------------
async def test_login_against_the_default_sandbox_works_out_of_the_box(tmp_path, secret_env):
    from botkit.sandbox.config import load_sandbox_config
    from botkit.sandbox.server import Sandbox
    from botkit.sandbox.testing import test_config

    cfg_sb = load_sandbox_config(None)
    demo = next(c for c in cfg_sb.oauth.clients if c.client_id == "botkit-demo")
    registered = urllib.parse.urlsplit(demo.redirect_uris[0])
    assert registered.port not in (None, 8765)  # not the sandbox's own default port
    sb = Sandbox(test_config(cfg_sb))
    await sb.start()
    try:
        settings = auth_settings_from_mapping({"base_url": sb.base_url, "client_id": "botkit-demo"}, {})
        assert settings.redirect_uri == demo.redirect_uris[0]  # what `botkit auth login` uses by default
        secret_env(demo.client_secret.get_secret_value())
        cfg = write_config(tmp_path, base_url=sb.base_url, client_id="botkit-demo", token_dir=str(tmp_path / "t"))
        cli = Cli("login", cfg)
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(await cli.url)
        assert page.status_code == 200 and "close this window" in page.text
        assert await cli.result() == 0, cli.text
        assert sb.oauth.counters.token_ok == 1
    finally:
        await sb.stop()


# -- the wait is announced, bounded and configurable -------------------------------------------------------------------
async def test_login_says_what_it_waits_for_how_long_and_how_to_cancel(wb_sandbox_factory, tmp_path, secret_env):
    sb = await wb_sandbox_factory()
    secret_env("botkit-test-secret-value-0123456789")
    port = free_port()
    cfg = write_config(tmp_path, dialect="whitebit", base_url=sb.base_url, client_id=WB_CLIENT,
                       redirect_uri=f"http://127.0.0.1:{port}/callback", token_dir=str(tmp_path / "tok"),
                       login_timeout_s=120)
    cli = Cli("login", cfg)
    await cli.url
    wait_line = cli.out[0].splitlines()[2]
    assert "Waiting up to 120 s" in wait_line and f"127.0.0.1:{port}/callback" in wait_line
    assert "Ctrl+C" in wait_line and "--timeout" in wait_line
    cli.task.cancel()
    quick = Cli("login", cfg, timeout=0.2)  # --timeout overrides the config
    await quick.url
    assert "Waiting up to 0.2 s" in quick.out[0]
    assert await quick.result() == 1
    assert "no authorization callback within 0.2 s" in quick.text and "--timeout" in quick.text


# -- everything checkable is checked before the browser opens ---------------------------------------------------------
async def _run_until_url_or_exit(cli: Cli) -> str | None:
    done, _ = await asyncio.wait({cli.task, cli.url}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    return cli.url.result() if cli.url in done else None


async def test_an_unusable_token_folder_fails_before_the_url_is_shown(wb_sandbox_factory, tmp_path, secret_env):
    sb = await wb_sandbox_factory()
    secret_env("botkit-test-secret-value-0123456789")
    tok = tmp_path / "tok"
    tok.mkdir(mode=0o755)
    os.chmod(tok, 0o755)  # readable by others: the store refuses it
    cfg = write_config(tmp_path, dialect="whitebit", base_url=sb.base_url, client_id=WB_CLIENT,
                       redirect_uri=f"http://127.0.0.1:{free_port()}/callback", token_dir=str(tok))
    cli = Cli("login", cfg)
    url = await _run_until_url_or_exit(cli)
    if url is not None:  # before the fix: the user consents, and the one-time code is spent on a failing save
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            with contextlib.suppress(httpx.HTTPError):
                await browser.get(url)
    assert await cli.result() == 1
    assert url is None and f"chmod 700 {tok}" in cli.text
    assert sb.oauth.counters.authorize_requests == 0 and sb.oauth.counters.token_requests == 0


async def test_a_busy_redirect_port_fails_before_the_url_is_shown(wb_sandbox_factory, tmp_path, secret_env):
    sb = await wb_sandbox_factory()
    secret_env("botkit-test-secret-value-0123456789")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, dialect="whitebit", base_url=sb.base_url, client_id=WB_CLIENT,
                           redirect_uri=f"http://127.0.0.1:{port}/callback", token_dir=str(tmp_path / "tok"))
        cli = Cli("login", cfg)
        assert await _run_until_url_or_exit(cli) is None
        assert await cli.result() == 1
    assert f"port {port}" in cli.text and "auth.redirect_uri" in cli.text
    assert sb.oauth.counters.authorize_requests == 0


def test_the_demo_clients_redirect_is_the_default_for_a_local_server():
    s: Any = auth_settings_from_mapping({"base_url": "http://127.0.0.1:8765", "client_id": "botkit-demo"}, {})
    assert s.redirect_uri == f"http://127.0.0.1:{SANDBOX_REDIRECT_PORT}/callback"
    remote = auth_settings_from_mapping({"base_url": "https://whitebit.com", "client_id": "partner"}, {})
    assert remote.redirect_uri is None  # WhiteBIT: the registered URI must be configured
