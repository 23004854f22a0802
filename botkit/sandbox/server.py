"""The sandbox exchange: one aiohttp server on 127.0.0.1 serving WhiteBIT's REST, OAuth and WebSocket (/ws).

    async with Sandbox() as sb:          # ephemeral port, packaged default.toml
        httpx.get(sb.base_url + "/api/v4/public/markets")

Faults and resets from tests: see botkit/sandbox/faults.py (POST /_sandbox/faults, POST /_sandbox/reset, with the
per-process `admin_token` in `X-Sandbox-Admin`) or call `sandbox.set_faults(...)` / `sandbox.reset()` in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from botkit.sandbox.config import FaultsConfig, SandboxConfig, load_sandbox_config
from botkit.sandbox.engine import Exchange
from botkit.sandbox.faults import Faults, admin_routes, make_middleware
from botkit.sandbox.hmac_auth import HmacAuth
from botkit.sandbox.keys import ApiKey, ApiKeyRegistry
from botkit.sandbox.limits import RestLimits, make_limit_middleware
from botkit.sandbox.liquidity import Liquidity
from botkit.sandbox.oauth import OAuthSandbox
from botkit.sandbox.private import PrivateApi
from botkit.sandbox.public import PublicApi
from botkit.sandbox.ws import WsHub

log = logging.getLogger(__name__)


@web.middleware
async def _gone_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A client that disconnects mid-request is ordinary (a test timing out, a bot killed): one INFO line, no
    traceback. The 499 answer goes nowhere; it only ends the handler cleanly."""
    try:
        return await handler(request)
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError is one too
        log.info("client %s went away during %s %s (%s)", request.remote, request.method, request.path,
                 type(exc).__name__)
        return web.Response(status=499)


class Sandbox:
    """A local WhiteBIT. Binds to loopback only; `port=0` picks a free port (see `base_url` after `start()`)."""

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ValueError(f"host {host!r} is not a loopback address; the sandbox binds to 127.0.0.1 only")
        self.config = config if config is not None else load_sandbox_config(None)
        self._time = clock  # wall seconds; tests inject a fake clock to move token lifetimes and kill switches
        self.host = host
        self.port = port
        self.faults = Faults(self.config.faults)
        self.admin_token = secrets.token_urlsafe(24)  # guards /_sandbox/*; printed once by `botkit sandbox`
        self.keys = ApiKeyRegistry()
        self.exchange = Exchange(self.config, self.clock)
        self.oauth = OAuthSandbox(self.config.oauth, self.keys, clock=self.clock)
        self.hub = WsHub(self.exchange, self.config.server, self.faults, self.clock)
        self.rest_limits = RestLimits(self.config.server.rest_limit_scale, self.config.server.rest_limit_window_scale,
                                      clock=monotonic)  # REST rate-limit windows
        self.liquidity: dict[str, Liquidity] = {}
        self.faults.on_change.append(self._apply_faults)
        self._apply_faults(self.config.faults)
        self._load_keys()
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self._pulse_task: asyncio.Task[None] | None = None

    # ---- public API ----------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def clock(self) -> float:
        """Server time (the injected clock, wall time by default), including any injected clock skew."""
        return self._time() + self.faults.skew

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._start_liquidity()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._pulse_task = asyncio.create_task(self._pulse())

    async def stop(self) -> None:
        if self._pulse_task is not None:
            self._pulse_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pulse_task
            self._pulse_task = None
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def reset(self) -> None:
        """State back to the config: balances, books, orders, keys, OAuth grants, faults, rate-limit windows,
        WebSocket streams."""
        self.hub.reset()
        self.exchange.reset()
        self.private.reset()
        self.keys.clear()
        self._load_keys()
        self.oauth.reset()
        self.faults.reset()
        self.rest_limits.reset()
        if self._runner is not None:
            self._start_liquidity()

    def replay_step(self, market: Any, prints: Any = 1) -> dict[str, Any]:
        """The next `prints` prints of `market`'s lock-step replay (`pace = "step"`); in-process twin of
        POST /_sandbox/replay. ValueError names what is wrong."""
        liq = self.liquidity.get(market) if isinstance(market, str) else None
        if liq is None:
            raise ValueError(f"market {market!r} is not a sandbox market (it has {sorted(self.liquidity)})")
        if isinstance(prints, bool) or not isinstance(prints, int) or not 1 <= prints <= 100_000:
            raise ValueError(f"prints = {prints!r}: give a whole number from 1 to 100000")
        printed = liq.step(prints)
        return {"market": market, "printed": printed, "left": liq.replay_left, "time": self.exchange.replay_time}

    def set_faults(self, **changes: object) -> FaultsConfig:
        """In-process twin of POST /_sandbox/faults."""
        return self.faults.update(dict(changes))

    # ---- internals -----------------------------------------------------------------------------------------------

    def _apply_faults(self, faults: FaultsConfig) -> None:
        self.oauth.refresh_outage = faults.refresh_outage

    def _load_keys(self) -> None:
        for account in self.config.accounts:
            for k in account.api_keys:
                self.keys.add(
                    ApiKey(
                        key=k.key,
                        secret=k.secret.get_secret_value(),
                        account=account.name,
                        permissions=frozenset(k.permissions),
                        enabled=k.enabled,
                    )
                )

    def _start_liquidity(self) -> None:
        now = self.clock()
        self.liquidity = {m.name: Liquidity(self.exchange, m, now) for m in self.config.markets}

    def _status(self) -> str:
        return "system maintenance" if self.faults.config.maintenance else "system operational"

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[_gone_middleware, make_middleware(self.faults), make_limit_middleware(self.rest_limits)],
            client_max_size=1 << 20,
        )
        auth = HmacAuth(self.keys, self.clock, self.config.server.nonce_window_ms)
        app.add_routes(PublicApi(self.exchange, self.clock, self._status).routes())
        self.private = PrivateApi(self.exchange, auth, self.oauth, self.config.server, self.clock)
        app.add_routes(self.private.routes())
        app.add_routes(self.oauth.routes())
        app.add_routes([web.get("/ws", self.hub.handle)])
        app.add_routes(
            admin_routes(
                self.faults,
                self.reset,
                {
                    "revoke_access_tokens": self.oauth.revoke_all_access_tokens,
                    "revoke_refresh_tokens": self.oauth.revoke_all_refresh_tokens,
                    "drop_websockets": self.hub.drop_all,
                },
                self.admin_token,
                self.replay_step,
            )
        )
        return app

    async def _pulse(self) -> None:
        """Liquidity, kill switches and WebSocket publishing, every `server.tick_interval` seconds."""
        interval = self.config.server.tick_interval
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            now = self.clock()
            try:
                for liq in self.liquidity.values():
                    liq.tick(now)
                self.exchange.fire_kill_switches(now)
                self.hub.pulse(now)
            except Exception:  # a bug in one pulse must not stop the market; it is logged and the next pulse runs
                log.exception("sandbox pulse failed")
            deadline = max(deadline + interval, loop.time())  # keep the cadence, never burst to catch up
            await asyncio.sleep(deadline - loop.time())
