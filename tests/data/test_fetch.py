"""`botkit data fetch` against the sandbox's v1 kline over a real socket: paging, WhiteBIT's column order, values
copied exactly, resuming after an interruption, and the CLI writing the CSV and the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from botkit.backtest.data import load_candles
from botkit.backtest.fetch import FetchError, fetch_candles
from botkit.backtest.store import Store
from botkit.cli import main
from botkit.sandbox.testing import running_sandbox, test_config
from botkit.whitebit.rest import WhiteBitRest


@pytest_asyncio.fixture
async def sandbox():
    async with running_sandbox(test_config()) as sb:
        yield sb


def _window(sb) -> tuple[int, int]:
    now = int(sb.clock())
    end = now // 60 * 60  # the current minute is still open: stop before it
    return end - 70 * 60, end


async def _reference(sb, start: int, end: int) -> list[str]:
    """One direct request, parsed here: [t, open, close, high, low, vol_stock, vol_money] -> the CSV's order."""
    async with httpx.AsyncClient() as http:
        r = await http.get(sb.base_url + "/api/v1/public/kline",
                           params={"market": "BTC_USDT", "interval": "1m", "start": start, "end": end, "limit": 1440})
    rows = r.json()["result"]
    return [f"{t * 1000},{o},{h},{lo},{c},{v},{q}" for t, o, c, h, lo, v, q in rows if start <= t < end]


class Stop(Exception):
    pass


async def test_paged_fetch_equals_one_direct_request_and_resumes_after_an_interruption(sandbox, tmp_path):
    start, end = _window(sandbox)
    want = await _reference(sandbox, start, end)
    assert len(want) >= 55  # the sandbox's hour of history, one print a minute

    async with httpx.AsyncClient() as http:
        rest = WhiteBitRest(sandbox.base_url, http)
        whole = tmp_path / "whole.csv"
        said: list[str] = []
        res = await fetch_candles(rest, "BTC_USDT", "1m", start, end, whole, page_size=10, progress=said.append)
        assert whole.read_text().splitlines()[1:] == want  # exact strings, columns reordered, nothing re-rounded
        assert res.requests == rest.attempts == len(said) == 8  # 70 minutes in pages of 9 candle slots
        assert said[0].startswith("page 1/8:") and res.resumed_from_s is None

        part = tmp_path / "part.csv"
        pages = 0

        def interrupt(text: str) -> None:
            nonlocal pages
            pages += 1
            if pages == 3:
                raise Stop  # like Ctrl-C right after the third page was written

        with pytest.raises(Stop):
            await fetch_candles(rest, "BTC_USDT", "1m", start, end, part, page_size=10, progress=interrupt)
        kept = part.read_text().splitlines()
        assert 1 < len(kept) < len(want) + 1
        with part.open("a") as fh:
            fh.write("1700000000000,1.0,2")  # a line cut off by the interruption
        again = await fetch_candles(rest, "BTC_USDT", "1m", start, end, part, page_size=10)
        assert again.resumed_from_s == int(kept[-1].split(",")[0]) // 1000
        assert again.rows_before == len(kept) - 1 and again.requests < 8
        assert part.read_text() == whole.read_text()
        done = await fetch_candles(rest, "BTC_USDT", "1m", start, end, part, page_size=10)
        assert done.rows_written == 0  # nothing left to fetch
        assert part.read_text() == whole.read_text()

        loaded = load_candles(whole, "BTC_USDT", repair=["allow_gaps"])
        assert len(loaded) == len(want) and loaded.timeframe_ms == 60_000

        with pytest.raises(FetchError, match="Market is not available"):
            await fetch_candles(rest, "NOPE_USDT", "1m", start, end, tmp_path / "x.csv")
        with pytest.raises(ValueError, match="interval '7m'"):
            await fetch_candles(rest, "BTC_USDT", "7m", start, end, tmp_path / "y.csv")


async def test_cli_fetch_writes_the_csv_and_the_store(sandbox, tmp_path, capsys):
    start, end = _window(sandbox)
    want = await _reference(sandbox, start, end)
    args = ["data", "fetch", "--market", "BTC_USDT", "--interval", "1m",
            "--from", datetime.fromtimestamp(start, tz=UTC).isoformat(),
            "--to", datetime.fromtimestamp(end, tz=UTC).isoformat(),
            "--out", str(tmp_path / "c.csv"), "--store", str(tmp_path / "store"), "--base-url", sandbox.base_url]
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr()
    assert f"{len(want)} candles fetched in 1 request(s)" in out.out
    assert "page 1/1" in out.err
    table = Store(tmp_path / "store").read("candles", "BTC_USDT")
    assert table.column("time_ms").to_pylist() == [int(line.split(",")[0]) for line in want]
    assert table.column("close").to_pylist() == [float(line.split(",")[4]) for line in want]
    assert await asyncio.to_thread(main, args) == 0  # re-run: resumes at the end, nothing new
    assert "0 candles fetched" in capsys.readouterr().out
