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

Other fill models, chosen with ``[backtest] fills``, share the balances, locks, fees and OCO rules above:

- "trades" (`process_trade`): orders become eligible on the first trade printed at or after their arrival. Market
  orders fill whole at that trade's price (moved by ``slippage_pct``). A limit order marketable on arrival (through
  the last trade's price, or at it when that trade's taker was on the order's side) fills whole as a taker at that
  trade's price, or at the last one's when that is beyond the limit.
  A resting limit fills whole, as a maker at its own price, on a trade through it (buy: price < limit; sell: >); at
  exactly its price only the volume left after the queue ahead of it fills it, in parts (one Fill each, the order
  PARTIALLY_FILLED in between). The queue ahead is the visible size at that level when the order joined if the run
  has book data (`level_size`), else ``queue_ahead`` (base units). Only trades whose taker is on the other side (or
  of unknown side) consume a queue. Stops trigger on trade prices.
- "book" (`process_book`, markets replayed from order-book data, `use_book`): level-by-level walks, partial fills,
  queue positions and resyncs, in botkit/venues/book_matching.py (its docstring has the rules).

Latency, in market time and in every model: an order placed at t reaches the venue at t + ``latency_ms`` (it is
accepted and its funds are locked at once, but matched only from then on; a cancel also takes effect then), and
what the venue reports (fills, cancellations) reaches the strategy ``fill_latency_ms`` after it happened. Balances
read through the context are the venue's, so they move at the fill itself.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from botkit.market.orders import OCO_REASON, Fill, Order
from botkit.market.rules import MarketRules, float_to_decimal, to_decimal
from botkit.market.types import Balance
from botkit.venues.book_matching import BookMatcher

if TYPE_CHECKING:  # the port's other half, named in annotations only (no upward import)
    from botkit.execution.venue import VenueEvents

INF = float("inf")
ZERO = Decimal(0)
_new_tuple = tuple.__new__  # Balance(a, f) without the named tuple's Python `__new__`: tuple.__new__(Balance, (a, f))


FillKind = Literal["candles", "trades", "book"]


@dataclass(frozen=True, slots=True)
class FillModel:
    slippage_pct: Decimal = Decimal(0)
    touch: bool = False
    kind: FillKind = "candles"
    latency_ms: int = 0  # decision -> arrival at the venue (market time)
    fill_latency_ms: int = 0  # fill (or cancellation) at the venue -> the strategy sees it
    queue_ahead: Decimal = Decimal(0)  # trades model without book data: base amount queued ahead of a new order


@dataclass(slots=True)
class MarketBook:
    """The simulated venue's orders on one market, plus the price thresholds that make a candle worth a look."""

    rules: MarketRules
    arrivals: list[Order] = field(default_factory=list)
    resting: list[Order] = field(default_factory=list)
    trig_low: float = -INF
    trig_high: float = INF
    active: bool = False
    # The trades model's gate: a trade priced in (lo, hi) cannot change anything (every trade when orders are
    # arriving or something is pending).
    lo: float = -INF
    hi: float = INF
    due: float = INF  # earliest pending report or cancel (latency)
    reports: deque[tuple[float, Callable[..., None], tuple[Any, ...]]] = field(default_factory=deque)
    cancels: list[tuple[int, Order]] = field(default_factory=list)
    queue: dict[str, float] = field(default_factory=dict)  # client id -> volume still queued ahead (trades model)
    # (taker, maker) fee rates, `rules.fee_rate(maker)` worked out once: indexed by `maker`, for every fill
    fee_rates: tuple[Decimal, Decimal] = (ZERO, ZERO)

    def __post_init__(self) -> None:
        self.fee_rates = (self.rules.fee_rate(False), self.rules.fee_rate(True))

    def refresh(self) -> None:
        lo, hi = -INF, INF
        for o in self.resting:
            p = float(o.stop_price if o.type == "stop_market" else o.price)  # type: ignore[arg-type]
            if (o.side == "buy") == (o.type == "limit"):  # resting buy limit or sell stop: triggered from above
                lo = max(lo, p)
            else:
                hi = min(hi, p)
        self.trig_low, self.trig_high = lo, hi
        pending = bool(self.reports or self.cancels)
        self.active = bool(self.arrivals or self.resting or pending)
        if self.arrivals or pending:
            self.lo, self.hi = INF, -INF
        else:
            self.lo, self.hi = lo, hi
        due = self.reports[0][0] if self.reports else INF
        if self.cancels:
            due = min(due, min(c[0] for c in self.cancels))
        self.due = due


