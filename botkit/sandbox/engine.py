"""The market inside the sandbox: accounts, balances, orders and price-time-priority matching, all in Decimal.

Every operation either fails with an `ExchangeError` (WhiteBIT's status, code and field messages) before touching
state, or completes; funds an open order may need are frozen up front, so no balance can go negative. Background
liquidity ("house" orders and prints) moves no account's balance. Listeners (the WebSocket hub) hear trades, order
events, deals and balance changes as they happen.
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from botkit.market.rules import MarketRules, RuleViolation, decimals_of, fmt
from botkit.sandbox.book import Order, OrderBook, Side
from botkit.sandbox.config import SandboxConfig

ZERO = Decimal(0)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_STP = {"no": "no", "cb": "cb", "cn": "cn", "co": "co", "cancel_both": "cb", "cancel_new": "cn", "cancel_old": "co"}


class ExchangeError(Exception):
    """A refused request, carrying the HTTP status and WhiteBIT's error body."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, list[str]] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or {}
        super().__init__(f"{status} code {code}: {message} {self.errors}")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}


def validation_error(code: int, field_name: str, message: str) -> ExchangeError:
    return ExchangeError(422, code, "Validation failed", {field_name: [message]})


def _violations_error(violations: list[RuleViolation]) -> ExchangeError:
    errors: dict[str, list[str]] = {}
    for v in violations:
        errors.setdefault(v.field, []).append(v.message)
    return ExchangeError(422, violations[0].code, "Validation failed", errors)


def not_enough_balance() -> ExchangeError:
    """The docs are silent for order/new; this is what ccxt records from the live exchange (docs/whitebit.md §2.5)."""
    return ExchangeError(400, 10, "Inner validation failed", {"amount": ["Not enough balance."]})


def _title(field_name: str) -> str:
    """WhiteBIT's field label in messages: `activation_price` -> "Activation price"."""
    words = field_name.replace("_", " ")
    return words[:1].upper() + words[1:]


def required(field_name: str) -> ExchangeError:
    """A missing field: code 30 "X field is required." (docs/whitebit.md §2.5, the order/new error examples)."""
    return validation_error(30, field_name, f"{_title(field_name)} field is required.")


def parse_amount(value: Any, field_name: str, code: int) -> Decimal:
    """A money field as sent on the wire: a numeric string (numbers are accepted too, as WhiteBIT does).
    Missing is code 30 "X field is required."; malformed is `code` "X field should be numeric string or number."."""
    if value is None or value == "":
        raise required(field_name)
    d: Decimal | None = None
    if not isinstance(value, bool) and isinstance(value, str | int | float):
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            d = None
    if d is None or not d.is_finite():
        raise validation_error(code, field_name, f"{_title(field_name)} field should be numeric string or number.")
    return d


@dataclass(slots=True)
class Balance:
    available: Decimal = ZERO
    freeze: Decimal = ZERO


@dataclass(slots=True, frozen=True)
class PublicTrade:
    id: int
    time: float
    price: Decimal
    amount: Decimal
    side: Side  # the taker's side


@dataclass(slots=True, frozen=True)
class Deal:
    id: int
    time: float
    market: str
    order_id: int
    client_order_id: str
    side: Side
    role: int  # 1 maker, 2 taker
    amount: Decimal
    price: Decimal
    deal: Decimal
    fee: Decimal
    fee_asset: str


@dataclass(slots=True)
class KillSwitch:
    market: str
    start_time: int
    cancellation_time: int
    types: list[str]


@dataclass(slots=True)
class MarketState:
    rules: MarketRules
    book: OrderBook = field(default_factory=OrderBook)
    trades: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=100_000))
    last_price: Decimal = ZERO
    house: list[Order] = field(default_factory=list)  # the house quotes placed by the last requote


class Listener(Protocol):
    def on_trade(self, market: str, trade: PublicTrade) -> None: ...
    def on_order(self, account: str, event: int, order: Order) -> None: ...
    def on_deal(self, account: str, deal: Deal) -> None: ...
    def on_balance(self, account: str, assets: set[str]) -> None: ...


