"""Faults on purpose: latency, per-endpoint error rates, dropped WebSockets, skipped depth ids, clock skew.

Set them in the `[faults]` table of the sandbox config, or at run time from loopback with the per-process admin
token in `X-Sandbox-Admin` (printed by `botkit sandbox`, `Sandbox.admin_token` in-process); POSTs must be
`Content-Type: application/json`, so a web page in a local browser (which can send text/plain cross-origin without a
preflight, but can neither read the token nor set the header) cannot change faults or reset the sandbox:

    POST /_sandbox/faults   JSON body with any `[faults]` keys, merged into the current faults; answers the result.
                            One-shot actions in the same body: "revoke_access_tokens": true,
                            "revoke_refresh_tokens": true, "drop_websockets": true.
    GET  /_sandbox/faults   the current faults.
    DELETE /_sandbox/faults back to the config's faults.
    POST /_sandbox/reset    balances, books, orders, keys, tokens and faults back to the config.

503 and 429 come with non-JSON bodies (as WhiteBIT's gateway sends them), with Retry-After when `retry_after_s` is
set; 500 with {"error":["Internal server error."]}. `error_counts` injects exactly N faults, then stops.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hmac
import ipaddress
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import ValidationError

from botkit.sandbox.config import FaultsConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_503 = "<html><head><title>503 Service Temporarily Unavailable</title></head><body>maintenance</body></html>"
BODY_429 = "<html><head><title>429 Too Many Requests</title></head><body>rate limit</body></html>"


class Faults:
    """The faults in force now, with a seeded random source so a test run is repeatable."""

    def __init__(self, config: FaultsConfig) -> None:
        self.initial = config
        self.config = config
        self.rng = random.Random(config.seed)
        self.on_change: list[Callable[[FaultsConfig], None]] = []

    def _changed(self) -> None:
        for callback in self.on_change:
            callback(self.config)

    def reset(self) -> None:
        self.config = self.initial
        self.rng = random.Random(self.initial.seed)
        self._changed()

    def update(self, changes: dict[str, Any]) -> FaultsConfig:
        merged = {**self.config.model_dump(), **changes}
        self.config = FaultsConfig.model_validate(merged)
        if "seed" in changes:
            self.rng = random.Random(self.config.seed)
        self._changed()
        return self.config

    @property
    def skew(self) -> float:
        return self.config.clock_skew_s

    def error_for(self, path: str) -> int | None:
        """An injected HTTP status for this request, or None. Counted faults go first and are used up."""
        for pattern, counts in self.config.error_counts.items():
            if fnmatch.fnmatchcase(path, pattern):
                for status, n in counts.items():
                    if n > 0:
                        left = {p: dict(c) for p, c in self.config.error_counts.items()}
                        left[pattern][status] = n - 1
                        self.config = self.config.model_copy(update={"error_counts": left})
                        return int(status)
        for pattern, rates in self.config.error_rates.items():
            if fnmatch.fnmatchcase(path, pattern):
                for status, rate in rates.items():
                    if rate > 0 and self.rng.random() < rate:
                        return int(status)
        return None

    def latency(self) -> float:
        c = self.config
        if c.latency_ms <= 0 and c.latency_jitter_ms <= 0:
            return 0.0
        return max(0.0, c.latency_ms + self.rng.uniform(-c.latency_jitter_ms, c.latency_jitter_ms)) / 1000.0

    def drop_ws(self) -> bool:
        return self.config.ws_drop_rate > 0 and self.rng.random() < self.config.ws_drop_rate

    def skip_depth(self) -> bool:
        return self.config.skip_depth_ids > 0 and self.rng.random() < self.config.skip_depth_ids


def injected_response(status: int, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 503:
        return web.Response(status=503, text=BODY_503, content_type="text/html", headers=headers)
    if status == 429:
        return web.Response(status=429, text=BODY_429, content_type="text/html", headers=headers)
    return web.json_response({"error": ["Internal server error."]}, status=500)


def make_middleware(faults: Faults) -> Middleware:
    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox/"):
            return await handler(request)
        delay = faults.latency()
        if delay:
            await asyncio.sleep(delay)
        if faults.config.maintenance and path.startswith("/api/") and path != "/api/v4/public/platform/status":
            return injected_response(503)
        status = faults.error_for(path)
        if status is not None:
            return injected_response(status, faults.config.retry_after_s)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(status=404, body=b"")  # WhiteBIT: unknown route -> 404, empty body

    return fault_middleware


def is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


ADMIN_HEADER = "X-Sandbox-Admin"


def admin_routes(
    faults: Faults, reset: Callable[[], None], actions: dict[str, Callable[[], None]], token: str,
    replay: Callable[[Any, Any], dict[str, Any]] | None = None,
) -> list[web.RouteDef]:
    """Routes under /_sandbox/ for tests and demos: loopback callers with the admin token only; POST bodies must be
    `application/json`."""

    def guard(request: web.Request, body: bool = False) -> None:
        if not is_loopback(request):
            raise web.HTTPForbidden(text="admin endpoints answer loopback callers only")
        given = request.headers.get(ADMIN_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
            raise web.HTTPForbidden(
                text=f"admin endpoints need the header {ADMIN_HEADER}: <token>; `botkit sandbox` prints the token "
                "at start, in-process it is Sandbox.admin_token"
            )
        if body and request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(
                text=f"Content-Type {request.content_type!r} refused; send the body as application/json"
            )

    async def get_faults(request: web.Request) -> web.Response:
        guard(request)
        return web.json_response(faults.config.model_dump())

    async def post_faults(request: web.Request) -> web.Response:
        guard(request, body=True)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "body must be a JSON object of [faults] keys"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object of [faults] keys"}, status=400)
        done = []
        for name, action in actions.items():
            if body.pop(name, False) is True:
                action()
                done.append(name)
        try:
            config = faults.update(body)
        except ValidationError as exc:
            errors = [
                {"key": ".".join(str(p) for p in e["loc"]), "value": e.get("input"), "error": e["msg"]}
                for e in exc.errors()
            ]
            return web.json_response({"error": "bad faults", "details": errors}, status=422)
        return web.json_response({**config.model_dump(), "done": done})

    async def delete_faults(request: web.Request) -> web.Response:
        guard(request)
        faults.reset()
        return web.json_response(faults.config.model_dump())

    async def post_reset(request: web.Request) -> web.Response:
        guard(request, body=True)
        reset()
        return web.json_response({"status": "reset"})

    async def post_replay(request: web.Request) -> web.Response:
        """A lock-step replay's next prints: {"market": "BTC_USDT", "prints": 1}."""
        guard(request, body=True)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or replay is None:
            return web.json_response({"error": 'body must be a JSON object {"market": ..., "prints": n}'}, status=400)
        try:
            return web.json_response(replay(body.get("market"), body.get("prints", 1)))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=422)

    return [
        web.get("/_sandbox/faults", get_faults),
        web.post("/_sandbox/faults", post_faults),
        web.delete("/_sandbox/faults", delete_faults),
        web.post("/_sandbox/replay", post_replay),
        web.post("/_sandbox/reset", post_reset),
    ]
