"""TokenManager: a valid access token on every call, refreshed exactly once per expiry, never lost.

Rules it enforces (oauth-client-rules.md C1-C8, D1-D2, E2): proactive refresh with leeway; single flight with a
shared outcome (one task, every waiter awaits it); the file lock and a re-read around refresh-and-persist so other
processes never spend the same refresh token; persist before use; retries only for transient failures, bounded by
the refresh token's remaining life; `invalid_grant` is terminal and sticky (no loops); a keep-alive task so an
idle bot's short refresh token never lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from botkit.auth.errors import AuthError, ReauthRequired, TokenEndpointUnavailable
from botkit.auth.oauth import InvalidGrant, OAuthClient, TransientTokenError
from botkit.auth.settings import AuthSettings
from botkit.auth.store import StoredCredentials, TokenStore
from botkit.auth.tokens import TokenSet, fingerprint
from botkit.market.grants import Grant
from botkit.retry import policy, reconnect_delay

log = logging.getLogger("botkit.auth.manager")

Sleep = Callable[[float], Awaitable[None]]


Slot = Literal["token", "key_token"]


class TokenManager:
    """Owns one token of one token file: `slot="token"` is the login's refreshable session, `"key_token"` the Flow B
    token of the Fast API key flow (no refresh). Safe for any number of concurrent callers in one event loop."""

    def __init__(
        self,
        client: OAuthClient,
        store: TokenStore,
        settings: AuthSettings,
        *,
        reauth_command: str | None = None,
        sleep: Sleep = asyncio.sleep,
        slot: Slot = "token",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.slot: Slot = slot
        self.store = store
        self.s = settings
        self.reauth_command = reauth_command or settings.reauth_command()
        self._sleep = sleep  # every wait (rate limit, retries, keep-alive) goes through it;
        self._now = clock  # wall seconds, compared with a token's obtained_at and expires_at;
        self._mono = monotonic  # and monotonic seconds: inject all three from one fake clock in tests
        self._token: TokenSet | None = None
        self._token_str: str | None = None
        self._refresh_at = 0.0  # monotonic
        self._grant = Grant(frozenset(), "oauth")
        self._inflight: asyncio.Task[TokenSet] | None = None
        self._reauth: ReauthRequired | None = None
        self._last_sent = -1e18  # monotonic time of the last refresh request from this process
        self._keepalive: asyncio.Task[None] | None = None
        self.refresh_count = 0  # refresh requests this process sent (for status and tests)

    def __repr__(self) -> str:
        return f"TokenManager(store={self.store!r}, token={self._token!r})"

    # -- state -----------------------------------------------------------------------------------------------------
    @property
    def grant(self) -> Grant:
        return self._grant

    @property
    def token(self) -> TokenSet | None:
        return self._token

    @property
    def reauth_required(self) -> ReauthRequired | None:
        """Set once the grant is gone (invalid_grant, or a persistent 401): no further refresh is attempted."""
        return self._reauth

    def _adopt(self, t: TokenSet) -> None:
        lifetime = max(0.0, t.expires_at - t.obtained_at)
        leeway = min(self.s.leeway_s, lifetime / 2)  # a leeway as long as the token would refresh on every call
        self._token = t
        self._token_str = t.access_token.get_secret_value()
        self._refresh_at = self._mono() + (t.expires_at - leeway - self._now())
        self._grant = Grant(t.scopes, "oauth")

    def _expiring(self, t: TokenSet) -> bool:
        lifetime = max(0.0, t.expires_at - t.obtained_at)
        return self._now() >= t.expires_at - min(self.s.leeway_s, lifetime / 2)

    async def load(self) -> TokenManager:
        """Read the token file; raises ReauthRequired (with the command) when there is nothing usable."""
        stored = await asyncio.to_thread(self.store.load)
        token = self._mine(stored)
        if token is None:
            raise ReauthRequired("no stored OAuth token", command=self.reauth_command)
        self._adopt(token)
        return self

    def _mine(self, stored: StoredCredentials | None) -> TokenSet | None:
        return None if stored is None else stored.token if self.slot == "token" else stored.key_token

    def _with_mine(self, stored: StoredCredentials | None, token: TokenSet) -> StoredCredentials:
        """The stored credentials with only this manager's token replaced: a login keeps the Fast API key and its
        token, the key flow keeps the login's session."""
        base = stored or StoredCredentials()
        return replace(base, token=token) if self.slot == "token" else replace(base, key_token=token)

    async def install(self, token: TokenSet) -> None:
        """Persist a fresh token set (after login), then use it; the file's other credentials are kept."""
        async with self.store.locked():
            stored = await asyncio.to_thread(self.store.load)
            await asyncio.to_thread(self.store.save, self._with_mine(stored, token))
        self._reauth = None
        self._adopt(token)

    # -- hot path --------------------------------------------------------------------------------------------------
    async def access_token(self) -> str:
        """A token valid for at least the leeway; refreshes (once, shared) when it is not."""
        t = self._token_str
        if t is not None and self._mono() < self._refresh_at:
            return t
        return await self._slow_path(t)

    async def _slow_path(self, seen: str | None) -> str:
        """Refresh; if the endpoint is down but the current token has not expired yet, keep using it."""
        try:
            return (await self._refresh_shared(seen=seen, force=False)).access_token.get_secret_value()
        except TokenEndpointUnavailable:
            cur = self._token
            left = cur.expires_at - self._now() if cur is not None else 0.0
            margin = min(1.0, 0.1 * (cur.expires_at - cur.obtained_at)) if cur is not None else 1.0
            if self._token_str is not None and left > margin:
                log.warning("refresh failed; using the current token for its last %.0f s", left)
                self._refresh_at = self._mono() + min(5.0, left / 2)  # try again soon, not on every call
                return self._token_str
            raise

    async def token_for(self, operation: str, required: frozenset[str]) -> str:
        """Scope check (no I/O when it fails) then a valid token: the per-call path of the REST client."""
        if not required <= self._grant.scopes:
            self._grant.require(operation, required)
        t = self._token_str
        if t is not None and self._mono() < self._refresh_at:
            return t
        return await self._slow_path(t)

    async def force_refresh(self, sent: str) -> str:
        """After a 401 for token `sent`: one refresh, shared with concurrent 401s on the same token."""
        if self._token_str is not None and self._token_str != sent:
            return self._token_str  # someone already replaced the token we sent
        ts = await self._refresh_shared(seen=sent, force=True)
        if ts.access_token.get_secret_value() == sent:  # we joined a non-forced flight that kept the token
            ts = await self._refresh_shared(seen=sent, force=True)
        return ts.access_token.get_secret_value()

    # -- single flight ---------------------------------------------------------------------------------------------
    async def _refresh_shared(self, seen: str | None, force: bool) -> TokenSet:
        if self._reauth is not None:
            raise self._reauth
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh_locked(seen, force))
            task.add_done_callback(self._flight_done)
            self._inflight = task
        return await asyncio.shield(task)

    def _flight_done(self, task: asyncio.Task[TokenSet]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # mark retrieved; waiters got it already

    async def _refresh_locked(self, seen: str | None, force: bool) -> TokenSet:
        try:
            async with self.store.locked():
                stored = await asyncio.to_thread(self.store.load)
                current = self._mine(stored) or self._token
                if current is None:
                    raise InvalidGrant("no stored OAuth token")
                cur_str = current.access_token.get_secret_value()
                if cur_str != seen and not self._expiring(current):
                    log.debug("refresh.skip at=%s (another process or caller refreshed)", fingerprint(cur_str))
                    self._adopt(current)
                    return current
                if not force and not self._expiring(current):
                    self._adopt(current)
                    return current
                new = await self._refresh_with_retry(current)
                try:
                    await asyncio.to_thread(self.store.save, self._with_mine(stored, new))
                except AuthError:
                    log.error("refresh.fail persist: new token set could not be saved; it will not be used")
                    raise
                self._adopt(new)
                return new
        except InvalidGrant as exc:
            log.error("reauth.required endpoint=%s", exc.path)
            raise await self.abandon(ReauthRequired(
                "the authorization server no longer accepts this grant (invalid_grant)",
                command=self.reauth_command, status=exc.status, error="invalid_grant", path=exc.path,
            )) from None

    async def abandon(self, reason: ReauthRequired) -> ReauthRequired:
        """The grant is gone (invalid_grant, or 401 even after a fresh token): no refresh is attempted from now on,
        and the dead token set leaves the store under its lock (a stored API key stays), so a restarted bot asks
        for a login at once instead of spending a request on it. Returns `reason` for the caller to raise."""
        if self._reauth is None:
            self._reauth = reason
        self._token_str = None
        self._refresh_at = 0.0
        try:
            async with self.store.locked():
                stored = await asyncio.to_thread(self.store.load)
                if stored is not None and stored.token is not None:
                    if stored.api_key is not None:
                        await asyncio.to_thread(self.store.save, StoredCredentials(token=None, api_key=stored.api_key))
                    else:
                        await asyncio.to_thread(self.store.delete)
        except AuthError as exc:  # the store cannot be changed: still no refresh from this process
            log.error("could not remove the dead token set from the store: %s", type(exc).__name__)
        return self._reauth

    async def _respect_rate_limit(self, current: TokenSet) -> None:
        """1 refresh request/s per client (WhiteBIT), across processes via the stored obtain time."""
        interval = self.s.refresh_min_interval_s
        if interval > 0:
            interval += 0.05  # the server measures from when it received the last request, not when we sent it
        wait = max(self._last_sent + interval - self._mono(), current.obtained_at + interval - self._now())
        if wait > 0:
            await self._sleep(wait)
        self._last_sent = self._mono()

    async def _refresh_with_retry(self, current: TokenSet) -> TokenSet:
        budget = self.s.retry_total_s
        life = self.s.refresh_token_lifetime
        if life is not None:
            budget = max(0.0, min(budget, current.obtained_at + life - self._now()))
        log.info("refresh.start rt=%s", fingerprint(current.refresh_token))
        try:
            retrying = policy(lambda e: isinstance(e, TransientTokenError), attempts=self.s.retry_attempts,
                              total_s=budget, max_wait_s=self.s.retry_max_wait_s,
                              retry_after_cap_s=self.s.retry_after_cap_s, sleep=self._sleep,
                              clock=self._mono)
            async for attempt in retrying:
                with attempt:
                    await self._respect_rate_limit(current)
                    self.refresh_count += 1
                    new = await self.client.refresh(current)
        except TransientTokenError as exc:
            log.warning("refresh.fail transient status=%s endpoint=%s", exc.status, exc.path)
            raise TokenEndpointUnavailable(
                "token endpoint kept failing; retries exhausted", status=exc.status, error=exc.error, path=exc.path
            ) from None
        rotated = new.refresh_token is not None and current.refresh_token is not None and (
            new.refresh_token.get_secret_value() != current.refresh_token.get_secret_value()
        )
        log.info(
            "refresh.ok at=%s expires_in=%.0f rotated=%s", fingerprint(new.access_token),
            new.expires_at - self._now(), "yes" if rotated else "no",
        )
        return new

    # -- keep-alive ------------------------------------------------------------------------------------------------
    def start_keepalive(self) -> None:
        """Refresh on schedule even without API traffic (a 600 s refresh token must not lapse under a bot)."""
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalive_loop(), name="token-keepalive")

    async def _keepalive_loop(self) -> None:
        failures = 0
        while True:
            delay = max(0.0, self._refresh_at - self._mono())
            await self._sleep(delay + 0.01)
            try:
                await self._refresh_shared(seen=self._token_str, force=False)
                failures = 0
            except ReauthRequired:
                return
            except AuthError as exc:
                failures += 1
                log.warning("keepalive refresh failed (%s); retrying", type(exc).__name__)
                await self._sleep(reconnect_delay(failures, 30.0, 2.0))  # the shared policy's backoff

    async def aclose(self) -> None:
        task, self._keepalive = self._keepalive, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        inflight = self._inflight
        if inflight is not None:
            with contextlib.suppress(BaseException):
                await inflight

    async def __aenter__(self) -> TokenManager:
        if self._token is None:
            await self.load()
        if self.s.keepalive:
            self.start_keepalive()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