class Exchange:
    """All mutable market state of the sandbox; `reset()` puts it back to the config."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.wall_clock = clock
        # Market time: the server's clock, or, while a lock-step replay runs, the replayed data's time (trades,
        # orders and candles are stamped with it, so they land in the replayed candles).
        self.replay_time: float | None = None
        self.listeners: list[Listener] = []
        self.markets: dict[str, MarketState] = {}
        self.balances: dict[str, dict[str, Balance]] = {}
        self.open_orders: dict[int, Order] = {}
        self.history: dict[str, list[Order]] = {}
        self.deals: dict[str, list[Deal]] = {}
        self.kill_switches: dict[tuple[str, str], KillSwitch] = {}
        self.ws_tokens: dict[str, tuple[str, float]] = {}
        self._dirty: dict[str, set[str]] = {}
        self._in_stops = False
        self.stops: dict[int, Order] = {}  # waiting (not yet triggered) stop orders, also in open_orders
        self.asset_ids: dict[str, int] = {}
        self.reset()

    def clock(self) -> float:
        return self.replay_time if self.replay_time is not None else self.wall_clock()

    # ---- state ---------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.replay_time = None
        self.markets = {m.name: MarketState(m.rules()) for m in self.config.markets}
        self.balances = {
            a.name: {asset: Balance(available=amount) for asset, amount in a.balances.items()}
            for a in self.config.accounts
        }
        self.open_orders.clear()
        self.stops.clear()
        self.history.clear()
        self.deals.clear()
        self.kill_switches.clear()
        self.ws_tokens.clear()
        self._dirty.clear()
        self._next_order = 4_180_284_841
        self._next_house = -1
        self._next_trade = 158_056_419
        assets = sorted({a for m in self.config.markets for a in (m.stock, m.money)})
        self.asset_ids = {a: i + 1 for i, a in enumerate(assets)}

    def market(self, name: Any) -> MarketState:
        if name is None:
            raise required("market")
        if name == "":
            raise validation_error(31, "market", "Market field should not be empty string.")
        state = self.markets.get(name) if isinstance(name, str) else None
        if state is None:
            raise validation_error(31, "market", "Market is not available.")
        return state

    def balance_of(self, account: str) -> dict[str, Balance]:
        bal = self.balances.setdefault(account, {})
        for m in self.markets.values():
            bal.setdefault(m.rules.stock, Balance())
            bal.setdefault(m.rules.money, Balance())
        return bal

    def _lock(self, account: str, asset: str, amount: Decimal) -> None:
        bal = self.balance_of(account)[asset]
        if amount > bal.available:
            raise not_enough_balance()
        bal.available -= amount
        bal.freeze += amount
        self._dirty.setdefault(account, set()).add(asset)

    def _unlock(self, account: str, asset: str, amount: Decimal) -> None:
        bal = self.balance_of(account)[asset]
        bal.freeze -= amount
        bal.available += amount
        assert bal.freeze >= 0, f"{account} {asset} freeze went negative"
        self._dirty.setdefault(account, set()).add(asset)

    def _spend_frozen(self, account: str, asset: str, amount: Decimal) -> None:
        bal = self.balance_of(account)[asset]
        bal.freeze -= amount
        assert bal.freeze >= 0, f"{account} {asset} freeze went negative"
        self._dirty.setdefault(account, set()).add(asset)

    def _credit(self, account: str, asset: str, amount: Decimal) -> None:
        self.balance_of(account)[asset].available += amount
        self._dirty.setdefault(account, set()).add(asset)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for account, assets in dirty.items():
            for listener in self.listeners:
                listener.on_balance(account, assets)

    # ---- order entry ---------------------------------------------------------------------------------------------

    def _common(self, account: str, market: MarketState, client_order_id: Any, stp: Any) -> tuple[str, str]:
        if client_order_id is None or client_order_id == "":
            coid = ""
        elif not isinstance(client_order_id, str):
            raise validation_error(36, "clientOrderId", "ClientOrderId field should be a string.")
        elif not _CLIENT_ID.match(client_order_id):
            raise validation_error(
                36, "clientOrderId", "ClientOrderId field should contain only latin letters, numbers and dashes."
            )
        else:
            coid = client_order_id
            if any(
                o.client_order_id == coid and o.account == account and o.market == market.rules.name
                for o in self.open_orders.values()
            ):
                raise validation_error(
                    36, "clientOrderId", "This client order id is already used by the current account."
                )
        stp_value = _STP.get(stp if isinstance(stp, str) else "no" if stp is None else "?")
        if stp_value is None:
            raise validation_error(30, "stp", "Stp must be one of: no, cb, cn, co.")
        return coid, stp_value

    @staticmethod
    def _side(value: Any) -> Side:
        if value == "buy":
            return "buy"
        if value == "sell":
            return "sell"
        if value is None or value == "":
            raise required("side")
        raise validation_error(30, "side", "Side field should contain only 'buy' or 'sell' values.")

    def _new_order(self, account: str, market: str, side: Side, type_: str, price: Decimal, amount: Decimal) -> Order:
        now = self.clock()
        order = Order(self._next_order, account, market, side, type_, price, amount, now, left=amount, mtime=now)
        self._next_order += 1
        return order

    def place_limit(
        self,
        account: str,
        market_name: Any,
        side_value: Any,
        amount_value: Any,
        price_value: Any,
        *,
        post_only: Any = False,
        ioc: Any = False,
        client_order_id: Any = None,
        stp: Any = "no",
    ) -> Order:
        m = self.market(market_name)
        side = self._side(side_value)
        amount = parse_amount(amount_value, "amount", 32)
        price = parse_amount(price_value, "price", 33)
        if not isinstance(post_only, bool) or not isinstance(ioc, bool):
            raise validation_error(30, "postOnly" if not isinstance(post_only, bool) else "ioc", "Should be a boolean.")
        if post_only and ioc:
            raise validation_error(37, "ioc", "Either IOC or PostOnly flag in true state is allowed.")
        violations = m.rules.limit_violations(amount, price)
        if violations:
            raise _violations_error(violations)
        coid, stp_value = self._common(account, m, client_order_id, stp)
        rules = m.rules
        if post_only:
            best = m.book.best_price("sell" if side == "buy" else "buy")
            if best is not None and (price >= best if side == "buy" else price <= best):
                raise validation_error(30, "postOnly", "Post only order would be executed immediately as taker.")
        lock_asset, lock_amount = (rules.money, amount * price) if side == "buy" else (rules.stock, amount)
        self._lock(account, lock_asset, lock_amount)
        order = self._new_order(account, rules.name, side, "limit", price, amount)
        order.client_order_id, order.post_only, order.ioc, order.stp = coid, post_only, ioc, stp_value
        order.locked = lock_amount
        order.fee_asset = rules.stock if side == "buy" else rules.money
        self._run_limit(m, order)
        self._flush()
        self._check_stops(m)
        return order

    def _run_limit(self, m: MarketState, order: Order) -> None:
        """Match a limit order (new, or a stop-limit just triggered); rest what is left, or close it."""
        self._match(m, order, limit=order.price)
        if order.status == "NEW" and order.left > 0 and not order.ioc:
            m.book.add(order)
            self.open_orders[order.id] = order
            if order.deal_stock > 0:
                order.status = "PARTIALLY_FILLED"
            self._emit_order(1, order)
        else:
            status = order.status
            if status == "NEW":
                status = "FILLED" if order.left == 0 else "CANCELED"
            self._finish(order, status)

    def place_market(
        self, account: str, market_name: Any, side_value: Any, amount_value: Any, *, stock: bool,
        client_order_id: Any = None, stp: Any = "no",
    ) -> Order:
        """`order/market` (buy amount in quote) or `order/stock_market` (amount in base)."""
        m = self.market(market_name)
        side = self._side(side_value)
        amount = parse_amount(amount_value, "amount", 32)
        rules = m.rules
        quote_sized = side == "buy" and not stock
        violations = rules.market_violations("buy" if quote_sized else "sell", amount)
        if violations:
            raise _violations_error(violations)
        coid, stp_value = self._common(account, m, client_order_id, stp)
        opposite: Side = "sell" if side == "buy" else "buy"
        if m.book.best(opposite) is None:
            raise validation_error(30, "amount", "There is no liquidity in the order book for a market order.")
        if side == "sell":
            lock_asset, lock_amount = rules.stock, amount
        elif quote_sized:
            lock_asset, lock_amount = rules.money, amount
        else:
            lock_asset, lock_amount = rules.money, self._cost_of(m, amount)
        self._lock(account, lock_asset, lock_amount)
        order = self._new_order(account, rules.name, side, "stock market" if stock else "market", ZERO, amount)
        order.client_order_id, order.stp, order.locked = coid, stp_value, lock_amount
        order.fee_asset = rules.stock if side == "buy" else rules.money
        self._run_market(m, order)
        self._flush()
        self._check_stops(m)
        return order

    def _run_market(self, m: MarketState, order: Order) -> None:
        self._match(m, order, limit=None, quote_sized=order.quote_sized)
        final = order.status if order.status != "NEW" else ("FILLED" if self._done(m, order) else "PARTIALLY_FILLED")
        if final == "PARTIALLY_FILLED" and order.deal_stock == 0:
            final = "CANCELED"  # nothing to take (a stop-market triggered on an empty side)
        self._finish(order, final)

    @staticmethod
    def _done(m: MarketState, order: Order) -> bool:
        """Nothing left, or (a quote-sized buy) only dust that buys less than one amount step at the best ask."""
        if order.left == 0:
            return True
        ask = m.book.best_price("sell")
        return (order.quote_sized and order.deal_stock > 0 and ask is not None
                and m.rules.truncate_amount(order.left / ask) == 0)

    # ---- stop orders ---------------------------------------------------------------------------------------------

    def place_stop(
        self, account: str, market_name: Any, side_value: Any, amount_value: Any, activation_value: Any,
        price_value: Any = None, *, limit: bool, client_order_id: Any = None, stp: Any = "no",
    ) -> Order:
        """`order/stop_limit` (limit: True) or `order/stop_market`. Funds are frozen at once; the order waits
        until the last price reaches `activation_price` (buy: >=, sell: <=, docs/whitebit.md §2.4), then runs as a
        limit or market order under the same id."""
        m = self.market(market_name)
        side = self._side(side_value)
        amount = parse_amount(amount_value, "amount", 32)
        price = parse_amount(price_value, "price", 33) if limit else ZERO
        activation = parse_amount(activation_value, "activation_price", 30)
        rules = m.rules
        if limit:
            violations = rules.limit_violations(amount, price)
        else:
            violations = rules.market_violations("buy" if side == "buy" else "sell", amount)
        if violations:
            raise _violations_error(violations)
        if activation <= 0 or decimals_of(activation) > rules.money_prec:
            raise validation_error(
                30, "activation_price", f"Activation price should be positive with at most {rules.money_prec} "
                "decimals.")
        coid, stp_value = self._common(account, m, client_order_id, stp)
        order = self._new_order(account, rules.name, side, "stop limit" if limit else "stop market", price, amount)
        if side == "sell":
            lock_asset, lock_amount = rules.stock, amount
        else:
            lock_asset, lock_amount = rules.money, amount * price if limit else amount
        bal = self.balance_of(account)[lock_asset]
        if lock_amount > bal.available:
            raise validation_error(32, "amount", "Not enough balance.")
        self._lock(account, lock_asset, lock_amount)
        order.client_order_id, order.stp, order.locked = coid, stp_value, lock_amount
        order.fee_asset = rules.stock if side == "buy" else rules.money
        order.activation_price = activation
        self.open_orders[order.id] = order
        self.stops[order.id] = order
        self._emit_order(1, order)
        self._flush()
        self._check_stops(m)
        return order

    def _check_stops(self, m: MarketState) -> None:
        """Trigger every waiting stop of `m` whose condition the last price meets, oldest first; a triggered
        order may move the price and trigger more, so this loops until nothing fires."""
        if self._in_stops or not self.stops:
            return
        self._in_stops = True
        try:
            while True:
                last = m.last_price
                due = [
                    o for o in self.stops.values()
                    if o.market == m.rules.name and last > 0
                    and (last >= o.activation_price if o.side == "buy" else last <= o.activation_price)
                ]
                if not due:
                    return
                for o in sorted(due, key=lambda x: x.id):
                    if o.id not in self.stops:
                        continue
                    o.activated = 1
                    o.mtime = self.clock()
                    del self.stops[o.id]
                    self.open_orders.pop(o.id, None)
                    self._emit_order(1, o)  # WhiteBIT: activation is a second event 1 with the same id
                    if o.type == "stop limit":
                        self._run_limit(m, o)
                    else:
                        self._run_market(m, o)
                    self._flush()
        finally:
            self._in_stops = False

    def _cost_of(self, m: MarketState, amount: Decimal) -> Decimal:
        """Quote needed to buy `amount` base by walking the asks (the whole book if it is too thin)."""
        need, cost = amount, ZERO
        for price in m.book.prices("sell"):
            for o in m.book.queue("sell", price):
                qty = min(need, o.left)
                cost += qty * price
                need -= qty
                if need == 0:
                    return cost
        return cost

    # ---- matching ------------------------------------------------------------------------------------------------

    def _match(self, m: MarketState, taker: Order, *, limit: Decimal | None, quote_sized: bool = False) -> None:
        book, rules = m.book, m.rules
        opposite: Side = "sell" if taker.side == "buy" else "buy"
        while taker.left > 0:
            maker = book.best(opposite)
            if maker is None:
                break
            price = maker.price
            if limit is not None and (price > limit if taker.side == "buy" else price < limit):
                break
            if quote_sized:
                qty = min(maker.left, rules.truncate_amount(taker.left / price))
                if qty <= 0:
                    break
            else:
                qty = min(maker.left, taker.left)
            if not maker.house and maker.account == taker.account and taker.stp != "no":
                if taker.stp in ("co", "cb"):
                    book.remove(maker)
                    self._finish(maker, "CANCELED_STP")
                if taker.stp in ("cn", "cb"):
                    taker.status = "CANCELED_STP"
                    return
                continue
            self._fill(m, taker, maker, qty, price, quote_sized)
        return

    def _fill(
        self, m: MarketState, taker: Order, maker: Order, qty: Decimal, price: Decimal, quote_sized: bool
    ) -> None:
        rules = m.rules
        now = self.clock()
        money = qty * price
        trade = PublicTrade(self._next_trade, now, price, qty, taker.side)
        self._next_trade += 1
        m.trades.append(trade)
        m.last_price = price
        for order, is_maker in ((maker, True), (taker, False)):
            order.left -= money if (order is taker and quote_sized) else qty
            order.deal_stock += qty
            order.deal_money += money
            order.mtime = now
            if order.house:
                continue
            received = qty if order.side == "buy" else money
            fee = rules.fee(received, maker=is_maker)
            order.deal_fee += fee
            if order.side == "buy":
                spent = money
                self._spend_frozen(order.account, rules.money, spent)
                self._credit(order.account, rules.stock, qty - fee)
            else:
                spent = qty
                self._spend_frozen(order.account, rules.stock, spent)
                self._credit(order.account, rules.money, money - fee)
            order.locked -= spent
            if order.side == "buy" and order.type in ("limit", "stop limit") and order.left > 0:
                # A taker buy that filled below its limit keeps only what its remaining amount needs frozen.
                excess = order.locked - order.left * order.price
                if excess > 0:
                    order.locked -= excess
                    self._unlock(order.account, rules.money, excess)
            deal = Deal(
                trade.id, now, rules.name, order.id, order.client_order_id, order.side, 1 if is_maker else 2,
                qty, price, money, fee, order.fee_asset,
            )
            self.deals.setdefault(order.account, []).append(deal)
            for listener in self.listeners:
                listener.on_deal(order.account, deal)
        if maker.left == 0:
            m.book.remove(maker)
            if not maker.house:
                self._finish(maker, "FILLED")
        else:
            m.book.touched()
            if not maker.house:
                maker.status = "PARTIALLY_FILLED"
                self._emit_order(2, maker)
        for listener in self.listeners:
            listener.on_trade(rules.name, trade)

    def _finish(self, order: Order, status: str) -> None:
        """Close an order: release what it still holds, record it, tell listeners (event 3)."""
        order.status = status
        order.ftime = order.mtime = self.clock()
        self.open_orders.pop(order.id, None)
        self.stops.pop(order.id, None)
        if order.house:
            return
        if order.locked > 0:
            rules = self.markets[order.market].rules
            self._unlock(order.account, rules.money if order.side == "buy" else rules.stock, order.locked)
            order.locked = ZERO
        self.history.setdefault(order.account, []).append(order)
        self._emit_order(3, order)

    def _emit_order(self, event: int, order: Order) -> None:
        for listener in self.listeners:
            listener.on_order(order.account, event, order)

    # ---- cancel / modify -----------------------------------------------------------------------------------------

    def find_open(self, account: str, market: str, order_id: Any, client_order_id: Any) -> Order:
        found: Order | None = None
        if order_id is not None and order_id != "":
            try:
                oid = int(order_id)
            except (TypeError, ValueError):
                raise validation_error(30, "orderId", "OrderId field should be an integer.") from None
            o = self.open_orders.get(oid)
            if o is not None and o.account == account and o.market == market:
                found = o
        elif client_order_id:
            found = next(
                (
                    o
                    for o in self.open_orders.values()
                    if o.account == account and o.market == market and o.client_order_id == client_order_id
                ),
                None,
            )
        else:
            raise validation_error(30, "orderId", "OrderId or clientOrderId field is required.")
        if found is None:
            raise ExchangeError(400, 2, "Inner validation failed", {"orderId": ["Unexecuted order was not found."]})
        return found

    def cancel(self, account: str, market_name: Any, order_id: Any = None, client_order_id: Any = None) -> Order:
        m = self.market(market_name)
        order = self.find_open(account, m.rules.name, order_id, client_order_id)
        m.book.remove(order)
        self._finish(order, "CANCELED")
        self._flush()
        return order

    def cancel_all(self, account: str, market_name: Any = None) -> int:
        if market_name is not None:
            self.market(market_name)
        doomed = [
            o for o in self.open_orders.values()
            if o.account == account and (market_name is None or o.market == market_name)
        ]
        for o in doomed:
            self.markets[o.market].book.remove(o)
            self._finish(o, "CANCELED")
        self._flush()
        return len(doomed)

    def modify(
        self, account: str, market_name: Any, order_id: Any, client_order_id: Any, *,
        amount: Any = None, price: Any = None, total: Any = None,
    ) -> Order:
        """Cancel and re-place with a new order id (WhiteBIT's modify semantics); the old order survives a refusal."""
        m = self.market(market_name)
        if amount is None and price is None and total is None:
            raise validation_error(30, "amount", "One of amount, total, price or activationPrice is required.")
        old = self.find_open(account, m.rules.name, order_id, client_order_id)
        if old.is_stop:
            raise validation_error(30, "orderId", "The sandbox does not modify stop orders; cancel and re-place it.")
        new_price = parse_amount(price, "price", 33) if price is not None else old.price
        if amount is not None:
            new_amount = parse_amount(amount, "amount", 32)
        elif total is not None:
            new_amount = m.rules.truncate_amount(parse_amount(total, "total", 30) / new_price)
        else:
            new_amount = old.left
        violations = m.rules.limit_violations(new_amount, new_price)
        if violations:
            raise _violations_error(violations)
        need_asset = m.rules.money if old.side == "buy" else m.rules.stock
        need = new_amount * new_price if old.side == "buy" else new_amount
        if need > self.balance_of(account)[need_asset].available + old.locked:
            raise not_enough_balance()
        coid = old.client_order_id
        m.book.remove(old)
        self._finish(old, "CANCELED")
        return self.place_limit(
            account, m.rules.name, old.side, fmt(new_amount), fmt(new_price),
            post_only=old.post_only, ioc=old.ioc, client_order_id=coid or None, stp=old.stp,
        )

    # ---- kill switch ---------------------------------------------------------------------------------------------

    def kill_switch(self, account: str, market_name: Any, timeout: Any, types: Any) -> dict[str, Any]:
        m = self.market(market_name)
        key = (account, m.rules.name)
        if timeout is None:
            ks = self.kill_switches.pop(key, None)
            now = int(self.wall_clock())  # fired by the server's pulse, on its clock
            return {"market": m.rules.name, "startTime": now, "cancellationTime": now, "types": ks.types if ks else []}
        try:
            seconds = int(str(timeout))
        except ValueError:
            seconds = 0
        if not 5 <= seconds <= 600:
            raise validation_error(30, "timeout", "Timeout should be between 5 and 600 seconds.")
        kinds = types if isinstance(types, list) and types else ["spot"]
        if any(t not in ("spot", "margin", "futures") for t in kinds):
            raise validation_error(30, "types", "Types may contain only spot, margin, futures.")
        now = int(self.wall_clock())  # fired by the server's pulse, on its clock
        ks = KillSwitch(m.rules.name, now, now + seconds, list(kinds))
        self.kill_switches[key] = ks
        return self._ks_body(ks)

    @staticmethod
    def _ks_body(ks: KillSwitch) -> dict[str, Any]:
        return {"market": ks.market, "startTime": ks.start_time, "cancellationTime": ks.cancellation_time,
                "types": ks.types}

    def kill_switch_status(self, account: str, market_name: Any = None) -> list[dict[str, Any]]:
        if market_name is not None:
            self.market(market_name)
        return [
            self._ks_body(ks)
            for (acc, market), ks in self.kill_switches.items()
            if acc == account and (market_name is None or market == market_name)
        ]

    def fire_kill_switches(self, now: float) -> None:
        for (account, market), ks in list(self.kill_switches.items()):
            if now >= ks.cancellation_time:
                del self.kill_switches[(account, market)]
                if "spot" in ks.types:
                    self.cancel_all(account, market)

    # ---- websocket tokens ----------------------------------------------------------------------------------------

    def issue_ws_token(self, account: str, ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        self.ws_tokens[token] = (account, self.wall_clock() + ttl)
        return token

    def account_for_ws_token(self, token: Any) -> str | None:
        entry = self.ws_tokens.get(token) if isinstance(token, str) else None
        if entry is None or entry[1] < self.wall_clock():
            return None
        return entry[0]

    # ---- background liquidity ------------------------------------------------------------------------------------

    def print_trade(self, market: str, price: Decimal, amount: Decimal, side: Side, at: float | None = None) -> None:
        """A background trade at `price`: user orders priced through it fill first, then the print is recorded."""
        m = self.markets[market]
        price = m.rules.round_price(price, "buy")
        if price <= 0:
            return
        if at is None:
            # Sweep house quotes and user orders that the new price crosses, at their own prices.
            self._sweep(m, "sell", price)
            self._sweep(m, "buy", price)
            self._flush()
        trade = PublicTrade(self._next_trade, self.clock() if at is None else at, price, amount, side)
        self._next_trade += 1
        m.trades.append(trade)
        m.last_price = price
        if at is None:
            for listener in self.listeners:
                listener.on_trade(market, trade)
            self._check_stops(m)

    def _sweep(self, m: MarketState, side: Side, price: Decimal) -> None:
        taker_side: Side = "buy" if side == "sell" else "sell"
        while True:
            best = m.book.best(side)
            if best is None or (best.price > price if side == "sell" else best.price < price):
                return
            if best.house:
                m.book.remove(best)
                best.left = ZERO  # gone: a requote at this price places a new quote (zero spread requotes at it)
                continue
            taker = Order(self._next_house, "", m.rules.name, taker_side, "limit", best.price, best.left, self.clock(),
                          left=best.left, house=True)
            self._next_house -= 1
            self._fill(m, taker, best, best.left, best.price, False)

    def requote(
        self, market: str, bids: Iterable[tuple[Decimal, Decimal]], asks: Iterable[tuple[Decimal, Decimal]]
    ) -> None:
        """Replace the house quotes of `market` with the given (price, amount) levels (never crossing user orders).

        Levels that stay at the same price are resized in place, so a requote costs little when the price barely
        moves; a resized quote keeps its place in the queue, as an amend-down on a real exchange would not, which
        only matters for user orders at exactly a house price.
        """
        m = self.markets[market]
        old = {(o.side, o.price): o for o in m.house if o.left > 0}
        best_user_ask = m.book.best_price("sell")
        best_user_bid = m.book.best_price("buy")
        now = self.clock()
        house: list[Order] = []
        sides: tuple[tuple[Side, Iterable[tuple[Decimal, Decimal]]], ...] = (("buy", bids), ("sell", asks))
        for side, levels in sides:
            for price, amount in levels:
                if side == "buy" and best_user_ask is not None and price >= best_user_ask:
                    continue
                if side == "sell" and best_user_bid is not None and price <= best_user_bid:
                    continue
                o = old.pop((side, price), None)
                if o is not None:
                    if o.left != amount:
                        o.left = o.amount = amount
                        m.book.touched()
                else:
                    o = Order(self._next_house, "", market, side, "limit", price, amount, now, left=amount, house=True)
                    self._next_house -= 1
                    m.book.add(o)
                house.append(o)
        for o in old.values():
            m.book.remove(o)
        m.house = house

    # ---- queries -------------------------------------------------------------------------------------------------

    def account_orders(self, account: str) -> list[Order]:
        return [o for o in self.open_orders.values() if o.account == account]
