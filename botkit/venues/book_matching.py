"""Fills from a rebuilt order book: the simulated venue's "book" fill model (README.md, "Fill model").

The book (`L2Book`) is floats in two dicts, price -> visible amount, rebuilt from a snapshot and deltas; the best
prices are kept as the rows arrive, so an update costs a dict write and a comparison. Decimals are built only when
something fills. The rules, per market (`BookMatcher`):

1. Arrival. An order placed while the book is at event t reaches the venue with the next book event (t' > t), and is
   matched against the book as it was before that event's rows apply: the book the strategy decided on. Its fills
   carry the order's time. The best opposite price when the order was placed is kept on each of its taker fills
   (`Fill.ref_price`), so slippage = how much worse than that best price the order filled.
2. Market and marketable limit orders walk the book level by level (asks upwards for a buy, bids downwards for a
   sell; a limit stops at its price): each level gives a partial fill of at most its visible amount, cut to the
   market's amount step. What our orders take stays out of the book: when the data sets that level again, the
   amount taken is deducted from it, less whatever the level lost meanwhile (taken = min(taken, new amount)), so a
   repeated snapshot never hands out the same liquidity twice. A market order
   that empties the book is cancelled for the rest; an IOC limit is cancelled for what its price did not reach; a
   post-only order that would take is cancelled ("post_only: would take liquidity").
3. A limit order that does not cross rests, as a maker, at the back of its level's queue: the volume ahead of it is
   the visible amount at its price on arrival (0 at a new price); increases join behind it. Decreases of that
   level's amount (assumptions, tested): trades happen only at the best price, so
   - at the touch (its price was the best on its side when the event began), a decrease is traded volume leaving
     the FRONT of the queue: it first shrinks the volume ahead, and what exceeds it fills the order (several of our
     orders at one price fill in arrival order, from one budget);
   - behind the touch, a decrease is cancels, spread pro rata over the queue: the volume ahead shrinks in proportion
     (ahead *= new / old) and nothing fills.
   A depth feed carries no trades, so a cancel at the touch counts as a trade here (optimistic there).
4. When the opposite side reaches a resting order's price (best ask <= its buy price, best bid >= its sell price),
   the market traded through it: the queue ahead is gone and the order fills at its price from the opposite
   levels at or better than its price, at most their visible amounts, which it takes out of the book.
5. A stop-market order triggers when the best bid falls to a sell stop / the best ask rises to a buy stop (an empty
   side triggers nothing), and then walks the book as a market order (its slippage reference is the best price at
   the trigger).
6. A gap in the update-id chain (`resync` rows) makes the book stale: it is cleared, the updates until the next
   snapshot are skipped and counted, no order fills and no `on_book` is delivered meanwhile. The next snapshot
   rebuilds it and resting orders rejoin at the back of their level's queue.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal

from botkit.market.orders import Order
from botkit.market.rules import MarketRules, to_decimal

INF = float("inf")
BUY, SELL = 1, -1
SNAPSHOT, RESYNC = 1, 2  # event flags


class L2Book:
    """Price levels as float dicts with the best prices kept current; `version` counts the events applied."""

    __slots__ = ("_ba", "_bb", "asks", "bids", "resync", "stale", "update_id", "version", "view_depth")

    def __init__(self, view_depth: int = 20) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bb = -INF
        self._ba = INF
        self.update_id = -1
        self.resync = False  # the last event applied followed a break in the update-id chain
        self.stale = False  # a gap was seen and no snapshot has rebuilt the book since
        self.version = 0
        self.view_depth = view_depth  # levels per side a BookView shows

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bb, self._ba = -INF, INF

    def apply(self, sides: list[int], prices: list[float], amounts: list[float], a: int, b: int) -> None:
        """Rows a..b-1: set each level to its amount (0 removes it)."""
        bids, asks = self.bids, self.asks
        bb, ba = self._bb, self._ba
        lost_b = lost_a = False
        for i in range(a, b):
            p = prices[i]
            q = amounts[i]
            if sides[i] > 0:
                if q > 0.0:
                    bids[p] = q
                    if p > bb:
                        bb = p
                elif bids.pop(p, None) is not None and p == bb:
                    lost_b = True
            elif q > 0.0:
                asks[p] = q
                if p < ba:
                    ba = p
            elif asks.pop(p, None) is not None and p == ba:
                lost_a = True
        if lost_b:
            bb = max(bids) if bids else -INF
        if lost_a:
            ba = min(asks) if asks else INF
        self._bb, self._ba = bb, ba

    def apply_watching(self, sides: list[int], prices: list[float], amounts: list[float], a: int, b: int,
                       wb: set[float], wa: set[float], touched: dict[tuple[int, float], float]) -> None:
        """`apply`, also noting in `touched` the amount before the event of each level in `wb` (bids) / `wa` (asks)
        that a row sets: the levels holding our orders (the matcher's queues) cost nothing when untouched."""
        bids, asks = self.bids, self.asks
        bb, ba = self._bb, self._ba
        lost_b = lost_a = False
        for i in range(a, b):
            p = prices[i]
            q = amounts[i]
            if sides[i] > 0:
                if p in wb and (1, p) not in touched:
                    touched[(1, p)] = bids.get(p, 0.0)
                if q > 0.0:
                    bids[p] = q
                    if p > bb:
                        bb = p
                elif bids.pop(p, None) is not None and p == bb:
                    lost_b = True
            else:
                if p in wa and (-1, p) not in touched:
                    touched[(-1, p)] = asks.get(p, 0.0)
                if q > 0.0:
                    asks[p] = q
                    if p < ba:
                        ba = p
                elif asks.pop(p, None) is not None and p == ba:
                    lost_a = True
        if lost_b:
            bb = max(bids) if bids else -INF
        if lost_a:
            ba = min(asks) if asks else INF
        self._bb, self._ba = bb, ba

    def take(self, side: int, price: float, amount: float) -> None:
        """Our own fill took `amount` from a level (until the data next sets that level)."""
        levels = self.bids if side > 0 else self.asks
        left = levels.get(price, 0.0) - amount
        if left > 1e-12 * amount:
            levels[price] = left
            return
        levels.pop(price, None)
        if side > 0 and price == self._bb:
            self._bb = max(levels) if levels else -INF
        elif side < 0 and price == self._ba:
            self._ba = min(levels) if levels else INF

    def best_bid(self) -> float | None:
        return self._bb if self._bb > -INF else None

    def best_ask(self) -> float | None:
        return self._ba if self._ba < INF else None

    def best(self) -> tuple[float | None, float | None]:
        return self.best_bid(), self.best_ask()

    def mid(self) -> float | None:
        if self._bb > -INF and self._ba < INF:
            return (self._bb + self._ba) / 2
        return self.best_bid() or self.best_ask()

    def top(self, side: int, n: int) -> tuple[tuple[float, float], ...]:
        """The best `n` levels of one side, best first."""
        levels = self.bids if side > 0 else self.asks
        prices = heapq.nlargest(n, levels) if side > 0 else heapq.nsmallest(n, levels)
        return tuple((p, levels[p]) for p in prices)


@dataclass(slots=True, eq=False)
class Resting:
    """A resting limit order's place in its level's queue (floats: the queue arithmetic, not the money)."""

    order: Order
    side: int
    price: float
    left: float  # base not filled yet (the queue arithmetic)
    ahead: float  # visible volume ahead of it in the queue
    seq: int
    rest: Decimal  # base not filled yet, exact (kept here: the order's own `filled` may hear of fills later)


@dataclass(slots=True)
class Deal:
    """One fill the matcher decided; the venue books it (balances, fees, the order's state)."""

    order: Order
    price: Decimal
    base: Decimal
    maker: bool
    time_ms: int
    complete: bool
    ref: Decimal | None = None


@dataclass(slots=True)
class Pending:
    order: Order
    arrival_ms: int
    ref: Decimal | None  # the best opposite price when the order was placed


@dataclass(slots=True)
class BookStats:
    """What the replay reports about the book: events, level updates, resyncs (gaps) and what they skipped."""

    events: int = 0
    updates: int = 0
    resync_times_ms: list[int] = field(default_factory=list)
    skipped_updates: int = 0
    skipped_events: int = 0


class BookMatcher:
    """One market's book and the venue's orders on it; `event` applies a book event and returns the deals and
    cancels it causes, in the order they happened (see the module docstring for the rules)."""

    def __init__(self, market: str, rules: MarketRules) -> None:
        self.market = market
        self.rules = rules
        self.book = L2Book()
        self.stats = BookStats()
        self.arrivals: list[Pending] = []
        self.resting: list[Resting] = []
        self.stops: list[Pending] = []
        self.levels: dict[tuple[int, float], list[Resting]] = {}
        # prices whose rows the book reports to us (apply_watching): our resting orders' and levels we took from
        self._wb: set[float] = set()
        self._wa: set[float] = set()
        self.max_buy = -INF
        self.min_sell = INF
        self.active = False  # anything to match: arrivals, resting or stop orders
        self._seq = 0
        self._places = rules.stock_prec + 6  # float amounts are rounded here before they are cut to the step
        self.deals: list[Deal] = []
        self.taken: dict[tuple[int, float], tuple[float, float]] = {}  # level -> (taken by us, amount we left)
        self.cancels: list[tuple[Order, str, int]] = []
        self.now_ms = 0  # the time of the event being applied

    # ---- orders -------------------------------------------------------------------------------------------------

    def submit(self, order: Order, arrival_ms: int) -> None:
        b = self.book
        ref_f = b.best_ask() if order.side == "buy" else b.best_bid()
        self.arrivals.append(Pending(order, arrival_ms, to_decimal(ref_f) if ref_f is not None else None))
        self.active = True

    def cancel(self, order: Order) -> bool:
        for lst in (self.arrivals, self.stops):
            for p in lst:
                if p.order is order:
                    lst.remove(p)
                    self._refresh()
                    return True
        for r in self.resting:
            if r.order is order:
                self._drop(r)
                return True
        return False

    def _drop(self, r: Resting) -> None:
        self.resting.remove(r)
        key = (r.side, r.price)
        same = self.levels[key]
        same.remove(r)
        if not same:
            del self.levels[key]
        self._refresh()

    def _rewatch(self) -> None:
        keys = [*self.levels, *self.taken]
        self._wb = {p for side, p in keys if side > 0}
        self._wa = {p for side, p in keys if side < 0}

    def _refresh(self) -> None:
        self._rewatch()
        self.max_buy = max((r.price for r in self.resting if r.side > 0), default=-INF)
        self.min_sell = min((r.price for r in self.resting if r.side < 0), default=INF)
        self.active = bool(self.arrivals or self.resting or self.stops)

    # ---- events -------------------------------------------------------------------------------------------------

    def event(self, t_ms: int, flags: int, sides: list[int], prices: list[float], amounts: list[float], a: int,
              b: int) -> bool:
        """Apply one book event (rows a..b-1). Returns False while the book is stale (no `on_book` then)."""
        book = self.book
        self.now_ms = t_ms
        st = self.stats
        st.events += 1
        st.updates += b - a
        if flags:
            return self._special(t_ms, flags, sides, prices, amounts, a, b)
        if book.stale:
            st.skipped_updates += b - a
            st.skipped_events += 1
            book.version += 1
            return False
        if self.arrivals:
            self._arrive(t_ms)
        wb, wa = self._wb, self._wa
        if not wb and not wa:  # nothing of ours in the book: the plain update
            book.apply(sides, prices, amounts, a, b)
        else:
            touched: dict[tuple[int, float], float] = {}
            bb0, ba0 = book._bb, book._ba
            book.apply_watching(sides, prices, amounts, a, b, wb, wa, touched)
            if touched:
                if self.taken:
                    self._retake(touched)
                if self.levels:
                    self._queues(touched, bb0, ba0, t_ms)
            if book._ba <= self.max_buy or book._bb >= self.min_sell:
                self._through(t_ms)
        book.resync = False
        book.version += 1
        if self.stops:
            self._stops(t_ms)
        return True

    def _special(self, t_ms: int, flags: int, sides: list[int], prices: list[float], amounts: list[float], a: int,
                 b: int) -> bool:
        """A snapshot (replaces the book) or the first event after a gap (resync)."""
        book = self.book
        st = self.stats
        if flags & RESYNC:
            book.clear()
            book.stale = True
            self.taken.clear()
            self._rewatch()
            st.resync_times_ms.append(t_ms)
        if book.stale and not flags & SNAPSHOT:
            st.skipped_updates += b - a
            st.skipped_events += 1
            book.version += 1
            return False
        rejoin = book.stale
        if self.arrivals:
            self._arrive(t_ms)
        before = {key: (book.bids if key[0] > 0 else book.asks).get(key[1], 0.0) for key in self.levels}
        bb0, ba0 = book._bb, book._ba
        if flags & SNAPSHOT:
            book.clear()
            book.stale = False
        book.apply(sides, prices, amounts, a, b)
        if self.taken:
            self._retake(None)
        book.resync = bool(flags & RESYNC)
        book.version += 1
        if rejoin:
            for r in self.resting:
                r.ahead = (book.bids if r.side > 0 else book.asks).get(r.price, 0.0)
        elif before:
            self._queues(before, bb0, ba0, t_ms)
        if book._ba <= self.max_buy or book._bb >= self.min_sell:
            self._through(t_ms)
        if self.stops:
            self._stops(t_ms)
        return True

    def _queues(self, old: dict[tuple[int, float], float], bb0: float, ba0: float, t_ms: int) -> None:
        """Levels that changed in this event (with their amounts before it): move our queues (rule 3)."""
        book = self.book
        for key, was in old.items():
            rs = self.levels.get(key)
            if not rs:
                continue
            side, p = key
            now = (book.bids if side > 0 else book.asks).get(p, 0.0)
            if now >= was:
                continue
            if (p >= bb0) if side > 0 else (p <= ba0):
                self._queue(rs, was - now, t_ms)  # at the touch: trades, front first
            else:
                for r in rs:  # behind the touch: cancels, pro rata
                    r.ahead *= now / was

    def _arrive(self, t_ms: int) -> None:
        due = [p for p in self.arrivals if p.arrival_ms <= t_ms]
        if not due:
            return
        self.arrivals = [p for p in self.arrivals if p.arrival_ms > t_ms]
        for p in due:
            o = p.order
            if o.type == "stop_market":
                self.stops.append(p)
                continue
            if o.type == "market":
                self._take(o, None, p.arrival_ms, p.ref)
                continue
            side = BUY if o.side == "buy" else SELL
            price = float(o.price)  # type: ignore[arg-type]
            book = self.book
            crosses = book._ba <= price if side > 0 else book._bb >= price
            if crosses and o.post_only:
                self.cancels.append((o, "post_only: would take liquidity", p.arrival_ms))
                continue
            left = o.amount
            if crosses:
                left = self._take(o, price, p.arrival_ms, p.ref)
            if left <= 0:
                continue
            if o.ioc:
                self.cancels.append((o, "ioc: not filled on arrival", p.arrival_ms))
                continue
            self._seq += 1
            ahead = (book.bids if side > 0 else book.asks).get(price, 0.0)
            r = Resting(o, side, price, float(left), ahead, self._seq, left)
            self.resting.append(r)
            self.levels.setdefault((side, price), []).append(r)
        self._refresh()

    def _take(self, o: Order, limit: float | None, t_ms: int, ref: Decimal | None) -> Decimal:
        """Walk the opposite side as a taker; returns the base left (for a market buy: 0 or the unfilled part)."""
        rules = self.rules
        book = self.book
        buy = o.side == "buy"
        levels = book.asks if buy else book.bids
        if limit is None:
            prices = sorted(levels) if buy else sorted(levels, reverse=True)
        else:
            prices = sorted(p for p in levels if p <= limit) if buy else sorted(
                (p for p in levels if p >= limit), reverse=True)
        quote_left = o.amount if o.quote_amount else None
        base_left = Decimal(0) if o.quote_amount else o.amount  # (a new order: nothing filled yet)
        out: list[Deal] = []
        done = False
        for p in prices:
            price = to_decimal(p)
            avail = rules.truncate_amount(to_decimal(round(levels[p], self._places)))
            if quote_left is not None:
                can = rules.truncate_amount(quote_left / price)
                if can <= 0:
                    done = True  # what is left cannot buy one amount step
                    break
                take = min(avail, can)
            else:
                take = min(avail, base_left)
            if take <= 0:
                continue
            out.append(Deal(o, price, take, False, t_ms, False, ref))
            self._took(-1 if buy else 1, p, float(take))
            if quote_left is not None:
                quote_left -= take * price
            else:
                base_left -= take
                if base_left <= 0:
                    done = True
                    break
        if quote_left is not None and not done and quote_left > 0 and out:
            # the walk ran out of levels: whole if the rest could not buy a step at the last price
            done = rules.truncate_amount(quote_left / out[-1].price) <= 0
        if out:
            out[-1].complete = done
        self.deals.extend(out)
        if limit is None and not (done and out):
            why = ("market: the book had no more liquidity" if out else
                   "market: the amount buys less than one amount step" if done else "market: no liquidity on the book")
            self.cancels.append((o, why, t_ms))
        return Decimal(0) if quote_left is not None else base_left

    def _took(self, side: int, price: float, amount: float) -> None:
        """Our fill took `amount` from a level: out of the book, and remembered for when the data sets it again."""
        self.book.take(side, price, amount)
        key = (side, price)
        before = self.taken.get(key)
        left = (self.book.bids if side > 0 else self.book.asks).get(price, 0.0)
        self.taken[key] = ((before[0] if before else 0.0) + amount, left)
        (self._wb if side > 0 else self._wa).add(price)

    def _retake(self, touched: dict[tuple[int, float], float] | None) -> None:
        """After the data's rows: deduct what we took from the levels the data set again (rule 2); `touched`: the
        levels this event's rows set (None: a snapshot, which sets them all)."""
        book = self.book
        taken = self.taken
        gone = False
        for key in list(taken if touched is None else touched):
            entry = taken.get(key)
            if entry is None:
                continue
            t, left = entry
            side, price = key
            lv = book.bids if side > 0 else book.asks
            cur = lv.get(price, 0.0)
            if touched is None and cur == left:
                continue  # the snapshot left it as we did
            if cur <= 0.0:
                del taken[key]  # the level is gone: nothing of ours is left in it
                gone = True
                continue
            t = min(t, cur)
            book.take(side, price, t)
            taken[key] = (t, lv.get(price, 0.0))
        if gone:
            self._rewatch()

    def _queue(self, rs: list[Resting], d: float, t_ms: int) -> None:
        """A level holding our orders lost `d`: the volume ahead goes first, the excess fills us, front first."""
        used = 0.0  # of the decrease, filled into our orders at this price
        for r in list(rs):
            eaten = d if d < r.ahead else r.ahead
            r.ahead -= eaten
            fill = d - eaten - used
            if fill <= 0:
                continue
            if fill > r.left:
                fill = r.left
            used += self._maker(r, fill, t_ms)

    def _through(self, t_ms: int) -> None:
        """The opposite side reached resting orders' prices: fill them, best price first, from those levels."""
        book = self.book
        hit = [r for r in self.resting if (r.side > 0 and book._ba <= r.price) or (r.side < 0 and book._bb >= r.price)]
        hit.sort(key=lambda r: (-r.price * r.side, r.seq))
        for r in hit:
            levels = book.asks if r.side > 0 else book.bids
            r.ahead = 0.0
            while r.left > 0:
                best = book._ba if r.side > 0 else book._bb
                if (r.side > 0 and best > r.price) or (r.side < 0 and best < r.price):
                    break
                avail = levels[best]
                got = self._maker(r, min(avail, r.left), t_ms)
                if got <= 0:
                    break
                self._took(-r.side, best, got)

    def _maker(self, r: Resting, amount: float, t_ms: int) -> float:
        """A maker fill of up to `amount` (cut to the step) at the order's own price; returns the amount filled."""
        base = min(self.rules.truncate_amount(to_decimal(round(amount, self._places))), r.rest)
        if base <= 0:
            return 0.0
        r.rest -= base
        r.left = float(r.rest)
        complete = r.rest <= 0
        self.deals.append(Deal(r.order, r.order.price, base, True, t_ms, complete))  # type: ignore[arg-type]
        if complete:
            self._drop(r)
        return float(base)

    def _stops(self, t_ms: int) -> None:
        book = self.book
        fired = []
        for p in self.stops:
            s = float(p.order.stop_price)  # type: ignore[arg-type]
            if (p.order.side == "sell" and -INF < book._bb <= s) or (p.order.side == "buy" and INF > book._ba >= s):
                fired.append(p)
        for p in fired:
            self.stops.remove(p)
            ref_f = book.best_ask() if p.order.side == "buy" else book.best_bid()
            self._take(p.order, None, t_ms, to_decimal(ref_f) if ref_f is not None else None)
        if fired:
            self._refresh()

    def open_orders(self) -> list[Order]:
        return [p.order for p in self.arrivals] + [r.order for r in self.resting] + [p.order for p in self.stops]

    def take_outcome(self) -> tuple[list[Deal], list[tuple[Order, str, int]]]:
        deals, cancels = self.deals, self.cancels
        self.deals, self.cancels = [], []
        return deals, cancels
