"""The credentials a live bot trades with, assembled once at start into one REST client and one grant.

Four ways, chosen by what is configured (botkit/auth/README.md):
(a) an API key from the environment (HMAC), its grant from the config's [grant];
(b) the Fast API key that `botkit auth apikey` put in the token store (HMAC), its permissions as stored;
(c) a partner OAuth session (Flow A) from the store beside a key: Bearer for the account reads WhiteBIT documents
    for it, the key for trading; the key's permissions are re-read from /oauth2/api-key/info when the token can;
(d) `trading_auth = "bearer"`: the session's token for trading too, and for the private stream's token, on servers
    that accept it (the sandbox's opt-in `[server] bearer_trading`); no API key is needed anywhere.
The grant is the union of what the credentials carry; with (d) it is the token's scopes alone, since every call the
bot makes then goes out with the token (a key in the store is not used). With a session, the token manager keeps it
alive (refresh ahead of expiry, single-flight, persisted before use) for as long as the bot runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from botkit.auth.clock import SYSTEM_CLOCK, TokenClock
from botkit.auth.errors import ReauthRequired
from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import AuthSettings
from botkit.auth.signing import HmacSigner
from botkit.auth.store import store_for
from botkit.market.grants import Grant
from botkit.whitebit.errors import WhiteBitError
from botkit.whitebit.rest import WhiteBitRest

log = logging.getLogger("botkit.whitebit.account")


class AccountError(Exception):
    """No usable credentials: the message says which ways exist and how to set one up (CLI exit code 2)."""


@dataclass
class Account:
    rest: WhiteBitRest
    grant: Grant
    identity: str  # which account, for the journal: a hash of the key or of the OAuth client and account
    tokens: TokenManager | None
    source: str  # what was used, for people ("API key from the environment + OAuth session (token store)")

    async def aclose(self) -> None:
        if self.tokens is not None:
            await self.tokens.aclose()


def identity_of(text: str) -> str:
    """A stable, non-secret name for a credential (the journal keys orders by exchange and account)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


async def open_account(
    base_url: str,
    http: httpx.AsyncClient,
    *,
    env_key: SecretStr | None,
    env_secret: SecretStr | None,
    config_grant: Grant,
    auth: AuthSettings | None,
    require_session: bool = False,
    clock: TokenClock = SYSTEM_CLOCK,
) -> Account:
    """`require_session`: the bot needs its OAuth session (`[run] credentials = "oauth"`): without one in the store
    it stops at once, asking for a login, before any request. `clock`: the session's clock (botkit/auth/clock.py)."""
    signer: HmacSigner | None = None
    key_grant: Grant | None = None
    parts: list[str] = []
    identity = ""
    external_id: str | None = None
    if env_key is not None and env_secret is not None and env_key.get_secret_value() and env_secret.get_secret_value():
        signer = HmacSigner(env_key.get_secret_value(), env_secret)
        key_grant = config_grant
        identity = identity_of(env_key.get_secret_value())
        parts.append("API key from the environment")
    tokens: TokenManager | None = None
    if auth is not None:
        store = store_for(auth)
        stored = await asyncio.to_thread(store.load)
        if signer is None and stored is not None and stored.api_key is not None:
            k = stored.api_key
            signer = HmacSigner(k.api_key, k.api_secret)
            key_grant = Grant(k.permissions, "Fast API key permissions (token store)")
            identity = identity_of(k.api_key)
            external_id = k.external_id
            parts.append("Fast API key (token store)")
        if (stored is None or stored.token is None) and (require_session or auth.trading_auth == "bearer"):
            raise ReauthRequired("no OAuth session in the token store", command=auth.reauth_command())
        if stored is not None and stored.token is not None:
            oauth = OAuthClient(auth, http, clock=clock.time)
            if auth.use_metadata:
                await oauth.discover()  # the token endpoint from RFC 8414 metadata, as at login
            tokens = TokenManager(oauth, store, auth, clock=clock.time, monotonic=clock.monotonic, sleep=clock.sleep)
            await tokens.load()
            parts.append(f"OAuth session (token store, scopes {tokens.grant})")
            if not identity:
                identity = identity_of(f"{auth.client_id}\0{auth.account}")
    if signer is None and tokens is None:
        raise AccountError(
            "live mode needs credentials: set BOTKIT_RUN__API_KEY and BOTKIT_RUN__API_SECRET in the environment, or "
            "with an [auth] table run `botkit auth apikey CONFIG` (a Fast API key) or `botkit auth login CONFIG` "
            "(an OAuth session); keys never go in the config file"
        )
    rest = WhiteBitRest(base_url, http, tokens=tokens, signer=signer, key_grant=key_grant,
                        trading_auth=auth.trading_auth if auth is not None else "hmac")
    if tokens is not None and key_grant is not None and external_id is not None and \
            "apikeys.read" in tokens.grant.scopes:
        key_grant = await _reread_key_permissions(rest, key_grant)
        rest.key_grant = key_grant
    if auth is not None and auth.trading_auth == "bearer" and tokens is not None:
        await _probe_bearer_trading(rest, tokens, base_url)
        parts = [p for p in parts if p.startswith("OAuth session")] + ["Bearer trading"]
        return Account(rest, Grant(tokens.grant.scopes, " + ".join(parts)), identity, tokens, " + ".join(parts))
    scopes = (key_grant.scopes if key_grant is not None else frozenset()) | (
        tokens.grant.scopes if tokens is not None else frozenset())
    return Account(rest, Grant(scopes, " + ".join(parts)), identity, tokens, " + ".join(parts))


async def _reread_key_permissions(rest: WhiteBitRest, stored: Grant) -> Grant:
    """What the key may do now, as WhiteBIT says (the user can change it in the dashboard); the stored permissions
    when the server cannot answer."""
    from botkit.whitebit.apikey import permissions_to_scopes

    try:
        info = await rest.call("apikey_info")
    except (WhiteBitError, ReauthRequired) as exc:
        log.warning("could not re-read the API key's permissions (%s); using the stored ones", exc)
        return stored
    if not isinstance(info, dict) or not info.get("exists"):
        log.warning("the OAuth API key no longer exists on the server; using the stored permissions")
        return stored
    return Grant(permissions_to_scopes(info.get("permissions") or []), "API key permissions (/oauth2/api-key/info)")


async def _probe_bearer_trading(rest: WhiteBitRest, tokens: TokenManager, base_url: str) -> None:
    """(d) on a server that takes Bearer tokens for account reads only (WhiteBIT, as documented) answers 401 to every
    trading call, which the client cannot tell from a dead token: after one forced refresh it would give the session
    up and remove it from the store. One read at start, with a token that is valid right now, tells the two apart
    before anything can be lost: a 401 here means the server refuses Bearer trading."""
    ep = rest.registry.get("trade_balance")
    token = await tokens.access_token()  # refreshed first if due: valid now
    if rest.limiter is not None:
        await rest.limiter.acquire(ep)
    try:
        r = await rest.http.post(base_url.rstrip("/") + ep.path, content=b"{}",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    except httpx.HTTPError:
        return  # unreachable now: the venue's own start reports it
    if r.status_code == 401:
        raise AccountError(
            f"{base_url} refused the OAuth access token on a trading endpoint ({ep.path}: HTTP 401), so it does not "
            "accept Bearer trading (WhiteBIT documents Bearer tokens for account reads only). Set [auth] "
            "trading_auth = \"hmac\" and trade with an API key (`botkit auth apikey CONFIG`, or BOTKIT_RUN__API_KEY "
            "and BOTKIT_RUN__API_SECRET); the OAuth session was kept"
        )
