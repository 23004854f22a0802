"""Fast API Key via OAuth (WhiteBIT Flow B, docs/whitebit.md §1.3): PKCE consent, poll, fetch the secret once.

The secret can be read exactly once (409 afterwards), so it is written to the 0600 token store before this
module returns anything. The docs leave open how the public `apiKey` reaches the partner: we read it from the
callback parameter named by `auth.apikey_param`, or take it from the user (`--api-key`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import httpx
from pydantic import SecretStr

from botkit.auth.errors import ApiKeyFlowError, AuthError
from botkit.auth.login import interactive_login
from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import AuthSettings
from botkit.auth.store import StoredCredentials, TokenStore, store_for
from botkit.auth.tokens import ApiKeyCredentials, TokenSet
from botkit.market.grants import WHITEBIT_SCOPES
from botkit.retry import policy, poll
from botkit.whitebit.endpoints import AuthKind, Endpoint, EndpointRegistry
from botkit.whitebit.errors import WhiteBitConflict, WhiteBitLocked
from botkit.whitebit.rest import WhiteBitRest

log = logging.getLogger("botkit.whitebit.apikey")

# WhiteBIT key permission groups (`permissions[].name`) -> the scopes botkit checks. Names that are scope strings
# themselves (as the sandbox reports them) map to themselves.
_GROUPS: dict[str, frozenset[str]] = {
    "trading": frozenset({"orders.create", "orders.delete", "orders.read", "deals.read", "orders_history.read"}),
    "spot": frozenset({"orders.create", "orders.delete", "orders.read", "deals.read", "orders_history.read"}),
    "info": frozenset({"balances.read", "orders.read", "deals.read", "orders_history.read", "markets.read"}),
    "read": frozenset({"balances.read", "orders.read", "deals.read", "orders_history.read", "markets.read"}),
}


class _KeyNotYet(Exception):
    """/info says no key yet: poll again."""


def permissions_to_scopes(permissions: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Scopes a key carries: groups with at least one enabled url (names are locale-free; titles are not)."""
    out: set[str] = set()
    for group in permissions:
        name = str(group.get("name", ""))
        urls = group.get("urls") or []
        if not any(isinstance(u, Mapping) and u.get("enable") for u in urls):
            continue
        if name in WHITEBIT_SCOPES:
            out.add(name)
        elif name.lower() in _GROUPS:
            out |= _GROUPS[name.lower()]
        else:
            log.warning("unknown API key permission group %r ignored", name)
    return frozenset(out)


def _registry(s: AuthSettings) -> EndpointRegistry:
    bearer: frozenset[AuthKind] = frozenset({"bearer"})
    return EndpointRegistry([
        Endpoint("apikey_info", "GET", str(s.apikey_info_path), bearer, frozenset({"apikeys.read"}),
                 rate_group="oauth2"),
        Endpoint("apikey_secret", "GET", str(s.apikey_secret_path), bearer, frozenset({"apikeys.read"}),
                 idempotent=False, rate_group="oauth2"),
        Endpoint("apikey_delete", "DELETE", str(s.apikey_delete_path), bearer, frozenset({"apikeys.delete"}),
                 rate_group="oauth2"),
    ])


