"""The endpoint registry: one row per WhiteBIT endpoint that botkit calls.

Clients, the scope check, the retry policy and the rate limiter all read this table, so "which scopes does
cancel need?" or "may we retry a balance read?" has exactly one answer (DESIGN.md, "Layers").
Scope mapping for HMAC endpoints follows the scope names (docs/whitebit.md §1.4); WhiteBIT documents no table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

AuthKind = Literal["hmac", "bearer", "public"]
Method = Literal["GET", "POST", "DELETE"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint. `idempotent` marks a retry after an ambiguous failure as safe (WhiteBIT POSTs reads too)."""

    name: str
    method: Method
    path: str
    auth: frozenset[AuthKind]
    scopes: frozenset[str] = field(default_factory=frozenset)
    idempotent: bool = True
    rate_group: str = "default"
    rate_limit: tuple[int, float] | None = None  # (requests, per seconds)

    def url_path(self, **path_params: str) -> str:
        """Path with `{name}` placeholders filled; a missing one is a clear error."""
        try:
            return self.path.format(**path_params)
        except KeyError as exc:
            raise ValueError(
                f"endpoint {self.name!r} needs path parameter {exc.args[0]!r} (path {self.path})"
            ) from None


def _ep(
    name: str,
    method: Method,
    path: str,
    auth: set[AuthKind],
    scopes: set[str] | None = None,
    *,
    idempotent: bool = True,
    group: str = "default",
    limit: tuple[int, float] | None = None,
) -> Endpoint:
    return Endpoint(name, method, path, frozenset(auth), frozenset(scopes or ()), idempotent, group, limit)


_TRADE = (10000, 10.0)
_READ = (12000, 10.0)
_PUBLIC = (2000, 10.0)

# WhiteBIT's limits are per IP and per 10 s at three levels (docs/whitebit.md §2.6): an endpoint's own limit (the
# `limit` of its row), its scope (the group limits below, keyed by `rate_group`) and the global default. A call must
# fit all three. Groups without a documented scope limit ("order", "orders", "accounts", ...) only share a back-off
# after a gateway 429. `/api/v4/orders` is 12000 in the current spec (1000 in old docs).
GLOBAL_LIMIT: tuple[int, float] = (10000, 10.0)
DEFAULT_GROUP_LIMITS: dict[str, tuple[int, float]] = {
    "public": (20000, 10.0),  # /api/v4/public/*
    "public_v1": (1000, 10.0),  # /api/v1/public/*
    "trade-account": (12000, 10.0),  # /api/v4/trade-account/*
    "main-account": (1000, 10.0),  # /api/v4/main-account/*
}

