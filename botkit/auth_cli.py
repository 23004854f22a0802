"""`botkit auth login|apikey|status|logout CONFIG`.

Exit codes: 0 done, 1 the authorization failed (message says what to do), 2 bad config or arguments, 130 cancelled.
Output never contains a token, code, verifier or secret: status shows fingerprints and expiry only.
`login` and `apikey` check everything they can (config, client secret, token folder and file, metadata, redirect
port) before the URL is shown: a one-time code is never spent on a login that cannot be stored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio, the settings, the HTTP stack and the token store are imported when a command runs:
    # every `botkit` command (a backtest too) imports this module to register `auth`, and starts quick
    import httpx

    from botkit.auth.oauth import OAuthClient
    from botkit.auth.settings import AuthSettings
    from botkit.auth.store import StoredCredentials, TokenStore
    from botkit.auth.tokens import TokenSet

Out = Callable[[str], None]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `auth` with its four subcommands; each sets `func(args) -> int`."""
    auth = subparsers.add_parser("auth", help="log in, get a Fast API key, show or remove credentials")
    sub = auth.add_subparsers(dest="auth_command", required=True)
    login = sub.add_parser("login", help="authorization-code login (loopback redirect) and store the tokens")
    login.add_argument("config")
    login.add_argument("--no-browser", action="store_true", help="only print the URL")
    apikey = sub.add_parser("apikey", help="WhiteBIT Fast API Key via OAuth: consent, then store key + secret")
    apikey.add_argument("config")
    apikey.add_argument("--no-browser", action="store_true", help="only print the URL")
    for p in (login, apikey):
        p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="how long to wait for the authorization redirect (default: auth.login_timeout_s, 300)")
    apikey.add_argument("--api-key", help="the public API key, if WhiteBIT showed it instead of redirecting it")
    status = sub.add_parser("status", help="grant, scopes, expiry and key permissions (never a secret)")
    status.add_argument("config")
    logout = sub.add_parser("logout", help="revoke where offered, then delete the local credentials")
    logout.add_argument("config")
    logout.add_argument("--delete-key", action="store_true", help="also DELETE the OAuth API key at WhiteBIT")
    for p in (login, apikey, status, logout):
        p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--timeout {text!r}: give a number of seconds above 0, e.g. --timeout 600")
    return value


def run(args: argparse.Namespace) -> int:
    import asyncio

    try:
        return asyncio.run(run_async(args))
    except KeyboardInterrupt:
        print(f"botkit auth {args.auth_command}: cancelled; nothing was stored", file=sys.stderr)
        return 130


async def run_async(args: argparse.Namespace, out: Out = print, err: Out | None = None) -> int:
    import httpx

    from botkit.auth.errors import AuthError
    from botkit.auth.settings import ConfigError, load_auth_settings

    err = err or (lambda m: print(m, file=sys.stderr))
    try:
        settings = load_auth_settings(args.config)
    except ConfigError as exc:
        err(str(exc))
        return 2
    cmd = args.auth_command
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            if cmd == "login":
                return await _login(settings, http, args, out)
            if cmd == "apikey":
                return await _apikey(settings, http, args, out)
            if cmd == "status":
                return await _status(settings, out)
            return await _logout(settings, http, args, out)
    except ConfigError as exc:
        err(str(exc))
        return 2
    except AuthError as exc:
        err(f"botkit auth {cmd}: {exc}")
        return 1


async def _preflight(settings: AuthSettings) -> TokenStore:
    """What a login needs afterwards, checked before the browser opens: the client secret, the encryption key,
    the token folder (0700, writable) and any file already in it (ours, 0600, readable)."""
    import asyncio

    from botkit.auth.settings import ConfigError
    from botkit.auth.store import store_for

    if settings.client_secret is None:
        raise ConfigError("the client secret is not set; export BOTKIT_AUTH__CLIENT_SECRET")
    store = store_for(settings)
    await asyncio.to_thread(store.preflight)
    return store


async def _login(settings: AuthSettings, http: httpx.AsyncClient, args: argparse.Namespace, out: Out) -> int:
    from botkit.auth.login import interactive_login
    from botkit.auth.manager import TokenManager

    store = await _preflight(settings)
    client, token, _ = await interactive_login(settings, http, out=out, open_browser=not args.no_browser and None,
                                               timeout_s=getattr(args, "timeout", None))
    mgr = TokenManager(client, store, settings, reauth_command=f"botkit auth login {args.config}")
    await mgr.install(token)
    out(f"Logged in: scopes {','.join(sorted(token.scopes)) or '-'}; token expires in "
        f"{token.expires_at - time.time():.0f} s; stored in {mgr.store.path}")
    return 0


