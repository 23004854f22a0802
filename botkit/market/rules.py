"""WhiteBIT's exchange rules for one market, in one place.

The execution layer (before an order leaves), the simulated venue (backtest and paper) and the sandbox exchange
(when it validates an incoming order) all call this module, so an order that the backtest accepts is an order the
sandbox accepts and, as far as the documentation goes, one WhiteBIT accepts (docs/whitebit.md §5).

Error codes follow WhiteBIT's order/new table: 32 amount, 33 price, 30 generic validation (used for the total).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from botkit.market.types import Side

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """One broken rule, shaped like a WhiteBIT validation error: code, field, message."""

    code: int
    field: str
    message: str


class OrderRulesError(ValueError):
    """An order breaks one or more market rules; carries WhiteBIT-shaped code and per-field messages."""

    def __init__(self, market: str, violations: list[RuleViolation]) -> None:
        self.market = market
        self.violations = violations
        self.code = violations[0].code
        detail = "; ".join(f"{v.field}: {v.message}" for v in violations)
        super().__init__(f"{market}: {detail}")

    @property
    def errors(self) -> dict[str, list[str]]:
        """Field messages as WhiteBIT's `errors` object carries them."""
        out: dict[str, list[str]] = {}
        for v in self.violations:
            out.setdefault(v.field, []).append(v.message)
        return out


def to_decimal(value: Decimal | str | int | float, what: str = "value") -> Decimal:
    """Convert to Decimal without float noise: floats go through repr (shortest round-trip)."""
    if isinstance(value, Decimal):
        d = value
    elif type(value) is float:
        return float_to_decimal(value, what)
    else:
        try:
            d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, ValueError) as exc:
            raise ValueError(f"{what} {value!r} is not a number") from exc
    if not d.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    return d


_last_float: tuple[float, Decimal] = (math.nan, ZERO)  # the last float converted and its Decimal (NaN: none yet)


def float_to_decimal(value: float, what: str = "value") -> Decimal:
    """`to_decimal` of a float (the order path calls it directly for prices, which are floats). The last one
    converted is remembered: its repr costs more than the rest of an order's checks, and the same price is often
    converted twice in a row (the last close an order is checked against is usually the next candle's open, where it
    fills)."""
    global _last_float
    last = _last_float  # (one tuple, read and replaced whole: threads never see half of it)
    if value == last[0] and value:  # (0.0 == -0.0, but their Decimals differ: zero is not remembered)
        return last[1]
    d = Decimal(repr(value))
    if not d.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    _last_float = (value, d)
    return d


def decimals_of(value: Decimal) -> int:
    """Number of decimal places written in `value` after normalisation (trailing zeros do not count)."""
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    return max(0, -exp)


def finer_than(value: Decimal, places: int) -> bool:
    """`decimals_of(value) > places`, without normalising the usual value: one already written with at most
    `places` decimals (an amount the engine has just cut to its step) cannot have more after normalisation. (Read
    from its str: `as_tuple` builds a named tuple, several times slower, and every order is checked.)"""
    text = str(value)
    if "E" not in text and value.is_finite():
        dot = text.find(".")
        if (len(text) - dot - 1 if dot >= 0 else 0) <= places:
            return False
    return decimals_of(value) > places


_STEPS: dict[int, Decimal] = {}  # precision -> 10**-precision: each order quantizes to one, often twice


def step_of(places: int) -> Decimal:
    """The quantum of `places` decimals (0.01 for 2), built once per precision."""
    step = _STEPS.get(places)
    if step is None:
        step = _STEPS[places] = Decimal(1).scaleb(-places)
    return step


