"""What an account is worth: balances marked to last prices in one quote currency.

Used by the daily loss limit (live and backtest) so both value an account the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from botkit.market.rules import MarketRules
from botkit.market.types import Balance


class Valuation:
    """`mark_to_market` for one set of markets: which market prices each asset is worked out once, not on each
    call (the daily loss limit values the account before every order)."""

    __slots__ = ("last_price", "priced", "quote")

    def __init__(self, rules: Mapping[str, MarketRules], quote: str, last_price: Callable[[str], float | None]) -> None:
        self.priced = {r.stock: m for m, r in rules.items() if r.money == quote}
        self.quote = quote
        self.last_price = last_price

    def __call__(self, balances: Mapping[str, Balance]) -> float:
        """Sum of balances in the quote currency; an asset counts at the last price of its `ASSET_quote` market, and
        assets with no such market (or no price yet) are left out."""
        quote, priced, last_price = self.quote, self.priced, self.last_price
        total = 0.0
        for asset, bal in balances.items():  # (bal.available + bal.frozen: Balance.total without its property call)
            if asset == quote:
                total += float(bal.available + bal.frozen)
                continue
            market = priced.get(asset)
            px = last_price(market) if market is not None else None
            if px is not None:
                total += float(bal.available + bal.frozen) * px
        return total


def mark_to_market(
    balances: Mapping[str, Balance],
    rules: Mapping[str, MarketRules],
    quote: str,
    last_price: Callable[[str], float | None],
) -> float:
    """Sum of balances in `quote`; an asset counts at the last price of its `ASSET_quote` market, and assets with
    no such market (or no price yet) are left out."""
    return Valuation(rules, quote, last_price)(balances)
