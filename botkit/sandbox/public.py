"""Public REST: v4 market data, assets and fees, and the v1 endpoints, shaped as WhiteBIT documents them
(docs/whitebit.md §2.2), odd parts included.

The odd parts on purpose: trade volumes are named the other way round (`quote_volume` is the base amount), kline
rows are [time, open, CLOSE, high, low, volume_stock, volume_money], v1 answers are wrapped in
{"success", "message", "result"} except `depth/result`, and v1 errors come back as HTTP 200 with success false.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from botkit.market.rules import fmt
from botkit.sandbox.book import Side
from botkit.sandbox.engine import Exchange, MarketState, PublicTrade

KLINE_INTERVALS: dict[str, int] = {
    "1s": 1, "10s": 10, "30s": 30, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
    "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
    "1M": 2592000,
}
DAY = 86400.0


def candles(
    trades: list[PublicTrade] | Any, interval: int, start: float | None = None, end: float | None = None
) -> list[list[Any]]:
    """Candles from trades: [time, open, close, high, low, volume_stock, volume_money], oldest first."""
    rows: list[list[Any]] = []
    current: list[Any] | None = None
    for t in trades:
        if (start is not None and t.time < start) or (end is not None and t.time >= end):
            continue
        bucket = int(t.time // interval * interval)
        if current is None or current[0] != bucket:
            current = [bucket, t.price, t.price, t.price, t.price, Decimal(0), Decimal(0)]
            rows.append(current)
        current[2] = t.price
        current[3] = max(current[3], t.price)
        current[4] = min(current[4], t.price)
        current[5] += t.amount
        current[6] += t.amount * t.price
    return [[r[0], *(fmt(v) for v in r[1:])] for r in rows]


def book_side(m: MarketState, side: Side, limit: int, interval: Decimal = Decimal(0)) -> list[list[str]]:
    return [[fmt(p), fmt(q)] for p, q in m.book.levels(side, limit, interval)]


class PublicApi:
    def __init__(self, exchange: Exchange, clock: Callable[[], float], status: Callable[[], str]) -> None:
        self.exchange = exchange
        self.clock = clock
        self.status = status

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v4/public/markets", self.markets),
            web.get("/api/v4/public/ticker", self.ticker),
            web.get("/api/v4/public/orderbook/depth/{market}", self.depth),
            web.get("/api/v4/public/orderbook/{market}", self.orderbook),
            web.get("/api/v4/public/trades/{market}", self.trades),
            web.get("/api/v4/public/time", self.time),
            web.get("/api/v4/public/ping", self.ping),
            web.get("/api/v4/public/platform/status", self.platform_status),
            web.get("/api/v4/public/assets", self.assets),
            web.get("/api/v4/public/fee", self.fee),
            web.get("/api/v1/public/kline", self.kline),
            web.get("/api/v1/public/markets", self.v1_markets),
            web.get("/api/v1/public/tickers", self.v1_tickers),
            web.get("/api/v1/public/ticker", self.v1_ticker),
            web.get("/api/v1/public/symbols", self.v1_symbols),
            web.get("/api/v1/public/depth/result", self.v1_depth),
        ]

    def _market(self, name: str) -> MarketState:
        m = self.exchange.markets.get(name)
        if m is None:
            raise web.HTTPUnprocessableEntity(
                text='{"market":["Market is not available."]}', content_type="application/json"
            )
        return m

    async def markets(self, request: web.Request) -> web.Response:
        return web.json_response([m.rules.to_whitebit() for m in self.exchange.markets.values()])

    async def ticker(self, request: web.Request) -> web.Response:
        since = self.clock() - DAY
        out: dict[str, Any] = {}
        for name, m in self.exchange.markets.items():
            day = [t for t in m.trades if t.time >= since]
            first = day[0].price if day else m.last_price
            change = (m.last_price - first) / first * 100 if first else Decimal(0)
            out[name] = {
                "base_id": self.exchange.asset_ids.get(m.rules.stock, 0),
                "quote_id": self.exchange.asset_ids.get(m.rules.money, 0),
                "last_price": fmt(m.last_price),
                "quote_volume": fmt(sum((t.amount * t.price for t in day), Decimal(0))),
                "base_volume": fmt(sum((t.amount for t in day), Decimal(0))),
                "isFrozen": False,
                "change": fmt(change.quantize(Decimal("0.01"))),
            }
        return web.json_response(out)

    async def orderbook(self, request: web.Request) -> web.Response:
        m = self._market(request.match_info["market"])
        errors: dict[str, list[str]] = {}
        limit = _int_param(request, "limit", 100, 0, 100, errors)
        level = _int_param(request, "level", 0, 0, 10, errors)
        if errors:
            return web.json_response(errors, status=422)
        limit = limit or 100
        interval = m.rules.price_step * 10**level if level else Decimal(0)
        return web.json_response(
            {
                "ticker_id": m.rules.name,
                "timestamp": int(self.clock()),
                "asks": book_side(m, "sell", limit, interval),
                "bids": book_side(m, "buy", limit, interval),
            }
        )

    async def depth(self, request: web.Request) -> web.Response:
        m = self._market(request.match_info["market"])
        lo, hi = m.last_price * Decimal("0.98"), m.last_price * Decimal("1.02")
        asks = [[fmt(p), fmt(q)] for p, q in m.book.levels("sell", 100) if p <= hi]
        bids = [[fmt(p), fmt(q)] for p, q in m.book.levels("buy", 100) if p >= lo]
        return web.json_response(
            {"ticker_id": m.rules.name, "timestamp": int(self.clock()), "asks": asks, "bids": bids}
        )

    async def trades(self, request: web.Request) -> web.Response:
        m = self._market(request.match_info["market"])
        kind = request.query.get("type")
        if kind not in (None, "buy", "sell"):
            return web.json_response({"type": ["The selected type is invalid."]}, status=422)
        out = []
        for t in reversed(m.trades):
            if kind is not None and t.side != kind:
                continue
            out.append(
                {
                    "tradeID": t.id,
                    "price": fmt(t.price),
                    "quote_volume": fmt(t.amount),  # sic: WhiteBIT names the base amount quote_volume
                    "base_volume": fmt(t.amount * t.price),
                    "trade_timestamp": int(t.time),
                    "type": t.side,
                    "rpi": False,
                }
            )
            if len(out) == 100:
                break
        return web.json_response(out)

    # ---- assets and fees (reference data; the sandbox has no deposits or withdrawals) -------------------------------

    def _asset_precisions(self) -> dict[str, int]:
        """Each asset's decimals: its precision as a market's stock or money (the larger if both)."""
        out: dict[str, int] = {}
        for m in self.exchange.markets.values():
            r = m.rules
            out[r.stock] = max(out.get(r.stock, 0), r.stock_prec)
            out[r.money] = max(out.get(r.money, 0), r.money_prec)
        return dict(sorted(out.items()))

    async def assets(self, request: web.Request) -> web.Response:
        rules = [m.rules for m in self.exchange.markets.values()]
        out: dict[str, Any] = {}
        for asset, prec in self._asset_precisions().items():
            fees = next(((r.maker_fee, r.taker_fee) for r in rules if asset in (r.stock, r.money)), (0, 0))
            out[asset] = {
                "name": asset, "unified_cryptoasset_id": self.exchange.asset_ids.get(asset, 0),
                "can_withdraw": False, "can_deposit": False, "min_withdraw": "0", "max_withdraw": "0",
                "maker_fee": fmt(Decimal(fees[0])), "taker_fee": fmt(Decimal(fees[1])),
                "min_deposit": "0", "max_deposit": "0", "currency_precision": prec, "is_memo": False,
                "memo": {"deposit": False, "withdraw": False},
                "networks": {"deposits": [asset], "withdraws": [asset], "default": asset},
                "limits": {"deposit": {}, "withdraw": {}}, "confirmations": {},
            }
        return web.json_response(out)

    async def fee(self, request: web.Request) -> web.Response:
        flat = {"max_amount": "0", "min_amount": "0", "fixed": None, "flex": None}
        return web.json_response({
            asset: {"is_depositable": False, "is_withdrawal": False, "is_api_withdrawal": False,
                    "is_api_depositable": False, "ticker": asset, "name": asset, "providers": [],
                    "withdraw": dict(flat), "deposit": dict(flat)}
            for asset in self._asset_precisions()
        })

    # ---- v1 (docs/whitebit.md §2.2: wrapped answers; errors are HTTP 200 with success false) ------------------------

    @staticmethod
    def _v1(result: Any) -> web.Response:
        return web.json_response({"success": True, "message": None, "result": result})

    def _v1_market(self, request: web.Request) -> MarketState | web.Response:
        name = request.query.get("market")
        if not name:
            return web.json_response({"success": False, "message": {"market": ["The market field is required."]},
                                      "result": None})
        m = self.exchange.markets.get(name)
        if m is None:
            return web.json_response({"success": False, "message": {"market": ["Market is not available."]},
                                      "result": None})
        return m

    def _day(self, m: MarketState) -> dict[str, str]:
        """24 h statistics from the trades: open, high, low, last, volume (base), deal (quote), change (%)."""
        since = self.clock() - DAY
        day = [t for t in m.trades if t.time >= since]
        first = day[0].price if day else m.last_price
        change = (m.last_price - first) / first * 100 if first else Decimal(0)
        bid, ask = m.book.best_price("buy"), m.book.best_price("sell")
        return {
            "open": fmt(first),
            "bid": fmt(bid) if bid is not None else "0",
            "ask": fmt(ask) if ask is not None else "0",
            "low": fmt(min((t.price for t in day), default=m.last_price)),
            "high": fmt(max((t.price for t in day), default=m.last_price)),
            "last": fmt(m.last_price),
            "volume": fmt(sum((t.amount for t in day), Decimal(0))),
            "deal": fmt(sum((t.amount * t.price for t in day), Decimal(0))),
            "change": fmt(change.quantize(Decimal("0.01"))),
        }

    async def v1_markets(self, request: web.Request) -> web.Response:
        rows = []
        for m in self.exchange.markets.values():
            r = m.rules.to_whitebit()
            rows.append({k: r[k] for k in ("name", "stock", "money", "stockPrec", "moneyPrec", "feePrec",
                                           "makerFee", "takerFee", "minAmount", "minTotal", "maxTotal",
                                           "tradesEnabled") if k in r})
        return self._v1(rows)

    async def v1_tickers(self, request: web.Request) -> web.Response:
        out = {}
        for name, m in self.exchange.markets.items():
            d = self._day(m)
            out[name] = {"ticker": {"bid": d["bid"], "ask": d["ask"], "low": d["low"], "high": d["high"],
                                    "last": d["last"], "vol": d["volume"], "deal": d["deal"],
                                    "change": d["change"]},
                         "at": int(self.clock())}
        return self._v1(out)

    async def v1_ticker(self, request: web.Request) -> web.Response:
        m = self._v1_market(request)
        if isinstance(m, web.Response):
            return m
        return self._v1(self._day(m))

    async def v1_symbols(self, request: web.Request) -> web.Response:
        return self._v1(list(self.exchange.markets))

    async def v1_depth(self, request: web.Request) -> web.Response:
        m = self._v1_market(request)
        if isinstance(m, web.Response):
            return m
        errors: dict[str, list[str]] = {}
        limit = _int_param(request, "limit", 100, 1, 100, errors)
        if errors:
            return web.json_response({"success": False, "message": errors, "result": None})
        return web.json_response({"asks": book_side(m, "sell", limit), "bids": book_side(m, "buy", limit)})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"time": int(self.clock())})

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response(["pong"])

    async def platform_status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": self.status()})

    async def kline(self, request: web.Request) -> web.Response:
        q = request.query
        errors: dict[str, list[str]] = {}
        name = q.get("market")
        m = self.exchange.markets.get(name or "")
        if not name:
            errors["market"] = ["The market field is required."]
        elif m is None:
            errors["market"] = ["Market is not available."]
        interval_name = q.get("interval", "1h")
        if interval_name not in KLINE_INTERVALS:
            errors["interval"] = ["The selected interval is invalid."]
        limit = _int_param(request, "limit", 1440, 1, 1440, errors)
        start = _int_param(request, "start", 0, 0, 2**40, errors)
        end = _int_param(request, "end", 0, 0, 2**40, errors)
        if start and end and end < start:
            errors["end"] = ["The end must be greater than start."]
        if errors or m is None:
            return web.json_response({"success": False, "message": errors, "result": None})  # sic: HTTP 200
        rows = candles(m.trades, KLINE_INTERVALS[interval_name], start or None, end or None)
        return web.json_response({"success": True, "message": None, "result": rows[-limit:]})


def _int_param(
    request: web.Request, name: str, default: int, lo: int, hi: int, errors: dict[str, list[str]]
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = [f"The {name} must be an integer."]
        return default
    if not lo <= value <= hi:
        errors[name] = [f"The {name} must be between {lo} and {hi}."]
        return default
    return value