ENDPOINTS: tuple[Endpoint, ...] = (
    # public market data
    _ep("markets", "GET", "/api/v4/public/markets", {"public"}, group="public", limit=_PUBLIC),
    _ep("ticker", "GET", "/api/v4/public/ticker", {"public"}, group="public", limit=_PUBLIC),
    _ep("orderbook", "GET", "/api/v4/public/orderbook/{market}", {"public"}, group="public", limit=(600, 10.0)),
    _ep("orderbook_depth", "GET", "/api/v4/public/orderbook/depth/{market}", {"public"}, group="public",
        limit=_PUBLIC),
    _ep("trades", "GET", "/api/v4/public/trades/{market}", {"public"}, group="public", limit=_PUBLIC),
    _ep("assets", "GET", "/api/v4/public/assets", {"public"}, group="public", limit=_PUBLIC),
    _ep("public_fee", "GET", "/api/v4/public/fee", {"public"}, group="public", limit=_PUBLIC),
    # time and ping: "Rate limit 2000 requests/10 sec." in openapi/public/http-v4.yaml (docs/whitebit.md §2.2)
    _ep("time", "GET", "/api/v4/public/time", {"public"}, group="public", limit=_PUBLIC),
    _ep("ping", "GET", "/api/v4/public/ping", {"public"}, group="public", limit=_PUBLIC),
    _ep("platform_status", "GET", "/api/v4/public/platform/status", {"public"}, group="public"),
    _ep("kline", "GET", "/api/v1/public/kline", {"public"}, group="public_v1", limit=(1000, 10.0)),
    # private trading (HMAC as documented; Bearer allowed by config `trading_auth = "bearer"`)
    _ep("trade_balance", "POST", "/api/v4/trade-account/balance", {"hmac", "bearer"}, {"balances.read"},
        group="trade-account", limit=_READ),
    _ep("order_new", "POST", "/api/v4/order/new", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("order_bulk", "POST", "/api/v4/order/bulk", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("order_market", "POST", "/api/v4/order/market", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("order_stock_market", "POST", "/api/v4/order/stock_market", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("order_stop_limit", "POST", "/api/v4/order/stop_limit", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("order_stop_market", "POST", "/api/v4/order/stop_market", {"hmac", "bearer"}, {"orders.create"},
        idempotent=False, group="order", limit=_TRADE),
    # cancel is idempotent in effect: a repeat answers "not found", which the caller reconciles
    _ep("order_cancel", "POST", "/api/v4/order/cancel", {"hmac", "bearer"}, {"orders.delete"},
        idempotent=True, group="order", limit=_TRADE),
    _ep("order_cancel_bulk", "POST", "/api/v4/order/cancel/bulk", {"hmac", "bearer"}, {"orders.delete"},
        idempotent=True, group="order", limit=_TRADE),
    _ep("order_cancel_all", "POST", "/api/v4/order/cancel/all", {"hmac", "bearer"}, {"orders.delete"},
        idempotent=True, group="order", limit=_TRADE),
    _ep("order_modify", "POST", "/api/v4/order/modify", {"hmac", "bearer"}, {"orders.create", "orders.delete"},
        idempotent=False, group="order", limit=_TRADE),
    _ep("kill_switch", "POST", "/api/v4/order/kill-switch", {"hmac", "bearer"}, {"orders.delete"},
        idempotent=True, group="order", limit=_TRADE),
    _ep("kill_switch_status", "POST", "/api/v4/order/kill-switch/status", {"hmac", "bearer"}, {"orders.read"},
        group="order", limit=_TRADE),
    _ep("open_orders", "POST", "/api/v4/orders", {"hmac", "bearer"}, {"orders.read"}, group="orders", limit=_READ),
    _ep("executed_history", "POST", "/api/v4/trade-account/executed-history", {"hmac", "bearer"}, {"deals.read"},
        group="trade-account", limit=_READ),
    _ep("order_deals", "POST", "/api/v4/trade-account/order", {"hmac", "bearer"}, {"deals.read"},
        group="trade-account", limit=_READ),
    _ep("order_history", "POST", "/api/v4/trade-account/order/history", {"hmac", "bearer"},
        {"orders_history.read"}, group="trade-account", limit=_READ),
    _ep("market_fee", "POST", "/api/v4/market/fee", {"hmac", "bearer"}, {"markets.read"}, group="default"),
    # HMAC as documented; Bearer (`trading_auth = "bearer"`) on servers that accept Bearer trading (the sandbox's
    # opt-in `bearer_trading`): a Bearer-only bot needs the private stream's token too.
    _ep("websocket_token", "POST", "/api/v4/profile/websocket_token", {"hmac", "bearer"}, set(),
        group="websocket_token", limit=(10, 60.0)),
    # OAuth account reads (Bearer only, docs/whitebit.md §1.2; scope mapping [I] from the names)
    _ep("accounts_transactions", "POST", "/api/v4/accounts/transactions", {"bearer"}, {"users.transactions.read"},
        group="accounts"),
    _ep("accounts_converts", "POST", "/api/v4/accounts/converts", {"bearer"}, {"users.converts.read"},
        group="accounts"),
    _ep("accounts_orders", "POST", "/api/v4/accounts/orders", {"bearer"}, {"users.orders.read"}, group="accounts"),
    _ep("accounts_deals", "POST", "/api/v4/accounts/deals", {"bearer"}, {"users.deals.read"}, group="accounts"),
    _ep("accounts_balance_main", "POST", "/api/v4/accounts/balances/main", {"bearer"}, {"users.balances.read"},
        group="accounts"),
    _ep("accounts_balance_spot", "POST", "/api/v4/accounts/balances/spot", {"bearer"}, {"users.balances.read"},
        group="accounts"),
    # Fast API Key management (Bearer, docs/whitebit.md §1.3)
    _ep("apikey_info", "GET", "/oauth2/api-key/info", {"bearer"}, {"apikeys.read"}, group="oauth2"),
    # fetching the secret is one-shot server side (409 after): never retried blindly
    _ep("apikey_secret", "GET", "/oauth2/api-key/{externalId}/secret", {"bearer"}, {"apikeys.read"},
        idempotent=False, group="oauth2"),
    _ep("apikey_delete", "DELETE", "/oauth2/api-key/{externalId}", {"bearer"}, {"apikeys.delete"}, group="oauth2"),
)


class EndpointRegistry:
    """Lookups by name and by path; extendable (e.g. a test resource on an RFC 6749 server)."""

    def __init__(self, endpoints: tuple[Endpoint, ...] | list[Endpoint] = ENDPOINTS) -> None:
        self._by_name: dict[str, Endpoint] = {}
        self._by_path: dict[str, Endpoint] = {}
        for ep in endpoints:
            self.add(ep)

    def add(self, ep: Endpoint) -> Endpoint:
        if ep.name in self._by_name:
            raise ValueError(f"endpoint name {ep.name!r} is registered twice")
        self._by_name[ep.name] = ep
        self._by_path[ep.path] = ep
        return ep

    def get(self, name_or_path: str) -> Endpoint:
        ep = self._by_name.get(name_or_path) or self._by_path.get(name_or_path)
        if ep is None:
            raise KeyError(
                f"unknown endpoint {name_or_path!r}: add it to botkit/whitebit/endpoints.py with its auth kinds "
                "and scopes before calling it"
            )
        return ep

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


DEFAULT_REGISTRY = EndpointRegistry()
