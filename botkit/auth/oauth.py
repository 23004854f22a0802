"""Both OAuth dialects behind one client: WhiteBIT's (docs/whitebit.md §1) and RFC 6749.

Each method does one HTTP exchange and classifies the outcome (token set, terminal, transient); the retry
policy and single-flight live in the TokenManager, so a code exchange is never retried (RFC 6749 §4.1.2).

The authorization request always names its `redirect_uri`, and the code exchange repeats exactly that value
(RFC 6749 §4.1.3). WhiteBIT documents PKCE for Flow B only, and a request carrying both `redirect_uri` and a code
challenge is the documented Flow B request (it ends in an API key, not a refreshable session): WhiteBIT Flow A
therefore sends no challenge and relies on `state` and the client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from botkit.auth.errors import AuthError, AuthorizationFailed, ClientMisconfigured
from botkit.auth.settings import AuthSettings
from botkit.auth.tokens import TokenSet, fingerprint
from botkit.market.grants import parse_scopes
from botkit.retry import parse_retry_after

log = logging.getLogger("botkit.auth.oauth")


class InvalidGrant(AuthError):
    """Terminal: the refresh token or code is invalid, expired, spent or revoked."""


class TransientTokenError(AuthError):
    """Retryable: connection failure, 5xx or 429."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Pkce:
    """RFC 7636 S256 pair; a fresh one per authorization attempt."""

    verifier: SecretStr
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(64)  # 86 chars, 512 bits
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return cls(SecretStr(verifier), challenge)


def basic_credentials(client_id: str, secret: str) -> str:
    """`Authorization: Basic` value per RFC 6749 §2.3.1: id and secret each form-encoded
    (application/x-www-form-urlencoded, space as '+') before they are joined by ':' and base64-encoded."""
    user = urllib.parse.quote_plus(client_id, safe="")
    pw = urllib.parse.quote_plus(secret, safe="")
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")


def new_state() -> str:
    return secrets.token_urlsafe(32)


