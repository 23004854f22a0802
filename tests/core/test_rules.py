from decimal import Decimal as D

import pytest

from botkit.market.rules import MarketRules, OrderRulesError, decimals_of, fmt, to_decimal

BTC = MarketRules.from_whitebit(
    {
        "name": "BTC_USDT", "stock": "BTC", "money": "USDT", "stockPrec": "6", "moneyPrec": "2", "feePrec": "4",
        "makerFee": "0.1", "takerFee": "0.2", "minAmount": "0.00001", "minTotal": "5", "maxTotal": "100000",
    }
)


def test_from_and_to_whitebit_round_trip():
    again = MarketRules.from_whitebit(BTC.to_whitebit())
    assert again == BTC
    assert BTC.to_whitebit()["stockPrec"] == "6"
    assert BTC.to_whitebit()["makerFee"] == "0.1"


def test_truncation_never_rounds_up():
    assert BTC.truncate_amount(D("0.1234569")) == D("0.123456")
    assert BTC.truncate_quote(D("10.999")) == D("10.99")
    assert BTC.round_price(D("100.019"), "buy") == D("100.01")
    assert BTC.round_price(D("100.011"), "sell") == D("100.02")


def test_fee_is_percent_of_received_asset():
    assert BTC.fee(D("2"), maker=True) == D("0.002")
    assert BTC.fee(D("2"), maker=False) == D("0.004")


def test_limit_violations_use_whitebit_codes_and_words():
    errs = BTC.limit_violations(D("0.0000001"), D("1.001"))
    codes = {(v.code, v.field) for v in errs}
    assert (32, "amount") in codes and (33, "price") in codes and (30, "total") in codes
    assert any("Min amount step = 0.000001" in v.message for v in errs)
    assert any("Given amount is less than min amount 0.00001" in v.message for v in errs)
    with pytest.raises(OrderRulesError) as ei:
        BTC.check_limit(D("10"), D("50000"))
    assert ei.value.errors == {"total": ["Total (amount * price) is greater than 100000"]}
    BTC.check_limit(D("0.001"), D("50000"))  # 50 USDT: fine


def test_market_buy_amount_is_quote():
    BTC.check_market("buy", D("5"))
    with pytest.raises(OrderRulesError) as ei:
        BTC.check_market("buy", D("4.99"))
    assert ei.value.code == 30
    with pytest.raises(OrderRulesError):
        BTC.check_market("sell", D("0.000001"))


def test_zero_max_total_means_no_limit():
    r = MarketRules("X_Y", "X", "Y", 2, 2)
    r.check_limit(D("1000000"), D("1000000"))


def test_decimal_helpers():
    assert decimals_of(D("1.2300")) == 2
    assert fmt(D("1E+3")) == "1000" and fmt(D("0.00100")) == "0.001"
    assert to_decimal(0.1) == D("0.1")
    with pytest.raises(ValueError):
        to_decimal("nan")
    with pytest.raises(ValueError):
        to_decimal("abc", "price")
