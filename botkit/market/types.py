"""Value types every layer shares: closed candles, public trades, book snapshots, balances.

Market data is for number crunching, so its prices are floats; money that is compared or sent (order prices,
amounts, balances) is Decimal and lives in the execution layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

Side = Literal["buy", "sell"]


class Candle:
    """One closed candle. `time_ms` is the open time; callbacks only ever receive closed candles."""

    __slots__ = ("close", "close_time_ms", "high", "low", "market", "open", "time_ms", "volume")

    def __init__(
        self,
        market: str,
        time_ms: int,
        close_time_ms: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> None:
        self.market = market
        self.time_ms = time_ms
        self.close_time_ms = close_time_ms
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    def __repr__(self) -> str:
        return (
            f"Candle({self.market} t={self.time_ms} o={self.open} h={self.high} l={self.low} c={self.close} "
            f"v={self.volume})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candle):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in Candle.__slots__)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade. `side` is the taker's side."""

    market: str
    time_ms: int
    price: float
    amount: float
    side: Side
    trade_id: int | None = None


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


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of an account: what is free to use and what open orders lock. Money: Decimal."""

    available: Decimal
    frozen: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.frozen