def states_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Everything one login attempt needs to remember until the callback."""

    url: str
    state: str
    pkce: Pkce | None
    redirect_uri: str | None


class OAuthClient:
    """Talks to one authorization server in the configured dialect."""

    def __init__(self, settings: AuthSettings, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.http = http
        self._clock = clock  # wall seconds: when a token was obtained and when it expires
        self._metadata: dict[str, Any] | None = None

    # -- endpoints -----------------------------------------------------------------------------------------------
    def _endpoint(self, key: str, path: str | None) -> str:
        if self._metadata and key in self._metadata:
            return str(self._metadata[key])
        if path is None:
            raise AuthError(f"no {key} configured for dialect {self.s.dialect}; set auth.{key.split('_')[0]}_path")
        return self.s.url(path)

    async def discover(self) -> dict[str, Any]:
        """RFC 8414 metadata, used only if its `issuer` equals the configured one (§3.3)."""
        issuer = self.s.expected_issuer
        last: Exception | None = None
        for wk in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            try:
                r = await self.http.get(issuer + wk)
            except httpx.HTTPError as exc:
                last = exc
                continue
            if r.status_code != 200:
                continue
            doc = r.json()
            if doc.get("issuer") != issuer:
                raise ClientMisconfigured(
                    f"metadata issuer {doc.get('issuer')!r} does not match the configured issuer {issuer!r}; "
                    "refusing it (RFC 8414 §3.3): fix auth.issuer or auth.base_url",
                    path=wk,
                )
            self._metadata = dict(doc)
            return self._metadata
        raise AuthError(
            f"no RFC 8414 metadata at {issuer}; set auth.use_metadata = false and configure the paths"
        ) from last

    # -- authorization ---------------------------------------------------------------------------------------------
    def authorization_request(self, redirect_uri: str | None, *, flow: str = "code") -> AuthorizationRequest:
        """Fresh state (A1) and PKCE (A2) per attempt; WhiteBIT Flow A: state only (see the module docstring)."""
        state = new_state()
        pkce = Pkce.new()
        base = self._endpoint("authorization_endpoint", self.s.authorize_path)
        q: dict[str, str]
        if self.s.dialect == "whitebit":
            q = {"clientId": self.s.client_id, "state": state}
            if flow == "apikey" and not redirect_uri:
                raise AuthError("the Fast API Key flow needs a redirect_uri; set auth.redirect_uri")
            if redirect_uri:
                q["redirect_uri"] = redirect_uri
            if flow != "apikey":
                sep = "&" if "?" in base else "?"
                return AuthorizationRequest(f"{base}{sep}{urllib.parse.urlencode(q)}", state, None, redirect_uri)
            q.update(code_challenge=pkce.challenge, code_challenge_method="S256")
        else:
            q = {"response_type": "code", "client_id": self.s.client_id, "state": state}
            if redirect_uri:
                q["redirect_uri"] = redirect_uri
            if self.s.scopes:
                q["scope"] = " ".join(self.s.scopes)
            q.update(code_challenge=pkce.challenge, code_challenge_method="S256")
        sep = "&" if "?" in base else "?"
        return AuthorizationRequest(f"{base}{sep}{urllib.parse.urlencode(q)}", state, pkce, redirect_uri)

    # -- token endpoint --------------------------------------------------------------------------------------------
    def _client_auth(self, form: dict[str, str]) -> dict[str, str]:
        headers: dict[str, str] = {"Accept": "application/json"}
        secret = self.s.client_secret.get_secret_value() if self.s.client_secret else None
        if self.s.dialect == "rfc6749" and self.s.client_auth == "client_secret_basic" and secret is not None:
            headers["Authorization"] = basic_credentials(self.s.client_id, secret)
        else:
            form["client_id"] = self.s.client_id
            if secret is not None:
                form["client_secret"] = secret
        return headers

    async def _post_token(self, url: str, form: dict[str, str], what: str) -> tuple[dict[str, Any], float]:
        headers = self._client_auth(form)
        path = urllib.parse.urlsplit(url).path
        sent_at = self._clock()
        try:
            r = await self.http.post(url, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise TransientTokenError(f"{what}: {type(exc).__name__}", path=path) from None
        if r.status_code == 200:
            try:
                doc = r.json()
            except ValueError:
                raise TransientTokenError(f"{what}: answer is not JSON", status=200, path=path) from None
            if self.s.dialect == "whitebit" and isinstance(doc, dict) and isinstance(doc.get("data"), dict):
                doc = doc["data"]
            if not isinstance(doc, dict):
                raise AuthError(f"{what}: token response is not an object", status=200, path=path)
            return doc, sent_at
        self._raise_for(r, what, path)
        raise AssertionError("unreachable")

    def _raise_for(self, r: httpx.Response, what: str, path: str) -> None:
        status = r.status_code
        if status == 429 or status >= 500:
            ra = parse_retry_after(r.headers.get("Retry-After"))
            raise TransientTokenError(f"{what}: server busy or failing", status=status, path=path, retry_after=ra)
        error = self._error_code(r)
        if error == "invalid_grant":
            raise InvalidGrant(f"{what}: grant rejected", status=status, error=error, path=path)
        if error in ("invalid_client", "unauthorized_client"):
            raise ClientMisconfigured(
                f"{what}: client rejected; check auth.client_id and {'BOTKIT_AUTH__CLIENT_SECRET'}",
                status=status, error=error, path=path,
            )
        raise AuthError(f"{what}: request rejected", status=status, error=error, path=path)

    def _error_code(self, r: httpx.Response) -> str:
        """Map both dialects' error bodies to RFC 6749 §5.2 codes."""
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return str(doc["error"])
        if self.s.dialect == "whitebit":
            data = doc.get("data") if isinstance(doc, dict) else None
            if isinstance(data, dict):
                if any("invalid token" in str(m).lower() for m in data.get("token", []) or []):
                    return "invalid_grant"
                if any("invalid code" in str(m).lower() for m in data.get("code", []) or []):
                    return "invalid_grant"
            if isinstance(doc, dict) and isinstance(doc.get("errors"), dict):
                return "invalid_request"
            if r.status_code == 401:
                return "invalid_client"
        return "invalid_request" if r.status_code == 400 else f"http_{r.status_code}"

    def _token_set(self, doc: dict[str, Any], sent_at: float, requested: frozenset[str], what: str) -> TokenSet:
        at = doc.get("access_token")
        tt = str(doc.get("token_type") or "")
        if not isinstance(at, str) or not at:
            raise AuthError(f"{what}: response has no access_token")
        if tt.lower() != "bearer":
            raise AuthError(f"{what}: token_type {tt!r} is not Bearer; botkit only sends Bearer tokens")
        expires_in = self._expires_in(doc.get("expires_in"), what)
        rt = doc.get("refresh_token")
        scopes = parse_scopes(doc["scope"]) if isinstance(doc.get("scope"), str) else requested
        if requested and not requested <= scopes:
            log.warning("scope.narrowed: missing %s", ",".join(sorted(requested - scopes)))
        return TokenSet(
            access_token=SecretStr(at),
            refresh_token=SecretStr(rt) if isinstance(rt, str) and rt else None,
            token_type="Bearer",
            expires_at=sent_at + expires_in,  # conservative: measured from when the request left (B1)
            obtained_at=sent_at,
            scopes=scopes,
        )

    def _expires_in(self, raw: object, what: str) -> float:
        """RFC 6749 §5.1 `expires_in`: missing -> the configured default (B1); 0 -> already expired (a token the
        server calls dead is not used for 300 s); negative or not a number -> refused, naming the value."""
        if raw is None or raw == "":
            return self.s.default_expires_in
        try:
            if isinstance(raw, bool):
                raise TypeError
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise AuthError(
                f"{what}: the server sent expires_in = {raw!r}, which is not a number of seconds (RFC 6749 §5.1); "
                "report it to the server's operator"
            ) from None
        if value != value or value < 0 or value == float("inf"):
            raise AuthError(
                f"{what}: the server sent expires_in = {raw!r}; a lifetime must be 0 or more seconds "
                "(RFC 6749 §5.1); report it to the server's operator"
            )
        if value == 0:
            log.warning("%s: the server sent expires_in = 0: the access token counts as already expired", what)
        return value

    async def exchange_code(self, code: SecretStr, pkce: Pkce | None, redirect_uri: str | None) -> TokenSet:
        """One attempt only: a code is single-use, an ambiguous failure means a new login (A6). The
        `redirect_uri` is the one the authorization request carried, byte for byte (RFC 6749 §4.1.3)."""
        url = self._endpoint("token_endpoint", self.s.token_path)
        form: dict[str, str] = {"code": code.get_secret_value()}
        if self.s.dialect == "rfc6749":
            form["grant_type"] = "authorization_code"
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        if pkce is not None:
            form["code_verifier"] = pkce.verifier.get_secret_value()
        try:
            doc, sent_at = await self._post_token(url, form, "code exchange")
        except (TransientTokenError, InvalidGrant) as exc:
            raise AuthorizationFailed(
                f"code exchange failed ({type(exc).__name__}); start a new login, a code cannot be reused",
                status=exc.status, error=exc.error, path=exc.path,
            ) from None
        ts = self._token_set(doc, sent_at, frozenset(self.s.scopes), "code exchange")
        log.info("token.obtained at=%s expires_in=%.0f", fingerprint(ts.access_token), ts.expires_at - sent_at)
        return ts

    async def refresh(self, current: TokenSet) -> TokenSet:
        """One refresh request; never sends `scope` (C4). Rotation fallback applied (B3)."""
        if current.refresh_token is None:
            raise InvalidGrant("no refresh token stored (this grant cannot be refreshed)")
        rt = current.refresh_token.get_secret_value()
        if self.s.dialect == "whitebit":
            url = self._endpoint("refresh_endpoint", self.s.refresh_path)
            form = {"token": rt}
        else:
            url = self._endpoint("token_endpoint", self.s.refresh_path)
            form = {"grant_type": "refresh_token", "refresh_token": rt}
        doc, sent_at = await self._post_token(url, form, "refresh")
        ts = self._token_set(doc, sent_at, current.scopes, "refresh").with_refresh_fallback(current)
        return ts

    @property
    def iss_required(self) -> bool:
        """RFC 9207 §2.4: a server whose metadata advertises `authorization_response_iss_parameter_supported`
        sends `iss` in every authorization response, so a response without it is refused (mix-up defence)."""
        return bool(self._metadata and self._metadata.get("authorization_response_iss_parameter_supported"))

    async def revoke(self, token: SecretStr, hint: str = "refresh_token") -> bool:
        """RFC 7009 revocation where offered; False when the server has no endpoint (WhiteBIT)."""
        path = self._metadata.get("revocation_endpoint") if self._metadata else None
        if path is None and self.s.revoke_path is None:
            return False
        url = str(path) if path else self.s.url(str(self.s.revoke_path))
        form = {"token": token.get_secret_value(), "token_type_hint": hint}
        headers = self._client_auth(form)
        try:
            r = await self.http.post(url, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise TransientTokenError(f"revoke: {type(exc).__name__}", path=urllib.parse.urlsplit(url).path) from None
        if r.status_code == 200:
            return True
        self._raise_for(r, "revoke", urllib.parse.urlsplit(url).path)
        return False
