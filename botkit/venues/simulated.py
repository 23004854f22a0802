"""A venue that fills orders from candles: the backtest's (and paper trading's) exchange.

The fill model (also in README.md, "Fill model"):

1. Orders reach the venue when the strategy places them and are accepted at once if the balance covers them
   (funds are locked as WhiteBIT locks them: quote for buys, base for sells). They can fill no earlier than the next
   candle that opens at or after the moment they were placed, so a strategy never trades on the candle it just saw.
2. Market orders fill at that candle's open, moved against the order by ``slippage_pct``. A market buy spends its
   quote amount; the base received is cut to ``stockPrec``.
3. A limit order that is marketable when it arrives (buy price >= open, sell price <= open) fills at the open as a
   taker. Otherwise it rests and fills, as a maker at its own price, on a later candle that trades through it
   (low < price for a buy, high > price for a sell; with ``touch = true`` touching is enough). IOC orders that are
   not marketable on arrival are cancelled. Post-only orders that would cross the last price are rejected when
   placed.
4. Stop-market orders trigger when the candle reaches the stop price (at the open if it gapped past it) and fill as
   takers with slippage.
5. When one candle triggers several orders, sells fill lowest price first and buys highest price first, so when a
   candle could hit both a stop and a target, the stop (the pessimistic outcome) wins; orders sharing an OCO group
   are cancelled as soon as one of them fills.
6. Fees as WhiteBIT charges them: maker or taker percent of the amount received, in the asset received.
7. Fills are whole: candles carry no queue position, so partial fills are not simulated.

Markets replayed from order-book data (`use_book`) fill by the book model instead: level-by-level walks, partial
fills, queue positions and resyncs, in botkit/venues/book_matching.py (its docstring has the rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from botkit.market.orders import Fill, Order
from botkit.market.rules import MarketRules, to_decimal
from botkit.market.types import Balance
from botkit.venues.book_matching import BookMatcher

if TYPE_CHECKING:  # the port's other half, named in annotations only (no upward import)
    from botkit.execution.venue import VenueEvents

INF = float("inf")


@dataclass(frozen=True, slots=True)
class FillModel:
    slippage_pct: Decimal = Decimal(0)
    touch: bool = False


@dataclass(slots=True)
class MarketBook:
    """The simulated venue's orders on one market, plus the price thresholds that make a candle worth a look."""

    rules: MarketRules
    arrivals: list[Order] = field(default_factory=list)
    resting: list[Order] = field(default_factory=list)
    trig_low: float = -INF
    trig_high: float = INF
    active: bool = False

    def refresh(self) -> None:
        lo, hi = -INF, INF
        for o in self.resting:
            p = float(o.stop_price if o.type == "stop_market" else o.price)  # type: ignore[arg-type]
            if (o.side == "buy") == (o.type == "limit"):  # resting buy limit or sell stop: triggered from above
                lo = max(lo, p)
            else:
                hi = min(hi, p)
        self.trig_low, self.trig_high = lo, hi
        self.active = bool(self.arrivals or self.resting)


class InsufficientBalance(Exception):
    pass


