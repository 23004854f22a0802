"""Private REST v4 (HMAC-signed trading and account endpoints) and the Bearer-authenticated account reads.

Scopes and auth kinds come from the sandbox's own table (botkit/sandbox/endpoints.py, written from the docs): an HMAC
key needs them among its permissions, a Bearer token among its scopes; either way a refusal is 403 code 4. With the
`[server] bearer_trading` setting (NOT in WhiteBIT's documentation, off by default) the trading endpoints also
accept `Authorization: Bearer`. Response and error bodies follow docs/whitebit.md §2.4-2.5.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from botkit.market.rules import fmt
from botkit.sandbox.book import Order
from botkit.sandbox.config import ServerConfig
from botkit.sandbox.endpoints import Route, route
from botkit.sandbox.engine import Deal, Exchange, ExchangeError, required, validation_error
from botkit.sandbox.faults import injected_response
from botkit.sandbox.hmac_auth import HmacAuth
from botkit.sandbox.oauth import OAuthSandbox

Body = dict[str, Any]
Result = Any

# Bearer account reads the sandbox serves (the six documented ones, docs/whitebit.md §1.2).
BEARER_READS = (
    "/api/v4/accounts/balances/spot",
    "/api/v4/accounts/balances/main",
    "/api/v4/accounts/orders",
    "/api/v4/accounts/deals",
    "/api/v4/accounts/transactions",
    "/api/v4/accounts/converts",
)


def order_status(o: Order) -> str:
    """REST status. An open order with no fill reads "FILLED", as WhiteBIT's own example shows (sic):
    clients must derive state from `left` and `dealStock`, never from `status` on a creation response."""
    if o.status in ("NEW", "FILLED"):
        return "FILLED"
    if o.status == "CANCELED" and o.deal_stock > 0:
        return "PARTIALLY_FILLED"
    return o.status


def stop_fields(o: Order) -> dict[str, Any]:
    """What WhiteBIT adds to a stop order's shape: trigger price, condition (buy gte, sell lte) and state."""
    if not o.is_stop:
        return {}
    return {"activation_price": fmt(o.activation_price), "activationCondition": "gte" if o.side == "buy" else "lte",
            "activated": o.activated}


def order_json(o: Order, rules_fee: tuple[Decimal, Decimal] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "orderId": o.id,
        "clientOrderId": o.client_order_id,
        "market": o.market,
        "side": o.side,
        "type": o.type,
        "timestamp": o.ctime,
        "dealMoney": fmt(o.deal_money),
        "dealStock": fmt(o.deal_stock),
        "amount": fmt(o.amount),
        "left": fmt(o.left),
        "dealFee": fmt(o.deal_fee),
        "price": fmt(o.price),
        "postOnly": o.post_only,
        "ioc": o.ioc,
        "status": order_status(o),
        "stp": o.stp,
        "rpi": False,
        **stop_fields(o),
    }
    if o.fee_asset:
        out["feeAsset"] = o.fee_asset
    if rules_fee is not None:
        out["takerFee"], out["makerFee"] = fmt(rules_fee[0]), fmt(rules_fee[1])
    return out


def history_json(o: Order, taker: Decimal, maker: Decimal) -> dict[str, Any]:
    return {
        "amount": fmt(o.amount),
        "price": fmt(o.price),
        "type": o.type,
        "id": o.id,
        "clientOrderId": o.client_order_id,
        "side": o.side,
        "ctime": o.ctime,
        "ftime": o.ftime,
        "takerFee": fmt(taker),
        "makerFee": fmt(maker),
        "dealFee": fmt(o.deal_fee),
        "dealStock": fmt(o.deal_stock),
        "dealMoney": fmt(o.deal_money),
        "postOnly": o.post_only,
        "ioc": o.ioc,
        "status": "FILLED" if o.status == "FILLED" else order_status(o),
        "feeAsset": o.fee_asset,
        "stp": o.stp,
        "rpi": False,
        **stop_fields(o),
    }


