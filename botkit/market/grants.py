"""Grants: the capabilities that the credentials in use carry, checked before any order leaves the process.

One `Grant` type covers OAuth scopes (from a token response) and API-key permissions (from
`/oauth2/api-key/info`), so the execution layer asks one question, "does the grant cover this operation?",
in backtest, paper and live alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The 20 scope strings WhiteBIT documents (docs/whitebit.md §1.4).
WHITEBIT_SCOPES: frozenset[str] = frozenset(
    {
        "general",
        "show.userinfo",
        "users.read",
        "users.email.read",
        "users.kyc.read",
        "orders.read",
        "orders.create",
        "orders.delete",
        "balances.read",
        "markets.read",
        "deals.read",
        "orders_history.read",
        "users.transactions.read",
        "users.converts.read",
        "users.balances.read",
        "users.orders.read",
        "users.deals.read",
        "apikeys.create",
        "apikeys.read",
        "apikeys.delete",
    }
)


class InsufficientScope(PermissionError):
    """An operation needs scopes the grant lacks. Raised before any side effect or network I/O."""

    def __init__(self, operation: str, required: frozenset[str], granted: frozenset[str]) -> None:
        self.operation = operation
        self.required = required
        self.granted = granted
        self.missing = required - granted
        super().__init__(
            f"{operation} needs scope(s) {sorted(self.missing)} that the grant lacks; "
            f"required {sorted(required)}, granted {sorted(granted)}"
        )


def parse_scopes(value: str | Iterable[str] | None) -> frozenset[str]:
    """Scopes from a comma-separated (WhiteBIT) or space-separated (RFC 6749) string, or an iterable."""
    if value is None:
        return frozenset()
    parts = value.replace(",", " ").split() if isinstance(value, str) else [p.strip() for p in value]
    return frozenset(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Grant:
    """A set of WhiteBIT scope strings granted to the credentials in use."""

    scopes: frozenset[str]
    source: str = "config"

    @classmethod
    def of(cls, scopes: str | Iterable[str] | None, source: str = "config") -> Grant:
        return cls(parse_scopes(scopes), source)

    def covers(self, required: Iterable[str]) -> bool:
        return frozenset(required) <= self.scopes

    def require(self, operation: str, required: Iterable[str]) -> None:
        """Raise `InsufficientScope` unless every required scope is granted."""
        need = frozenset(required)
        if not need <= self.scopes:
            raise InsufficientScope(operation, need, self.scopes)

    def unknown_scopes(self) -> frozenset[str]:
        """Scopes that are not among WhiteBIT's documented 20 (allowed: RFC servers use their own)."""
        return self.scopes - WHITEBIT_SCOPES

    def __str__(self) -> str:
        return ",".join(sorted(self.scopes))
