"""One recorded window of the real sandbox (trades, depth and 1s candles, `botkit record` over its WebSocket), one
strategy, the three fill models (`[backtest] fills = "candles"`, `"trades"`, `"book"`): what must agree does, and
every difference has its reason (backtests/compare_fills.py prints the same runs side by side).

What agrees, and why:
- The decisions. `WindowCross` acts on a fixed buy/sell schedule (every 2nd close) of the window's 1s candles built
  from the recorded trades (the candles the candle model replays, the candles `ctx.candles()` shows in the trades
  model), at the first event at or after each candle close: `on_candle` at the close itself in the candle and
  trades models, the first recorded book event at or after it in the book model (which replays book events only).
  Same signals, same sides, same number of orders in every model.
- Candles vs trades, market orders: identical fills. A candle-model market order fills at the open of the next
  candle; a trades-model one at the first trade printed at or after its arrival, which is that candle's opening
  trade (same price and amount; the time differs: the candle model stamps the candle's open time, the trades model
  the trade's). So the equity of the two runs (both marked at the same candle closes) is identical too.
- Prices inside the data: candle fills lie in the filling candle's [low, high]; trades fills are at prices the
  recording printed (takers at the trade they filled on, limits as makers at their own price, which is a close,
  hence a print, on a trade at or through it), and market orders of the trades model lie in their candle too.
- Timing: every fill comes after its order was placed and before the next decision (which cancels what is left).

What differs, and why:
- Book fills are quotes, not prints: a market buy walks the asks from the best ask at the next book event (the
  order arrives with the next event, rule 3), a sell the bids, so a round trip pays the spread that trade prints do
  not show; book fill prices need not lie inside the trades' candle range.
- Slippage exists only in the book model: taker fills keep the best opposite price when the order was decided
  (`Fill.ref_price`) and fill at it or worse (slippage >= 0); an order bigger than the top level walks deeper, so
  slippage grows with size (the x40 run). The candle and trades models fill whole at one price (no depth).
- Limits at the signal candle's close differ by queue position and timing: the candle model calls one marketable
  against the next open (taker at the open) or fills it as a maker when a later candle trades through it; the trades
  model judges it against the last trade (the close itself: at its price, so it usually rests) and fills it at its
  price once the queue ahead (the recorded book's size at that level) has traded, or on a trade through, so where
  the candle model takes a better next open the trades model fills at the limit (more conservative); the book
  model takes the asks up to the limit when the ask is at or below it, else it rests behind the visible queue.
  Unfilled limits are cancelled at the next signal, so fills per model differ, never the decisions.
- Equity is marked at candle closes (candles, trades) or at the book's mid (book).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from botkit.backtest.datasets import book_from_store, trades_from_store
from botkit.backtest.report import slippage_summary
from botkit.backtest.run import run_backtest
from botkit.backtest.store import Store
from botkit.backtest.tape import candles_from_trades
from botkit.market.orders import Fill

ROOT = Path(__file__).resolve().parents[2]


def _compare_fills() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_fills", ROOT / "backtests" / "compare_fills.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("compare_fills", module)
    spec.loader.exec_module(module)
    return module


cf = _compare_fills()
MARKET = cf.MARKET

BOOK_LOG = '''
import json
from pydantic import BaseModel
from botkit import Strategy
from botkit.market.types import BookView


class Out(BaseModel):
    out: str


class BookLog(Strategy):
    """Writes what each on_book shows: its type, time, best prices and every level of the view."""

    Params = Out

    def __init__(self, params=None):
        super().__init__(params)
        self.seen = []

    def on_book(self, ctx, book):
        self.seen.append([type(book).__name__, book.time_ms, book.best_bid, book.best_ask, book.bids, book.asks,
                          ctx.now])

    def on_stop(self, ctx):
        with open(self.params.out, "w") as fh:
            json.dump(self.seen, fh)
'''


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("window") / "rec"
    cf.record(path, 15.0)
    yield path


def test_on_book_sees_the_same_book_under_trades_and_book_fills(rec: Path, tmp_path: Path) -> None:
    """The trades fill model (tape) and the book fill model deliver on_book through one builder and one type: the
    book model's matcher rebuilding the recorded events into its L2Book, shown as a lazy BookView of book_depth
    levels. A strategy that does not trade sees identical books, event for event, whatever the fill model."""
    (tmp_path / "book_log.py").write_text(BOOK_LOG)
    seen = {}
    for fills in ("trades", "book"):
        out = tmp_path / f"{fills}.json"
        cfg = cf.config(rec, fills, {"out": str(out)}, plugin=f"{tmp_path / 'book_log.py'}:BookLog", book_depth=5)
        assert run_backtest(cfg).outcome == "complete"
        seen[fills] = json.loads(out.read_text())
    events = book_from_store(Store(rec / "store"), MARKET)
    n = len(events.event_index()[1])
    assert n > 20 and len(seen["trades"]) == len(seen["book"]) == n  # every recorded event, once
    assert seen["trades"] == seen["book"]  # type, time, best prices, all 5 levels a side
    kinds, bids, asks = {s[0] for s in seen["book"]}, [s[4] for s in seen["book"]], [s[5] for s in seen["book"]]
    assert kinds == {"BookView"}
    assert all(len(b) == 5 and len(a) == 5 for b, a in zip(bids, asks, strict=True))
    assert all(s[2] == s[4][0][0] and s[3] == s[5][0][0] and s[2] < s[3] and s[1] == s[6] for s in seen["book"])


def _candle_range(cs: object, fills: list[Fill]) -> list[tuple[float, float, float]]:
    """(low, price, high) of the candle each fill's time falls in."""
    i = np.searchsorted(cs.time_ms, [f.time_ms for f in fills], "right") - 1  # type: ignore[attr-defined]
    return [(float(cs.low[k]), float(f.price), float(cs.high[k]))  # type: ignore[attr-defined]
            for k, f in zip(i.tolist(), fills, strict=True)]


