"""API keys known to the sandbox: created from config or by the OAuth Fast API Key flow, checked by HMAC auth.

Shared between the sandbox's OAuth part (which issues keys on consent) and its REST/WebSocket part (which
authenticates signed requests and enforces the key's permissions).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field


@dataclass(slots=True)
class ApiKey:
    """One API key. `permissions` are the WhiteBIT scope strings the key may use (e.g. ``orders.create``)."""

    key: str
    secret: str = field(repr=False)
    account: str
    permissions: frozenset[str]
    external_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    enabled: bool = True
    oauth_client_id: str | None = None
    secret_retrieved: bool = False
    last_nonce: int = 0
    recent_nonces: set[int] = field(default_factory=set, repr=False)


class ApiKeyRegistry:
    """In-memory key table; lookups by public key and by external id."""

    def __init__(self) -> None:
        self._by_key: dict[str, ApiKey] = {}

    def add(self, key: ApiKey) -> ApiKey:
        self._by_key[key.key] = key
        return key

    def issue(self, account: str, permissions: frozenset[str], oauth_client_id: str | None = None) -> ApiKey:
        """Create a fresh random key (the Fast API Key consent does this)."""
        return self.add(
            ApiKey(
                key=secrets.token_hex(16),
                secret=secrets.token_hex(32),
                account=account,
                permissions=permissions,
                oauth_client_id=oauth_client_id,
            )
        )

    def get(self, key: str) -> ApiKey | None:
        return self._by_key.get(key)

    def by_external_id(self, external_id: str) -> ApiKey | None:
        return next((k for k in self._by_key.values() if k.external_id == external_id), None)

    def for_oauth(self, account: str, oauth_client_id: str) -> ApiKey | None:
        """The one OAuth-bound key of (account, client), if any."""
        return next(
            (k for k in self._by_key.values() if k.account == account and k.oauth_client_id == oauth_client_id),
            None,
        )

    def delete(self, key: str) -> bool:
        return self._by_key.pop(key, None) is not None

    def clear(self) -> None:
        """Forget every key (the sandbox's reset reloads the configured ones)."""
        self._by_key.clear()

    def __len__(self) -> int:
        return len(self._by_key)
