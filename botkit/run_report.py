"""What a running bot shows and leaves behind: one line per order event as it happens (market time), a periodic
status line, `trades.csv` written fill by fill, and `report.json` at the end.

The bot's own result is computed from its own fills (cash flow plus position at the last price), never from the
account's balance change, so two bots on one account each report only what they did.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TextIO

from botkit.market.orders import Fill, Order
from botkit.market.rules import MarketRules, fmt
from botkit.market.types import Balance

# trades.csv: one row per fill, the same leading columns in a run and a backtest (which adds type and reason)
TRADES_COLUMNS = ["time", "time_ms", "market", "side", "price", "amount", "quote", "fee", "fee_asset", "liquidity",
                  "client_order_id"]


def fill_row(f: Fill, when: str) -> list[str]:
    """A fill as the TRADES_COLUMNS of trades.csv; `when` is its time already formatted."""
    return [when, str(f.time_ms), f.market, f.side, fmt(f.price), fmt(f.amount), fmt(f.quote), fmt(f.fee),
            f.fee_asset, "maker" if f.maker else "taker", f.client_id]


def hms(ms: int) -> str:
    """Market time for event lines: UTC, to the millisecond."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(value: Decimal | float, places: int) -> str:
    """A quote amount with the market's price precision (at least 2, enough for a BTC quote)."""
    return f"{Decimal(str(value)):,.{max(2, places)}f}"


@dataclass(slots=True)
class _Flows:
    """Net base and quote that this bot's fills moved in one market."""

    base: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    fees_quote: Decimal = Decimal(0)
    fills: int = 0


@dataclass
class RunReporter:
    """An `OrderObserver` of the event loop. `clock` gives market time for the event lines."""

    rules: dict[str, MarketRules]
    out_dir: Path
    clock: Callable[[], int]
    out: TextIO | None = None
    flows: dict[str, _Flows] = field(default_factory=dict)
    lines: int = 0
    _trades: IO[str] | None = None
    _writer: Any = None

    def open(self) -> Path:
        """Create the run's folder and start trades.csv (a fresh file per run)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "trades.csv"
        self._trades = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._trades, lineterminator="\n")
        self._writer.writerow(TRADES_COLUMNS)
        self._trades.flush()
        return path

    def close(self) -> None:
        if self._trades is not None:
            self._trades.close()
            self._trades = None

    # ---- OrderObserver ----------------------------------------------------------------------------------------------

    def on_order_update(self, order: Order) -> None:
        if self.out is None:
            return
        r = self.rules.get(order.market)
        what = order.type.replace("_", "-")
        if order.quote_amount:
            size = f"{fmt(order.amount)} {r.money if r else 'quote'}"
        else:
            size = f"{fmt(order.amount)} {r.stock if r else ''}".rstrip()
        price = f" @ {fmt(order.price)}" if order.price is not None else ""
        stop = f" stop {fmt(order.stop_price)}" if order.stop_price is not None else ""
        why = f" ({order.reject_reason})" if order.reject_reason else ""
        if order.held:
            why += " (held locally, not on the exchange: sent at market when reached)"
        self._print(f"{hms(self.clock())}  {order.market:<10} {order.side:<4} {what:<11} {size}{price}{stop}"
                    f"  -> {order.status.value}{why}  [{order.client_id}]")

    def on_fill(self, fill: Fill) -> None:
        f = self.flows.setdefault(fill.market, _Flows())
        r = self.rules[fill.market]
        f.fills += 1
        if fill.side == "buy":
            f.base += fill.amount - (fill.fee if fill.fee_asset == r.stock else 0)
            f.quote -= fill.quote + (fill.fee if fill.fee_asset == r.money else 0)
            f.fees_quote += fill.fee * fill.price if fill.fee_asset == r.stock else fill.fee
        else:
            f.base -= fill.amount
            f.quote += fill.quote - (fill.fee if fill.fee_asset == r.money else 0)
            f.fees_quote += fill.fee if fill.fee_asset == r.money else fill.fee * fill.price
        if self._writer is not None and self._trades is not None:
            self._writer.writerow(fill_row(fill, iso(fill.time_ms)))
            self._trades.flush()
        if self.out is not None:
            self._print(f"{hms(fill.time_ms)}  {fill.market:<10} FILL {fill.side} {fmt(fill.amount)} {r.stock} @ "
                        f"{fmt(fill.price)}  fee {fmt(fill.fee)} {fill.fee_asset} "
                        f"({'maker' if fill.maker else 'taker'})  [{fill.client_id}]")

    # ---- figures ----------------------------------------------------------------------------------------------------

    def pnl(self, last_price: Callable[[str], float | None]) -> dict[str, Decimal]:
        """This bot's result per quote currency: its cash flow plus the base it moved, valued at the last price."""
        out: dict[str, Decimal] = {}
        for market, f in self.flows.items():
            r = self.rules[market]
            px = last_price(market)
            value = f.quote + (f.base * Decimal(str(px)) if px is not None else Decimal(0))
            out[r.money] = out.get(r.money, Decimal(0)) + value
        return out

    def status_line(self, *, equity: float | None, quote: str, positions: dict[str, Decimal], open_orders: int,
                    feed_lag_s: float | None, token: str, pnl: dict[str, Decimal]) -> str:
        places = max((r.money_prec for r in self.rules.values() if r.money == quote), default=2)
        eq = f"equity {money(equity, places)} {quote}" if equity is not None else "equity n/a"
        pos = ", ".join(f"{m} {fmt(v)}" for m, v in positions.items()) or "none"
        result = ", ".join(f"{'+' if v >= 0 else ''}{money(v, places)} {q}" for q, v in pnl.items()) or "0"
        lag = f"{feed_lag_s:.1f} s" if feed_lag_s is not None else "no data yet"
        return (f"status {hms(self.clock())}  {eq}  pnl {result}  position {pos}  open orders {open_orders}  "
                f"feed lag {lag}  token {token}")

    def _print(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)
            self.lines += 1


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all (temp file + rename), so a crash never leaves half a report."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def balances_json(balances: dict[str, Balance]) -> dict[str, dict[str, str]]:
    return {a: {"available": fmt(b.available), "frozen": fmt(b.frozen)} for a, b in sorted(balances.items())}
