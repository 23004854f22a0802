"""`botkit record` against the real sandbox, then `botkit backtest` of that recording: the strategy's `on_trade`
runs on exactly the recorded trades (and `on_book` on every recorded book event), and its orders fill from them
(fills = "trades")."""

from __future__ import annotations

import asyncio
import gzip
import json
import textwrap
from pathlib import Path

import pytest_asyncio

from botkit.backtest.datasets import book_from_store
from botkit.backtest.store import Store
from botkit.cli import main
from botkit.sandbox.testing import running_sandbox, test_config

STRATEGY = '''
import json
from pydantic import BaseModel
from botkit import Strategy


class Out(BaseModel):
    out: str


class Tape(Strategy):
    """Writes every trade it sees to params.out; rests one buy a little below the first price."""

    Params = Out

    def __init__(self, params=None):
        super().__init__(params)
        self.seen = []
        self.fills = []
        self.books = []

    def on_trade(self, ctx, trade):
        self.seen.append([trade.time_ms, trade.price, trade.amount, trade.side])
        if len(self.seen) == 1:
            ctx.buy(trade.market, "0.001", f"{trade.price * 0.9995:.2f}")

    def on_book(self, ctx, book):
        self.books.append([book.time_ms, book.best_bid, book.best_ask])

    def on_fill(self, ctx, fill):
        self.fills.append([fill.time_ms, str(fill.price), str(fill.amount)])

    def on_stop(self, ctx):
        with open(self.params.out, "w") as fh:
            json.dump({"trades": self.seen, "fills": self.fills, "books": self.books}, fh)
'''


def busy_config():
    cfg = test_config()
    markets = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"tick_interval": 0.05})})
               for m in cfg.markets]
    return cfg.model_copy(update={"markets": markets})


@pytest_asyncio.fixture
async def sandbox():
    async with running_sandbox(busy_config()) as sb:
        yield sb


def recorded_trades(rec: Path) -> list[tuple[int, float, float, str]]:
    """An independent read of the trades_update frames (json here; botkit's parser in the backtest)."""
    out = []
    for path in sorted(rec.glob("frames-*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            frame = json.loads(line)
            msg = json.loads(frame.get("f") or "{}")
            if msg.get("method") == "trades_update":
                out += [(int(float(it["time"]) * 1000), float(it["price"]), float(it["amount"]), it["type"])
                        for it in msg["params"][1]]
    return out


async def test_a_backtest_of_a_recording_replays_exactly_the_recorded_trades(sandbox, tmp_path, capsys):
    rec = tmp_path / "rec"
    args = ["record", "--market", "BTC_USDT", "--channels", "trades,depth", "--url", sandbox.ws_url, "--seconds", "2.5",
            "--out", str(rec)]
    assert await asyncio.to_thread(main, args) == 0
    capsys.readouterr()
    (tmp_path / "tape.py").write_text(STRATEGY)
    seen_file = tmp_path / "seen.json"
    cfg = tmp_path / "bt.toml"
    cfg.write_text(textwrap.dedent(f'''
        [strategy]
        plugin = "{tmp_path / 'tape.py'}:Tape"
        params = {{ out = "{seen_file}" }}
        [markets.BTC_USDT]
        stock_prec = 6
        money_prec = 2
        [balances]
        USDT = "100000"
        [data]
        feed = ["trades", "book"]
        [backtest]
        fills = "trades"
        progress = false
        [output]
        dir = "{tmp_path / 'out'}"
        '''))
    assert main(["backtest", str(cfg), "--data", str(rec)]) == 0
    out = capsys.readouterr().out
    expect = recorded_trades(rec)
    got = json.loads(seen_file.read_text())
    assert len(expect) > 10
    assert sorted(tuple(t) for t in got["trades"]) == sorted(expect)  # the same trades: count, prices, amounts
    assert [t[1] for t in got["trades"]] == [t[1] for t in sorted(expect, key=lambda r: r[0])]
    books = book_from_store(Store(rec / "store"), "BTC_USDT")
    n_books = sum(1 for _ in books.events())
    assert n_books > 5 and len(got["books"]) == n_books  # every recorded book event reached on_book
    assert all(b[1] is not None and b[2] is not None and b[1] < b[2] for b in got["books"])
    assert f"{len(expect) + n_books:,} trades and book events in" in out
    prices = [t[1] for t in expect]
    for _, price, amount in got["fills"]:  # fills only at prices the recording printed through
        assert min(prices) <= float(price) <= max(prices) and float(amount) > 0
    assert (rec / "store" / "trades" / "BTC_USDT").is_dir()  # the recording went into <recording>/store


def test_missing_datasets_and_sources_are_clear_errors(tmp_path, capsys):
    cfg = tmp_path / "bt.toml"
    body = textwrap.dedent('''
        [strategy]
        plugin = "strategies/sma_cross.py:SmaCross"
        [markets.XRP_ETH]
        stock_prec = 2
        money_prec = 8
        [balances]
        ETH = "10"
        [backtest]
        fills = "trades"
        ''')
    cfg.write_text(body)
    assert main(["backtest", str(cfg)]) == 2
    assert "[data] files is empty" in capsys.readouterr().err
    store = tmp_path / "store"
    (store / "candles").mkdir(parents=True)  # a store, but without trades
    assert main(["backtest", str(cfg), "--data", str(store)]) == 2
    err = capsys.readouterr().err
    assert "no trades dataset for XRP_ETH" in err and "botkit data import trades FILE --market XRP_ETH" in err
    cfg.write_text(body.replace('fills = "trades"', 'fills = "book"'))
    assert main(["backtest", str(cfg), "--data", str(store)]) == 2
    err = capsys.readouterr().err
    assert 'fills = "book"' in err and ("not available yet" in err or "book dataset" in err)