class SimulatedVenue:
    """Deterministic candle-driven matching with exact Decimal balances."""

    name = "simulated"
    supports_oco = True

    def __init__(
        self,
        rules: dict[str, MarketRules],
        balances: dict[str, Decimal],
        fill_model: FillModel | None = None,
        *,
        supports_oco: bool = True,
    ) -> None:
        # False: OCO groups are emulated by the execution layer, as on WhiteBIT ([backtest] oco = "emulated")
        self.supports_oco = supports_oco
        self.fill_model = fill_model or FillModel()
        self.books: dict[str, MarketBook] = {m: MarketBook(r) for m, r in rules.items()}
        self._available: dict[str, Decimal] = {a: Decimal(v) for a, v in balances.items()}
        self._frozen: dict[str, Decimal] = {a: Decimal(0) for a in balances}
        for r in rules.values():
            for asset in (r.stock, r.money):
                self._available.setdefault(asset, Decimal(0))
                self._frozen.setdefault(asset, Decimal(0))
        self._locks: dict[str, tuple[str, Decimal]] = {}  # lock key -> (asset, amount)
        self._lock_key: dict[str, str] = {}  # client id -> lock key
        self._members: dict[str, set[str]] = {}  # lock key -> open client ids using it
        self._events: VenueEvents | None = None
        self._next_id = 0
        self._slip = self.fill_model.slippage_pct / 100
        self.depth: dict[str, BookMatcher] = {}  # markets that fill on their order book (see use_book)

    # ---- Venue protocol ---------------------------------------------------------------------------------------

    def bind(self, events: VenueEvents) -> None:
        self._events = events

    def balance(self, asset: str) -> Balance:
        return Balance(self._available.get(asset, Decimal(0)), self._frozen.get(asset, Decimal(0)))

    def balances(self) -> dict[str, Balance]:
        return {a: self.balance(a) for a in sorted(self._available)}

    def submit(self, order: Order, now_ms: int) -> None:
        ev = self._ev()
        book = self.books[order.market]
        asset, need = self._lock_need(order, book.rules)
        # Orders of one OCO group share one lock (WhiteBIT locks an OCO pair once): lock only what is missing.
        key = f"oco:{order.oco_group}" if order.oco_group is not None else order.client_id
        held_asset, held = self._locks.get(key, (asset, Decimal(0)))
        if held_asset != asset:
            ev.order_rejected(order, now_ms, f"oco: orders of group {order.oco_group} must lock the same asset")
            return
        extra = max(Decimal(0), need - held)
        if self._available[asset] < extra:
            ev.order_rejected(
                order, now_ms, f"balance: Not enough balance ({asset} available {self._available[asset]}, need {extra})"
            )
            return
        self._available[asset] -= extra
        self._frozen[asset] += extra
        self._locks[key] = (asset, held + extra)
        self._lock_key[order.client_id] = key
        self._members.setdefault(key, set()).add(order.client_id)
        self._next_id += 1
        ev.order_accepted(order, now_ms, str(self._next_id))
        depth = self.depth.get(order.market)
        if depth is not None:
            depth.submit(order, now_ms)
            return
        book.arrivals.append(order)
        book.active = True

    def cancel(self, order: Order, now_ms: int) -> None:
        depth = self.depth.get(order.market)
        if depth is not None:
            if depth.cancel(order):
                self._unlock(order)
                self._ev().order_cancelled(order, now_ms, "cancelled")
            return
        book = self.books[order.market]
        for lst in (book.arrivals, book.resting):
            if order in lst:
                lst.remove(order)
                self._unlock(order)
                book.refresh()
                self._ev().order_cancelled(order, now_ms, "cancelled")
                return

    # ---- order-book fills ---------------------------------------------------------------------------------------

    def use_book(self, market: str) -> BookMatcher:
        """Fill `market`'s orders from its order book (fed by `process_book`) instead of candles."""
        depth = self.depth.get(market)
        if depth is None:
            depth = self.depth[market] = BookMatcher(market, self.books[market].rules)
        return depth

    def process_book(self, market: str, time_ms: int, flags: int, sides: list[int], prices: list[float],
                     amounts: list[float], a: int, b: int) -> bool:
        """Apply one book event (rows a..b-1; flags: book_matching.SNAPSHOT, RESYNC) and fill what it fills. Call
        before the strategy sees the book. False while the book is stale after a gap (no `on_book` then)."""
        depth = self.depth[market]
        live = depth.event(time_ms, flags, sides, prices, amounts, a, b)
        if depth.deals or depth.cancels:
            self.settle_book(depth)
        return live

    def settle_book(self, depth: BookMatcher) -> None:
        """Book the deals and cancels the matcher decided (balances, fees, order events), in order."""
        deals, cancels = depth.take_outcome()
        rules = depth.rules
        filled_groups: set[str] = set()
        for d in deals:
            if not d.order.is_open:
                continue
            self._fill(d.order, rules, d.price, d.maker, d.time_ms, d.base, d.complete, d.ref)
            if d.order.oco_group is not None:
                filled_groups.add(d.order.oco_group)
        for order, reason, t_ms in cancels:
            if order.is_open:
                self._cancel_expired(order, t_ms, reason)
        for group in filled_groups:  # one-cancels-other: the first (partial) fill cancels the rest of the group
            for other in [o for o in depth.open_orders() if o.oco_group == group and o.filled == 0]:
                depth.cancel(other)
                self._unlock(other)
                self._ev().order_cancelled(other, depth.now_ms, "oco: another order of the group filled")

    # ---- matching -----------------------------------------------------------------------------------------------

    def process_candle(
        self, market: str, open_ms: int, o: float, h: float, lo: float, close_ms: int
    ) -> None:
        """Fill what this candle fills. Call before the strategy sees the candle."""
        book = self.books[market]
        if not book.arrivals and lo > book.trig_low and h < book.trig_high:
            return
        touch = self.fill_model.touch
        triggered: list[tuple[Order, Decimal, bool]] = []  # order, fill price, maker
        still: list[Order] = []
        arrived: list[Order] = []
        for order in book.arrivals:
            if order.created_ms > open_ms:
                still.append(order)  # placed after this candle opened: not eligible yet
                continue
            hit = self._on_arrival(order, book.rules, o, h, lo, touch)
            if hit is not None:
                triggered.append(hit)
            elif order.ioc:
                self._cancel_expired(order, close_ms, "ioc: not marketable on arrival")
            else:
                arrived.append(order)
        for order in book.resting:
            hit = self._on_resting(order, book.rules, o, h, lo, touch)
            if hit is not None:
                triggered.append(hit)
        book.arrivals = still
        book.resting.extend(arrived)
        if triggered:
            sells = sorted((t for t in triggered if t[0].side == "sell"), key=lambda t: t[1])
            buys = sorted((t for t in triggered if t[0].side == "buy"), key=lambda t: -t[1])
            done_groups: set[str] = set()
            for order, price, maker in sells + buys:
                if order.oco_group is not None and order.oco_group in done_groups:
                    continue
                if order in book.resting:
                    book.resting.remove(order)
                elif order in book.arrivals:
                    book.arrivals.remove(order)
                self._fill(order, book.rules, price, maker, open_ms)
                if order.oco_group is not None:
                    done_groups.add(order.oco_group)
            for group in done_groups:
                for other in [x for x in book.resting + book.arrivals if x.oco_group == group]:
                    (book.resting if other in book.resting else book.arrivals).remove(other)
                    self._unlock(other)
                    self._ev().order_cancelled(other, close_ms, "oco: another order of the group filled")
        book.refresh()

    def _on_arrival(
        self, order: Order, rules: MarketRules, o: float, h: float, lo: float, touch: bool
    ) -> tuple[Order, Decimal, bool] | None:
        if order.type == "market":
            return order, self._slipped(o, order.side, rules), False
        if order.type == "limit":
            p = float(order.price)  # type: ignore[arg-type]
            if (order.side == "buy" and o <= p) or (order.side == "sell" and o >= p):
                if order.post_only:
                    return order, order.price, True  # type: ignore[return-value]
                return order, to_decimal(o), False
            if order.ioc:
                return None
            return self._on_resting(order, rules, o, h, lo, touch)
        return self._on_resting(order, rules, o, h, lo, touch)

    def _on_resting(
        self, order: Order, rules: MarketRules, o: float, h: float, lo: float, touch: bool
    ) -> tuple[Order, Decimal, bool] | None:
        if order.type == "limit":
            p = float(order.price)  # type: ignore[arg-type]
            if order.side == "buy" and (lo < p or (touch and lo <= p)):
                return order, order.price, True  # type: ignore[return-value]
            if order.side == "sell" and (h > p or (touch and h >= p)):
                return order, order.price, True  # type: ignore[return-value]
            return None
        if order.type == "stop_market":
            s = float(order.stop_price)  # type: ignore[arg-type]
            if order.side == "sell" and lo <= s:
                return order, self._slipped(min(o, s), "sell", rules), False
            if order.side == "buy" and h >= s:
                return order, self._slipped(max(o, s), "buy", rules), False
            return None
        return None

    def _slipped(self, price: float, side: str, rules: MarketRules) -> Decimal:
        p = to_decimal(price)
        if side == "buy":
            return (p * (1 + self._slip)).quantize(rules.price_step, rounding=ROUND_CEILING)
        return (p * (1 - self._slip)).quantize(rules.price_step, rounding=ROUND_FLOOR)

    def _fill(self, order: Order, rules: MarketRules, price: Decimal, maker: bool, time_ms: int,
              base: Decimal | None = None, complete: bool = True, ref: Decimal | None = None) -> None:
        """Book a fill. Candles fill whole (`base` None: all that is left); the book model passes each part, and
        `complete` on the last one, which releases what is still locked."""
        key = self._lock_key[order.client_id]
        asset, locked = self._locks[key]
        if order.side == "buy":
            if base is None:
                base = rules.truncate_amount(order.amount / price) if order.quote_amount else order.amount
            quote = base * price
            fee = rules.fee(base, maker)
            spent = quote
            fee_asset = rules.stock
            got = base - fee
        else:
            if base is None:
                base = order.amount
            quote = base * price
            fee = rules.fee(quote, maker)
            spent = base
            fee_asset = rules.money
            got = quote - fee
        if complete:
            del self._lock_key[order.client_id]
            self._members[key].discard(order.client_id)
            del self._locks[key]
            release = locked  # unspent funds return
        else:
            if order.side == "sell" or order.quote_amount:
                release = spent
            else:  # a limit (stop) buy locked its amount at its limit (stop) price
                release = base * (order.price if order.type == "limit" else order.stop_price)  # type: ignore[operator]
            self._locks[key] = (asset, locked - release)
        self._frozen[asset] -= release
        self._available[asset] += release - spent
        self._available[fee_asset] += got
        fill = Fill(order.client_id, order.market, order.side, price, base, quote, fee, fee_asset, maker, time_ms,
                    ref)
        self._ev().order_filled(order, fill, complete)

    def _cancel_expired(self, order: Order, time_ms: int, reason: str) -> None:
        self._unlock(order)
        self._ev().order_cancelled(order, time_ms, reason)

    # ---- balances -----------------------------------------------------------------------------------------------

    @staticmethod
    def _lock_need(order: Order, rules: MarketRules) -> tuple[str, Decimal]:
        if order.side == "buy":
            if order.quote_amount:
                return rules.money, order.amount
            if order.type == "stop_market":
                # Stop buys lock quote at the stop price (WhiteBIT locks at the activation price).
                return rules.money, order.amount * order.stop_price  # type: ignore[operator]
            return rules.money, order.amount * order.price  # type: ignore[operator]
        return rules.stock, order.amount

    def _unlock(self, order: Order) -> None:
        """Release an order's funds, unless another open order of its OCO group still needs them."""
        key = self._lock_key.pop(order.client_id)
        members = self._members[key]
        members.discard(order.client_id)
        if members or key not in self._locks:
            return
        del self._members[key]
        asset, amount = self._locks.pop(key)
        self._frozen[asset] -= amount
        self._available[asset] += amount

    def _ev(self) -> VenueEvents:
        if self._events is None:
            raise RuntimeError("SimulatedVenue is not bound to an execution engine")
        return self._events
