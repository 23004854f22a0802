"""The sandbox's own table of WhiteBIT's REST endpoints: path, method, auth, scopes, rate limits (docs/whitebit.md).

Written from WhiteBIT's documentation, never imported from the client (botkit/whitebit): the sandbox is an
independent oracle, so a wrong path, scope or limit in the client shows up as a difference between the two tables
(tests/sandbox/test_sandbox_tables.py) instead of agreeing by construction.

Rate limits (docs/whitebit.md §2.6) are per IP at three levels: the endpoint's own limit, its scope (the path prefix:
`/api/v4/public/*`, `/api/v1/public/*`, `/api/v4/trade-account/*`, `/api/v4/main-account/*`) and the global default.
Scopes of HMAC endpoints: WhiteBIT publishes no table; the sandbox reads them from the scope names (§1.4), e.g.
`orders.create` to place, `orders.delete` to cancel, `deals.read` for executed deals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Auth = Literal["public", "hmac", "bearer"]
Limit = tuple[int, float]  # (requests, per seconds)

# docs/whitebit.md §1.4: the 20 scope strings, exactly.
SCOPES: frozenset[str] = frozenset({
    "general", "show.userinfo", "users.read", "users.email.read", "users.kyc.read", "orders.read", "orders.create",
    "orders.delete", "balances.read", "markets.read", "deals.read", "orders_history.read", "users.transactions.read",
    "users.converts.read", "users.balances.read", "users.orders.read", "users.deals.read", "apikeys.create",
    "apikeys.read", "apikeys.delete",
})

GLOBAL_LIMIT: Limit = (10000, 10.0)  # §2.6 "Default: 10,000 requests per 10 s"
SCOPE_LIMITS: tuple[tuple[str, str, Limit], ...] = (  # §2.6 per scope: (name, path prefix, limit)
    ("public", "/api/v4/public/", (20000, 10.0)),
    ("public_v1", "/api/v1/public/", (1000, 10.0)),
    ("trade-account", "/api/v4/trade-account/", (12000, 10.0)),
    ("main-account", "/api/v4/main-account/", (1000, 10.0)),
)


@dataclass(frozen=True, slots=True)
class Route:
    """One documented endpoint. `bearer_opt_in`: also accepts a Bearer token when the sandbox's NOT-documented
    `[server] bearer_trading` setting is on (WhiteBIT documents HMAC only for trading, docs/whitebit.md §0)."""

    name: str  # a short handle, also the rate-limit bucket key `endpoint:<name>`
    method: Literal["GET", "POST", "DELETE"]
    path: str
    auth: Auth
    scopes: frozenset[str] = frozenset()
    limit: Limit | None = None
    bearer_opt_in: bool = False

    @property
    def scope(self) -> tuple[str, str, Limit] | None:
        """The rate-limit scope (name, prefix, limit) this path falls in, or None (global limit only)."""
        return next((sc for sc in SCOPE_LIMITS if self.path.startswith(sc[1])), None)

    @property
    def scope_limit(self) -> Limit | None:
        return self.scope[2] if self.scope else None

    def buckets(self) -> list[tuple[str, Limit]]:
        """(bucket key, limit) pairs a request counts against: endpoint, scope, global."""
        out: list[tuple[str, Limit]] = []
        if self.limit is not None:
            out.append((f"endpoint:{self.name}", self.limit))
        if self.scope is not None:
            out.append((f"group:{self.scope[0]}", self.scope[2]))
        out.append(("global", GLOBAL_LIMIT))
        return out


def _public(name: str, path: str, limit: Limit | None = (2000, 10.0)) -> Route:
    return Route(name, "GET", path, "public", limit=limit)


def _trade(name: str, path: str, scopes: set[str], limit: Limit | None = (10000, 10.0)) -> Route:
    """A private trading endpoint: HMAC (documented) and Bearer only by the sandbox's opt-in setting."""
    return Route(name, "POST", path, "hmac", frozenset(scopes), limit, bearer_opt_in=True)


def _bearer(name: str, path: str, scope: str, method: Literal["GET", "POST", "DELETE"] = "POST") -> Route:
    return Route(name, method, path, "bearer", frozenset({scope}))


_READ: Limit = (12000, 10.0)
_V1: Limit = (1000, 10.0)

