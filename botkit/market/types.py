"""Value types every layer shares: closed candles, public trades, book snapshots, balances.

Market data is for number crunching, so its prices are floats; money that is compared or sent (order prices,
amounts, balances) is Decimal and lives in the execution layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol

Side = Literal["buy", "sell"]


class Candle(NamedTuple):
    """One closed candle. `time_ms` is the open time; callbacks only ever receive closed candles.

    A named tuple, not a class with slots: the backtest builds one per candle, and a tuple is built in C from the
    data columns (`tuple.__new__` over `zip`), at about half the cost of a Python `__init__`. Immutable; equal to
    another candle with the same fields."""

    market: str
    time_ms: int
    close_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __repr__(self) -> str:
        return (
            f"Candle({self.market} t={self.time_ms} o={self.open} h={self.high} l={self.low} c={self.close} "
            f"v={self.volume})"
        )


class Trade:
    """A public trade. `side` is the taker's side (None when the source does not say, e.g. Kraken's files).

    A plain class with slots, not a dataclass: a trades backtest builds one per trade for `on_trade`, and a frozen
    dataclass costs twice as much to build."""

    __slots__ = ("amount", "market", "price", "side", "time_ms", "trade_id")

    def __init__(self, market: str, time_ms: int, price: float, amount: float, side: Side | None,
                 trade_id: int | None = None) -> None:
        self.market = market
        self.time_ms = time_ms
        self.price = price
        self.amount = amount
        self.side = side
        self.trade_id = trade_id

    def _key(self) -> tuple[object, ...]:
        return (self.market, self.time_ms, self.price, self.amount, self.side, self.trade_id)

    def __repr__(self) -> str:
        return (f"Trade(market={self.market!r}, time_ms={self.time_ms}, price={self.price}, amount={self.amount}, "
                f"side={self.side!r}, trade_id={self.trade_id})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trade):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


SIDE_NAMES: tuple[Side | None, Side | None, Side | None] = (None, "buy", "sell")  # by side code: 0, +1, -1


class TradeBatch:
    """Consecutive public trades of one market as numpy columns (views, valid during the call): what
    `Strategy.on_trades` receives in a backtest. side: +1 taker buy, -1 taker sell, 0 unknown."""

    __slots__ = ("amount", "market", "price", "side", "time_ms")

    def __init__(self, market: str, time_ms: Any, price: Any, amount: Any, side: Any) -> None:
        self.market = market
        self.time_ms = time_ms
        self.price = price
        self.amount = amount
        self.side = side

    def __len__(self) -> int:
        return len(self.time_ms)

    def __iter__(self) -> Iterator[Trade]:
        m = self.market
        for t, p, a, s in zip(self.time_ms.tolist(), self.price.tolist(), self.amount.tolist(),
                              self.side.tolist(), strict=True):
            yield Trade(m, t, p, a, SIDE_NAMES[s])

    def __repr__(self) -> str:
        return f"TradeBatch({self.market}, {len(self)} trades)"


class BookSnapshot:
    """Top of an order book: (price, amount) levels, best first."""

    __slots__ = ("_asks", "_bids", "market", "time_ms")

    def __init__(
        self,
        market: str,
        time_ms: int,
        bids: tuple[tuple[float, float], ...],
        asks: tuple[tuple[float, float], ...],
    ) -> None:
        self.market = market
        self.time_ms = time_ms
        self._bids: tuple[tuple[float, float], ...] | None = bids
        self._asks: tuple[tuple[float, float], ...] | None = asks

    @property
    def bids(self) -> tuple[tuple[float, float], ...]:
        return self._bids or ()

    @property
    def asks(self) -> tuple[tuple[float, float], ...]:
        return self._asks or ()

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BookSnapshot):
            return NotImplemented
        return (self.market, self.time_ms, self.bids, self.asks) == (other.market, other.time_ms, other.bids,
                                                                     other.asks)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BookSnapshot({self.market} t={self.time_ms} bids={self.bids[:3]} asks={self.asks[:3]})"


class BookLevels(Protocol):
    """A live book a `BookView` reads from (the backtest's rebuilt book)."""

    version: int
    view_depth: int

    def top(self, side: int, n: int) -> tuple[tuple[float, float], ...]: ...


class BookView(BookSnapshot):
    """A BookSnapshot whose levels are read from the rebuilt book on first use (a replay delivers one per book event
    and most are never read): `view_depth` levels per side; `best_bid`/`best_ask` are plain values. Read it inside
    the callback that received it: what was read stays (the tuples are kept); levels first read after the book moved
    on raise BookMoved."""

    __slots__ = ("_src", "_version", "best_ask", "best_bid")

    def __init__(self, market: str, time_ms: int, src: BookLevels, best_bid: float | None,
                 best_ask: float | None) -> None:  # (_bids/_asks: unset until read)
        self.market = market
        self.time_ms = time_ms
        self._src = src
        self._version = src.version
        self.best_bid = best_bid  # type: ignore[misc]  # a value here, a property of the base
        self.best_ask = best_ask  # type: ignore[misc]

    def _levels(self, side: int) -> tuple[tuple[float, float], ...]:
        src = self._src
        if src.version != self._version:
            raise BookMoved(f"the {self.market} book of market time {self.time_ms} was read after the book moved on: "
                            "read it in the on_book call that received it (or keep book.bids / book.asks from there)")
        return src.top(side, src.view_depth)

    @property
    def bids(self) -> tuple[tuple[float, float], ...]:
        try:
            return self._bids  # type: ignore[return-value]  # set once read
        except AttributeError:
            self._bids = b = self._levels(1)
            return b

    @property
    def asks(self) -> tuple[tuple[float, float], ...]:
        try:
            return self._asks  # type: ignore[return-value]
        except AttributeError:
            self._asks = a = self._levels(-1)
            return a


class BookMoved(RuntimeError):
    """A lazily built BookView was read after its callback returned and the book changed."""


class Balance(NamedTuple):
    """One asset of an account: what is free to use and what open orders lock. Money: Decimal.

    A named tuple, not a frozen dataclass: a backtest builds two per order (its funds move at every order and fill),
    and a tuple is built in one `tuple.__new__` where a frozen dataclass sets each field through `object.__setattr__`.
    """

    available: Decimal
    frozen: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.frozen
