"""Importers for the trade files users have: CSV (with or without a side column), freqtrade trades JSON(.gz),
Kraken-style `time_s,price,volume`. The result is numpy columns (`TradeSeries`), mapped onto a WhiteBIT market name.

Same rules as the candle loader (botkit/backtest/data.py): a bad file stops the import with the file, the line and
the fix; repairs (sort, drop identical duplicates) happen only when named and are listed in `TradeSeries.repairs`;
nothing is dropped silently. CSV is read by pyarrow's CSV reader (typed columns in one pass); when it rejects a file,
a line-by-line parse finds and names the bad line.
Order books have their own module (botkit/backtest/books.py).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from botkit.backtest.data import DataError, iso_time

TRADE_REPAIRS: tuple[str, ...] = ("sort", "drop_duplicates")
TradeFmt = Literal["auto", "csv", "freqtrade"]
SIDE_BUY, SIDE_SELL, SIDE_UNKNOWN = 1, -1, 0
_SIDES = {"buy": SIDE_BUY, "b": SIDE_BUY, "sell": SIDE_SELL, "s": SIDE_SELL, "": SIDE_UNKNOWN}
_TIME_COLUMNS = (("time_ms", 1), ("timestamp_ms", 1), ("time_s", 1000), ("time", 1000))
_AMOUNT_COLUMNS = ("amount", "volume", "qty", "quantity", "size")
NO_ID = -1  # trades without an exchange id (Kraken-style files)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class TradeSeries:
    """One market's public trades as numpy columns. side: +1 taker buy, -1 taker sell, 0 unknown (no side column);
    id: the exchange's trade id, -1 when the source has none."""

    market: str
    time_ms: I64
    id: I64
    price: F64
    amount: F64
    side: I8
    source: str
    repairs: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.time_ms)

    def __repr__(self) -> str:
        span = f"{iso_time(int(self.time_ms[0]))} .. {iso_time(int(self.time_ms[-1]))}" if len(self) else "empty"
        return f"TradeSeries(market={self.market!r}, rows={len(self)}, span={span}, source={self.source!r})"

    def to_arrow(self) -> pa.Table:
        return pa.table({"time_ms": self.time_ms, "id": self.id, "price": self.price, "amount": self.amount,
                         "side": self.side})

    @classmethod
    def from_arrow(cls, table: pa.Table, market: str, source: str) -> TradeSeries:
        def col(name: str, dtype: type) -> Any:
            return table.column(name).to_numpy().astype(dtype, copy=False)

        return cls(market, col("time_ms", np.int64), col("id", np.int64), col("price", np.float64),
                   col("amount", np.float64), col("side", np.int8), source)


def load_trades(path: str | Path, market: str, *, fmt: TradeFmt = "auto", repair: Iterable[str] = ()) -> TradeSeries:
    """Import one trade file, validate every row, apply only the named repairs."""
    p = Path(path)
    src = str(path)
    repairs = tuple(dict.fromkeys(repair))
    bad = [r for r in repairs if r not in TRADE_REPAIRS]
    if bad:
        raise ValueError(f"unknown trade repair {', '.join(bad)}: choose from {', '.join(TRADE_REPAIRS)}")
    if not market:
        raise ValueError("market must be a WhiteBIT market name such as 'XRP_ETH'")
    if not p.is_file():
        raise DataError(src, None, "no such file", "Check the path (data files are read, never created).")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if fmt == "auto":
        fmt = "freqtrade" if raw.lstrip()[:1] == b"[" else "csv"
    cols = _read_freqtrade(raw, src) if fmt == "freqtrade" else _read_csv(raw, src)
    return _validate(market, src, *cols, repairs=repairs)


# ---- CSV ------------------------------------------------------------------------------------------------------------


