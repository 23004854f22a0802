"""Typed errors of the token layer (oauth-client-rules.md G1).

Each carries the HTTP status, the OAuth error code and the endpoint *path*; never a body, header or token.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base for every token-layer failure."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None, path: str | None = None):
        self.status = status
        self.error = error
        self.path = path
        bits = [message]
        ctx = ", ".join(
            f"{k}={v}" for k, v in (("status", status), ("error", error), ("endpoint", path)) if v is not None
        )
        if ctx:
            bits.append(f"({ctx})")
        super().__init__(" ".join(bits))


class ReauthRequired(AuthError):
    """The grant is gone (invalid_grant, spent or expired refresh token, repeated 401): a human must log in again."""

    def __init__(self, reason: str, *, command: str, **kw: object) -> None:
        self.command = command
        super().__init__(f"{reason}; re-authorize with: {command}", **kw)  # type: ignore[arg-type]


class ClientMisconfigured(AuthError):
    """invalid_client / unauthorized_client: the client id, secret or registration is wrong. Not retryable."""


class TokenEndpointUnavailable(AuthError):
    """Connection errors, 5xx or 429 outlasted the retry budget."""


class PersistenceError(AuthError):
    """The token store could not be written; a rotated refresh token must not be used unsaved."""


class TokenStoreRejected(AuthError):
    """A token file is unsafe (permissions) or belongs to another client or region."""


class AuthorizationFailed(AuthError):
    """The interactive authorization did not produce a usable code (denied, state mismatch, bad code)."""


class StateMismatch(AuthorizationFailed):
    """The callback's `state` is not the one we sent: possible CSRF, the code is discarded."""


class ApiKeyFlowError(AuthError):
    """Fast API Key flow could not deliver a key + secret; the message says what to do."""