def test_one_strategy_on_candles_trades_and_book_of_one_window(rec: Path, tmp_path: Path) -> None:
    sigs = cf.signals(rec)  # (imports the recording into <rec>/store on first use)
    assert (rec / "store" / "candles" / MARKET).is_dir()  # the window has all three kinds recorded
    store = Store(rec / "store")
    trades = trades_from_store(store, MARKET)
    cs, _ = candles_from_trades(trades, 1000)
    printed = set(trades.price.tolist())
    book_times = (book_from_store(store, MARKET).event_index()[1] // 1000).tolist()
    assert len(sigs) >= 2 and [s[1] for s in sigs[:2]] == ["buy", "sell"]

    runs = {r.label: r for r in cf.compare(rec, tmp_path)}
    for variant in ("market", "limit"):
        c, t, b = (runs[f"{variant} {m}"] for m in ("candles", "trades", "book"))
        # the same decisions: every signal, acted on at its close (candles, trades) / the next book event (book)
        for r in (c, t, b):
            assert [(d[1], d[2]) for d in r.decisions] == [(s[0], s[1]) for s in sigs], r.label
        assert [d[0] for d in c.decisions] == [d[0] for d in t.decisions] == [s[0] for s in sigs]
        assert [d[0] for d in b.decisions] == [min(x for x in book_times if x >= s[0]) for s in sigs]
        assert len(c.result.orders) == len(t.result.orders) == len(b.result.orders) >= 2
        assert [o.side for o in c.result.orders] == [o.side for o in b.result.orders]
        for r in (c, t, b):  # each order fills before the next decision (which cancels what is left of it)
            placed = {o.client_id: o.created_ms for o in r.result.orders}
            acts = [d[0] for d in r.decisions]
            for f in r.result.fills:
                later = [a for a in acts if a > placed[f.client_id]]
                assert placed[f.client_id] <= f.time_ms < (later[0] if later else 2**62), (r.label, f)
        # candle fills inside the filling candle
        assert c.result.fills and all(lo <= p <= hi for lo, p, hi in _candle_range(cs, c.result.fills))
        # trades fills at printed prices: a taker at the trade it filled on (a marketable limit: or the last one
        # before, when that trade is beyond its limit), a maker at its own price (a close) on a trade at or through
        # it (so a maker's price can lie outside the range of the candle it fills in)
        assert t.result.fills and all(float(f.price) in printed for f in t.result.fills)
        for f in t.result.fills:
            at = trades.price[trades.time_ms == f.time_ms].tolist()
            if f.maker:
                assert any((p <= float(f.price)) if f.side == "buy" else (p >= float(f.price)) for p in at), f
            else:
                before = trades.price[int(np.searchsorted(trades.time_ms, f.time_ms, "left")) - 1]
                assert float(f.price) in [*at, float(before)], f
        # book taker fills at or worse than the best price when decided
        for f in b.result.fills:
            if not f.maker:
                assert f.ref_price is not None
                assert (f.price - f.ref_price) * (1 if f.side == "buy" else -1) >= 0
    # limits: maker fills at their own price (the signal candle's close) in every model
    limit_prices = {str(Decimal(repr(s[2])).quantize(Decimal("0.01"))) for s in sigs}
    for m in ("candles", "trades", "book"):
        makers = [f for f in runs[f"limit {m}"].result.fills if f.maker]
        assert all(str(f.price) in limit_prices for f in makers), m
    # market orders: candles and trades fill identically (next candle's open == first trade at or after arrival)
    mc, mt, mb = runs["market candles"].result, runs["market trades"].result, runs["market book"].result
    assert [(f.side, f.price, f.amount, f.fee) for f in mc.fills] == \
        [(f.side, f.price, f.amount, f.fee) for f in mt.fills]
    # ... at different times: the candle model stamps the candle's open, the trades model the trade's own time
    assert all(c.time_ms <= t.time_ms < c.time_ms + 1000 for c, t in zip(mc.fills, mt.fills, strict=True))
    assert float(mc.equity[-1]) == float(mt.equity[-1])
    # the book model: slippage >= 0, growing with size (40x walks past the top level)
    big = next(r.result for label, r in runs.items() if label.startswith("market book x40"))
    small_s, big_s = slippage_summary(mb.fills), slippage_summary(big.fills)
    assert small_s is not None and big_s is not None
    assert Decimal(small_s["total_quote"]) >= 0 and big_s["mean_bps"] > small_s["mean_bps"] >= 0
    assert len(big.fills) > len(mb.fills)  # partial fills, level by level
