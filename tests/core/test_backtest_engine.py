"""The backtest engine: closed data only, time order across markets, determinism, equity bookkeeping."""

from decimal import Decimal as D
from pathlib import Path

import numpy as np

from botkit.backtest.report import write_report
from botkit.backtest.sample import generate_candles

from .helpers import ETH, RULES, T0, Script, run, series


def test_callbacks_see_closed_candles_only_and_never_the_future():
    data = series([(100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i) for i in range(50)])
    checks = []

    class Peek(Script):
        def on_candle(self, ctx, candle):
            super().on_candle(ctx, candle)
            arr = ctx.candles("BTC_USDT")
            checks.append((len(arr) == self.i + 1, arr.close[-1] == candle.close, ctx.now == candle.close_time_ms,
                           candle.close_time_ms == candle.time_ms + 60_000, ctx.last_price("BTC_USDT") == candle.close))
            assert len(ctx.candles("BTC_USDT", 5)) == min(5, self.i + 1)

    run(Peek({}), [data])
    assert len(checks) == 50 and all(all(c) for c in checks)


def test_markets_merge_in_close_time_order_and_orders_wait_for_a_later_open():
    btc = series([(100.0, 100.0, 100.0, 100.0)] * 6, tf=60_000)
    eth = series([(10.0, 10.0, 10.0, 10.0), (20.0, 20.0, 20.0, 20.0), (30.0, 30.0, 30.0, 30.0)],
                 market="ETH_USDT", tf=120_000)
    order = []

    class Rec(Script):
        def on_candle(self, ctx, candle):
            order.append((candle.close_time_ms, candle.market))
            if candle.market == "BTC_USDT" and candle.close_time_ms == T0 + 120_000:
                # ETH's candle [T0, T0+120s) closes at this same instant (after BTC in config order); it opened
                # before the order existed, so the order must wait for ETH's next candle, which opens at 20.
                self.placed.append(ctx.buy("ETH_USDT", "1", "25"))

    s = Rec({})
    res = run(s, [btc, eth])
    times = [t for t, _ in order]
    assert times == sorted(times)
    assert order[1:3] == [(T0 + 120_000, "BTC_USDT"), (T0 + 120_000, "ETH_USDT")]
    (fill,) = res.fills
    assert fill.market == "ETH_USDT" and fill.price == D("20") and fill.time_ms == T0 + 120_000


def _sample_run(tmp: Path):
    from .strategies_loader import load

    cls = load("strategies/bollinger_reversion.py", "BollingerReversion")
    data = generate_candles("BTC_USDT", start_ms=T0, count=3000, seed=3)
    res = run(cls(cls.Params()), [data])
    write_report(res, tmp, "cfg")
    return res


def test_same_inputs_give_byte_identical_outputs(tmp_path):
    a = _sample_run(tmp_path / "a")
    _sample_run(tmp_path / "b")
    assert len(a.fills) > 4, "the sample should make the strategy trade"
    for name in ("report.json", "trades.csv", "roundtrips.csv", "equity.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_equity_curve_matches_final_balances_and_nothing_goes_negative(tmp_path):
    res = _sample_run(tmp_path)
    last_close = float(generate_candles("BTC_USDT", start_ms=T0, count=3000, seed=3).close[-1])
    expected = float(res.final_balances["USDT"]) + float(res.final_balances["BTC"]) * last_close
    assert abs(res.equity[-1] - expected) < 1e-6
    assert all(v >= 0 for v in res.final_balances.values())
    assert np.all(res.equity > 0)
    assert res.metrics.trades == sum(1 for r in res.round_trips if r.closed)


def test_round_trip_pnl_includes_fees():
    data = series([(100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 100.0, 100.0), (110.0, 110.0, 110.0, 110.0),
                   (110.0, 110.0, 110.0, 110.0)])
    s = Script({0: lambda ctx, c: ctx.buy("BTC_USDT", "1000"),
                2: lambda ctx, c: ctx.sell("BTC_USDT", ctx.position("BTC_USDT"))})
    res = run(s, [data])
    (rt,) = res.round_trips
    # buy 10 BTC at 100 (taker 0.2 % in BTC -> 9.98), sell 9.98 at 110 (0.2 % in USDT)
    assert rt.closed and abs(rt.pnl - (9.98 * 110 * 0.998 - 1000)) < 1e-9
    assert abs(res.fees_paid - (0.02 * 100 + 9.98 * 110 * 0.002)) < 1e-9
    assert res.metrics.trades == 1 and res.metrics.win_rate == 1.0


def test_timers_fire_on_market_time():
    data = series([(100.0, 100.0, 100.0, 100.0)] * 10)
    fired = []

    class Timed(Script):
        def on_start(self, ctx):
            ctx.schedule("tick", 180_000)

        def on_timer(self, ctx, name):
            fired.append((name, ctx.now))

    run(Timed({}), [data])
    assert [t for _, t in fired] == [T0 + 180_000 * k for k in (1, 2, 3)]


def test_rules_helpers_are_the_ones_the_venue_uses():
    assert RULES.amount_step == D("0.000001") and ETH.amount_step == D("0.0001")