class FastApiKey:
    """Runs Flow B steps 6-9 with a Flow-B access token (4 h, no refresh)."""

    def __init__(
        self, settings: AuthSettings, http: httpx.AsyncClient, manager: TokenManager,
        *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.dialect != "whitebit":
            raise ApiKeyFlowError("the Fast API Key flow exists only in the WhiteBIT dialect (auth.dialect)")
        self.s = settings
        self.manager = manager
        self.rest = WhiteBitRest(settings.base_url, http, tokens=manager, trading_auth="bearer",
                                 registry=_registry(settings), retry_attempts=3)
        self._sleep = sleep
        self._clock = clock

    async def wait_for_key(self) -> dict[str, Any]:
        """Poll /info until the key exists and is enabled (steps 1 and 6): the shared retry policy's `poll`, one
        look every `apikey_poll_s` for at most `apikey_poll_timeout_s`."""
        try:
            async for attempt in poll(lambda e: isinstance(e, _KeyNotYet), every_s=self.s.apikey_poll_s,
                                      total_s=self.s.apikey_poll_timeout_s, sleep=self._sleep, clock=self._clock):
                with attempt:
                    info = await self.rest.call("apikey_info")
                    exists, enabled = bool(info.get("exists")), bool(info.get("isEnabled"))
                    if exists and not enabled:
                        raise ApiKeyFlowError(
                            "an OAuth API key exists but is disabled; delete it in the WhiteBIT dashboard (API keys), "
                            "then run `botkit auth apikey` again"
                        )
                    if not (exists and info.get("externalId")):
                        raise _KeyNotYet()
        except _KeyNotYet:
            raise ApiKeyFlowError(
                f"no API key appeared within {self.s.apikey_poll_timeout_s:.0f} s after consent; check that "
                "the consent screen finished (2FA, KYC) and run `botkit auth apikey` again"
            ) from None
        return dict(info)

    async def fetch_secret(self, external_id: str) -> SecretStr:
        """GET the secret once; 423 -> the shared retry policy's backoff (no Retry-After is sent) within
        `apikey_lock_timeout_s`; 409 -> say what to do."""
        try:
            async for attempt in policy(lambda e: isinstance(e, WhiteBitLocked), attempts=None,
                                        total_s=self.s.apikey_lock_timeout_s, max_wait_s=60.0,
                                        base_s=self.s.apikey_lock_backoff_s, sleep=self._sleep, clock=self._clock):
                with attempt:
                    doc = await self.rest.call("apikey_secret", externalId=external_id)
        except WhiteBitLocked:
            raise ApiKeyFlowError(
                "the API secret stayed locked (423); wait a few minutes and run `botkit auth apikey` again"
            ) from None
        except WhiteBitConflict:
            raise ApiKeyFlowError(
                "the API secret was already retrieved once (409) and cannot be read again; delete the key "
                "with `botkit auth logout CONFIG --delete-key` (or in the dashboard) and run "
                "`botkit auth apikey CONFIG` again"
            ) from None
        secret = doc.get("apiSecret") if isinstance(doc, dict) else None
        if not isinstance(secret, str) or not secret:
            raise ApiKeyFlowError("the secret endpoint answered without apiSecret; run the flow again")
        return SecretStr(secret)

    async def delete(self, external_id: str) -> None:
        await self.rest.call("apikey_delete", externalId=external_id)


async def run_fast_api_key(
    settings: AuthSettings,
    http: httpx.AsyncClient,
    *,
    api_key: str | None = None,
    out: Callable[[str], None] = print,
    open_browser: bool | None = None,
    store: TokenStore | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
    timeout_s: float | None = None,
) -> ApiKeyCredentials:
    """Consent (PKCE) -> key + secret, stored before returning. `api_key` = the public key if the user has it."""
    client, token, callback = await interactive_login(settings, http, flow="apikey", out=out,
                                                      open_browser=open_browser, timeout_s=timeout_s)
    return await finish_fast_api_key(settings, http, client, token, callback.params, api_key=api_key,
                                     store=store, sleep=sleep)


async def finish_fast_api_key(
    settings: AuthSettings,
    http: httpx.AsyncClient,
    client: OAuthClient,
    token: TokenSet,
    callback: Mapping[str, str],
    *,
    api_key: str | None = None,
    store: TokenStore | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> ApiKeyCredentials:
    store = store or store_for(settings)
    public = api_key or callback.get(settings.apikey_param)
    if not public:
        raise ApiKeyFlowError(
            f"the redirect carried no `{settings.apikey_param}` parameter; copy the public API key shown by "
            "WhiteBIT and pass it with --api-key (or set auth.apikey_param to the parameter name WhiteBIT uses)"
        )
    # The Flow B token goes into its own slot: a login's refreshable session in the same file stays usable.
    manager = TokenManager(client, store, settings, slot="key_token", reauth_command=settings.apikey_command())
    await manager.install(token)
    flow = FastApiKey(settings, http, manager, sleep=sleep)
    info = await flow.wait_for_key()
    external_id = str(info["externalId"])
    secret = await flow.fetch_secret(external_id)
    creds = ApiKeyCredentials(
        api_key=public, api_secret=secret, external_id=external_id,
        permissions=permissions_to_scopes(info.get("permissions") or []), obtained_at=time.time(),
    )
    try:
        async with store.locked():
            stored = await asyncio.to_thread(store.load) or StoredCredentials()
            await asyncio.to_thread(store.save, replace(stored, api_key=creds, key_token=token))
    except AuthError as exc:
        raise ApiKeyFlowError(
            f"the API secret was received but could not be stored ({exc}); it cannot be fetched again: delete the "
            "key (`botkit auth logout CONFIG --delete-key`) and rerun after fixing the token directory"
        ) from None
    return creds
