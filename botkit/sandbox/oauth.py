"""The sandbox's OAuth part: the authorization server, in WhiteBIT's dialect (default) or the standard one.

`[oauth] dialect = "whitebit"`: wire formats follow docs/whitebit.md §1 (camelCase `clientId`, no `grant_type`,
`/oauth2/refresh_token` with `token=`, the `{"data": ...}` envelope, comma-separated scopes, the documented error
bodies), Flow A and the Fast API Key Flow B.
`[oauth] dialect = "rfc6749"`: a standards-shaped server instead of /auth/login and /oauth2/token|refresh_token:
RFC 8414 metadata at /.well-known/oauth-authorization-server, GET /authorize (response_type=code, `scope` space-
separated, PKCE S256 required, `iss` in every authorization response, RFC 9207), POST /token (grant_type
authorization_code | refresh_token, client_secret_basic or client_secret_post, plain JSON answers with
`Cache-Control: no-store`, space-separated `scope`, RFC 6749 §5.2 error bodies), POST /revoke (RFC 7009).
Either way the access tokens it issues are the same records, so the sandbox's API accepts both alike, and the
Fast API key endpoints (/oauth2/api-key/*) stay.
Behaviour that the docs leave open follows the strict reading, so clients are tested against the harsh case: refresh
tokens rotate on every use, and replaying a spent one revokes the whole grant (RFC 9700 §4.14.2). Counters are plain
attributes so tests can assert what the server actually saw.
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
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from botkit.sandbox.endpoints import SCOPES
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
    dialect: Literal["whitebit", "rfc6749"] = "whitebit"  # the wire format of the authorization server
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
    redirect_required: bool = False  # RFC mode: the token request must repeat redirect_uri exactly


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
    scopes: frozenset[str] | None = None  # RFC mode: the scopes asked for (None: the client's registered ones)
    issuer: str | None = None  # RFC mode: sent as `iss` in the authorization response (RFC 9207)
    redirect_given: bool = True  # the request named its redirect_uri (RFC 6749 §4.1.3: the token request must too)


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
    metadata_requests: int = 0
    revoke_requests: int = 0
    revoked: int = 0  # revocation requests that revoked a live token (RFC 7009)
    refresh_times: list[float] = field(default_factory=list)


def _data(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"data": payload}, status=status, headers={**_NO_STORE, **(headers or {})})


def _msg(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _data({"message": [message]}, status, headers)


def _rfc_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> web.Response:
    """RFC 6749 §5.2 error body."""
    return web.json_response({"error": error, "error_description": description}, status=status,
                             headers={**_NO_STORE, **(headers or {})})


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
        if self.config.dialect == "rfc6749":
            flows = [
                web.get("/.well-known/oauth-authorization-server", self._rfc_metadata),
                web.get("/authorize", self._rfc_authorize),
                web.post("/authorize/decision", self._decision),
                web.post("/token", self._rfc_token),
                web.post("/revoke", self._rfc_revoke),
            ]
        else:
            flows = [
                web.get("/auth/login", self._login),
                web.post("/auth/login/decision", self._decision),
                web.post("/oauth2/token", self._token),
                web.post("/oauth2/refresh_token", self._refresh_token),
            ]
        return [
            *flows,
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
            # WhiteBIT lists scopes comma-separated; RFC 6749 §3.3 space-delimited
            "scope": (" " if self.config.dialect == "rfc6749" else ",").join(sorted(grant.scopes)),
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
            scopes = p.scopes if p.scopes is not None else frozenset(p.client.scopes)
            grant = _Grant(secrets.token_hex(8), p.account, p.client.client_id, scopes)
            self._codes[code] = _Code(
                grant, self.clock() + self.config.code_ttl, p.redirect_uri, p.challenge, p.flow,
                redirect_required=p.issuer is not None and p.redirect_given,
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
        if p.issuer is not None:
            params["iss"] = p.issuer  # RFC 9207 §2: on success and on error alike
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
        return self._consent_page(pending, "/auth/login/decision")

    def _consent_page(self, pending: _Pending, action: str) -> web.Response:
        client = pending.client
        tx = secrets.token_urlsafe(16)
        self._pending[tx] = pending
        scopes = html.escape(", ".join(sorted(pending.scopes) if pending.scopes is not None else client.scopes))
        body = (
            "<!doctype html><title>Sandbox consent</title>"
            f"<p>Client <b>{html.escape(client.client_id)}</b> asks for: {scopes}</p>"
            f'<form method="post" action="{action}">'
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
        c.refresh_times.append(self.clock())
        form = await request.post()
        if "scope" in form:
            c.refresh_with_scope += 1
        bad = self._missing(form, ("client_id", "client_secret", "token"))
        if bad is not None:
            return bad
        client = self._client_auth(form)
        if client is None:
            return _msg(401, "Invalid request")
        out = self._rotate(client, str(form["token"]), None)
        return out if isinstance(out, web.Response) else _data(out)

    def _rotate(
        self, client: OAuthClientConfig, token: str, scope: frozenset[str] | None
    ) -> dict[str, Any] | web.Response:
        """One refresh, in either dialect: outage and queued faults, the 1/s limit per client, then the refresh
        token's checks (unknown, another client's, replayed: the grant dies, revoked, expired) and rotation."""
        c = self.counters
        now = self.clock()
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
            if self.config.dialect == "rfc6749":
                return _rfc_error(429, "temporarily_unavailable", "At most one refresh per second.",
                                  {"Retry-After": "1"})
            return _msg(429, "Too many requests.", {"Retry-After": "1"})
        self._last_refresh[client.client_id] = now
        rec = self._refresh.get(token)
        if rec is None or rec.grant.client_id != client.client_id:
            c.refresh_rejected += 1
            return self._invalid_refresh()
        if rec.spent:
            c.reuse_detected += 1
            c.refresh_rejected += 1
            self._revoke_grant(rec.grant)
            return self._invalid_refresh()
        if rec.revoked or rec.grant.revoked or now >= rec.expires_at:
            c.refresh_rejected += 1
            return self._invalid_refresh()
        if scope is not None and not scope <= rec.grant.scopes:  # RFC 6749 §6: never wider than granted
            return _rfc_error(400, "invalid_scope", "The requested scope exceeds the scope originally granted.")
        c.refresh_ok += 1
        if not self.config.rotate_refresh_tokens:
            out = self._issue_tokens(rec.grant, "A")
            self._refresh.pop(out.pop("refresh_token"), None)
            return out
        rec.spent = True
        return self._issue_tokens(rec.grant, "A")

    def _invalid_refresh(self) -> web.Response:
        if self.config.dialect == "rfc6749":
            return _rfc_error(400, "invalid_grant", "The refresh token is invalid, expired, revoked or already used.")
        return _data({"token": ["Invalid token."]}, 400)

    # -- RFC 6749 dialect: /.well-known/oauth-authorization-server, /authorize, /token, /revoke -----------------------
    @staticmethod
    def _issuer(request: web.Request) -> str:
        """This server's issuer identifier: its own origin, as the client addressed it (RFC 8414 §2)."""
        return f"{request.scheme}://{request.host}"

    async def _rfc_metadata(self, request: web.Request) -> web.Response:
        """RFC 8414 §3: the issuer, the endpoints, and what the server supports."""
        self.counters.metadata_requests += 1
        iss = self._issuer(request)
        methods = ["client_secret_basic", "client_secret_post"]
        return web.json_response({
            "issuer": iss,
            "authorization_endpoint": f"{iss}/authorize",
            "token_endpoint": f"{iss}/token",
            "revocation_endpoint": f"{iss}/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(SCOPES),
            "authorization_response_iss_parameter_supported": True,
        })

    async def _rfc_authorize(self, request: web.Request) -> web.Response:
        """RFC 6749 §4.1.1 with PKCE S256 required (OAuth 2.1). An unknown client or a redirect_uri that is not
        registered gets an error page, never a redirect (§4.1.2.1); every other error is redirected, with `iss`."""
        self.counters.authorize_requests += 1
        q = request.query
        client = self._clients.get(q.get("client_id", ""))
        if client is None:
            return web.Response(status=400, text="Unknown client_id.")
        given = q.get("redirect_uri")
        if given:
            if not _redirect_ok(client.redirect_uris, given):
                return web.Response(status=400, text="redirect_uri is not registered for this client.")
            redirect = given
        elif len(client.redirect_uris) == 1:
            redirect = client.redirect_uris[0]
        else:
            return web.Response(status=400, text="redirect_uri is required (the client has several or none).")
        account = q.get("account") or self.config.default_account
        pending = _Pending(client, q.get("state"), redirect, None, "A", account, issuer=self._issuer(request),
                           redirect_given=bool(given))
        if q.get("response_type") != "code":
            return self._error_redirect(pending, "unsupported_response_type", "Only response_type=code is supported.")
        challenge = q.get("code_challenge")
        if not challenge:
            return self._error_redirect(pending, "invalid_request", "PKCE is required: send code_challenge (S256).")
        if q.get("code_challenge_method", "plain") != "S256":
            return self._error_redirect(pending, "invalid_request", "code_challenge_method must be S256.")
        pending.challenge = challenge
        if "scope" in q:
            asked = frozenset(q["scope"].split(" ")) - {""}
            unknown = asked - frozenset(client.scopes)
            if unknown:
                return self._error_redirect(pending, "invalid_scope",
                                            f"Not allowed for this client: {' '.join(sorted(unknown))}.")
            pending.scopes = asked or None
        if self.config.auto_approve:
            return self._redirect(pending, approve=True)
        return self._consent_page(pending, "/authorize/decision")

    def _error_redirect(self, p: _Pending, error: str, description: str) -> web.Response:
        params = {"error": error, "error_description": description}
        if p.state is not None:
            params["state"] = p.state
        if p.issuer is not None:
            params["iss"] = p.issuer
        raise web.HTTPFound(_with_query(p.redirect_uri, params))

    def _rfc_client(self, request: web.Request, form: Any) -> OAuthClientConfig | web.Response:
        """client_secret_basic (id and secret form-encoded, RFC 6749 §2.3.1) or client_secret_post; one at a time."""
        header = request.headers.get("Authorization", "")
        basic = header[:6].lower() == "basic "
        if basic:
            if "client_secret" in form:
                return _rfc_error(400, "invalid_request", "Use one client authentication method, not two.")
            try:
                raw = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raw = ""
            user, _, password = raw.partition(":")
            client_id, secret = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)
        else:
            client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        c = self._clients.get(client_id)
        if c is None or not hmac.compare_digest(secret.encode(), c.client_secret.get_secret_value().encode()):
            challenge = {"WWW-Authenticate": 'Basic realm="botkit-sandbox"'} if basic else None
            return _rfc_error(401, "invalid_client", "Client authentication failed.", challenge)
        return c

    async def _rfc_token(self, request: web.Request) -> web.Response:
        """RFC 6749 §4.1.3 (authorization_code, PKCE §4.5 of RFC 7636) and §6 (refresh_token); §5.1/§5.2 answers."""
        c = self.counters
        form = await request.post()
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            c.refresh_requests += 1
            c.refresh_times.append(self.clock())
            if "scope" in form:
                c.refresh_with_scope += 1
        else:
            c.token_requests += 1
        client = self._rfc_client(request, form)
        if isinstance(client, web.Response):
            return client
        if grant_type == "authorization_code":
            code = str(form.get("code", ""))
            if not code:
                return _rfc_error(400, "invalid_request", "code is required.")
            rec = self._codes.pop(code, None)  # single use, whatever happens next
            if rec is None or rec.grant.client_id != client.client_id or self.clock() >= rec.expires_at:
                return _rfc_error(400, "invalid_grant", "The code is invalid, expired, used or another client's.")
            if rec.redirect_required and form.get("redirect_uri") != rec.redirect_uri:
                return _rfc_error(400, "invalid_grant", "redirect_uri differs from the authorization request's.")
            verifier = str(form.get("code_verifier", ""))
            if rec.challenge is not None and (not verifier or not hmac.compare_digest(_s256(verifier), rec.challenge)):
                return _rfc_error(400, "invalid_grant", "PKCE verification failed.")
            c.token_ok += 1
            return web.json_response(self._issue_tokens(rec.grant, "A"), headers=_NO_STORE)
        if grant_type == "refresh_token":
            token = str(form.get("refresh_token", ""))
            if not token:
                return _rfc_error(400, "invalid_request", "refresh_token is required.")
            scope = frozenset(str(form["scope"]).split(" ")) - {""} if "scope" in form else None
            out = self._rotate(client, token, scope)
            return out if isinstance(out, web.Response) else web.json_response(out, headers=_NO_STORE)
        if not grant_type:
            return _rfc_error(400, "invalid_request", "grant_type is required.")
        return _rfc_error(400, "unsupported_grant_type", f"grant_type {str(grant_type)[:40]!r} is not supported.")

    async def _rfc_revoke(self, request: web.Request) -> web.Response:
        """RFC 7009: 200 whether or not the token was live; revoking a refresh token ends its grant (its access
        tokens too, §2.1), revoking an access token ends that token only."""
        self.counters.revoke_requests += 1
        form = await request.post()
        client = self._rfc_client(request, form)
        if isinstance(client, web.Response):
            return client
        token = str(form.get("token", ""))
        if not token:
            return _rfc_error(400, "invalid_request", "token is required.")
        rt = self._refresh.get(token)
        at = self._access.get(token)
        owner = rt.grant if rt is not None else at.grant if at is not None else None
        if owner is not None and owner.client_id != client.client_id:
            return _rfc_error(400, "unauthorized_client", "The token was issued to another client.")
        if rt is not None and not (rt.revoked or rt.grant.revoked):
            self._revoke_grant(rt.grant)
            self.counters.revoked += 1
        elif at is not None and not at.revoked:
            at.revoked = True
            self.counters.revoked += 1
        return web.Response(status=200, headers=_NO_STORE)

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