def fmt(value: Decimal) -> str:
    """Plain decimal string for the wire: no exponent, no trailing zeros ("0.001", "40000").

    The same text as `format(value.normalize(), "f")`; the usual value (no exponent in its str) is cut from its str,
    3-4x faster, which counts when a report writes a million of them."""
    if not value:
        return "0"
    s = str(value)
    if "E" in s:
        return format(value.normalize(), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Precision, minimums and fees of one market, as `GET /api/v4/public/markets` describes them.

    Fees are percent (``"0.1"`` means 0.1 %), as WhiteBIT publishes them. ``max_total == 0`` means no limit.
    """

    name: str
    stock: str
    money: str
    stock_prec: int
    money_prec: int
    fee_prec: int = 4
    min_amount: Decimal = ZERO
    min_total: Decimal = ZERO
    max_total: Decimal = ZERO
    maker_fee: Decimal = Decimal("0.1")
    taker_fee: Decimal = Decimal("0.1")
    type: str = "spot"

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_whitebit(cls, item: dict[str, Any]) -> MarketRules:
        """Build from one entry of WhiteBIT's markets response (stringified numbers)."""
        return cls(
            name=str(item["name"]),
            stock=str(item["stock"]),
            money=str(item["money"]),
            stock_prec=int(item["stockPrec"]),
            money_prec=int(item["moneyPrec"]),
            fee_prec=int(item.get("feePrec", 4)),
            min_amount=to_decimal(item.get("minAmount", "0"), "minAmount"),
            min_total=to_decimal(item.get("minTotal", "0"), "minTotal"),
            max_total=to_decimal(item.get("maxTotal", "0"), "maxTotal"),
            maker_fee=to_decimal(item.get("makerFee", "0.1"), "makerFee"),
            taker_fee=to_decimal(item.get("takerFee", "0.1"), "takerFee"),
            type=str(item.get("type", "spot")),
        )

    def to_whitebit(self) -> dict[str, Any]:
        """The markets-endpoint entry for this market, exactly as WhiteBIT shapes it."""
        return {
            "name": self.name,
            "stock": self.stock,
            "money": self.money,
            "stockPrec": str(self.stock_prec),
            "moneyPrec": str(self.money_prec),
            "feePrec": str(self.fee_prec),
            "makerFee": fmt(self.maker_fee),
            "takerFee": fmt(self.taker_fee),
            "minAmount": fmt(self.min_amount),
            "minTotal": fmt(self.min_total),
            "maxTotal": fmt(self.max_total),
            "tradesEnabled": True,
            "isCollateral": False,
            "type": self.type,
            "isTradFiFutures": False,
            "delistedAt": None,
        }

    # ---- quanta -------------------------------------------------------------------------------------------------

    # (The quanta are looked up in `_STEPS` directly where every order passes: a property and a call cost more
    # than the quantize itself.)

    @property
    def amount_step(self) -> Decimal:
        return _STEPS.get(self.stock_prec) or step_of(self.stock_prec)

    @property
    def price_step(self) -> Decimal:
        return _STEPS.get(self.money_prec) or step_of(self.money_prec)

    def truncate_amount(self, amount: Decimal) -> Decimal:
        """Amount cut down (never up) to `stockPrec` decimals."""
        # (rounding positionally: a keyword costs quantize a parse of its arguments)
        return amount.quantize(_STEPS.get(self.stock_prec) or step_of(self.stock_prec), ROUND_DOWN)

    def truncate_quote(self, total: Decimal) -> Decimal:
        """A quote-currency amount (market-buy size) cut down to `moneyPrec` decimals."""
        return total.quantize(_STEPS.get(self.money_prec) or step_of(self.money_prec), ROUND_DOWN)

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Price to `moneyPrec` decimals, toward the passive side: buys down, sells up."""
        rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
        return price.quantize(_STEPS.get(self.money_prec) or step_of(self.money_prec), rounding)

    # ---- fees ---------------------------------------------------------------------------------------------------

    def fee_rate(self, maker: bool) -> Decimal:
        """Fee as a fraction (0.001 for "0.1" percent)."""
        return (self.maker_fee if maker else self.taker_fee) / HUNDRED

    def fee(self, received: Decimal, maker: bool) -> Decimal:
        """Fee on a fill, charged in the asset received (base on a buy, quote on a sell), as WhiteBIT reports it."""
        return received * self.fee_rate(maker)

    # ---- validation ---------------------------------------------------------------------------------------------

    def limit_violations(self, amount: Decimal, price: Decimal) -> list[RuleViolation]:
        """Everything wrong with a limit order of `amount` base at `price`, in WhiteBIT's words."""
        out: list[RuleViolation] = []
        if amount <= ZERO:  # (ZERO, not 0: an int is converted to a Decimal at every comparison)
            out.append(RuleViolation(32, "amount", "Amount should be greater than 0."))
        else:
            if finer_than(amount, self.stock_prec):
                out.append(RuleViolation(32, "amount", f"Min amount step = {fmt(self.amount_step)}"))
            if amount < self.min_amount:
                out.append(RuleViolation(32, "amount", f"Given amount is less than min amount {fmt(self.min_amount)}"))
        if price <= ZERO:
            out.append(RuleViolation(33, "price", "Price should be greater than 0."))
        elif finer_than(price, self.money_prec):
            out.append(RuleViolation(33, "price", f"Min price step = {fmt(self.price_step)}"))
        if amount > ZERO and price > ZERO:
            out.extend(self._total_violations(amount * price))
        return out

    def market_violations(self, side: Side, amount: Decimal) -> list[RuleViolation]:
        """What is wrong with a market order; a buy's `amount` is the quote to spend, a sell's is base."""
        out: list[RuleViolation] = []
        if amount <= ZERO:  # (ZERO, not 0: an int is converted to a Decimal at every comparison)
            return [RuleViolation(32, "amount", "Amount should be greater than 0.")]
        if side == "buy":
            if finer_than(amount, self.money_prec):
                out.append(RuleViolation(32, "amount", f"Min amount step = {fmt(self.price_step)}"))
            if amount < self.min_total or (self.max_total > ZERO and amount > self.max_total):  # (else none: no call)
                out.extend(self._total_violations(amount))
        else:
            if finer_than(amount, self.stock_prec):
                out.append(RuleViolation(32, "amount", f"Min amount step = {fmt(self.amount_step)}"))
            if amount < self.min_amount:
                out.append(RuleViolation(32, "amount", f"Given amount is less than min amount {fmt(self.min_amount)}"))
        return out

    def _total_violations(self, total: Decimal) -> list[RuleViolation]:
        if total < self.min_total:
            return [RuleViolation(30, "total", f"Total (amount * price) is less than {fmt(self.min_total)}")]
        if self.max_total > ZERO and total > self.max_total:
            return [RuleViolation(30, "total", f"Total (amount * price) is greater than {fmt(self.max_total)}")]
        return []

    def check_limit(self, amount: Decimal, price: Decimal) -> None:
        """Raise `OrderRulesError` if a limit order breaks a rule."""
        violations = self.limit_violations(amount, price)
        if violations:
            raise OrderRulesError(self.name, violations)

    def check_market(self, side: Side, amount: Decimal) -> None:
        """Raise `OrderRulesError` if a market order breaks a rule."""
        violations = self.market_violations(side, amount)
        if violations:
            raise OrderRulesError(self.name, violations)
