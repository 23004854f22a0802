"""Pre-trade risk checks: the limits every order passes before it reaches a venue.

A rejection is a typed value (`RiskRejection`), logged and reported, never a silent drop. The daily loss limit halts
new orders for the rest of the UTC day; cancels are always allowed, so a halted bot can still get flat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from botkit.market.types import Side

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """None means "no limit". Notional and loss figures are in the quote currency."""

    max_order_notional: Decimal | None = None
    max_position: dict[str, Decimal] = field(default_factory=dict)
    max_open_orders: int | None = None
    price_band_pct: Decimal | None = None
    daily_loss_limit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RiskRejection:
    """Why an order was refused: which limit, the limit's value and the order's value."""

    rule: str
    limit: str
    value: str
    message: str

    def __str__(self) -> str:
        return f"risk:{self.rule}: {self.message}"


@dataclass(slots=True)
class RiskState:
    """What the checks need to know about the present: open orders, positions, day P&L."""

    open_orders: int = 0
    day_start_ms: int = -1
    day_start_equity: float | None = None
    halted_day_ms: int = -1


class RiskManager:
    """Applies `RiskLimits` to one order at a time."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.state = RiskState()
        # The daily loss limit as the float the equity is compared with (limits are frozen: converted once).
        self._loss_limit = float(limits.daily_loss_limit) if limits.daily_loss_limit is not None else None
        # Whether `check` needs the equity: asked before every order (an attribute, not a property, for that).
        self.needs_equity = limits.daily_loss_limit is not None

    def new_day_if_needed(self, now_ms: int, equity: float) -> None:
        """Record the equity at the first event of each UTC day (the daily-loss baseline)."""
        day = now_ms - now_ms % DAY_MS
        if day != self.state.day_start_ms:
            self.state.day_start_ms = day
            self.state.day_start_equity = equity

    def check(
        self,
        market: str,
        side: Side,
        amount_base: Decimal,
        notional: Decimal,
        price: Decimal | None,
        last_price: Decimal | None,
        position: Decimal,
        now_ms: int,
        equity: float | None,
    ) -> RiskRejection | None:
        """First limit the order breaks, or None. `amount_base` may be an estimate for a market buy."""
        lim = self.limits
        loss_limit = self._loss_limit
        if loss_limit is not None and equity is not None and self.state.day_start_equity is not None:
            loss = self.state.day_start_equity - equity
            if loss >= loss_limit or self.state.halted_day_ms == self.state.day_start_ms:
                self.state.halted_day_ms = self.state.day_start_ms
                return RiskRejection(
                    "daily_loss_limit",
                    str(lim.daily_loss_limit),
                    f"{loss:.8g}",
                    f"day loss {loss:.8g} reached the limit {lim.daily_loss_limit}; new orders halted until 00:00 UTC",
                )
        if lim.max_open_orders is not None and self.state.open_orders >= lim.max_open_orders:
            return RiskRejection(
                "max_open_orders",
                str(lim.max_open_orders),
                str(self.state.open_orders + 1),
                f"{self.state.open_orders} orders already open, limit {lim.max_open_orders}",
            )
        if lim.max_order_notional is not None and notional > lim.max_order_notional:
            return RiskRejection(
                "max_order_notional",
                str(lim.max_order_notional),
                str(notional),
                f"order notional {notional} exceeds {lim.max_order_notional}",
            )
        max_pos = lim.max_position.get(market)
        if max_pos is not None:
            after = position + amount_base if side == "buy" else position - amount_base
            if abs(after) > max_pos:
                return RiskRejection(
                    "max_position",
                    str(max_pos),
                    str(after),
                    f"position would become {after} {market}, limit {max_pos}",
                )
        if lim.price_band_pct is not None and price is not None and last_price is not None and last_price > 0:
            deviation = abs(price / last_price - 1) * 100
            if deviation > lim.price_band_pct:
                return RiskRejection(
                    "price_band",
                    f"{lim.price_band_pct}%",
                    f"{deviation:.4f}%",
                    f"price {price} is {deviation:.4f}% from last {last_price}, band {lim.price_band_pct}%",
                )
        return None
