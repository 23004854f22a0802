"""Backfill candles from WhiteBIT's v1 kline endpoint into a candle CSV the loader reads, resumably.

`GET /api/v1/public/kline` serves at most 1,440 rows per request as [time, open, CLOSE, high, low, volume_stock,
volume_money] (docs/whitebit.md §2.2); errors come back as HTTP 200 with success false. The window is walked in
pages of `page_size` candles through the project's REST client, so the endpoint registry's rate limits and retry
policy apply. Each page is appended to the output as soon as it arrives (values copied as the exchange wrote them,
never re-rounded), so an interruption loses at most the page in flight: a re-run reads the last complete line of
the file and continues after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botkit.backtest.data import iso_time
from botkit.whitebit.rest import WhiteBitRest

KLINE_INTERVALS: dict[str, int] = {
    "1s": 1, "10s": 10, "30s": 30, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
    "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}
MAX_PAGE = 1440
HEADER = "time_ms,open,high,low,close,volume,volume_quote\n"


class FetchError(Exception):
    """The exchange refused the request or answered something that is not a kline list."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    path: Path
    rows_written: int
    rows_before: int  # already in the file from an earlier, interrupted run
    requests: int
    resumed_from_s: int | None


def interval_seconds(name: str) -> int:
    if name not in KLINE_INTERVALS:
        raise ValueError(f"interval {name!r} is not one WhiteBIT's kline serves: {', '.join(KLINE_INTERVALS)}")
    return KLINE_INTERVALS[name]


def _last_time_s(path: Path) -> tuple[int | None, int]:
    """(open time of the last complete line, in s; complete data lines). A cut-off last line is removed."""
    if not path.exists() or path.stat().st_size == 0:
        return None, 0
    data = path.read_bytes()
    if not data.startswith(HEADER.encode()):
        raise FetchError(f"{path}: exists and is not a file this command wrote (header {data[:60]!r}); "
                         "choose another --out or remove it")
    if not data.endswith(b"\n"):  # interrupted mid-line: keep only whole lines
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    lines = data.rstrip(b"\n").split(b"\n")[1:]
    if not lines:
        return None, 0
    return int(lines[-1].split(b",", 1)[0]) // 1000, len(lines)


async def fetch_candles(
    rest: WhiteBitRest,
    market: str,
    interval: str,
    start_s: int,
    end_s: int,
    out: Path,
    *,
    page_size: int = MAX_PAGE,
    progress: Callable[[str], None] | None = None,
) -> FetchResult:
    """Candles with open time in [start_s, end_s) appended to `out`, continuing after its last line if it exists."""
    iv = interval_seconds(interval)
    if not 2 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be 2..{MAX_PAGE}, got {page_size}")
    # A page asks for page_size - 1 candle slots with end = the next slot's open: whether the exchange treats end
    # as exclusive (trades before it) or inclusive (candles opening at it), a page holds at most page_size rows,
    # so `limit` never cuts one off, and a row at the next slot is dropped here and fetched with the next page.
    step = (page_size - 1) * iv
    if end_s <= start_s:
        raise ValueError(f"--to ({iso_time(end_s * 1000)}) must be after --from ({iso_time(start_s * 1000)})")
    start_s = start_s // iv * iv
    last, before = _last_time_s(out)
    resumed = None
    cursor = start_s
    if last is not None:
        resumed = last
        cursor = max(start_s, last + iv)
    out.parent.mkdir(parents=True, exist_ok=True)
    if last is None:
        out.write_text(HEADER)
    total_pages = max(1, -(-(end_s - cursor) // step))
    written = requests = 0
    page = 0
    with out.open("a", encoding="utf-8", newline="\n") as fh:
        while cursor < end_s:
            page += 1
            stop = min(cursor + step, end_s)
            doc = await rest.call("kline", {"market": market, "interval": interval, "start": cursor,
                                            "end": stop, "limit": page_size})
            requests += 1
            rows = _rows(doc, market, interval)
            lines = []
            for r in rows:
                t = int(r[0])
                if t < cursor or t >= stop:
                    continue  # outside the asked window (an exchange that pads): not ours to keep
                if t % iv:
                    raise FetchError(f"kline row at {t} is not aligned to {interval} ({iv} s)")
                lines.append(f"{t * 1000},{r[1]},{r[3]},{r[4]},{r[2]},{r[5]},{r[6]}\n")
            lines.sort(key=lambda line: int(line.split(",", 1)[0]))
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
            written += len(lines)
            if progress is not None:
                progress(f"page {page}/{total_pages}: {iso_time(cursor * 1000)} .. {iso_time(stop * 1000)} "
                         f"{len(lines)} candles ({before + written} in {out})")
            cursor = stop
    return FetchResult(out, written, before, requests, resumed)


def _rows(doc: Any, market: str, interval: str) -> list[list[Any]]:
    if not isinstance(doc, dict) or not doc.get("success"):
        message = doc.get("message") if isinstance(doc, dict) else doc
        raise FetchError(f"kline {market} {interval}: the exchange refused the request: {message}")
    rows = doc.get("result")
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) >= 7 for r in rows):
        raise FetchError(f"kline {market} {interval}: expected a list of 7-field rows, got {str(rows)[:120]}")
    return rows