ROUTES: tuple[Route, ...] = (
    # §2.2 public v4
    _public("markets", "/api/v4/public/markets"),
    _public("ticker", "/api/v4/public/ticker"),
    _public("orderbook", "/api/v4/public/orderbook/{market}", (600, 10.0)),
    _public("orderbook_depth", "/api/v4/public/orderbook/depth/{market}"),
    _public("trades", "/api/v4/public/trades/{market}"),
    _public("assets", "/api/v4/public/assets"),
    _public("public_fee", "/api/v4/public/fee"),
    _public("time", "/api/v4/public/time"),  # "Rate limit 2000 requests/10 sec." on its docs page
    _public("ping", "/api/v4/public/ping"),
    _public("platform_status", "/api/v4/public/platform/status", None),  # no limit documented
    # §2.2 public v1: each page says "Rate limit 1000 requests/10 sec."
    _public("kline", "/api/v1/public/kline", _V1),
    _public("v1_ticker", "/api/v1/public/ticker", _V1),
    _public("v1_tickers", "/api/v1/public/tickers", _V1),
    _public("v1_markets", "/api/v1/public/markets", _V1),
    _public("v1_symbols", "/api/v1/public/symbols", _V1),
    _public("v1_depth", "/api/v1/public/depth/result", _V1),
    # §2.4 private trading (HMAC)
    _trade("trade_balance", "/api/v4/trade-account/balance", {"balances.read"}, _READ),
    _trade("order_new", "/api/v4/order/new", {"orders.create"}),
    _trade("order_bulk", "/api/v4/order/bulk", {"orders.create"}),
    _trade("order_market", "/api/v4/order/market", {"orders.create"}),
    _trade("order_stock_market", "/api/v4/order/stock_market", {"orders.create"}),
    _trade("order_stop_limit", "/api/v4/order/stop_limit", {"orders.create"}),
    _trade("order_stop_market", "/api/v4/order/stop_market", {"orders.create"}),
    _trade("order_cancel", "/api/v4/order/cancel", {"orders.delete"}),
    _trade("order_cancel_bulk", "/api/v4/order/cancel/bulk", {"orders.delete"}),
    _trade("order_cancel_all", "/api/v4/order/cancel/all", {"orders.delete"}),
    _trade("order_modify", "/api/v4/order/modify", {"orders.create", "orders.delete"}),
    _trade("kill_switch", "/api/v4/order/kill-switch", {"orders.delete"}),  # arming it is a deferred cancel
    _trade("kill_switch_status", "/api/v4/order/kill-switch/status", {"orders.read"}),
    _trade("open_orders", "/api/v4/orders", {"orders.read"}, _READ),  # 12000 in the current spec (1000 in old docs)
    _trade("executed_history", "/api/v4/trade-account/executed-history", {"deals.read"}, _READ),
    _trade("order_deals", "/api/v4/trade-account/order", {"deals.read"}, _READ),  # deals of one order
    _trade("order_history", "/api/v4/trade-account/order/history", {"orders_history.read"}, _READ),
    _trade("market_fee", "/api/v4/market/fee", {"markets.read"}, None),  # no documented limit
    # any valid key; with the opt-in `bearer_trading` also any valid access token (a Bearer trader needs its stream)
    Route("websocket_token", "POST", "/api/v4/profile/websocket_token", "hmac", limit=(10, 60.0), bearer_opt_in=True),
    # §1.2 Bearer account reads (scopes from the names; the docs map none)
    _bearer("accounts_transactions", "/api/v4/accounts/transactions", "users.transactions.read"),
    _bearer("accounts_converts", "/api/v4/accounts/converts", "users.converts.read"),
    _bearer("accounts_orders", "/api/v4/accounts/orders", "users.orders.read"),
    _bearer("accounts_deals", "/api/v4/accounts/deals", "users.deals.read"),
    _bearer("accounts_balance_main", "/api/v4/accounts/balances/main", "users.balances.read"),
    _bearer("accounts_balance_spot", "/api/v4/accounts/balances/spot", "users.balances.read"),
    # §1.3 Fast API Key management (Bearer)
    _bearer("apikey_info", "/oauth2/api-key/info", "apikeys.read", "GET"),
    _bearer("apikey_secret", "/oauth2/api-key/{externalId}/secret", "apikeys.read", "GET"),
    _bearer("apikey_delete", "/oauth2/api-key/{externalId}", "apikeys.delete", "DELETE"),
)

_BY_PATH: dict[str, Route] = {r.path: r for r in ROUTES}


def route(path: str) -> Route:
    """The row of a documented path (a `{placeholder}` path as written above); KeyError names the fix."""
    try:
        return _BY_PATH[path]
    except KeyError:
        raise KeyError(f"{path} is not in botkit/sandbox/endpoints.py ROUTES; add its documented row") from None
