"""Trades of a backtest, two ways: flat-to-flat round trips and FIFO lots; plus each fill's order type and reason.

Round trips answer "how did each position cycle go": a trip starts when a market's position leaves its starting
level and ends when it returns there (within one amount step). A grid bot that never goes flat has very few.
Lots answer "how did each entry do": every entry fill opens a lot, exits close the oldest lots first (FIFO), so a
grid bot's 900 fills give some 450 lots and its win rate rests on them.

Both use one accounting, exact in Decimal: a buy adds its base net of the base fee and costs its quote; a sell
removes its base and brings its quote net of the quote fee. Prices are volume-weighted averages of the fills'
prices. Dust left below the amount step when a position closes, and a position still open at the end of the data,
are valued as if closed at that moment's price (the closing fill's, or the last close): so for every trip and lot

    pnl == (exit_price - entry_price) * amount - fees        (long; (entry - exit) for a short)

where `amount` is the base closed and `fees` is every fee in quote, a base fee valued at the average price of the
fills that paid it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from botkit.market.orders import STOP_TYPES, Fill, Order
from botkit.market.rules import MarketRules

END_OF_DATA = "end of data"
ZERO = Decimal(0)


class RoundTrip(NamedTuple):
    """A position opened and closed again (relative to the starting holdings), with its net P&L in quote.

    A named tuple, not a frozen dataclass (as `Candle`): immutable all the same, and built in one `tuple.__new__`,
    where a frozen dataclass sets each of its 13 fields through `object.__setattr__` (4,000 instructions instead of
    20,000 per trip)."""

    market: str
    side: str  # "long" or "short"
    entry_ms: int
    exit_ms: int | None
    entry_price: Decimal  # volume-weighted average of the entry fills
    exit_price: Decimal | None  # volume-weighted average of the exit fills (and of the dust / the open rest)
    amount: Decimal  # the largest position held during the trip
    pnl: float
    fees: float
    closed: bool
    closed_amount: Decimal = ZERO  # base closed: (exit - entry) * closed_amount - fees == pnl
    fills: int = 0
    exit_reason: str = ""

    @property
    def duration_ms(self) -> int | None:
        return None if self.exit_ms is None else self.exit_ms - self.entry_ms


class Lot(NamedTuple):
    """One entry fill and the exits that closed it, oldest first; an open rest is marked at the last close. (A named
    tuple, as `RoundTrip`.)"""

    market: str
    side: str  # "long" or "short"
    entry_ms: int
    exit_ms: int  # the last exit fill, or the last candle's close for an open lot
    entry_price: Decimal
    exit_price: Decimal
    amount: Decimal  # base of the lot (net of a base fee on its entry)
    pnl: float
    fees: float
    closed: bool
    entry_id: str
    exit_reason: str

    @property
    def duration_ms(self) -> int:
        return self.exit_ms - self.entry_ms


def _deltas(f: Fill) -> tuple[Decimal, Decimal, Decimal]:
    """(base change, quote change, fee in quote at this fill's price) of one fill."""
    if f.side == "buy":
        return f.amount - f.fee, -f.quote, f.fee * f.price
    return -f.amount, f.quote - f.fee, f.fee


def _dust(rules: MarketRules) -> Decimal:
    return max(rules.min_amount, rules.amount_step)


def _by_market(fills: Iterable[Fill]) -> dict[str, list[Fill]]:
    out: dict[str, list[Fill]] = {}
    for f in fills:
        out.setdefault(f.market, []).append(f)
    return out


def _price(value: Decimal, amount: Decimal) -> Decimal:
    return value / amount if amount else ZERO


@dataclass(slots=True)
class _Trip:
    entry: Fill
    long: bool
    pos: Decimal = ZERO  # signed base relative to the start of the trip
    size: Decimal = ZERO
    in_base: Decimal = ZERO  # gross base of entry-direction fills, and their quote
    in_quote: Decimal = ZERO
    out_base: Decimal = ZERO
    out_quote: Decimal = ZERO
    base_fee: Decimal = ZERO  # base fees (buys), valued at the buys' average price at the end
    quote_fee: Decimal = ZERO
    n: int = 0

    def add(self, f: Fill) -> None:
        buy = f.side == "buy"
        pos = self.pos = self.pos + (f.amount - f.fee if buy else -f.amount)  # _deltas' base change, alone
        size = abs(pos)
        if size > self.size:  # = max(self.size, size), which also keeps the first of two equals
            self.size = size
        self.n += 1
        if buy == self.long:  # entering
            self.in_base += f.amount
            self.in_quote += f.quote
        else:
            self.out_base += f.amount
            self.out_quote += f.quote
        if buy:
            self.base_fee += f.fee
        else:
            self.quote_fee += f.fee

    def close(self, market: str, exit_ms: int | None, price: Decimal, closed: bool, reason: str) -> RoundTrip:
        # The rest of the position (dust, or everything for an open trip) is valued as closed at `price`.
        rest = self.pos
        in_b, in_q, out_b, out_q = self.in_base, self.in_quote, self.out_base, self.out_quote
        if self.long:
            out_b, out_q = out_b + rest, out_q + rest * price  # sell the rest
            entry, exit_ = _price(in_q, in_b), _price(out_q, out_b)
            fees = self.quote_fee + self.base_fee * entry
            pnl = (exit_ - entry) * out_b - fees
        else:
            in_b, in_q = in_b + rest, in_q + rest * price  # rest > 0: sold (an entry fill); < 0: bought back
            entry, exit_ = _price(in_q, in_b), _price(out_q, out_b)
            fees = self.quote_fee + self.base_fee * exit_
            pnl = (entry - exit_) * in_b - fees
        # (positionally: market, side, entry_ms, exit_ms, entry_price, exit_price, amount, pnl, fees, closed,
        # closed_amount, fills, exit_reason)
        return RoundTrip(market, "long" if self.long else "short", self.entry.time_ms, exit_ms, entry, exit_,
                         self.size, float(pnl), float(fees), closed, out_b if self.long else in_b, self.n, reason)


def round_trips_of(
    fills: Iterable[Fill],
    rules: Mapping[str, MarketRules],
    last_close: Mapping[str, float],
    reasons: Mapping[str, str] | None = None,
) -> list[RoundTrip]:
    """Flat-to-flat cycles per market, sorted by entry time; an unfinished one is marked at the market's last
    close (`closed=False`). `reasons` maps a client order id to why it filled (see `fill_reasons`)."""
    trips: list[RoundTrip] = []
    for market, fs in _by_market(fills).items():
        dust = _dust(rules[market])
        trip: _Trip | None = None
        for f in fs:
            if trip is None:
                trip = _Trip(f, f.side == "buy")  # (entry, long)
            trip.add(f)
            if abs(trip.pos) < dust:
                reason = (reasons or {}).get(f.client_id, "")
                trips.append(trip.close(market, f.time_ms, f.price, True, reason))
                trip = None
        if trip is not None:
            last = Decimal(repr(float(last_close[market])))
            trips.append(trip.close(market, None, last, False, END_OF_DATA))
    trips.sort(key=lambda t: (t.entry_ms, t.market))
    return trips


@dataclass(slots=True)
class _Open:
    """An open lot: what is left of it, its entry, and what its closed part has brought so far."""

    fill: Fill
    long: bool
    amount: Decimal  # base of the whole lot
    left: Decimal
    value: Decimal  # quote per base of the entry: cost (long) or proceeds (short), fees included
    fee_per_base: Decimal
    out_base: Decimal = ZERO
    out_value: Decimal = ZERO  # gross exit value of the closed part (price * base)
    out_fees: Decimal = ZERO
    out_net: Decimal = ZERO  # net quote of the closed part: proceeds (long) or cost (short)
    exit_ms: int = 0
    reason: str = ""

    def take(self, base: Decimal, f: Fill, reason: str, deltas: tuple[Decimal, Decimal, Decimal]) -> None:
        base_d, quote_d, fee_q = deltas  # _deltas(f)
        share = base / abs(base_d)
        self.left -= base
        self.out_base += base
        self.out_value += f.price * base
        self.out_fees += fee_q * share
        self.out_net += abs(quote_d) * share
        self.exit_ms = f.time_ms
        self.reason = reason

    def lot(self, market: str, closed: bool) -> Lot:
        entry = self.fill.price
        exit_ = _price(self.out_value, self.out_base)
        entry_fees = self.fee_per_base * self.out_base
        fees = entry_fees + self.out_fees
        cost = self.value * self.out_base  # long: what the closed part cost; short: what it brought
        pnl = self.out_net - cost if self.long else cost - self.out_net
        # (positionally: market, side, entry_ms, exit_ms, entry_price, exit_price, amount, pnl, fees, closed,
        # entry_id, exit_reason)
        return Lot(market, "long" if self.long else "short", self.fill.time_ms, self.exit_ms, entry, exit_,
                   self.out_base, float(pnl), float(fees), closed, self.fill.client_id, self.reason)


def lots(
    fills: Iterable[Fill],
    rules: Mapping[str, MarketRules],
    last_close: Mapping[str, float],
    end_ms: Mapping[str, int],
    reasons: Mapping[str, str] | None = None,
) -> list[Lot]:
    """FIFO lots per market, sorted by entry time. A lot closes when what is left of it is below the amount step
    (that dust is valued at the closing fill's price); an open lot's rest is marked at the market's last close at
    `end_ms` (`closed=False`, reason "end of data")."""
    reasons = reasons or {}
    out: list[Lot] = []
    for market, fs in _by_market(fills).items():
        dust = _dust(rules[market])
        book: deque[_Open] = deque()
        slack = ZERO  # dust already valued as closed but still held (+) or owed (-): absorbed by later fills
        for f in fs:
            deltas = base_d, quote_d, fee_q = _deltas(f)
            long_fill = base_d > 0
            rest = abs(base_d)
            # Dust of earlier lots in the direction this fill reduces is absorbed first.
            if slack and (slack > 0) != long_fill:
                used = min(rest, abs(slack))
                rest -= used
                slack += used if slack < 0 else -used
            while rest > 0 and book and book[0].long != long_fill:
                lot = book[0]
                part = min(rest, lot.left)
                lot.take(part, f, reasons.get(f.client_id, ""), deltas)
                rest -= part
                if lot.left < dust:
                    if lot.left:  # value the dust as closed with this fill
                        slack += lot.left if lot.long else -lot.left
                        lot.take(lot.left, f, lot.reason, deltas)
                    out.append(lot.lot(market, True))
                    book.popleft()
            if rest >= dust or (rest > 0 and rest == abs(base_d)):  # a whole fill always makes a lot
                per = abs(quote_d) / abs(base_d)
                fee_per = fee_q / abs(base_d)
                book.append(_Open(f, long_fill, rest, rest, per, fee_per))
            elif rest > 0:
                slack += rest if long_fill else -rest
        if book:
            last = Decimal(repr(float(last_close[market])))
            t_end = end_ms[market]
            for lot in book:
                lot.out_base += lot.left
                lot.out_value += last * lot.left
                lot.out_net += last * lot.left
                lot.left = ZERO
                lot.exit_ms = t_end
                lot.reason = END_OF_DATA
                out.append(lot.lot(market, False))
    out.sort(key=lambda x: (x.entry_ms, x.market))
    return out


def fill_reasons(orders: Iterable[Order]) -> dict[str, str]:
    """Why each order filled, by client id: its stop ("stop"), a limit sharing an OCO group with a stop
    ("take-profit"), anything else ("signal": the strategy asked for it)."""
    orders = list(orders)
    stop_groups = {o.oco_group for o in orders if o.oco_group is not None and o.type in STOP_TYPES}
    out: dict[str, str] = {}
    for o in orders:
        if o.type in STOP_TYPES:
            out[o.client_id] = "stop"
        elif o.type == "limit" and o.oco_group is not None and o.oco_group in stop_groups:
            out[o.client_id] = "take-profit"
        else:
            out[o.client_id] = "signal"
    return out


def order_outcomes(orders: Iterable[Order]) -> dict[str, int]:
    """Orders by how they ended; an OCO sibling cancelled because another order of its group filled is
    "oco_cancelled", apart from cancels the strategy asked for."""
    orders = list(orders)
    filled_groups = {o.oco_group for o in orders if o.oco_group is not None and o.filled > 0}
    counts: dict[str, int] = {}
    for o in orders:
        key = o.status._value_  # (the plain attribute: `.value` is an enum property, slow per order)
        if key == "cancelled" and o.oco_group in filled_groups and o.filled == 0:
            key = "oco_cancelled"
        elif o.is_open:
            key = "open_at_end"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