def _header(raw: bytes, src: str) -> list[str]:
    first = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lstrip("\ufeff")
    names = [n.strip().lower() for n in first.split(",")]
    if not first or not any(n in names for n, _ in _TIME_COLUMNS) or "price" not in names:
        raise DataError(src, 1, f"header {first[:80]!r} has no time and price columns",
                        "The first line must name the columns, e.g. time_ms,id,side,price,amount or "
                        "time_s,price,volume.")
    return names


def _read_csv(raw: bytes, src: str) -> tuple[I64, I64, F64, F64, I8]:
    names = _header(raw, src)
    tcol, scale = next((n, s) for n, s in _TIME_COLUMNS if n in names)
    acol = next((n for n in _AMOUNT_COLUMNS if n in names), None)
    if acol is None:
        raise DataError(src, 1, f"no amount column in the header ({', '.join(names)})",
                        f"Name the traded amount one of {', '.join(_AMOUNT_COLUMNS)}.")
    types: dict[str, pa.DataType] = {tcol: pa.int64() if scale == 1 else pa.float64(), "price": pa.float64(),
                                     acol: pa.float64()}
    if "id" in names:
        types["id"] = pa.int64()
    if "side" in names:
        types["side"] = pa.string()
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        if any(table.column(c).null_count for c in types if c != "side"):
            raise pa.ArrowInvalid("empty field")
    except pa.ArrowInvalid:
        _find_bad_csv_line(raw, src, names, tcol, acol)
        raise  # the line-by-line parse found nothing: surface pyarrow's own message
    if scale == 1:
        t = table.column(tcol).to_numpy().astype(np.int64)
    else:
        secs = table.column(tcol).to_numpy()
        t = np.rint(secs * 1000).astype(np.int64)
    ids = table.column("id").to_numpy().astype(np.int64) if "id" in names else np.full(len(t), NO_ID, np.int64)
    if "side" in names:
        side = _sides(table.column("side").to_numpy(zero_copy_only=False), src, first_line=2)
    else:
        side = np.zeros(len(t), np.int8)
    return t, ids, table.column("price").to_numpy(), table.column(acol).to_numpy(), side


def _find_bad_csv_line(raw: bytes, src: str, names: list[str], tcol: str, acol: str) -> None:
    """The slow path: name the first line pyarrow could not convert."""
    reader = csv.reader(io.StringIO(raw.decode("utf-8", "replace")))
    next(reader, None)
    want = {tcol: int if tcol in ("time_ms", "timestamp_ms") else float, "price": float, acol: float}
    if "id" in names:
        want["id"] = int
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise DataError(src, lineno, f"{len(row)} fields where the header has {len(names)}",
                            "Fix or remove this line (a cut-off write?).")
        for name, conv in want.items():
            text = row[names.index(name)].strip()
            try:
                conv(text)
            except ValueError:
                raise DataError(src, lineno, f"{name} {text!r} is not a number",
                                "Fix the value or remove the line.") from None


def _sides(values: Any, src: str, first_line: int) -> I8:
    """'buy'/'sell' (any case, or b/s) -> +1/-1; anything else names its line."""
    lowered = np.char.lower(np.char.strip(np.asarray(values, dtype=str)))
    out = np.zeros(len(lowered), np.int8)
    known = np.zeros(len(lowered), bool)
    for text, code in _SIDES.items():
        hit = lowered == text
        out[hit] = code
        known |= hit
    if not known.all():
        i = int(np.argmin(known))
        raise DataError(src, first_line + i, f"side {values[i]!r} is neither buy nor sell",
                        "Write buy or sell (the taker's side), or leave the field empty when it is unknown.")
    return out


# ---- freqtrade ------------------------------------------------------------------------------------------------------


