"""The sandbox's OAuth part: WhiteBIT's dialect of the authorization server (Flow A and Fast API Key Flow B).

Wire formats follow docs/whitebit.md §1 (camelCase `clientId`, no `grant_type`, `/oauth2/refresh_token` with
`token=`, the `{"data": ...}` envelope, comma-separated scopes, the documented error bodies). Behaviour that the
docs leave open follows the strict reading, so clients are tested against the harsh case: refresh tokens rotate on
every use, and replaying a spent one revokes the whole grant (RFC 9700 §4.14.2). Counters are plain attributes
so tests can assert what the server actually saw.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from botkit.sandbox.keys import ApiKey, ApiKeyRegistry

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_TRADING = ["orders.create", "orders.delete", "orders.read", "balances.read", "deals.read", "orders_history.read"]


class OAuthClientConfig(BaseModel):
    """A registered OAuth client of the sandbox."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: SecretStr
    redirect_uris: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)


class OAuthSandboxConfig(BaseModel):
    """`[oauth]` section of the sandbox config."""

    model_config = ConfigDict(extra="forbid")

    clients: list[OAuthClientConfig] = Field(default_factory=list)
    access_ttl: float = 300.0
    refresh_ttl: float = 600.0
    api_key_token_ttl: float = 4 * 3600.0
    auto_approve: bool = True
    default_account: str = "demo"
    refresh_rate_per_s: float = 1.0
    code_ttl: float = 60.0
    rotate_refresh_tokens: bool = True  # False: refresh answers carry no refresh_token and the old one stays valid
    # Fast API Key (Flow B) knobs
    api_key_permissions: list[str] = Field(default_factory=lambda: list(_TRADING))
    api_key_redirect_param: str | None = "apiKey"  # how the public key reaches the partner; None = not delivered
    api_key_ready_after_polls: int = Field(default=0, ge=0)  # /info says "not yet" this many times first
    api_key_secret_locks: int = Field(default=0, ge=0)  # the first N secret fetches answer 423


@dataclass(frozen=True, slots=True)
class BearerIdentity:
    """Who a valid access token speaks for."""

    account: str
    client_id: str
    scopes: frozenset[str]


@dataclass(slots=True)
class _Grant:
    grant_id: str
    account: str
    client_id: str
    scopes: frozenset[str]
    revoked: bool = False


@dataclass(slots=True)
class _Code:
    grant: _Grant
    expires_at: float
    redirect_uri: str | None
    challenge: str | None
    flow: str  # "A" or "B"


@dataclass(slots=True)
class _Access:
    grant: _Grant
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class _Refresh:
    grant: _Grant
    expires_at: float
    spent: bool = False
    revoked: bool = False


@dataclass(slots=True)
class _Pending:
    client: OAuthClientConfig
    state: str | None
    redirect_uri: str
    challenge: str | None
    flow: str
    account: str


@dataclass(slots=True)
class OAuthCounters:
    """What the server saw; tests assert on these."""

    authorize_requests: int = 0
    token_requests: int = 0
    token_ok: int = 0
    refresh_requests: int = 0
    refresh_ok: int = 0
    refresh_rejected: int = 0
    refresh_rate_limited: int = 0
    refresh_faults: int = 0
    refresh_with_scope: int = 0  # refresh requests that sent `scope` (a client must not, RFC 6749 §6 / C4)
    reuse_detected: int = 0
    bearer_checks: int = 0
    bearer_rejected: int = 0
    apikey_info_requests: int = 0
    apikey_secret_requests: int = 0
    apikey_delete_requests: int = 0
    refresh_times: list[float] = field(default_factory=list)


def _data(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"data": payload}, status=status, headers={**_NO_STORE, **(headers or {})})


