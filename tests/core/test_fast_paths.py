"""What keeps `botkit backtest` fast must not change what it computes: the garbage-collector setting of a replay is
restored afterwards, the CSV loader's Arrow fast path gives the same columns without importing pandas, and the CLI
does not import the sandbox's or the OAuth stack's HTTP libraries for a backtest."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from botkit.backtest.data import _arrow_values
from botkit.backtest.gcpolicy import GC_YOUNG_THRESHOLD, rare_young_collections
from botkit.backtest.report import iso, iso_many
from botkit.backtest.sample import generate_candles, write_candles_csv
from botkit.market.rules import fmt

from .helpers import Script, run, series

ROOT = Path(__file__).resolve().parents[2]


def test_a_replay_collects_young_objects_rarely_and_restores_the_setting() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    class Look(Script):
        def on_candle(self, ctx, candle):  # type: ignore[no-untyped-def]
            super().on_candle(ctx, candle)
            seen.append(gc.get_threshold())

    run(Look({}), [series([(100.0, 101.0, 99.0, 100.5)] * 5)])
    assert seen and all(t[0] == max(before[0], GC_YOUNG_THRESHOLD) for t in seen)
    assert seen[0][1:] == before[1:]
    assert gc.get_threshold() == before


def test_rare_young_collections_restores_the_threshold_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), rare_young_collections():
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


def test_arrow_values_are_the_arrow_columns_as_numpy_views() -> None:
    import pyarrow as pa

    ints = pa.array(np.arange(10, dtype=np.int64)).slice(3, 5)  # an offset: the view must start where it does
    floats = pa.array(np.linspace(0.5, 9.5, 10))
    assert _arrow_values(ints).tolist() == [3, 4, 5, 6, 7] and _arrow_values(ints).dtype == np.int64
    assert _arrow_values(floats).tolist() == floats.to_pylist()
    with pytest.raises(ValueError, match="nulls"):
        _arrow_values(pa.array([1.0, None]))
    with pytest.raises(ValueError):
        _arrow_values(pa.array(["a"]))


def _python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_loading_a_csv_does_not_import_pandas_and_keeps_every_value(tmp_path: Path) -> None:
    data = generate_candles("BTC_USDT", start_ms=1_599_955_200_000, count=70_000, seed=4)
    path, out = tmp_path / "c.csv", tmp_path / "close.npy"
    write_candles_csv(data, path, 2, 6)
    code = ("import sys; import numpy as np; from botkit.backtest.data import load_candles;"
            f" s = load_candles({str(path)!r}, 'BTC_USDT'); np.save({str(out)!r}, s.close);"
            " print(len(s), 'pandas' in sys.modules)")
    assert _python(code) == "70000 False"
    # several 256 KiB Arrow batches, every value in order (the CSV holds closes to the cent)
    assert np.array_equal(np.load(out), np.round(data.close, 2))


def test_the_cli_imports_no_http_stack_before_a_command_runs() -> None:
    code = ("import sys; from botkit import cli; cli.build_parser();"
            " print(sorted(m for m in ('aiohttp', 'httpx', 'pandas', 'botkit.sandbox.server') if m in sys.modules))")
    assert _python(code) == "[]"


def test_fmt_is_the_normalized_plain_text_of_every_decimal() -> None:
    import random
    from decimal import Decimal

    def slow(value: Decimal) -> str:  # the definition fmt keeps
        return "0" if value == 0 else format(value.normalize(), "f")

    fixed = ["30012.34", "0.316512", "100.00", "1E+2", "-0.50", "-0", "0.0000001", "123", "1.000", "-1.2300E+5",
             "1e-30", "0.00", "7.0E-7", "NaN", "Infinity"]
    rnd = random.Random(3)
    values = [Decimal(x) for x in fixed]
    for _ in range(20_000):
        d = Decimal(rnd.randrange(-10**12, 10**12)).scaleb(rnd.randrange(-20, 8))
        values += [d, d.quantize(Decimal(1).scaleb(-rnd.randrange(0, 12)))] if abs(d) < 10**9 else [d]
    assert [fmt(v) for v in values] == [slow(v) for v in values]
    assert fmt(Decimal("100.00")) == "100" and fmt(Decimal("1E-7")) == "0.0000001" and fmt(Decimal("-0")) == "0"


def test_iso_many_is_iso_of_each_time() -> None:
    ms = [0, 999, 1000, 1_600_000_059_999, 4_102_444_800_000] + list(range(1_700_000_000_000, 1_700_100_000_000,
                                                                          7_777_777))
    assert iso_many(ms) == [iso(m) for m in ms]


def test_a_finished_backtest_leaves_no_reference_cycles() -> None:
    """The engine's venue, OCO helper and sink hold weak links back: reference counting frees a finished run at once,
    so a sweep worker pays no collector pass over tens of thousands of orders after every backtest."""

    def enter(ctx, candle):  # type: ignore[no-untyped-def]
        return ctx.buy("BTC_USDT", "500")

    def bracket(ctx, candle):  # type: ignore[no-untyped-def]
        held = ctx.balance("BTC").available
        ctx.sell("BTC_USDT", held, "130", oco="g")
        return ctx.sell("BTC_USDT", held, stop="90", oco="g")

    def rest(ctx, candle):  # type: ignore[no-untyped-def]
        order = ctx.buy("BTC_USDT", "0.01", "50")
        ctx.cancel(order)
        return order

    plan = {0: enter, 1: bracket, 2: rest, 5: enter}
    data = [series([(100.0, 101.0, 99.0, 100.5)] * 3 + [(100.0, 100.0, 85.0, 86.0)] * 5)]
    gc.collect()
    gc.disable()
    try:
        strategy = Script(plan)
        result = run(strategy, data)
        assert len(result.fills) >= 3 and len(result.orders) >= 5  # entries, the triggered stop, the cancelled limit
        assert any(o.status.value == "cancelled" for o in result.orders)
        del result, strategy
        assert gc.collect() == 0
    finally:
        gc.enable()