class InsufficientBalance(Exception):
    pass


_Hit = TypeVar("_Hit", tuple[Order, Decimal, bool], tuple[Order, Decimal, bool, Decimal | None])


def _in_fill_order(triggered: list[_Hit]) -> list[_Hit]:
    """Orders one event triggered, (order, fill price, ...), in the order they fill: sells lowest price first, then
    buys highest price first (rule 5 of the fill model). Most events trigger one order: nothing to sort then."""
    if len(triggered) == 1:
        return triggered
    sells = sorted((t for t in triggered if t[0].side == "sell"), key=lambda t: t[1])
    buys = sorted((t for t in triggered if t[0].side == "buy"), key=lambda t: -t[1])
    return sells + buys


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
        # Balances as last read, per asset: a strategy, the risk check and the equity for the daily loss limit read
        # them around every order, far more often than funds move; an asset's entry goes whenever its funds move.
        self._read: dict[str, Balance] = {}
        self._assets: tuple[str, ...] = ()  # every asset, sorted (assets are only ever added)
        self._locks: dict[str, tuple[str, Decimal]] = {}  # lock key -> (asset, amount)
        self._lock_key: dict[str, str] = {}  # client id -> lock key
        self._members: dict[str, set[str]] = {}  # OCO lock key -> open client ids using it (others: their own)
        self._events: VenueEvents | None = None
        self._next_id = 0
        self._slip = self.fill_model.slippage_pct / 100
        self._worse = {"buy": 1 + self._slip, "sell": 1 - self._slip}  # price factor of a slipped fill, by side
        self._lat = self.fill_model.latency_ms
        self._flat = self.fill_model.fill_latency_ms
        self._queue_ahead = float(self.fill_model.queue_ahead)
        self._done: dict[str, Decimal] = {}  # client id -> base filled so far (partial fills)
        # The visible size at (market, side, price) now, when book data feeds the run; else `queue_ahead` is used.
        self.level_size: Callable[[str, str, float], float | None] | None = None
        self.depth: dict[str, BookMatcher] = {}  # markets that fill on their order book (see use_book)

    # ---- Venue protocol ---------------------------------------------------------------------------------------

    def bind(self, events: VenueEvents) -> None:
        self._events = events

    def balance(self, asset: str) -> Balance:
        bal = self._read.get(asset)
        if bal is None:
            bal = _new_tuple(Balance, (self._available.get(asset, ZERO), self._frozen.get(asset, ZERO)))
            if asset in self._available:
                self._read[asset] = bal
        return bal

    def balances(self) -> dict[str, Balance]:
        assets, read = self._assets, self._read
        if len(assets) != len(self._available):
            assets = self._assets = tuple(sorted(self._available))
        if len(read) != len(assets):  # funds moved since some asset was last read: as `balance` builds them
            available, frozen = self._available, self._frozen
            for a in assets:
                if a not in read:
                    read[a] = _new_tuple(Balance, (available.get(a, ZERO), frozen.get(a, ZERO)))
        return {a: read[a] for a in assets}  # (half the cost of dict(zip(...)) over a few assets)

    def submit(self, order: Order, now_ms: int) -> None:
        ev = self._events or self._ev()
        book = self.books[order.market]
        asset, need = self._lock_need(order, book.rules)
        cid, group = order.client_id, order.oco_group
        # Orders of one OCO group share one lock (WhiteBIT locks an OCO pair once): lock only what is missing.
        key = f"oco:{group}" if group is not None else cid
        held_asset, held = self._locks.get(key, (asset, ZERO))
        if held_asset != asset:
            ev.order_rejected(order, now_ms, f"oco: orders of group {group} must lock the same asset")
            return
        extra = need - held
        if not extra > ZERO:  # (max(ZERO, extra), without the call)
            extra = ZERO
        available = self._available
        if available[asset] < extra:
            ev.order_rejected(
                order, now_ms, f"balance: Not enough balance ({asset} available {available[asset]}, need {extra})"
            )
            return
        available[asset] -= extra
        self._frozen[asset] += extra
        self._read.pop(asset, None)
        self._locks[key] = (asset, held + extra)
        self._lock_key[cid] = key
        if group is not None:
            self._members.setdefault(key, set()).add(cid)
        self._next_id += 1
        ev.order_accepted(order, now_ms, str(self._next_id))
        depth = self.depth.get(order.market)
        if depth is not None:
            depth.submit(order, now_ms + self._lat)
            return
        book.arrivals.append(order)
        book.active = True
        book.lo, book.hi = INF, -INF

    def cancel(self, order: Order, now_ms: int) -> None:
        book = self.books[order.market]
        if self._lat:
            book.cancels.append((now_ms + self._lat, order))  # takes effect when it arrives
            book.refresh()
            return
        self._cancel_now(book, order, now_ms)

    def _cancel_now(self, book: MarketBook, order: Order, now_ms: int) -> None:
        depth = self.depth.get(order.market)
        if depth is not None:
            if depth.cancel(order):
                self._unlock(order)
                self._report(book, now_ms, self._ev().order_cancelled, order, now_ms, "cancelled")
                book.refresh()
            return
        for lst in (book.arrivals, book.resting):
            if order in lst:
                lst.remove(order)
                self._unlock(order)
                book.queue.pop(order.client_id, None)
                self._report(book, now_ms, self._ev().order_cancelled, order, now_ms, "cancelled")
                book.refresh()
                return

    def flush(self, now_ms: float) -> None:
        """Apply the cancels and deliver the reports due by `now_ms` (at the end of a replay: all of them)."""
        for book in self.books.values():
            if book.due <= now_ms:
                self._pending(book, now_ms, now_ms)

    def _pending(self, book: MarketBook, cancel_by: float, report_by: float) -> None:
        if book.cancels:
            due = [c for c in book.cancels if c[0] <= cancel_by]
            book.cancels = [c for c in book.cancels if c[0] > cancel_by]
            for t, order in due:
                self._cancel_now(book, order, int(t))
        reports = book.reports
        while reports and reports[0][0] <= report_by:
            _, fn, args = reports.popleft()
            fn(*args)
        book.refresh()

    def _report(self, book: MarketBook, time_ms: int, fn: Callable[..., None], *args: Any) -> None:
        """Tell the engine now, or `fill_latency_ms` later (in order: one queue per market)."""
        if not self._flat:
            fn(*args)
            return
        due = float(time_ms + self._flat)
        if book.reports:
            due = max(due, book.reports[-1][0])
        book.reports.append((due, fn, args))
        book.due = min(book.due, due)

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
        book = self.books[market]
        if book.due <= time_ms:
            self._pending(book, time_ms, time_ms)  # cancels that arrived by now (latency)
        depth = self.depth[market]
        live = depth.event(time_ms, flags, sides, prices, amounts, a, b)
        if depth.deals or depth.cancels:
            self.settle_book(depth)
        if book.reports and book.due <= time_ms:
            self._pending(book, -INF, time_ms)  # what the strategy hears before this event's on_book
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
        book = self.books[depth.market]
        for group in filled_groups:  # one-cancels-other: the first (partial) fill cancels the rest of the group
            for other in [o for o in depth.open_orders() if o.oco_group == group and o.client_id not in self._done]:
                depth.cancel(other)
                self._unlock(other)
                self._report(book, depth.now_ms, self._ev().order_cancelled, other, depth.now_ms, OCO_REASON)

    # ---- matching -----------------------------------------------------------------------------------------------

    def process_candle(
        self, market: str, open_ms: int, o: float, h: float, lo: float, close_ms: int
    ) -> None:
        """Fill what this candle fills. Call before the strategy sees the candle."""
        book = self.books[market]
        if not book.arrivals and lo > book.trig_low and h < book.trig_high and close_ms < book.due:
            return
        if book.due <= close_ms:
            self._pending(book, open_ms, -INF)  # cancels that arrived before the candle opened
        lat = self._lat
        touch = self.fill_model.touch
        triggered: list[tuple[Order, Decimal, bool]] = []  # order, fill price, maker
        still: list[Order] = []
        arrived: list[Order] = []
        for order in book.arrivals:
            if order.created_ms + lat > open_ms:
                still.append(order)  # reaches the venue after this candle opened: not eligible yet
                continue
            if order.type == "market":  # (`_on_arrival`'s first case, without its call)
                hit: tuple[Order, Decimal, bool] | None = (order, self._slipped(o, order.side, book.rules), False)
            else:
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
            done_groups: set[str] = set()
            # (one order triggered, the usual case, needs no sorting: nor a call)
            for order, price, maker in triggered if len(triggered) == 1 else _in_fill_order(triggered):
                if order.oco_group is not None and order.oco_group in done_groups:
                    continue
                if order in book.resting:
                    book.resting.remove(order)
                elif order in book.arrivals:
                    book.arrivals.remove(order)
                self._fill(order, book.rules, price, maker, open_ms)
                if order.oco_group is not None:
                    done_groups.add(order.oco_group)
            if done_groups:
                self._cancel_partners(book, done_groups, close_ms, ())
        book.refresh()
        if book.reports and book.due <= close_ms:
            self._pending(book, -INF, close_ms)  # what the strategy hears before this candle's callback

    def process_trades(self, market: str, times: list[int], prices: list[float], amounts: list[float],
                       sides: list[int]) -> None:
        """Fill what these public trades fill, one at a time (the loop's hot path inlines the gate check)."""
        book = self.books[market]
        prev, prev_side = math.nan, 0
        for t, p, a, sd in zip(times, prices, amounts, sides, strict=True):
            if p <= book.lo or p >= book.hi:
                self.process_trade(market, t, p, a, sd, prev, prev_side)
            prev, prev_side = p, sd

    def process_trade(self, market: str, t: int, price: float, amount: float, side: int,
                      prev: float = math.nan, prev_side: int = 0) -> None:
        """Fill what one public trade fills (`side`: the taker's, +1 buy, -1 sell, 0 unknown; `prev`, `prev_side`:
        the trade before it, NaN when none). Call before the strategy sees the trade. The trades fill model: see
        the module docstring."""
        book = self.books[market]
        if book.due <= t:
            self._pending(book, t, t)
        rules = book.rules
        triggered: list[tuple[Order, Decimal, bool, Decimal | None]] = []  # order, price, maker, part (None: all)
        if book.arrivals:
            lat = self._lat
            still: list[Order] = []
            for order in book.arrivals:
                if order.created_ms + lat > t:
                    still.append(order)
                    continue
                hit = self._trade_arrival(order, rules, price, side, prev, prev_side)
                if hit is not None:
                    triggered.append(hit)
                elif order.ioc:
                    self._cancel_expired(order, t, "ioc: not marketable on arrival")
                else:
                    book.resting.append(order)  # this trade is matched against it below, as a resting order
                    if order.type == "limit":
                        seen = self.level_size(market, order.side, float(order.price or 0)) \
                            if self.level_size is not None else None
                        book.queue[order.client_id] = self._queue_ahead if seen is None else seen
            book.arrivals = still
        triggered_ids = {id(x[0]) for x in triggered}
        left = amount  # volume at exactly a resting price, shared by our orders there in time priority
        for order in book.resting:
            if id(order) in triggered_ids:
                continue
            hit, left = self._trade_resting(order, rules, price, left, side, book)
            if hit is not None:
                triggered.append(hit)
        if triggered:
            done_groups: set[str] = set()
            for order, px, maker, part in _in_fill_order(triggered):
                if order.oco_group is not None and order.oco_group in done_groups:
                    continue
                whole = part is None or part >= order.amount - self._done.get(order.client_id, Decimal(0))
                if whole:
                    if order in book.resting:
                        book.resting.remove(order)
                    elif order in book.arrivals:
                        book.arrivals.remove(order)
                self._fill(order, rules, px, maker, t, None if whole else part, whole)
                if order.oco_group is not None:
                    done_groups.add(order.oco_group)
            self._cancel_partners(book, done_groups, t, [y[0] for y in triggered])
        book.refresh()
        if book.reports and book.due <= t:
            self._pending(book, -INF, t)

    def _cancel_partners(self, book: MarketBook, groups: set[str], time_ms: int, keep: Sequence[Order]) -> None:
        """One-cancels-other: the open orders of each filled group (except `keep`) are cancelled."""
        for group in groups:
            for other in [x for x in book.resting + book.arrivals if x.oco_group == group
                          and not any(x is k for k in keep)]:
                (book.resting if other in book.resting else book.arrivals).remove(other)
                self._unlock(other)
                book.queue.pop(other.client_id, None)
                self._report(book, time_ms, self._ev().order_cancelled, other, time_ms, OCO_REASON)

    def _trade_arrival(self, order: Order, rules: MarketRules, price: float, side: int, prev: float,
                       prev_side: int) -> tuple[Order, Decimal, bool, Decimal | None] | None:
        """An order reaching the venue, judged on the market as it was then (the last trade before this one,
        `prev`): a market order fills at this trade's price; a limit order marketable then fills as a taker at this
        trade's price, or at `prev` when this one is beyond its limit; else it rests (and this trade is matched
        against it as such)."""
        if order.type == "market":
            return order, self._slipped(price, order.side, rules), False, None
        if order.type == "limit":
            p = float(order.price)  # type: ignore[arg-type]
            ref, ref_side = (prev, prev_side) if prev == prev else (price, side)  # (prev is NaN: no trade before)
            # Marketable: through the last price, or at it when that trade's taker was on our side (there was
            # liquidity to take at that price). Post-only orders never take: they rest.
            buy = order.side == "buy"
            if not order.post_only and ((buy and (ref < p or (ref == p and ref_side == 1)))
                                        or (not buy and (ref > p or (ref == p and ref_side == -1)))):
                within = price <= p if buy else price >= p
                return order, to_decimal(price if within else ref), False, None
            return None
        s = float(order.stop_price)  # type: ignore[arg-type]
        if (order.side == "sell" and price <= s) or (order.side == "buy" and price >= s):
            return order, self._slipped(price, order.side, rules), False, None
        return None

    def _trade_resting(self, order: Order, rules: MarketRules, price: float, left: float, side: int,
                       book: MarketBook) -> tuple[tuple[Order, Decimal, bool, Decimal | None] | None, float]:
        if order.type != "limit":
            s = float(order.stop_price)  # type: ignore[arg-type]
            if (order.side == "sell" and price <= s) or (order.side == "buy" and price >= s):
                return (order, self._slipped(price, order.side, rules), False, None), left
            return None, left
        p = float(order.price)  # type: ignore[arg-type]
        buy = order.side == "buy"
        if (buy and price < p) or (not buy and price > p):
            return (order, order.price, True, None), left  # type: ignore[return-value]  # traded through
        if price != p or left <= 0 or side == (1 if buy else -1):
            return None, left  # not at its price, nothing left, or the taker was on our side
        if self.fill_model.touch:
            return (order, order.price, True, None), left  # type: ignore[return-value]
        ahead = book.queue.get(order.client_id, 0.0)
        if left <= ahead:
            book.queue[order.client_id] = ahead - left
            return None, 0.0
        book.queue[order.client_id] = 0.0
        avail = left - ahead
        rest = order.amount - self._done.get(order.client_id, Decimal(0))
        part = rules.truncate_amount(to_decimal(avail))
        if part <= 0:
            return None, 0.0
        if part >= rest:
            return (order, order.price, True, None), avail - float(rest)  # type: ignore[return-value]
        return (order, order.price, True, part), 0.0  # type: ignore[return-value]

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
        worse = (float_to_decimal(price) if type(price) is float else to_decimal(price)) * self._worse[side]
        return worse.quantize(rules.price_step, ROUND_CEILING if side == "buy" else ROUND_FLOOR)  # (rounding)

    def _fill(self, order: Order, rules: MarketRules, price: Decimal, maker: bool, time_ms: int,
              base: Decimal | None = None, complete: bool = True, ref: Decimal | None = None) -> None:
        """Book a fill. Candles fill whole (`base` None: all that is left); the trades and book models pass each
        part, and `complete` on the last one, which releases what is still locked. What the order has filled so far
        is counted here (`_done`): the engine's `order.filled` lags behind by `fill_latency_ms`."""
        cid = order.client_id
        key = self._lock_key[cid]
        asset, locked = self._locks[key]
        book = self.books[order.market]
        buy = order.side == "buy"
        if base is None:
            if buy and order.type == "market":  # (order.quote_amount)
                base = rules.truncate_amount(order.amount / price)
            else:
                base = order.amount - self._done.get(cid, ZERO)
        # (fees as `rules.fee`: what is received times the rate)
        if buy:
            quote = base * price
            fee = base * book.fee_rates[maker]
            spent = quote
            fee_asset = rules.stock
            got = base - fee
        else:
            quote = base * price
            fee = quote * book.fee_rates[maker]
            spent = base
            fee_asset = rules.money
            got = quote - fee
        if complete:
            del self._lock_key[cid]
            if order.oco_group is not None:
                self._members[key].discard(cid)
            del self._locks[key]
            self._done.pop(cid, None)
            book.queue.pop(cid, None)
            release = locked  # unspent funds return
        else:
            if order.side == "sell" or order.quote_amount:
                release = spent
            else:  # a limit (stop) buy locked its amount at its limit (stop) price
                release = base * (order.price if order.type == "limit" else order.stop_price)  # type: ignore[operator]
            self._locks[key] = (asset, locked - release)
            self._done[cid] = self._done.get(cid, ZERO) + base
        self._frozen[asset] -= release
        self._available[asset] += release - spent
        self._available[fee_asset] += got
        self._read.pop(asset, None)
        self._read.pop(fee_asset, None)
        fill = Fill(cid, order.market, order.side, price, base, quote, fee, fee_asset, maker, time_ms, ref)
        if self._flat:
            self._report(book, time_ms, self._ev().order_filled, order, fill, complete)
        else:  # (`_report`'s first case, without its call: a backtest's every fill)
            (self._events or self._ev()).order_filled(order, fill, complete)

    def _cancel_expired(self, order: Order, time_ms: int, reason: str) -> None:
        self._unlock(order)
        self._report(self.books[order.market], time_ms, self._ev().order_cancelled, order, time_ms, reason)

    # ---- balances -----------------------------------------------------------------------------------------------

    @staticmethod
    def _lock_need(order: Order, rules: MarketRules) -> tuple[str, Decimal]:
        if order.side == "buy":
            if order.type == "market":  # (order.quote_amount, for a buy)
                return rules.money, order.amount
            if order.type == "stop_market":
                # Stop buys lock quote at the stop price (WhiteBIT locks at the activation price).
                return rules.money, order.amount * order.stop_price  # type: ignore[operator]
            return rules.money, order.amount * order.price  # type: ignore[operator]
        return rules.stock, order.amount

    def _unlock(self, order: Order) -> None:
        """Release an order's funds, unless another open order of its OCO group still needs them."""
        self._done.pop(order.client_id, None)
        key = self._lock_key.pop(order.client_id)
        members = self._members.get(key)  # (None: not an OCO order; its lock is its own)
        if members is not None:
            members.discard(order.client_id)
            if members:
                return
            del self._members[key]
        if key not in self._locks:
            return
        asset, amount = self._locks.pop(key)
        self._frozen[asset] -= amount
        self._available[asset] += amount
        self._read.pop(asset, None)

    def _ev(self) -> VenueEvents:
        if self._events is None:
            raise RuntimeError("SimulatedVenue is not bound to an execution engine")
        return self._events