def deal_json(d: Deal) -> dict[str, Any]:
    return {
        "id": d.id,
        "clientOrderId": d.client_order_id,
        "time": d.time,
        "side": d.side,
        "role": d.role,
        "amount": fmt(d.amount),
        "price": fmt(d.price),
        "deal": fmt(d.deal),
        "fee": fmt(d.fee),
        "orderId": d.order_id,
        "feeAsset": d.fee_asset,
    }


def _page(body: Body, default: int, most: int) -> tuple[int, int]:
    limit, offset = body.get("limit", default), body.get("offset", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise validation_error(30, "limit", f"The limit must be between 1 and {most}.")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise validation_error(30, "offset", "The offset must be 0 or more.")
    return limit, offset


def _dates(body: Body) -> tuple[float, float]:
    start, end = body.get("startDate"), body.get("endDate")
    lo = float(start) if isinstance(start, int | float) and not isinstance(start, bool) else 0.0
    hi = float(end) if isinstance(end, int | float) and not isinstance(end, bool) else float("inf")
    return lo, hi


Endpoint = Callable[[str, Body], Result]


class GatewayLimit(Exception):
    """A documented rate limit was exceeded: WhiteBIT's gateway answers 429 with a non-JSON body."""


def _json_object(raw: bytes) -> Body:
    """The JSON object body of a Bearer request ({} when empty)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExchangeError(400, 9, "Invalid payload.") from None
    if not isinstance(data, dict):
        raise ExchangeError(400, 9, "Invalid payload.")
    return data


class PrivateApi:
    def __init__(
        self, exchange: Exchange, auth: HmacAuth, oauth: OAuthSandbox, server: ServerConfig,
        clock: Callable[[], float],
    ) -> None:
        """`server.bearer_trading` is read per request, so a test may switch it on a running sandbox."""
        self.exchange = exchange
        self.auth = auth
        self.oauth = oauth
        self.server = server
        self.clock = clock
        self._ws_token_times: dict[str, list[float]] = {}
        self.endpoints: dict[str, Endpoint] = {
            "/api/v4/trade-account/balance": self.balance,
            "/api/v4/order/new": self.order_new,
            "/api/v4/order/market": self.order_market,
            "/api/v4/order/stock_market": self.order_stock_market,
            "/api/v4/order/stop_limit": self.order_stop_limit,
            "/api/v4/order/stop_market": self.order_stop_market,
            "/api/v4/order/bulk": self.order_bulk,
            "/api/v4/order/modify": self.order_modify,
            "/api/v4/order/cancel": self.order_cancel,
            "/api/v4/order/cancel/bulk": self.order_cancel_bulk,
            "/api/v4/order/cancel/all": self.order_cancel_all,
            "/api/v4/order/kill-switch": self.kill_switch,
            "/api/v4/order/kill-switch/status": self.kill_switch_status,
            "/api/v4/orders": self.orders,
            "/api/v4/trade-account/executed-history": self.executed_history,
            "/api/v4/trade-account/order/history": self.order_history,
            "/api/v4/trade-account/order": self.order_deals,
            "/api/v4/market/fee": self.market_fee,
            "/api/v4/profile/websocket_token": self.websocket_token,
        }

    def reset(self) -> None:
        self._ws_token_times.clear()

    def routes(self) -> list[web.RouteDef]:
        out = [web.post(path, self._signed(route(path), fn)) for path, fn in self.endpoints.items()]
        out += [web.post(path, self._bearer(route(path))) for path in BEARER_READS]
        return out

    def _signed(self, entry: Route, fn: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        path, needs = entry.path, entry.scopes
        opt_in = entry.bearer_opt_in

        async def handler(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                bearer = "X-TXC-APIKEY" not in request.headers and "Authorization" in request.headers
                if bearer and opt_in and self.server.bearer_trading:
                    account, data = self._bearer_identity(request, needs), _json_object(body)
                else:
                    key, data = self.auth.authenticate(path, request.headers, body, needs)
                    account = key.account
                result = fn(account, data)
            except ExchangeError as exc:
                return web.json_response(exc.body(), status=exc.status)
            except GatewayLimit:
                return injected_response(429)
            return web.json_response(result)

        return handler

    # ---- trading -------------------------------------------------------------------------------------------------

    def _fees(self, market: str) -> tuple[Decimal, Decimal]:
        rules = self.exchange.markets[market].rules
        return rules.fee_rate(False), rules.fee_rate(True)

    def balance(self, account: str, body: Body) -> Result:
        balances = self.exchange.balance_of(account)
        ticker = body.get("ticker")
        if ticker is not None:
            bal = balances.get(ticker) if isinstance(ticker, str) else None
            if bal is None:
                raise validation_error(30, "ticker", "Currency is not available.")
            return {"available": fmt(bal.available), "freeze": fmt(bal.freeze)}
        return {a: {"available": fmt(b.available), "freeze": fmt(b.freeze)} for a, b in sorted(balances.items())}

    def order_new(self, account: str, body: Body) -> Result:
        o = self.exchange.place_limit(
            account, body.get("market"), body.get("side"), body.get("amount"), body.get("price"),
            post_only=body.get("postOnly", False), ioc=body.get("ioc", False),
            client_order_id=body.get("clientOrderId"), stp=body.get("stp", "no"),
        )
        return order_json(o)

    def order_market(self, account: str, body: Body) -> Result:
        o = self.exchange.place_market(
            account, body.get("market"), body.get("side"), body.get("amount"), stock=False,
            client_order_id=body.get("clientOrderId"), stp=body.get("stp", "no"),
        )
        return order_json(o)

    def order_stock_market(self, account: str, body: Body) -> Result:
        o = self.exchange.place_market(
            account, body.get("market"), body.get("side"), body.get("amount"), stock=True,
            client_order_id=body.get("clientOrderId"), stp=body.get("stp", "no"),
        )
        return order_json(o)

    def order_stop_limit(self, account: str, body: Body) -> Result:
        o = self.exchange.place_stop(
            account, body.get("market"), body.get("side"), body.get("amount"), body.get("activation_price"),
            body.get("price"), limit=True, client_order_id=body.get("clientOrderId"), stp=body.get("stp", "no"),
        )
        return order_json(o)

    def order_stop_market(self, account: str, body: Body) -> Result:
        o = self.exchange.place_stop(
            account, body.get("market"), body.get("side"), body.get("amount"), body.get("activation_price"),
            limit=False, client_order_id=body.get("clientOrderId"), stp=body.get("stp", "no"),
        )
        return order_json(o)

    def order_cancel_bulk(self, account: str, body: Body) -> Result:
        """1-100 cancels, each answered on its own; the result echoes the ids only (docs/whitebit.md §2.4)."""
        orders = body.get("orders")
        if not isinstance(orders, list) or not orders:
            raise validation_error(30, "orders", "validation.required")
        if len(orders) > 100:
            raise validation_error(30, "orders", "validation.between")
        out: list[dict[str, Any]] = []
        for item in orders:
            try:
                out.append({"result": self._cancel_one(account, item), "error": None})
            except ExchangeError as exc:
                out.append({"result": None, "error": exc.body()})
        return out

    def _cancel_one(self, account: str, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise validation_error(30, "request", "Invalid order format")
        market = item.get("market")
        if market is None:
            raise validation_error(30, "market", "validation.required")
        if market not in self.exchange.markets:
            raise validation_error(30, "market", "validation.market_not_exist")
        oid, coid = item.get("orderId"), item.get("clientOrderId")
        if (oid is None) == (coid is None):
            raise validation_error(30, "request", "validation.required" if oid is None else
                                   "api.validation.order.chooseOneId")
        try:
            o = self.exchange.cancel(account, market, oid, coid)
        except ExchangeError as exc:
            if exc.code == 2:
                raise ExchangeError(404, 404, "Order not found",
                                    {"orderId": ["Order does not exist or already cancelled"]}) from None
            raise
        return {"orderId": o.id, "clientOrderId": o.client_order_id, "market": o.market}

    def order_deals(self, account: str, body: Body) -> Result:
        """Deals of one order; an unknown or foreign id is an empty page, not an error (docs/whitebit.md §2.4)."""
        oid = body.get("orderId")
        if oid is None:
            raise required("orderId")
        if isinstance(oid, bool) or not isinstance(oid, int | str) or not str(oid).isdigit():
            raise validation_error(30, "orderId", "OrderId field should be an integer.")
        limit, offset = _page(body, 50, 100)
        mine = [d for d in self.exchange.deals.get(account, []) if d.order_id == int(oid)]
        records = [
            {"time": d.time, "fee": fmt(d.fee), "price": fmt(d.price), "amount": fmt(d.amount), "id": d.id,
             "dealOrderId": d.order_id, "clientOrderId": d.client_order_id, "role": d.role, "deal": fmt(d.deal),
             "feeAsset": d.fee_asset, "rpi": False}
            for d in mine[offset : offset + limit]
        ]
        return {"records": records, "offset": offset, "limit": limit}

    def market_fee(self, account: str, body: Body) -> Result:
        """The account's fees in percent. The sandbox has one fee schedule per market: `maker`/`taker` are the
        first market's, other markets' differing fees appear under `custom_fee` (docs/whitebit.md §5)."""
        rules = [m.rules for m in self.exchange.markets.values()]
        base = rules[0] if rules else None
        custom = {
            r.name: {"taker": fmt(r.taker_fee), "maker": fmt(r.maker_fee)}
            for r in rules
            if base is not None and (r.taker_fee, r.maker_fee) != (base.taker_fee, base.maker_fee)
        }
        return {
            "error": None,
            "taker": fmt(base.taker_fee) if base else "0",
            "maker": fmt(base.maker_fee) if base else "0",
            "futures_taker": "0",
            "futures_maker": "0",
            "rpi_maker_fee_premium": None,
            "futures_rpi_maker_fee_premium": None,
            "custom_fee": custom,
        }

    def order_bulk(self, account: str, body: Body) -> Result:
        orders = body.get("orders")
        if not isinstance(orders, list) or not 1 <= len(orders) <= 20:
            raise validation_error(30, "orders", "Orders should be an array of 1 to 20 limit orders.")
        stop = body.get("stopOnFail", False) is True
        out: list[dict[str, Any]] = []
        for item in orders:
            try:
                if not isinstance(item, dict):
                    raise validation_error(30, "orders", "Each order should be an object.")
                out.append({"result": self.order_new(account, item), "error": None})
            except ExchangeError as exc:
                out.append({"result": None, "error": exc.body()})
                if stop:
                    break
        return out

    def order_modify(self, account: str, body: Body) -> Result:
        if "activationPrice" in body and not any(k in body for k in ("amount", "price", "total")):
            raise validation_error(30, "activationPrice", "Only stop orders have an activation price.")
        o = self.exchange.modify(
            account, body.get("market"), body.get("orderId"), body.get("clientOrderId"),
            amount=body.get("amount"), price=body.get("price"), total=body.get("total"),
        )
        return order_json(o)

    def order_cancel(self, account: str, body: Body) -> Result:
        o = self.exchange.cancel(account, body.get("market"), body.get("orderId"), body.get("clientOrderId"))
        return order_json(o, self._fees(o.market))

    def order_cancel_all(self, account: str, body: Body) -> Result:
        types = body.get("type")
        kinds = ("spot", "margin", "futures")
        if types is not None and (not isinstance(types, list) or any(t not in kinds for t in types)):
            raise validation_error(30, "type", "Type may contain only spot, margin, futures.")
        if types is None or "spot" in types:
            self.exchange.cancel_all(account, body.get("market"))
        return []

    def kill_switch(self, account: str, body: Body) -> Result:
        if "timeout" not in body:
            raise validation_error(30, "timeout", "The timeout field must be present (null removes the timer).")
        return self.exchange.kill_switch(account, body.get("market"), body["timeout"], body.get("types"))

    def kill_switch_status(self, account: str, body: Body) -> Result:
        return self.exchange.kill_switch_status(account, body.get("market"))

    def orders(self, account: str, body: Body) -> Result:
        market = body.get("market")
        if market is not None:
            self.exchange.market(market)
        limit, offset = _page(body, 50, 100)
        oid, coid = body.get("orderId"), body.get("clientOrderId")
        found = [
            o for o in reversed(self.exchange.account_orders(account))
            if (market is None or o.market == market)
            and (oid is None or str(o.id) == str(oid))
            and (not coid or o.client_order_id == coid)
        ]
        return [order_json(o) for o in found[offset : offset + limit]]

    def executed_history(self, account: str, body: Body) -> Result:
        market = body.get("market")
        if market is not None:
            self.exchange.market(market)
        limit, offset = _page(body, 50, 500)
        lo, hi = _dates(body)
        coid = body.get("clientOrderId")
        deals = [
            d for d in reversed(self.exchange.deals.get(account, []))
            if (market is None or d.market == market) and (not coid or d.client_order_id == coid)
            and lo <= d.time <= hi
        ][offset : offset + limit]
        if market is not None:
            return [deal_json(d) for d in deals]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for d in deals:
            grouped.setdefault(d.market, []).append(deal_json(d))
        return grouped

    def order_history(self, account: str, body: Body) -> Result:
        market = body.get("market")
        if market is not None:
            self.exchange.market(market)
        limit, offset = _page(body, 50, 500)
        lo, hi = _dates(body)
        status = body.get("status", "ALL")
        if status not in ("ALL", "FILLED", "CANCELED", "PARTIALLY_FILLED"):
            raise validation_error(30, "status", "Status should be one of ALL, FILLED, CANCELED, PARTIALLY_FILLED.")
        oid, coid = body.get("orderId"), body.get("clientOrderId")
        out: dict[str, list[dict[str, Any]]] = {}
        picked = [
            o for o in reversed(self.exchange.history.get(account, []))
            if (market is None or o.market == market)
            and (oid is None or str(o.id) == str(oid))
            and (not coid or o.client_order_id == coid)
            and lo <= o.ctime <= hi
        ]
        rows = []
        for o in picked:
            taker, maker = self._fees(o.market)
            row = history_json(o, taker, maker)
            if status == "ALL" or row["status"] == status:
                rows.append((o.market, row))
        for name, row in rows[offset : offset + limit]:
            out.setdefault(name, []).append(row)
        return out

    def websocket_token(self, account: str, body: Body) -> Result:
        """10 tokens per 60 s per account, as documented; more gets the gateway's 429."""
        now = self.clock()
        recent = [t for t in self._ws_token_times.get(account, []) if t > now - 60.0]
        if len(recent) >= 10:
            raise GatewayLimit()
        self._ws_token_times[account] = [*recent, now]
        return {"websocket_token": self.exchange.issue_ws_token(account, self.server.ws_token_ttl)}

    # ---- bearer (OAuth) account reads ----------------------------------------------------------------------------

    def _bearer_identity(self, request: web.Request, needs: frozenset[str]) -> str:
        ident = self.oauth.check_bearer(request.headers.get("Authorization"))
        if ident is None:
            raise ExchangeError(401, 10, "Unauthorized request.")
        missing = needs - ident.scopes
        if missing:
            raise ExchangeError(403, 4, f"The access token lacks the scope(s) {', '.join(sorted(missing))}.")
        return ident.account

    def _bearer(self, entry: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        path, needs = entry.path, entry.scopes

        async def handler(request: web.Request) -> web.Response:
            try:
                account = self._bearer_identity(request, needs)
                result = self._bearer_read(path, account, _json_object(await request.read()))
            except ExchangeError as exc:
                return web.json_response(exc.body(), status=exc.status)
            return web.json_response(result)

        return handler

    def _bearer_read(self, path: str, account: str, body: Body) -> Result:
        if path in ("/api/v4/accounts/balances/spot", "/api/v4/accounts/balances/main"):
            return self.balance(account, body)
        if path == "/api/v4/accounts/orders":
            return self.order_history(account, body)
        if path == "/api/v4/accounts/deals":
            return self.executed_history(account, body)
        return {"limit": 50, "offset": 0, "records": []}  # transactions, converts: the sandbox has none