async def _apikey(settings: AuthSettings, http: httpx.AsyncClient, args: argparse.Namespace, out: Out) -> int:
    from botkit.whitebit.apikey import run_fast_api_key

    store = await _preflight(settings)
    creds = await run_fast_api_key(settings, http, api_key=args.api_key, out=out, store=store,
                                   open_browser=not args.no_browser and None,
                                   timeout_s=getattr(args, "timeout", None))
    out(f"API key {creds.api_key[:4]}… stored with permissions {','.join(sorted(creds.permissions)) or '-'}")
    return 0


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _expiry(t: TokenSet) -> str:
    left = t.expires_at - time.time()
    return f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"


async def _status(settings: AuthSettings, out: Out) -> int:
    import asyncio

    from botkit.auth.store import store_for
    from botkit.auth.tokens import fingerprint

    store = store_for(settings)
    stored = await asyncio.to_thread(store.load)
    out(f"server:   {settings.base_url} ({settings.dialect})  client: {settings.client_id}  account: "
        f"{settings.account}")
    out(f"file:     {store.path}")
    if stored is None or stored.empty:
        out("no credentials stored; run: botkit auth login CONFIG (or botkit auth apikey CONFIG)")
        return 1
    if stored.token is not None:
        t = stored.token
        out(f"token:    at={fingerprint(t.access_token)} obtained {_when(t.obtained_at)}, {_expiry(t)}")
        out(f"refresh:  {'rt=' + fingerprint(t.refresh_token) if t.refresh_token else 'none (cannot refresh)'}")
        out(f"scopes:   {','.join(sorted(t.scopes)) or '-'}")
    else:
        out("token:    none (no login session; run: botkit auth login CONFIG)")
    if stored.api_key is not None:
        k = stored.api_key
        out(f"api key:  {k.api_key[:4]}… (external id {k.external_id or '-'}), obtained {_when(k.obtained_at)}")
        out(f"key permissions: {','.join(sorted(k.permissions)) or '-'}")
        if stored.key_token is not None:
            out(f"key flow token: at={fingerprint(stored.key_token.access_token)}, {_expiry(stored.key_token)} "
                "(manages the key: /oauth2/api-key/*)")
    return 0


def _load_or_none(store: TokenStore, out: Out) -> StoredCredentials:
    from botkit.auth.errors import AuthError
    from botkit.auth.store import StoredCredentials

    try:
        return store.load() or StoredCredentials()
    except AuthError as exc:
        out(f"token file unreadable ({exc}); deleting it")
        return StoredCredentials()


async def _logout(settings: AuthSettings, http: httpx.AsyncClient, args: argparse.Namespace, out: Out) -> int:
    import asyncio

    from botkit.auth.errors import AuthError
    from botkit.auth.oauth import OAuthClient
    from botkit.auth.store import store_for

    store = store_for(settings)
    client = OAuthClient(settings, http)
    stored = await asyncio.to_thread(_load_or_none, store, out)
    if stored.api_key is not None and args.delete_key:
        # Before taking the store lock: the Bearer call may refresh the session, which takes the lock itself.
        await _delete_key(settings, http, client, store, stored, out)
    # Under the store lock: a bot refreshing right now finishes first (its rotated token is what gets revoked and
    # deleted), and none starts a refresh on a file that is being removed.
    async with store.locked():
        stored = await asyncio.to_thread(_load_or_none, store, lambda _m: None)  # already reported above
        if stored.token is not None and stored.token.refresh_token is not None:
            try:
                if settings.use_metadata:
                    await client.discover()
                revoked = await client.revoke(stored.token.refresh_token, "refresh_token")
                out("refresh token revoked" if revoked else
                    "the server offers no revocation; tokens expire on their own")
            except AuthError as exc:
                out(f"revocation failed ({exc}); the token may stay valid until it expires")
        deleted = await asyncio.to_thread(store.delete)
    out("local credentials deleted" if deleted else "no local credentials to delete")
    return 0


async def _delete_key(
    settings: AuthSettings, http: httpx.AsyncClient, client: OAuthClient, store: TokenStore,
    stored: StoredCredentials, out: Out,
) -> None:
    """DELETE the OAuth API key with the key flow's token while it lives, else with the login session."""
    from botkit.auth.manager import TokenManager
    from botkit.whitebit.apikey import FastApiKey

    assert stored.api_key is not None
    key_token_alive = stored.key_token is not None and stored.key_token.expires_at > time.time() + 5
    if not key_token_alive and stored.token is None:
        out("no token to delete the API key at the exchange with; delete it in the dashboard")
        return
    mgr = TokenManager(client, store, settings, slot="key_token" if key_token_alive else "token")
    try:
        await mgr.load()
        await FastApiKey(settings, http, mgr).delete(str(stored.api_key.external_id))
        out("OAuth API key deleted at the exchange")
    except Exception as exc:  # deletion is best effort; local removal happens regardless
        out(f"could not delete the API key at the exchange ({type(exc).__name__}); delete it in the dashboard")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="botkit")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
