"""Async REST client for WhiteBIT v4: registry-driven auth, scope check before I/O, per-endpoint retry policy.

Order of work per call: look the endpoint up; check the grant (no network when it fails); sign (HMAC) or attach
a Bearer token; send; on a Bearer 401 do one forced refresh and one retry (keyed on the token sent), a second 401
is `ReauthRequired`; a 403 is a scope error and never triggers a refresh. Transport-level retries (tenacity) are
separate from the 401 path so a 401 inside a retry loop can never become a refresh storm.
Every request put on the wire, retries and the post-refresh resend included, first takes room from the rate limiter
(botkit/whitebit/ratelimit.py), so retries cannot amplify 429s; a gateway 429 (non-JSON body) makes the limiter back
off the endpoint's group, a JSON nonce 429 does not.

HMAC nonces follow the server's clock: before the first signed request, and again after a nonce rejection, the
client reads `GET /api/v4/public/time` and gives the signer the offset. A nonce rejection is never a rate limit:
no back-off, one resend with a fresh nonce after the re-sync, then `WhiteBitNonceRejected`.
A request that may have been executed (5xx, or a read/write failure after sending) is never resent to a
non-idempotent endpoint: the caller gets an `OutcomeUnknown` (`WhiteBitOutcomeUnknown`, `TransportOutcomeUnknown`)
and resolves it by looking the order up by clientOrderId.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import httpx

from botkit.auth.errors import ReauthRequired
from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import AuthSettings
from botkit.auth.signing import HmacSigner
from botkit.auth.store import store_for
from botkit.market.grants import Grant
from botkit.retry import policy
from botkit.whitebit.endpoints import DEFAULT_REGISTRY, AuthKind, Endpoint, EndpointRegistry
from botkit.whitebit.errors import (
    OutcomeUnknown,
    WhiteBitError,
    WhiteBitForbidden,
    WhiteBitNonceRejected,
    WhiteBitOutcomeUnknown,
    WhiteBitRateLimited,
    WhiteBitUnavailable,
    error_from_response,
    parse_error_body,
    parse_retry_after,
)
from botkit.whitebit.ratelimit import RateLimiter

log = logging.getLogger("botkit.whitebit.rest")

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.ReadTimeout, httpx.ReadError, httpx.WriteError, httpx.WriteTimeout, httpx.RemoteProtocolError)


class TransportFailure(WhiteBitError):
    """The request failed below HTTP (connect, read, protocol); carries the path and the error type only."""

    def __init__(self, path: str, kind: str, sent: bool) -> None:
        super().__init__(0, path, None, f"{kind} ({'may have reached' if sent else 'never reached'} the server)")
        self.kind = kind
        self.sent = sent


class TransportOutcomeUnknown(TransportFailure, OutcomeUnknown):
    """A non-idempotent request failed after it may have reached the server (read timeout, dropped connection)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(path, kind, sent=True)


_TIME = DEFAULT_REGISTRY.get("time")


