"""Background liquidity: prints trades from a seeded synthetic walk or a recorded file, and quotes a book around them.

The house book is rebuilt around each new print, and user orders that a print crosses fill at their own prices
first, so the book a client sees is always consistent with the trades the sandbox prints.

A replay runs at `speed` times real time (`pace = "time"`), or in lock-step (`pace = "step"`): it prints only when
told (`step`), each print stamped with the data's own time moved whole days ahead (the exchange's market time
follows it, so trades, orders and candles land in the replayed candles; being ahead of the wall clock, no client
timer closes a candle before the replay does). A candles file gives four prints per candle: the open, then the
extremes, then the close; a driver that steps one print (the open), lets a bot act, then steps three, gives the bot
the backtest's order of events: orders placed on a closed candle meet the next candle's open first.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Protocol

from botkit.sandbox.book import Side
from botkit.sandbox.config import LiquidityConfig, MarketConfig
from botkit.sandbox.engine import Exchange


@dataclass(frozen=True, slots=True)
class Print:
    offset: float  # seconds from the start of the source
    price: Decimal
    amount: Decimal
    side: Side


class PrintSource(Protocol):
    def due(self, elapsed: float) -> list[Print]:
        """Prints whose offset is now due, `elapsed` seconds after the source started."""
        ...


class SyntheticSource:
    """A seeded geometric random walk, one print per `tick_interval`."""

    def __init__(self, cfg: LiquidityConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.price = float(cfg.start_price)
        self.steps = 0

    def step(self) -> Print:
        self.price *= math.exp(self.cfg.volatility * self.rng.gauss(0.0, 1.0))
        side: Side = "buy" if self.rng.random() < 0.5 else "sell"
        amount = self.cfg.trade_amount * Decimal(repr(round(self.rng.uniform(0.2, 2.0), 3)))
        self.steps += 1
        return Print(self.steps * self.cfg.tick_interval, Decimal(repr(self.price)), amount, side)

    def due(self, elapsed: float) -> list[Print]:
        n = int(elapsed / self.cfg.tick_interval) - self.steps
        if n > 50:  # after a stall, catch up without flooding the book
            self.steps += n - 50
            n = 50
        return [self.step() for _ in range(max(0, n))]


def _time_s(row: dict[str, str]) -> float:
    if "time_ms" in row:
        return float(row["time_ms"]) / 1000.0
    if "time_s" in row:
        return float(row["time_s"])
    if "timestamp" in row:
        return datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC).timestamp()
    raise ValueError("no time column (time_ms, time_s or timestamp)")


def load_prints(kind: str, path: Path, trade_amount: Decimal) -> list[Print]:
    """Prints from a candles CSV (open, extreme, extreme, close per candle) or a trades CSV, offsets from row 0."""
    out: list[Print] = []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} has no rows")
    t0 = _time_s(rows[0])
    if kind == "candles":
        for i, row in enumerate(rows):
            t = _time_s(row) - t0
            span = (_time_s(rows[i + 1]) - t0 - t) if i + 1 < len(rows) else 60.0
            o, h, lo, c = (Decimal(row[k]) for k in ("open", "high", "low", "close"))
            path_prices = (o, lo, h, c) if c >= o else (o, h, lo, c)
            for j, p in enumerate(path_prices):
                side: Side = "buy" if j == 0 or p >= path_prices[j - 1] else "sell"
                out.append(Print(t + span * j / 4, p, trade_amount, side))
    else:
        prev = Decimal(rows[0]["price"])
        for row in rows:
            p = Decimal(row["price"])
            amount = Decimal(row.get("amount") or row.get("volume") or str(trade_amount))
            raw_side = row.get("side", "")
            side = "sell" if raw_side == "sell" else "buy" if raw_side == "buy" else ("buy" if p >= prev else "sell")
            out.append(Print(_time_s(row) - t0, p, amount, side))
            prev = p
    return out


class ReplaySource:
    """Recorded prints replayed at `speed` times real time, looping when the file ends (if asked)."""

    def __init__(self, cfg: LiquidityConfig) -> None:
        assert cfg.file is not None
        self.speed = cfg.speed
        self.loop = cfg.loop
        self.prints = load_prints(cfg.kind, cfg.file, cfg.trade_amount)
        with cfg.file.open(newline="", encoding="utf-8") as fh:
            self.start_s = _time_s(next(csv.DictReader(fh)))  # the data's time of print offset 0
        self.length = self.prints[-1].offset + 1.0
        self.index = 0
        self.base = 0.0  # data offset at which the current pass started

    def due(self, elapsed: float) -> list[Print]:
        data_now = elapsed * self.speed
        out: list[Print] = []
        while True:
            if self.index >= len(self.prints):
                if not self.loop:
                    return out
                self.index = 0
                self.base += self.length
            p = self.prints[self.index]
            if self.base + p.offset > data_now or len(out) >= 500:
                return out
            out.append(p)
            self.index += 1


DAY = 86400.0


class _Silent:
    """The time-driven source of a lock-step replay: nothing is ever due by time."""

    def due(self, elapsed: float) -> list[Print]:
        return []


class Liquidity:
    """Drives one market: feeds due prints to the exchange and requotes the house book around the last one."""

    def __init__(self, exchange: Exchange, market: MarketConfig, started: float) -> None:
        self.exchange = exchange
        self.market = market.name
        self.cfg = market.liquidity
        self.rules = market.rules()
        self.rng = random.Random(self.cfg.seed)
        self.started = started
        prec = self.rules.stock_prec
        lowest = max(self.rules.min_amount, self.rules.amount_step)
        lo = int(max(self.cfg.level_amount / 2, lowest).scaleb(prec).to_integral_value(rounding=ROUND_DOWN))
        hi = max(lo, int((self.cfg.level_amount * Decimal("1.5")).scaleb(prec).to_integral_value(rounding=ROUND_DOWN)))
        self._qty_range = (lo, hi, prec)
        self.source: PrintSource
        self.stepped: ReplaySource | None = None
        self.shift = 0.0  # stepped replays: data time + shift = market time
        if self.cfg.kind == "synthetic":
            self.source = SyntheticSource(self.cfg, self.rng)
            self._warm_up(started)
        elif self.cfg.pace == "step":
            self.stepped = ReplaySource(self.cfg)
            self.source = _Silent()
            # Whole days ahead of the wall clock (candles of every interval up to a day keep their boundaries).
            self.shift = math.ceil((started + DAY - self.stepped.start_s) / DAY) * DAY
        else:
            self.source = ReplaySource(self.cfg)
            first = self.source.due(0.0)
            if first:
                self.exchange.print_trade(self.market, first[-1].price, first[-1].amount, first[-1].side, at=started)
        self._requote()

    def _warm_up(self, now: float) -> None:
        """Past prints (one a minute) so that klines, tickers and trades have data from the first request."""
        walk = SyntheticSource(self.cfg.model_copy(update={"tick_interval": 60.0}), random.Random(self.cfg.seed + 1))
        minutes = self.cfg.history_minutes
        prints = [walk.step() for _ in range(minutes)]
        # Run the walk backwards in time so that it ends at the configured start price.
        scale = self.cfg.start_price / prints[-1].price if prints else Decimal(1)
        for i, p in enumerate(prints):
            t = now - (minutes - i) * 60.0
            self.exchange.print_trade(self.market, p.price * scale, p.amount, p.side, at=t)
        if not prints:
            self.exchange.print_trade(self.market, self.cfg.start_price, self.cfg.trade_amount, "buy", at=now)

    def step(self, prints: int) -> int:
        """A lock-step replay: the next `prints` prints, at their own (shifted) times. Returns how many were left to
        print (fewer than asked at the end of the file)."""
        src = self.stepped
        if src is None:
            raise ValueError(f"market {self.market} does not replay in lock-step; set its liquidity pace = \"step\"")
        n = 0
        while n < prints and src.index < len(src.prints):
            p = src.prints[src.index]
            src.index += 1
            n += 1
            self.exchange.replay_time = src.start_s + p.offset + self.shift
            self.exchange.print_trade(self.market, p.price, p.amount, p.side)
            if n == prints or src.index == len(src.prints):
                self._requote()
        return n

    @property
    def replay_left(self) -> int:
        """Prints a lock-step replay has not printed yet."""
        return len(self.stepped.prints) - self.stepped.index if self.stepped is not None else 0

    def tick(self, now: float) -> bool:
        prints = self.source.due(now - self.started)
        for p in prints:
            self.exchange.print_trade(self.market, p.price, p.amount, p.side)
        if prints:
            self._requote()
        return bool(prints)

    def _requote(self) -> None:
        last = self.exchange.markets[self.market].last_price
        if last <= 0:
            return
        step = self.rules.price_step
        gap = max(last * self.cfg.level_step, step)
        bids: list[tuple[Decimal, Decimal]] = []
        asks: list[tuple[Decimal, Decimal]] = []
        lo, hi, prec = self._qty_range
        first = 0 if self.cfg.zero_spread else 1  # zero spread: bid = ask = the last print
        for i in range(first, self.cfg.levels + first):
            bid = (last - gap * i).quantize(step, rounding=ROUND_FLOOR)
            ask = (last + gap * i).quantize(step, rounding=ROUND_CEILING)
            for levels, price in ((bids, bid), (asks, ask)):
                qty = Decimal(self.rng.randint(lo, hi)).scaleb(-prec)  # level_amount x U(0.5, 1.5)
                if price > 0 and (not levels or levels[-1][0] != price):
                    levels.append((price, qty))
        self.exchange.requote(self.market, bids, asks)
