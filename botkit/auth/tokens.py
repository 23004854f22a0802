"""In-memory credential records: an OAuth token set and an API key, both with secrets as SecretStr."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from pydantic import SecretStr


def fingerprint(secret: SecretStr | str | None) -> str:
    """Short, non-reversible id for logs and status output (oauth-client-rules.md G2)."""
    if secret is None:
        return "-"
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """One token response, normalised across dialects. `expires_at`/`obtained_at` are wall-clock epochs."""

    access_token: SecretStr
    refresh_token: SecretStr | None
    token_type: str
    expires_at: float
    obtained_at: float
    scopes: frozenset[str]

    def with_refresh_fallback(self, old: TokenSet | None) -> TokenSet:
        """RFC 6749 §6: a refresh answer without a refresh token keeps the old one."""
        if self.refresh_token is None and old is not None and old.refresh_token is not None:
            return replace(self, refresh_token=old.refresh_token)
        return self

    def __repr__(self) -> str:
        return (
            f"TokenSet(at={fingerprint(self.access_token)}, rt={fingerprint(self.refresh_token)}, "
            f"expires_at={self.expires_at:.0f}, scopes={sorted(self.scopes)})"
        )


@dataclass(frozen=True, slots=True)
class ApiKeyCredentials:
    """A (Fast) API key: the public key, its secret, and the permissions it carries into the grant."""

    api_key: str
    api_secret: SecretStr
    external_id: str | None
    permissions: frozenset[str]
    obtained_at: float

    def __repr__(self) -> str:
        return f"ApiKeyCredentials(api_key={self.api_key[:4]}…, permissions={sorted(self.permissions)})"
