"""Value types every layer shares: closed candles, public trades, book snapshots, balances.

Market data is for number crunching, so its prices are floats; money that is compared or sent (order prices,
amounts, balances) is Decimal and lives in the execution layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

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


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Top of an order book: (price, amount) levels, best first."""

    market: str
    time_ms: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of an account: what is free to use and what open orders lock. Money: Decimal."""

    available: Decimal
    frozen: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.frozen
