"""Interactive login: loopback redirect listener, callback validation, one code exchange.

The listener binds 127.0.0.1 or ::1 only (never 0.0.0.0, never the name `localhost`), takes exactly one callback
and closes (RFC 8252 §7.3/§8.3). The callback is checked before anything else: `error=` redirects become words, a
state mismatch discards the code (CSRF), an `iss` that is not our issuer is refused, and so is a missing `iss` when
the server's metadata promises one (RFC 9207).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from aiohttp import web
from pydantic import SecretStr

from botkit.auth.errors import AuthorizationFailed, StateMismatch
from botkit.auth.oauth import AuthorizationRequest, OAuthClient, states_equal
from botkit.auth.settings import LOOPBACK_HOSTS, AuthSettings, ConfigError
from botkit.auth.tokens import TokenSet

log = logging.getLogger("botkit.auth.login")

_DONE_PAGE = (
    "<!doctype html><title>botkit</title><p>botkit received the authorization response. "
    "You can close this window and return to the terminal.</p>"
)


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """Parameters of the one redirect the listener accepted (values may be secrets: never log them)."""

    params: Mapping[str, str]

    def __repr__(self) -> str:
        return f"CallbackResult(keys={sorted(self.params)})"


class LoopbackListener:
    """One-shot HTTP listener for the authorization redirect."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, path: str = "/callback", *, setting: str = "auth.redirect_port"
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"redirect host {host!r} is not a loopback address; use 127.0.0.1 or ::1")
        self.host = host
        self.port = port
        self.path = path
        self.setting = setting  # the config key that chose the port, for the "port in use" advice
        self._runner: web.AppRunner | None = None
        self._result: asyncio.Future[CallbackResult] | None = None

    @property
    def redirect_uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def start(self) -> str:
        self._result = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_get(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise AuthorizationFailed(
                f"cannot listen for the redirect on {self.redirect_uri} ({exc.strerror}): stop what uses port "
                f"{self.port}, or change {self.setting} (and register the new URI with the server)"
            ) from None
        server = site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        return self.redirect_uri

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._result is not None
        if self._result.done():
            return web.Response(status=410, text="This login attempt already received its callback.")
        self._result.set_result(CallbackResult(dict(request.query)))
        return web.Response(text=_DONE_PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def wait(self, timeout: float) -> CallbackResult:
        assert self._result is not None, "start() first"
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise AuthorizationFailed(
                f"no authorization callback within {timeout:g} s; run the login again (auth.login_timeout_s or "
                "--timeout sets how long it waits)"
            ) from None
        finally:
            await self.close()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def code_from_callback(
    req: AuthorizationRequest, params: Mapping[str, str], issuer: str | None, *, iss_required: bool = False
) -> SecretStr:
    """Validate a callback in the order that keeps secrets safe: error, state, iss; then return the code.
    `iss_required`: the server advertises `authorization_response_iss_parameter_supported` (RFC 9207 §2.4)."""
    if "error" in params:
        desc = params.get("error_description", "")
        words = {
            "access_denied": "the authorization was denied on the consent screen",
            "invalid_scope": "the requested scopes are not allowed for this client (check auth.scopes)",
            "unauthorized_client": "this client may not use the authorization code flow (check the registration)",
        }.get(params["error"], "the authorization server refused the request")
        raise AuthorizationFailed(f"{words}" + (f": {desc[:200]}" if desc else ""), error=params["error"])
    state = params.get("state")
    if state is None or not states_equal(state, req.state):
        raise StateMismatch("the callback's state does not match this login attempt; code discarded, log in again")
    iss = params.get("iss")
    if iss is None and iss_required:
        raise AuthorizationFailed(
            f"the callback carries no `iss`, although {issuer or 'the server'} promises one in its metadata "
            "(RFC 9207); the response may come from another server (mix-up): refused, log in again"
        )
    if iss is not None and issuer is not None and iss.rstrip("/") != issuer.rstrip("/"):
        raise AuthorizationFailed(f"the callback came from issuer {iss!r}, expected {issuer!r} (mix-up); refused")
    code = params.get("code")
    if not code:
        raise AuthorizationFailed("the callback has no code; log in again")
    return SecretStr(code)


async def complete_login(
    client: OAuthClient, req: AuthorizationRequest, params: Mapping[str, str]
) -> TokenSet:
    issuer = client.s.expected_issuer if client.s.dialect == "rfc6749" else None
    code = code_from_callback(req, params, issuer, iss_required=client.iss_required)
    return await client.exchange_code(code, req.pkce, req.redirect_uri)


def _listener_for(settings: AuthSettings) -> LoopbackListener:
    if settings.redirect_uri:
        u = urllib.parse.urlsplit(settings.redirect_uri)
        return LoopbackListener(u.hostname or "127.0.0.1", u.port or 80, u.path or "/", setting="auth.redirect_uri")
    return LoopbackListener(settings.redirect_host, settings.redirect_port, settings.redirect_path)


async def interactive_login(
    settings: AuthSettings,
    http: httpx.AsyncClient,
    *,
    flow: str = "code",
    out: Callable[[str], None] = print,
    open_browser: bool | None = None,
    timeout_s: float | None = None,
) -> tuple[OAuthClient, TokenSet, CallbackResult]:
    """Run one login attempt end to end; fresh state and PKCE each time. Returns the token and the callback.
    Everything that can fail without the user (config, metadata, the redirect port) fails before the URL is shown."""
    if settings.dialect == "whitebit" and not settings.redirect_uri:
        raise ConfigError(
            "auth.redirect_uri is not set: WhiteBIT redirects only to the callback registered for the client; set it "
            "to that loopback URL, e.g. 'http://127.0.0.1:8766/callback'"
        )
    timeout = settings.login_timeout_s if timeout_s is None else timeout_s
    client = OAuthClient(settings, http)
    if settings.use_metadata:
        await client.discover()
    listener = _listener_for(settings)
    redirect_uri = await listener.start()
    try:
        redirect_uri = settings.redirect_uri or redirect_uri  # a registered URI is sent exactly as configured
        req = client.authorization_request(redirect_uri, flow=flow)  # sent, and repeated in the token request
        out(f"Open this URL to authorize botkit:\n  {req.url}\n"
            f"Waiting up to {timeout:g} s for the authorization redirect to {redirect_uri} "
            "(Ctrl+C cancels; auth.login_timeout_s or --timeout changes the wait) ...")
        if open_browser if open_browser is not None else settings.open_browser:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(webbrowser.open, req.url)
        result = await listener.wait(timeout)
    finally:
        await listener.close()
    token = await complete_login(client, req, result.params)
    return client, token, result