class WhiteBitRest:
    """One base URL, one credential set. `trading_auth` picks HMAC or Bearer where an endpoint allows both.

    `limiter`: share one RateLimiter between all clients on the same IP (limits are per IP); None builds a private
    one with the default headroom; `rate_limit=False` turns limiting off (tests that must provoke a 429).
    """

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        tokens: TokenManager | None = None,
        signer: HmacSigner | None = None,
        key_grant: Grant | None = None,
        trading_auth: Literal["hmac", "bearer"] = "hmac",
        registry: EndpointRegistry = DEFAULT_REGISTRY,
        retry_attempts: int = 4,
        retry_max_wait_s: float = 10.0,
        retry_after_cap_s: float = 60.0,
        retry_total_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limiter: RateLimiter | None = None,
        rate_limit: bool = True,
        time_sync: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.tokens = tokens
        self.signer = signer
        self.key_grant = key_grant
        self.trading_auth = trading_auth
        self.registry = registry
        self.retry_attempts = retry_attempts
        self.retry_max_wait_s = retry_max_wait_s
        self.retry_after_cap_s = retry_after_cap_s
        self.retry_total_s = retry_total_s
        self._sleep = sleep
        self.attempts = 0  # requests put on the wire (for tests and metrics)
        self.limiter: RateLimiter | None = (limiter or RateLimiter()) if rate_limit else None
        self.time_sync = time_sync
        self.clock_syncs = 0  # GET /api/v4/public/time requests (not counted in `attempts`)
        self._synced = False
        self._sync_gen = 0  # bumped by every sync: a rejected request re-syncs only if no one did since it was sent
        self._sync_lock = asyncio.Lock()

    @classmethod
    async def from_settings(
        cls,
        settings: AuthSettings,
        http: httpx.AsyncClient,
        *,
        registry: EndpointRegistry = DEFAULT_REGISTRY,
        limiter: RateLimiter | None = None,
    ) -> WhiteBitRest:
        """The client a bot uses: stored API key (HMAC) and/or OAuth tokens (Bearer) for the configured account."""
        store = store_for(settings)
        stored = await asyncio.to_thread(store.load)
        if stored is None or stored.empty:
            raise ReauthRequired("no stored credentials", command=settings.reauth_command())
        tokens = None
        if stored.token is not None:  # the login's session; else the Fast API key flow's token, while it lives
            tokens = TokenManager(OAuthClient(settings, http), store, settings)
            await tokens.load()
        elif stored.key_token is not None:
            tokens = TokenManager(OAuthClient(settings, http), store, settings, slot="key_token",
                                  reauth_command=settings.apikey_command())
            await tokens.load()
        signer = key_grant = None
        if stored.api_key is not None:
            signer = HmacSigner(stored.api_key.api_key, stored.api_key.api_secret)
            key_grant = Grant(stored.api_key.permissions, "apikey")
        return cls(
            settings.base_url, http, tokens=tokens, signer=signer, key_grant=key_grant,
            trading_auth=settings.trading_auth, registry=registry, limiter=limiter,
        )

    def auth_kind(self, ep: Endpoint) -> AuthKind:
        if "public" in ep.auth:
            return "public"
        if "bearer" in ep.auth and ("hmac" not in ep.auth or self.trading_auth == "bearer"):
            return "bearer"
        return "hmac"

    def check_scope(self, ep: Endpoint) -> AuthKind:
        """Raise InsufficientScope (no I/O) unless the credentials in use cover the endpoint."""
        kind = self.auth_kind(ep)
        if kind == "bearer":
            if self.tokens is None:
                raise ValueError(f"{ep.name} needs a Bearer token: give WhiteBitRest a TokenManager (auth login)")
            self.tokens.grant.require(ep.name, ep.scopes)
        elif kind == "hmac":
            if self.signer is None:
                raise ValueError(f"{ep.name} needs an API key: give WhiteBitRest an HmacSigner (auth apikey)")
            if self.key_grant is None:
                raise ValueError(f"{ep.name}: the API key's permissions are unknown; pass key_grant")
            self.key_grant.require(ep.name, ep.scopes)
        return kind

    async def call(self, endpoint: str | Endpoint, params: Mapping[str, Any] | None = None, **path_params: str) -> Any:
        ep = endpoint if isinstance(endpoint, Endpoint) else self.registry.get(endpoint)
        kind = self.check_scope(ep)
        path = ep.url_path(**path_params)
        if kind == "hmac" and self.time_sync and not self._synced:
            await self._resync(0)
        seen = self._sync_gen
        try:
            return await self._call_with_retries(ep, kind, path, params)
        except WhiteBitNonceRejected as exc:
            if kind != "hmac" or not self.time_sync:
                raise
            # Not processed, and not a rate limit: the clock (or another process's nonces) moved. Re-sync, resend once.
            log.warning("nonce rejected on %s (code %s); re-syncing with the server clock and resending once",
                        path, exc.code)
            await self._resync(seen)
            return await self._call_with_retries(ep, kind, path, params)

    async def _call_with_retries(
        self, ep: Endpoint, kind: AuthKind, path: str, params: Mapping[str, Any] | None
    ) -> Any:
        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, OutcomeUnknown):
                return False  # may have been executed: the caller resolves it, we never resend
            if isinstance(exc, TransportFailure):
                return not exc.sent or ep.idempotent
            if isinstance(exc, WhiteBitRateLimited):
                return True  # gateway 429: not processed
            if isinstance(exc, WhiteBitUnavailable):
                return ep.idempotent
            return False

        retrying = policy(retryable, attempts=self.retry_attempts, total_s=self.retry_total_s,
                          max_wait_s=self.retry_max_wait_s, retry_after_cap_s=self.retry_after_cap_s, sleep=self._sleep)
        async for attempt in retrying:
            with attempt:
                return await self._once(ep, kind, path, params)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- server clock ----------------------------------------------------------------------------------------------
    async def _resync(self, seen: int) -> None:
        """One sync for every caller that saw generation `seen` (concurrent first calls, or concurrent rejections)."""
        async with self._sync_lock:
            if self._sync_gen == seen:
                await self.sync_clock()

    async def sync_clock(self) -> float | None:
        """Measure server time minus local time (`GET /api/v4/public/time`) and hand it to the signer; returns the
        offset in seconds, None when the server could not tell (then the local clock stays in use, offset kept)."""
        self._synced = True
        self._sync_gen += 1
        if self.limiter is not None:
            await self.limiter.acquire(_TIME)
        self.clock_syncs += 1
        sent = time.time()
        try:
            r = await self.http.get(self.base_url + _TIME.path)
            received = time.time()
            server = r.json().get("time") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("clock sync: %s failed (%s); signing with the local clock", _TIME.path, type(exc).__name__)
            return None
        if not isinstance(server, int | float) or isinstance(server, bool):
            log.warning("clock sync: %s answered HTTP %s without a time; signing with the local clock", _TIME.path,
                        r.status_code)
            return None
        # WhiteBIT sends whole seconds: the true time is on average half a second later than the value.
        server_s = float(server) + (0.5 if isinstance(server, int) else 0.0)
        offset = server_s - (sent + received) / 2
        if self.signer is not None:
            self.signer.set_clock_offset(round(offset * 1000))
        if abs(offset) >= 1.0:
            log.warning("clock sync: the exchange clock is %+.1f s from ours; nonces follow the exchange", offset)
        else:
            log.debug("clock sync: offset %+.3f s", offset)
        return offset

    async def _once(self, ep: Endpoint, kind: AuthKind, path: str, params: Mapping[str, Any] | None) -> Any:
        if kind == "public":
            return self._result(ep, path, await self._send(ep, path, params, {}, None))
        if kind == "hmac":
            assert self.signer is not None
            signed = self.signer.sign(path, params)  # fresh nonce per attempt
            return self._result(ep, path, await self._send(ep, path, None, signed.headers, signed.body), signed=True)
        assert self.tokens is not None
        token = await self.tokens.token_for(ep.name, ep.scopes)
        body = self._json_body(ep, params)
        r = await self._send(ep, path, params, self._bearer(token), body)
        if r.status_code == 401:
            log.info("401 on %s: one forced refresh and one retry", path)
            token = await self.tokens.force_refresh(token)
            r = await self._send(ep, path, params, self._bearer(token), body)
            if r.status_code == 401:
                raise await self.tokens.abandon(ReauthRequired(
                    "the API still answers 401 after a fresh token", command=self.tokens.reauth_command,
                    status=401, path=path,
                ))
        return self._result(ep, path, r)

    @staticmethod
    def _bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    @staticmethod
    def _json_body(ep: Endpoint, params: Mapping[str, Any] | None) -> bytes | None:
        if ep.method != "POST":
            return None
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False).encode()

    async def _send(
        self, ep: Endpoint, path: str, params: Mapping[str, Any] | None, headers: dict[str, str], body: bytes | None
    ) -> httpx.Response:
        url = self.base_url + path
        query: dict[str, str] | None = None
        if ep.method != "POST" and params:
            query = {k: str(v) for k, v in params.items() if v is not None}
        if self.limiter is not None:
            await self.limiter.acquire(ep)
        self.attempts += 1
        try:
            r = await self.http.request(ep.method, url, params=query, headers=headers, content=body)
        except _NEVER_SENT as exc:
            raise TransportFailure(path, type(exc).__name__, sent=False) from None
        except _MAYBE_SENT as exc:
            if not ep.idempotent:
                raise TransportOutcomeUnknown(path, type(exc).__name__) from None
            raise TransportFailure(path, type(exc).__name__, sent=True) from None
        if self.limiter is not None:
            if r.status_code == 429 and is_gateway_429(r.content):
                ra = parse_retry_after(r.headers.get("Retry-After"))
                pause = self.limiter.penalize(ep, None if ra is None else min(ra, self.retry_after_cap_s))
                log.warning("gateway 429 on %s: group %r backs off %.2f s", path, ep.rate_group, pause)
            elif r.status_code < 400:
                self.limiter.relieve(ep)
        return r

    def _result(self, ep: Endpoint, path: str, r: httpx.Response, *, signed: bool = False) -> Any:
        if 200 <= r.status_code < 300:
            if not r.content:
                return None
            doc = r.json()
            if path.startswith("/oauth2/") and isinstance(doc, dict) and "data" in doc:
                return doc["data"]
            return doc
        err = error_from_response(r.status_code, r.content, path, r.headers.get("Retry-After"), nonce_sent=signed)
        if isinstance(err, WhiteBitUnavailable) and not ep.idempotent:
            raise WhiteBitOutcomeUnknown(err.status, path, err.code, err.message, err.errors,
                                         retry_after=err.retry_after)
        if isinstance(err, WhiteBitForbidden):
            hint = _scope_hint(r.headers.get("WWW-Authenticate"))
            err.required_scopes = hint or ep.scopes
        raise err


def is_gateway_429(body: bytes) -> bool:
    """A 429 body that is a rate limit: WhiteBIT's gateway sends non-JSON (or the old generic JSON form); the JSON
    `"message":"Too many requests."` (or the nonce-window message) is a nonce rejection (docs/whitebit.md §2.3, §2.5)
    and not a rate limit."""
    _, message, _ = parse_error_body(body)
    return message is None or not ("too many requests" in message.lower() or "nonce" in message.lower())


def _scope_hint(www_authenticate: str | None) -> frozenset[str] | None:
    """`scope="a b"` from an RFC 6750 §3 challenge, if any."""
    if not www_authenticate or "scope=" not in www_authenticate:
        return None
    part = www_authenticate.split("scope=", 1)[1]
    value = part[1:].split('"', 1)[0] if part.startswith('"') else part.split(",", 1)[0]
    return frozenset(urllib.parse.unquote(value).replace(",", " ").split())
