"""`botkit record` against the real sandbox over sockets: frames stored as received, a replay through the live
parser equals what the live client produced, disconnects and depth breaks are in the manifest, and a recording
becomes store datasets that a candle backtest runs on."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest_asyncio

from botkit.backtest.data import CandleSeries
from botkit.backtest.recordings import to_store
from botkit.backtest.replay import Backtest
from botkit.backtest.store import Store
from botkit.market.grants import Grant
from botkit.market.rules import MarketRules
from botkit.recorder import RecordSpec, ReplayStats, lines, read_manifest, recording, replay
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.strategy import Strategy
from botkit.whitebit.ws import BookChanged, BookTop, CandleRow, DepthGap, LastPrice, TradePrinted, WsEvent

COMPARED = (TradePrinted, BookChanged, DepthGap, BookTop, LastPrice)


def busy_config():
    """The test config with a print every 50 ms per market, so a few seconds hold many trades and candles."""
    cfg = test_config()
    markets = [m.model_copy(update={"liquidity": m.liquidity.model_copy(update={"tick_interval": 0.05})})
               for m in cfg.markets]
    return cfg.model_copy(update={"markets": markets})


@pytest_asyncio.fixture
async def sandbox():
    async with running_sandbox(busy_config()) as sb:
        yield sb


async def _record(sb: Sandbox, out: Path, seconds: float, spec: RecordSpec, during=None) -> list[WsEvent]:
    live: list[WsEvent] = []
    async with recording(sb.ws_url, spec, out, on_event=lambda m, ev: live.append(ev), ping_interval=5,
                         backoff_base=0.05) as rec:
        if during is not None:
            await during(rec)
        await asyncio.sleep(seconds)
    return live


def _raw_frames(out: Path) -> list[dict[str, Any]]:
    """Independent read of the files: gzip + json, no botkit code."""
    got = []
    for f in sorted(out.glob("frames-*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            got += [json.loads(line) for line in fh]
    return got


async def test_replay_through_the_parser_equals_what_the_live_client_produced(sandbox, tmp_path):
    spec = RecordSpec(["BTC_USDT"], ["trades", "depth", "candles", "bookTicker"], interval_s=1, depth_limit=20,
                      rotate_bytes=20_000)
    out = tmp_path / "rec"
    live = await _record(sandbox, out, 3.0, spec)
    stats = ReplayStats()
    replayed = [ev for _, ev in replay(out, stats)]
    want = [ev for ev in live if isinstance(ev, COMPARED)]
    got = [ev for ev in replayed if isinstance(ev, COMPARED)]
    assert sum(isinstance(e, TradePrinted) for e in want) > 10
    assert sum(isinstance(e, BookChanged) for e in want) > 10
    assert sum(isinstance(e, BookTop) for e in want) > 0
    assert got == want
    assert stats.malformed == 0 and stats.truncated == []

    raw = _raw_frames(out)
    manifest = read_manifest(out)
    assert manifest["frames"] == len(raw) == stats.frames
    assert len(manifest["files"]) > 1, "20 kB rotation must have produced several files"
    assert sum(f["lines"] for f in manifest["files"]) == len(raw)
    assert manifest["span"]["first"] == raw[0]["t"] and manifest["span"]["last"] == raw[-1]["t"]
    assert manifest["reconnects"] == 0 and manifest["gaps"] == [] and manifest["resyncs"] == []
    # frames are stored exactly as received: every one is the server's compact JSON text, untouched
    trades_items = 0
    for rec in raw:
        msg = json.loads(rec["f"])
        if msg.get("method") == "trades_update":
            trades_items += len(msg["params"][1])
    assert trades_items == sum(isinstance(e, TradePrinted) for e in got)
    assert all(r["t"] <= s["t"] for r, s in itertools.pairwise(raw))


async def test_a_disconnect_is_a_gap_and_a_depth_break_a_resync_point(sandbox, tmp_path):
    spec = RecordSpec(["BTC_USDT"], ["trades", "depth"], depth_limit=20)
    out = tmp_path / "rec"

    async def faults(rec):
        await asyncio.sleep(0.8)
        sandbox.hub.drop_all()  # the server closes every socket: the recorder must reconnect and resubscribe
        end = asyncio.get_running_loop().time() + 8
        while rec.reconnects < 1:
            assert asyncio.get_running_loop().time() < end, "no reconnect"
            await asyncio.sleep(0.02)
        sandbox.set_faults(skip_depth_ids=0.5)
        while not rec.resyncs:
            assert asyncio.get_running_loop().time() < end, "no depth break detected"
            await asyncio.sleep(0.02)
        sandbox.set_faults(skip_depth_ids=0.0)

    live = await _record(sandbox, out, 1.0, spec, during=faults)
    manifest = read_manifest(out)
    assert manifest["reconnects"] == 1
    (gap,) = manifest["gaps"]
    assert gap["market"] == "BTC_USDT" and gap["to"] is not None and gap["from"] <= gap["to"]
    assert manifest["resyncs"] and manifest["resyncs"][0]["market"] == "BTC_USDT"
    raw = _raw_frames(out)
    # resubscribed: trades and depth frames arrive after the gap closed
    after = [json.loads(r["f"]).get("method") for r in raw if "f" in r and r["t"] > gap["to"]]
    assert "trades_update" in after and "depth_update" in after
    assert sum(1 for r in raw if r.get("event") == "disconnected") == 1
    # the replay still equals the live events, across the reconnect and the resync
    got = [ev for _, ev in replay(out) if isinstance(ev, COMPARED)]
    want = [ev for ev in live if isinstance(ev, COMPARED)]
    assert sum(isinstance(e, DepthGap) for e in got) == len(manifest["resyncs"]) >= 1
    assert got == want

    store = Store(tmp_path / "store")
    made = to_store(out, store)
    book = made["book/BTC_USDT"].table
    resync_rows = book.filter(np.asarray(book.column("resync").to_numpy() == 1))
    snapshots_after_breaks = {int(t) for t in resync_rows.column("time_us").to_numpy()}
    # one resync snapshot per break (reconnect + each depth gap), each a full reload
    assert len(snapshots_after_breaks) == 1 + len(manifest["resyncs"])
    assert set(resync_rows.column("snapshot").to_numpy().tolist()) == {1}


class CountCandles(Strategy):
    scopes = frozenset({"orders.create"})

    def __init__(self) -> None:
        super().__init__()
        self.closes: list[float] = []

    def on_candle(self, ctx, candle) -> None:  # type: ignore[no-untyped-def]
        self.closes.append(candle.close)
        if len(self.closes) == 1:
            ctx.buy("BTC_USDT", Decimal("100"))  # at market: 100 USDT to spend


async def test_a_recording_goes_into_the_store_and_a_candle_backtest_runs_on_it(sandbox, tmp_path):
    spec = RecordSpec(["BTC_USDT"], ["trades", "depth", "candles"], interval_s=1, depth_limit=20)
    out = tmp_path / "rec"
    await _record(sandbox, out, 4.0, spec)
    store = Store(tmp_path / "store")
    lines_seen: list[str] = []
    made = to_store(out, store, progress=lines_seen.append)
    assert all(i.rebuilt for i in made.values()) and len(lines_seen) == 3

    # trades: equal to an independent parse of the trades_update frames (strings -> float here, not in botkit)
    expect = []
    candle_rows: dict[int, list[Any]] = {}
    for rec in _raw_frames(out):
        msg = json.loads(rec["f"])
        if msg.get("method") == "trades_update":
            expect += [(int(float(it["time"]) * 1000), int(it["id"]), float(it["price"]), float(it["amount"]))
                       for it in msg["params"][1]]
        elif msg.get("method") == "candles_update":
            for row in msg["params"]:
                candle_rows[int(row[0])] = row
    tr = store.read("trades", "BTC_USDT")
    got = list(zip(*(tr.column(c).to_numpy().tolist() for c in ("time_ms", "id", "price", "amount")), strict=True))
    assert got == sorted(expect) and len(got) > 10

    # candles: every candle that a newer one followed, with its last received values ([t, o, c, h, l, v, ...])
    cd = store.read("candles", "BTC_USDT")
    closed = sorted(candle_rows)[:-1]  # the last one was still open when the recording stopped
    assert cd.column("time_ms").to_numpy().tolist() == [t * 1000 for t in closed]
    assert cd.column("close").to_numpy().tolist() == [float(candle_rows[t][2]) for t in closed]
    assert cd.column("high").to_numpy().tolist() == [float(candle_rows[t][3]) for t in closed]
    assert len(closed) >= 2

    series = CandleSeries("BTC_USDT", 1000, *(cd.column(c).to_numpy() for c in
                                                ("time_ms", "open", "high", "low", "close", "volume")),
                          source=str(out))
    rules = MarketRules("BTC_USDT", "BTC", "USDT", stock_prec=6, money_prec=2, min_amount=Decimal("0.00001"),
                        min_total=Decimal("1"))
    strategy = CountCandles()
    result = Backtest(strategy, [series], {"BTC_USDT": rules}, {"USDT": Decimal("100000")},
                      grant=Grant.of("orders.create")).run()
    assert strategy.closes == cd.column("close").to_numpy().tolist()
    assert result.events == len(closed)
    assert len(result.fills) == 1  # the market buy after the first candle filled at the second one's open
    second = {c: float(cd.column(c).to_numpy()[1]) for c in ("low", "high")}
    assert second["low"] * 0.99 <= float(result.fills[0].price) <= second["high"] * 1.01

    # a second load reads the store; only a changed recording rebuilds
    again = to_store(out, store)
    assert not any(i.rebuilt for i in again.values())
    files = sorted(out.glob("frames-*.jsonl.gz"))
    with gzip.open(files[-1], "ab") as fh:
        fh.write(json.dumps({"t": 2e9, "c": 0, "f": '{"id":null,"method":"lastprice_update",'
                                                     '"params":["BTC_USDT","1"]}'}).encode() + b"\n")
    changed = to_store(out, store)
    assert all(i.rebuilt and i.reason == "source content changed" for i in changed.values())


def test_a_cut_off_recording_replays_its_readable_part(tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    frames = [{"t": 1.0 + i, "c": 0, "f": json.dumps({"id": None, "method": "lastprice_update",
                                                      "params": ["BTC_USDT", str(100 + i)]})} for i in range(50)]
    blob = gzip.compress(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
    (out / "frames-20260101T000000-00000.jsonl.gz").write_bytes(blob[: len(blob) - 12])  # lose the gzip trailer
    (out / "manifest.json").write_text(json.dumps({"format": "botkit-ws-recording/1", "markets": ["BTC_USDT"],
                                                   "channels": ["trades"], "interval_s": 60, "depth_limit": 20}))
    stats = ReplayStats()
    prices = [ev.price for _, ev in replay(out, stats) if isinstance(ev, LastPrice)]
    assert stats.truncated == ["frames-20260101T000000-00000.jsonl.gz"]
    assert prices == [100.0 + i for i in range(len(prices))] and len(prices) >= 45
    assert len(list(lines(out))) == len(prices)
    assert not any(isinstance(ev, CandleRow) for _, ev in replay(out))


async def test_record_and_import_commands(sandbox, tmp_path, capsys):
    from botkit.cli import main

    out = tmp_path / "rec"
    args = ["record", "--market", "BTC_USDT", "--channels", "trades,depth,bookTicker", "--url", sandbox.ws_url,
            "--seconds", "1.5", "--out", str(out), "--rotate-minutes", "0.01"]
    assert await asyncio.to_thread(main, args) == 0
    text = capsys.readouterr()
    manifest = read_manifest(out)
    assert manifest["markets"] == ["BTC_USDT"] and manifest["channels"] == ["trades", "depth", "bookTicker"]
    assert manifest["frames"] > 5 and manifest["ended"] is not None
    files = manifest["files"]  # rotated every 0.6 s: a new file about every 0.6 s of frames
    assert len(files) >= 2 and [f["name"] for f in files] == sorted(p.name for p in out.glob("frames-*.jsonl.gz"))
    assert all(a["last"] <= b["first"] for a, b in itertools.pairwise(files))
    assert files[1]["first"] - files[0]["first"] >= 0.6
    assert f"{manifest['frames']:,} frames" in text.out
    assert await asyncio.to_thread(main, args) == 2  # never appends to (or overwrites) an existing recording
    assert "already holds a recording" in capsys.readouterr().err

    store = tmp_path / "store"
    assert main(["data", "import", "recording", str(out), "--store", str(store)]) == 0
    first = capsys.readouterr().out
    assert "trades/BTC_USDT: imported" in first and "book/BTC_USDT: imported" in first
    assert "candles/" not in first  # not recorded, so not invented
    assert main(["data", "import", "recording", str(out), "--store", str(store)]) == 0
    assert "book/BTC_USDT: unchanged" in capsys.readouterr().out
    assert main(["data", "store", "--store", str(store)]) == 0
    listing = capsys.readouterr().out
    assert "book/BTC_USDT:" in listing and "trades/BTC_USDT:" in listing


def test_import_command_names_the_bad_line(shared_data, tmp_path, capsys):
    from botkit.cli import main

    src = (shared_data / "trades" / "XRP_ETH_trades.csv").read_text().splitlines()
    bad = tmp_path / "t.csv"
    bad.write_text("\n".join([*src[:4], src[4].replace("sell", "?").replace("buy", "?"), *src[5:9]]) + "\n")
    assert main(["data", "import", "trades", str(bad), "--market", "XRP_ETH", "--store", str(tmp_path / "s")]) == 2
    assert "t.csv:5: side '?'" in capsys.readouterr().err
    good = shared_data / "trades" / "XRP_ETH_trades.csv"
    assert main(["data", "import", "trades", str(good), "--market", "XRP_ETH", "--store", str(tmp_path / "s")]) == 0
    assert "12,477 rows" in capsys.readouterr().out


def test_record_config_in_sandbox_mode_records_the_embedded_sandbox(tmp_path, capsys):
    from botkit.cli import main

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "rec"
    code = main(["record", str(root / "configs" / "sandbox_sma.toml"), "--channels", "trades,depth,candles",
                 "--seconds", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest["markets"] == ["BTC_USDT"] and manifest["interval_s"] == 1  # [markets] and [run] interval
    assert manifest["url"].startswith("ws://127.0.0.1:")
    assert "recording the embedded sandbox" in capsys.readouterr().err
    methods = {json.loads(r["f"]).get("method") for r in _raw_frames(out) if "f" in r}
    assert "depth_update" in methods