def _read_freqtrade(raw: bytes, src: str) -> tuple[I64, I64, F64, F64, I8]:
    """freqtrade's trades: a JSON list of [time_ms, id, order_type, side, price, amount, cost]."""
    try:
        rows = json.loads(raw)
    except ValueError as exc:
        raise DataError(src, None, f"not valid JSON ({exc})",
                        "Re-export the file (freqtrade download-data --dl-trades).") from None
    if not isinstance(rows, list):
        raise DataError(src, None, "is not a JSON list", "A freqtrade trades file is a list of 7-element lists.")
    n = len(rows)
    t = np.empty(n, np.int64)
    ids = np.empty(n, np.int64)
    price = np.empty(n, np.float64)
    amount = np.empty(n, np.float64)
    sides: list[str] = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, list) or len(row) != 7:
                raise ValueError(f"has {len(row) if isinstance(row, list) else 'no'} fields, 7 expected")
            t[i] = int(row[0])
            ids[i] = int(row[1]) if row[1] not in (None, "") else NO_ID
            price[i] = float(row[4])
            amount[i] = float(row[5])
            sides.append(str(row[3] or ""))
        except (TypeError, ValueError) as exc:
            raise DataError(src, i + 1, f"element {i + 1} ({str(row)[:80]}) {exc}",
                            "Each element is [time_ms, id, order_type, side, price, amount, cost]; "
                            "fix or remove it.") from None
    side = _sides(np.asarray(sides, dtype=str), src, first_line=1)
    return t, ids, price, amount, side


# ---- checks ---------------------------------------------------------------------------------------------------------


def _validate(market: str, src: str, t: I64, ids: I64, price: F64, amount: F64, side: I8,
              repairs: tuple[str, ...]) -> TradeSeries:
    line0 = 2 if not src.endswith((".json", ".json.gz")) else 1
    done: list[str] = []
    if len(t) == 0:
        raise DataError(src, None, "has no trades", "Check the file (an empty export?).")
    for name, col in (("price", price), ("amount", amount)):
        bad = ~np.isfinite(col) | (col <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(src, line0 + i, f"{name} {float(col[i])!r} is not a positive number",
                            "Fix or remove the line; trades with zero or negative values are not real prints.")
    back = np.diff(t) < 0
    if back.any():
        if "sort" not in repairs:
            i = int(np.argmax(back)) + 1
            raise DataError(src, line0 + i, f"time {iso_time(int(t[i]))} is before the previous line's "
                            f"{iso_time(int(t[i - 1]))}", "Sort the file by time, or pass repair=['sort'].")
        order = np.argsort(t, kind="stable")
        t, ids, price, amount, side = t[order], ids[order], price[order], amount[order], side[order]
        done.append(f"sort: {int(back.sum())} out-of-order line(s) moved into time order")
    if (ids != NO_ID).any():
        order = np.argsort(ids, kind="stable")
        dup_sorted = np.diff(ids[order]) == 0
        dup_sorted &= ids[order][1:] != NO_ID
        if dup_sorted.any():
            dup_rows = np.sort(order[1:][dup_sorted])
            i = int(dup_rows[0])
            if "drop_duplicates" not in repairs:
                raise DataError(src, line0 + i, f"trade id {int(ids[i])} appears twice",
                                "Remove the repeated line, or pass repair=['drop_duplicates'] (identical rows only).")
            first = {int(ids[j]): j for j in order[::-1]}
            for j in dup_rows:
                k = first[int(ids[j])]
                if (t[j], price[j], amount[j], side[j]) != (t[k], price[k], amount[k], side[k]):
                    raise DataError(src, line0 + int(j), f"trade id {int(ids[j])} appears twice with different "
                                    "values", "Only identical duplicates are dropped; fix the source.")
            keep = np.ones(len(t), bool)
            keep[dup_rows] = False
            t, ids, price, amount, side = t[keep], ids[keep], price[keep], amount[keep], side[keep]
            done.append(f"drop_duplicates: {len(dup_rows)} identical repeated trade(s) removed")
    for arr in (t, ids, price, amount, side):
        arr.setflags(write=False)
    return TradeSeries(market, t, ids, price, amount, side, src, tuple(done))