def _msg(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _data({"message": [message]}, status, headers)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redirect_ok(registered: list[str], given: str) -> bool:
    """Exact match, except that a loopback redirect may use any port (RFC 8252 §7.3, RFC 9700 §4.1.3)."""
    if given in registered:
        return True
    g = urllib.parse.urlsplit(given)
    if g.scheme != "http" or g.hostname not in ("127.0.0.1", "::1"):
        return False
    for r in registered:
        u = urllib.parse.urlsplit(r)
        if (u.scheme, u.hostname, u.path, u.query) == (g.scheme, g.hostname, g.path, g.query):
            return True
    return False


def _with_query(url: str, params: dict[str, str]) -> str:
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + sep + urllib.parse.urlencode(params)


class OAuthSandbox:
    """Serves /auth/login and /oauth2/*; validates bearer tokens for the rest of the sandbox."""

    def __init__(
        self, config: OAuthSandboxConfig, keys: ApiKeyRegistry, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.keys = keys
        self.clock = clock
        self.refresh_outage = False
        self.refresh_faults: list[tuple[int, float | None]] = []  # queued (status, Retry-After) answers
        self.counters = OAuthCounters()
        self._clients = {c.client_id: c for c in config.clients}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._pending: dict[str, _Pending] = {}
        self._last_refresh: dict[str, float] = {}
        self._info_polls: dict[str, int] = {}
        self._secret_locks_left = config.api_key_secret_locks

    # -- contract with server.py -------------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/auth/login", self._login),
            web.post("/auth/login/decision", self._decision),
            web.post("/oauth2/token", self._token),
            web.post("/oauth2/refresh_token", self._refresh_token),
            web.get("/oauth2/api-key/info", self._apikey_info),
            web.get("/oauth2/api-key/{externalId}/secret", self._apikey_secret),
            web.delete("/oauth2/api-key/{externalId}", self._apikey_delete),
        ]

    def check_bearer(self, authorization: str | None) -> BearerIdentity | None:
        """Identity for an `Authorization: Bearer ...` header value, or None if missing, unknown or expired."""
        self.counters.bearer_checks += 1
        ident = self._identity(authorization)
        if ident is None:
            self.counters.bearer_rejected += 1
        return ident

    def revoke_all_access_tokens(self) -> None:
        """Fault injection: every access token issued so far stops working."""
        for a in self._access.values():
            a.revoked = True

    def revoke_all_refresh_tokens(self) -> None:
        """Fault injection: every refresh token issued so far stops working."""
        for r in self._refresh.values():
            r.revoked = True

    def reset(self) -> None:
        """Forget all codes, tokens and grants (between tests)."""
        self._codes.clear()
        self._access.clear()
        self._refresh.clear()
        self._pending.clear()
        self._last_refresh.clear()
        self._info_polls.clear()
        self.refresh_faults.clear()
        self.refresh_outage = False
        self._secret_locks_left = self.config.api_key_secret_locks
        self.counters = OAuthCounters()

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _identity(self, authorization: str | None) -> BearerIdentity | None:
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        rec = self._access.get(authorization[7:].strip())
        if rec is None or rec.revoked or rec.grant.revoked or self.clock() >= rec.expires_at:
            return None
        g = rec.grant
        return BearerIdentity(g.account, g.client_id, g.scopes)

    def _client_auth(self, form: Any) -> OAuthClientConfig | None:
        c = self._clients.get(str(form.get("client_id", "")))
        if c is None:
            return None
        given = str(form.get("client_secret", "")).encode()
        return c if hmac.compare_digest(given, c.client_secret.get_secret_value().encode()) else None

    @staticmethod
    def _missing(form: Any, names: tuple[str, ...]) -> web.Response | None:
        missing = {n: ["validation.required"] for n in names if not form.get(n)}
        if missing:
            return web.json_response({"errors": missing, "notification": None}, status=422, headers=_NO_STORE)
        return None

    def _issue_tokens(self, grant: _Grant, flow: str) -> dict[str, Any]:
        now = self.clock()
        at = secrets.token_urlsafe(32)
        ttl = self.config.api_key_token_ttl if flow == "B" else self.config.access_ttl
        self._access[at] = _Access(grant, now + ttl)
        out: dict[str, Any] = {
            "access_token": at,
            "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
            "scope": ",".join(sorted(grant.scopes)),
            "token_type": "Bearer",
        }
        if flow == "A":
            rt = secrets.token_urlsafe(32)
            self._refresh[rt] = _Refresh(grant, now + self.config.refresh_ttl)
            out["refresh_token"] = rt
        return out

    def _revoke_grant(self, grant: _Grant) -> None:
        grant.revoked = True
        for a in self._access.values():
            if a.grant is grant:
                a.revoked = True
        for r in self._refresh.values():
            if r.grant is grant:
                r.revoked = True

    def _redirect(self, p: _Pending, approve: bool) -> web.Response:
        params: dict[str, str] = {}
        if approve:
            code = secrets.token_urlsafe(24)
            grant = _Grant(secrets.token_hex(8), p.account, p.client.client_id, frozenset(p.client.scopes))
            self._codes[code] = _Code(
                grant, self.clock() + self.config.code_ttl, p.redirect_uri, p.challenge, p.flow
            )
            params["code"] = code
            if p.flow == "B":
                key = self.keys.for_oauth(p.account, p.client.client_id)
                if key is None:  # one active OAuth key per (user, partner); otherwise "no key created"
                    key = self.keys.issue(p.account, frozenset(self.config.api_key_permissions), p.client.client_id)
                    if self.config.api_key_redirect_param:
                        params[self.config.api_key_redirect_param] = key.key
        else:
            params["error"] = "access_denied"
            params["error_description"] = "The user denied the request"
        if p.state is not None:
            params["state"] = p.state
        raise web.HTTPFound(_with_query(p.redirect_uri, params))

    # -- /auth/login -------------------------------------------------------------------------------------------------
    async def _login(self, request: web.Request) -> web.Response:
        self.counters.authorize_requests += 1
        q = request.query
        client = self._clients.get(q.get("clientId", ""))
        if client is None:
            return web.Response(status=400, text="Unknown clientId.")
        challenge = q.get("code_challenge")
        if challenge is not None and q.get("code_challenge_method", "plain") != "S256":
            return web.Response(status=400, text="code_challenge_method must be S256.")
        given = q.get("redirect_uri")
        if given:
            if not _redirect_ok(client.redirect_uris, given):
                return web.Response(status=400, text="redirect_uri is not registered for this client.")
            redirect = given
        elif client.redirect_uris:
            redirect = client.redirect_uris[0]
        else:
            return web.Response(status=400, text="Client has no registered redirect_uri.")
        flow = "B" if (given and challenge) else "A"
        account = q.get("account") or self.config.default_account
        pending = _Pending(client, q.get("state"), redirect, challenge, flow, account)
        if self.config.auto_approve:
            return self._redirect(pending, approve=True)
        tx = secrets.token_urlsafe(16)
        self._pending[tx] = pending
        scopes = html.escape(", ".join(client.scopes))
        body = (
            "<!doctype html><title>Sandbox consent</title>"
            f"<p>Client <b>{html.escape(client.client_id)}</b> asks for: {scopes}</p>"
            '<form method="post" action="/auth/login/decision">'
            f'<input type="hidden" name="tx" value="{tx}">'
            '<button name="decision" value="approve">Approve</button>'
            '<button name="decision" value="deny">Deny</button></form>'
        )
        return web.Response(text=body, content_type="text/html", headers=_NO_STORE)

    async def _decision(self, request: web.Request) -> web.Response:
        form = await request.post()
        pending = self._pending.pop(str(form.get("tx", "")), None)
        if pending is None:
            return web.Response(status=400, text="Unknown or used consent transaction.")
        return self._redirect(pending, approve=form.get("decision") == "approve")

    # -- /oauth2/token -----------------------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        self.counters.token_requests += 1
        form = await request.post()
        bad = self._missing(form, ("client_id", "client_secret", "code"))
        if bad is not None:
            return bad
        client = self._client_auth(form)
        if client is None:
            return _msg(401, "Invalid request")
        rec = self._codes.pop(str(form["code"]), None)  # single use, whatever happens next
        if rec is None or rec.grant.client_id != client.client_id or self.clock() >= rec.expires_at:
            return _msg(401, "Invalid request")
        if rec.challenge is not None:
            verifier = str(form.get("code_verifier", ""))
            if not verifier or not hmac.compare_digest(_s256(verifier), rec.challenge):
                return _data({"code_verifier": ["Invalid code verifier."]}, 400)
        self.counters.token_ok += 1
        return _data(self._issue_tokens(rec.grant, rec.flow))

    async def _refresh_token(self, request: web.Request) -> web.Response:
        c = self.counters
        c.refresh_requests += 1
        now = self.clock()
        c.refresh_times.append(now)
        form = await request.post()
        if "scope" in form:
            c.refresh_with_scope += 1
        bad = self._missing(form, ("client_id", "client_secret", "token"))
        if bad is not None:
            return bad
        client = self._client_auth(form)
        if client is None:
            return _msg(401, "Invalid request")
        if self.refresh_outage:
            c.refresh_faults += 1
            return web.Response(status=503, text="Service Unavailable", headers={"Retry-After": "1"})
        if self.refresh_faults:
            status, retry_after = self.refresh_faults.pop(0)
            c.refresh_faults += 1
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.Response(status=status, text="Service Unavailable", headers=headers)
        min_gap = 1.0 / self.config.refresh_rate_per_s if self.config.refresh_rate_per_s > 0 else 0.0
        last = self._last_refresh.get(client.client_id)
        if last is not None and now - last < min_gap:
            c.refresh_rate_limited += 1
            return _msg(429, "Too many requests.", {"Retry-After": "1"})
        self._last_refresh[client.client_id] = now
        rec = self._refresh.get(str(form["token"]))
        if rec is None or rec.grant.client_id != client.client_id:
            c.refresh_rejected += 1
            return _data({"token": ["Invalid token."]}, 400)
        if rec.spent:
            c.reuse_detected += 1
            c.refresh_rejected += 1
            self._revoke_grant(rec.grant)
            return _data({"token": ["Invalid token."]}, 400)
        if rec.revoked or rec.grant.revoked or now >= rec.expires_at:
            c.refresh_rejected += 1
            return _data({"token": ["Invalid token."]}, 400)
        c.refresh_ok += 1
        if not self.config.rotate_refresh_tokens:
            out = self._issue_tokens(rec.grant, "A")
            self._refresh.pop(out.pop("refresh_token"), None)
            return _data(out)
        rec.spent = True
        return _data(self._issue_tokens(rec.grant, "A"))

    # -- /oauth2/api-key/* -------------------------------------------------------------------------------------------
    def _bearer_or_error(self, request: web.Request, scope: str) -> BearerIdentity | web.Response:
        ident = self.check_bearer(request.headers.get("Authorization"))
        if ident is None:
            return _msg(401, "Unauthorized.", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in ident.scopes:
            return _msg(403, "Forbidden.", {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
        return ident

    def _own_key(self, ident: BearerIdentity, external_id: str) -> ApiKey | web.Response:
        key = self.keys.by_external_id(external_id)
        if key is None:
            return _msg(404, "Key not found.")
        if key.oauth_client_id != ident.client_id or key.account != ident.account:
            return _msg(403, "Forbidden.")
        return key

    async def _apikey_info(self, request: web.Request) -> web.Response:
        self.counters.apikey_info_requests += 1
        ident = self._bearer_or_error(request, "apikeys.read")
        if isinstance(ident, web.Response):
            return ident
        key = self.keys.for_oauth(ident.account, ident.client_id)
        slot = f"{ident.account}\0{ident.client_id}"
        polls = self._info_polls.get(slot, 0)
        self._info_polls[slot] = polls + 1
        if key is None or polls < self.config.api_key_ready_after_polls:
            return _data({"exists": False, "isEnabled": False, "externalId": None, "permissions": []})
        permissions = [
            {"name": p, "title": p, "urls": [{"url": p, "enable": True}]} for p in sorted(key.permissions)
        ]
        return _data(
            {"exists": True, "isEnabled": key.enabled, "externalId": key.external_id, "permissions": permissions}
        )

    async def _apikey_secret(self, request: web.Request) -> web.Response:
        self.counters.apikey_secret_requests += 1
        ident = self._bearer_or_error(request, "apikeys.read")
        if isinstance(ident, web.Response):
            return ident
        key = self._own_key(ident, request.match_info["externalId"])
        if isinstance(key, web.Response):
            return key
        if self._secret_locks_left > 0:
            self._secret_locks_left -= 1
            return _msg(423, "Temporary lock, retry shortly.")
        if key.secret_retrieved:
            return _msg(409, "Secret already retrieved.")
        key.secret_retrieved = True
        return _data({"apiSecret": key.secret})

    async def _apikey_delete(self, request: web.Request) -> web.Response:
        self.counters.apikey_delete_requests += 1
        ident = self._bearer_or_error(request, "apikeys.delete")
        if isinstance(ident, web.Response):
            return ident
        key = self._own_key(ident, request.match_info["externalId"])
        if isinstance(key, web.Response):
            return key
        self.keys.delete(key.key)
        return _data([])
