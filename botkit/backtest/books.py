"""Order-book data as level rows: importers (Binance-style snapshot + incremental updates, wide top-N snapshots,
WhiteBIT depth frames) and the rebuild with update-id checks.

One row per price level of one book event, so every source fits the same typed columns in the store:
time_us, update_id, prev_update_id (-1 when the source has none), snapshot (1: the event replaces the book,
0: a delta), side (+1 bid, -1 ask), price, amount (0 removes the level), resync (1 on the rows of the first event
after a break in the update-id chain). A break is never hidden: without the `mark_gaps` repair it is an error that
names the line; with it, the event is kept, flagged, and listed in `BookEvents.gaps`.
Times are µs since the epoch (the wide files carry µs; rounding them to ms would merge distinct snapshots).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from botkit.backtest.data import DataError
from botkit.venues.book_matching import RESYNC, SNAPSHOT, L2Book

BOOK_REPAIRS: tuple[str, ...] = ("mark_gaps",)
BID, ASK = 1, -1
_COLUMNS = ("time_us", "update_id", "prev_update_id", "snapshot", "side", "price", "amount", "resync")
_WIDE_RE = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")


@dataclass(frozen=True, slots=True)
class Gap:
    """A break in the update-id chain: the first event after it is a resync point."""

    line: int | None
    time_us: int
    expected: int
    got: int

    def text(self) -> str:
        where = f"line {self.line}" if self.line is not None else "a frame"
        return f"{where}: expected previous update id {self.expected}, got {self.got}"


@dataclass(slots=True)
class BookEvents:
    """Level rows of one market's book events, in event order (see the module docstring for the columns)."""

    market: str
    source: str
    cols: dict[str, npt.NDArray[Any]]
    gaps: list[Gap] = field(default_factory=list)
    repairs: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.cols["time_us"])

    def to_arrow(self) -> pa.Table:
        return pa.table({name: self.cols[name] for name in _COLUMNS})

    @classmethod
    def from_arrow(cls, table: pa.Table, market: str, source: str) -> BookEvents:
        return cls(market, source, {name: table.column(name).to_numpy() for name in _COLUMNS})

    def event_index(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Events as arrays: row starts (one more than events: the last is len(self)), each event's time_us, and
        its flags (1: snapshot, 2: resync; botkit.venues.book_matching.SNAPSHOT / RESYNC)."""
        c = self.cols
        n = len(self)
        if n == 0:
            z = np.zeros(0, dtype=np.int64)
            return np.zeros(1, dtype=np.int64), z, z
        key_change = (np.diff(c["time_us"]) != 0) | (np.diff(c["update_id"]) != 0) | (np.diff(c["snapshot"]) != 0)
        starts = np.concatenate(([0], np.flatnonzero(key_change) + 1, [n])).astype(np.int64)
        first = starts[:-1]
        flags = (c["snapshot"][first].astype(np.int64) * SNAPSHOT) | (c["resync"][first].astype(np.int64) * RESYNC)
        return starts, c["time_us"][first].astype(np.int64), flags

    def events(self) -> Iterator[slice]:
        """Row slices, one per book event (rows sharing time, update id and kind)."""
        starts = self.event_index()[0].tolist()
        for a, b in itertools.pairwise(starts):
            yield slice(int(a), int(b))

    def rebuild(self) -> Iterator[tuple[int, Book]]:
        """Apply the events in order; yields (time_us, book) after each. The same Book object is updated in place
        (the book the simulated venue fills against, botkit.venues.book_matching.L2Book)."""
        book = Book()
        c = self.cols
        side, price, amount = c["side"].tolist(), c["price"].tolist(), c["amount"].tolist()
        for s in self.events():
            if c["snapshot"][s.start]:
                book.clear()
            book.apply(side, price, amount, s.start, s.stop)
            book.update_id = int(c["update_id"][s.start])
            book.resync = bool(c["resync"][s.start])
            yield int(c["time_us"][s.start]), book


Book = L2Book  # one book class: the simulated venue's


def _check_repairs(repair: Iterable[str]) -> tuple[str, ...]:
    repairs = tuple(dict.fromkeys(repair))
    bad = [r for r in repairs if r not in BOOK_REPAIRS]
    if bad:
        raise ValueError(f"unknown book repair {', '.join(bad)}: choose from {', '.join(BOOK_REPAIRS)}")
    return repairs


def _rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    if not path.is_file():
        raise DataError(str(path), None, "no such file", "Check the path (data files are read, never created).")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    return header, ((i, row) for i, row in enumerate(reader, start=2) if row)


def _num(src: str, line: int, name: str, text: str, conv: type[int] | type[float]) -> Any:
    try:
        return conv(text)
    except ValueError:
        raise DataError(src, line, f"{name} {text!r} is not a number", "Fix the value or remove the line.") from None


class _Builder:
    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in _COLUMNS}

    def add(self, t: int, uid: int, pu: int, snap: bool, side: int, price: float, amount: float, resync: bool) -> None:
        d = self.data
        d["time_us"].append(t)
        d["update_id"].append(uid)
        d["prev_update_id"].append(pu)
        d["snapshot"].append(int(snap))
        d["side"].append(side)
        d["price"].append(price)
        d["amount"].append(amount)
        d["resync"].append(int(resync))

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        types = {"time_us": np.int64, "update_id": np.int64, "prev_update_id": np.int64, "snapshot": np.int8,
                 "side": np.int8, "price": np.float64, "amount": np.float64, "resync": np.int8}
        return {name: np.asarray(self.data[name], dtype=types[name]) for name in _COLUMNS}


_BINANCE_COLS = ("timestamp", "first_update_id", "last_update_id", "side", "update_type", "price", "qty", "pu")


def load_binance_depth(snapshot: str | Path, updates: str | Path, market: str, *,
                       repair: Iterable[str] = ()) -> BookEvents:
    """A Binance-style snapshot file plus its incremental updates (columns symbol,timestamp,first_update_id,
    last_update_id,side,update_type,price,qty,pu; timestamps in ms).

    Chain rules (Binance's): the first update applies when first_update_id <= the snapshot's last_update_id <=
    its last_update_id, or when its pu is the snapshot's id; each later update's pu is the previous update's
    last_update_id. Updates wholly older than the snapshot are an error (trim the file), never skipped quietly.
    """
    repairs = _check_repairs(repair)
    out = _Builder()
    gaps: list[Gap] = []
    last: int | None = None
    for path, is_update_file in ((Path(snapshot), False), (Path(updates), True)):
        src = str(path)
        header, rows = _rows(path)
        missing = [c for c in _BINANCE_COLS if c not in header]
        if missing:
            raise DataError(src, 1, f"header lacks {', '.join(missing)}",
                            "Binance-style depth files have columns " + ",".join(("symbol", *_BINANCE_COLS)) + ".")
        ix = {c: header.index(c) for c in _BINANCE_COLS}
        current: tuple[int, int] | None = None  # (first, last) of the event being read
        event_resync = False
        snap_id: int | None = None
        any_row = False
        for line, row in rows:
            any_row = True
            if len(row) != len(header):
                raise DataError(src, line, f"{len(row)} fields where the header has {len(header)}",
                                "Fix or remove this line (a cut-off write?).")
            kind = row[ix["update_type"]].strip().lower()
            t = _num(src, line, "timestamp", row[ix["timestamp"]], int) * 1000
            first = _num(src, line, "first_update_id", row[ix["first_update_id"]], int)
            lastu = _num(src, line, "last_update_id", row[ix["last_update_id"]], int)
            pu = _num(src, line, "pu", row[ix["pu"]], int)
            side_text = row[ix["side"]].strip().lower()
            if side_text not in ("b", "a", "bid", "ask"):
                raise DataError(src, line, f"side {side_text!r} is neither b nor a", "Write b (bid) or a (ask).")
            side = BID if side_text.startswith("b") else ASK
            price = _num(src, line, "price", row[ix["price"]], float)
            qty = _num(src, line, "qty", row[ix["qty"]], float)
            if price <= 0 or qty < 0:
                raise DataError(src, line, f"price {price} / qty {qty} out of range",
                                "Prices are positive; qty is 0 (remove the level) or positive.")
            snap = kind == "snap"
            if not snap and kind != "set":
                raise DataError(src, line, f"update_type {kind!r} is neither snap nor set",
                                "Binance-style rows are snap (snapshot level) or set (level update).")
            if snap:
                if not is_update_file and snap_id is not None and lastu != snap_id:
                    raise DataError(src, line, f"a second snapshot ({lastu}) in the snapshot file (first {snap_id})",
                                    "Give one snapshot per file; later ones belong in the updates file.")
                snap_id = lastu
                if (first, lastu) != current:
                    current = (first, lastu)
                    event_resync = False
                last = lastu
                out.add(t, lastu, -1, True, side, price, qty, False)
                continue
            if not is_update_file:
                raise DataError(src, line, "an update row in the snapshot file", "Move it to the updates file.")
            if (first, lastu) != current:  # a new event: check it chains
                current = (first, lastu)
                event_resync = False
                if last is None:
                    raise DataError(src, line, "an update before any snapshot",
                                    "Give the snapshot file first (the book needs a starting state).")
                chained = pu == last or (first <= last <= lastu)
                if lastu < last and not chained:
                    raise DataError(src, line, f"update {first}..{lastu} is older than the book (at {last})",
                                    "Trim updates that precede the snapshot from the file.")
                if not chained:
                    gap = Gap(line, t, last, pu)
                    if "mark_gaps" not in repairs:
                        raise DataError(src, line, f"update-id gap: expected previous update id {last}, got {pu} "
                                        f"(update {first}..{lastu})",
                                        "Take a fresh snapshot at this point, or pass repair=['mark_gaps'] to keep "
                                        "the updates with this event marked as a resync point.")
                    gaps.append(gap)
                    event_resync = True
                last = lastu
            out.add(t, lastu, pu, False, side, price, qty, event_resync)
        if not any_row:
            raise DataError(src, None, "has no rows", "Check the file (an empty export?).")
    done = tuple(f"mark_gaps: {g.text()} kept as a resync point" for g in gaps)
    return BookEvents(market, f"{snapshot} + {updates}", out.columns(), gaps, done)


def load_wide_book(path: str | Path, market: str) -> BookEvents:
    """Top-N snapshots in wide columns `asks[i].price, asks[i].amount, bids[i].price, bids[i].amount` with a µs
    `timestamp` (tardis-style exports). Each row replaces the book; an empty level pair means the side is shorter."""
    p = Path(path)
    src = str(p)
    header, rows = _rows(p)
    if "timestamp" not in header:
        raise DataError(src, 1, "no timestamp column", "Wide book files carry a µs `timestamp` column.")
    levels: dict[tuple[str, int], dict[str, int]] = {}
    for i, name in enumerate(header):
        m = _WIDE_RE.match(name)
        if m:
            levels.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = i
    if not levels:
        raise DataError(src, 1, "no asks[i].price / bids[i].price columns", "Use the wide top-N layout.")
    for key, parts in levels.items():
        if set(parts) != {"price", "amount"}:
            raise DataError(src, 1, f"{key[0]}[{key[1]}] lacks its {'price' if 'price' not in parts else 'amount'}",
                            "Each level needs both columns.")
    order = sorted(levels, key=lambda k: (k[0] != "bids", k[1]))
    ts = header.index("timestamp")
    out = _Builder()
    prev_t = -1
    any_row = False
    for line, row in rows:
        any_row = True
        if len(row) != len(header):
            raise DataError(src, line, f"{len(row)} fields where the header has {len(header)}",
                            "Fix or remove this line (a cut-off write?).")
        t = _num(src, line, "timestamp", row[ts], int)
        if t < prev_t:
            raise DataError(src, line, f"timestamp {t} is before the previous line's {prev_t}",
                            "Sort the file by timestamp.")
        prev_t = t
        for side_name, depth in order:
            ix = levels[(side_name, depth)]
            ptext, atext = row[ix["price"]].strip(), row[ix["amount"]].strip()
            if not ptext and not atext:
                continue
            price = _num(src, line, f"{side_name}[{depth}].price", ptext, float)
            amount = _num(src, line, f"{side_name}[{depth}].amount", atext, float)
            if price <= 0 or amount <= 0:
                raise DataError(src, line, f"{side_name}[{depth}] price {price} amount {amount} not positive",
                                "A snapshot level has a positive price and amount; leave both empty if absent.")
            out.add(t, -1, -1, True, BID if side_name == "bids" else ASK, price, amount, False)
    if not any_row:
        raise DataError(src, None, "has no rows", "Check the file (an empty export?).")
    return BookEvents(market, src, out.columns())


def synthetic_book(market: str, events: int, *, seed: int = 7, levels: int = 50, tick: float = 0.01,
                   start_price: float = 100.0, start_us: int = 1_767_571_200_000_000,
                   rows_per_event: int = 3) -> BookEvents:
    """SYNTHETIC depth data (benchmarks, tests): a snapshot of `levels` levels per side, then `events` deltas of
    1..2*rows_per_event-1 level changes each (mean `rows_per_event`) near the top of the book. The mid walks one tick
    at a time; a level the mid moves onto is removed in the same event, so the book never crosses. Update ids chain
    (each event's previous id is the last one's). Seeded: the same arguments give the same rows."""
    rng = np.random.default_rng(seed)
    steps = np.where(rng.random(events) < 0.05, rng.choice(np.array([-1, 1]), events), 0)
    mid = round(start_price / tick) + np.cumsum(steps)  # mid in ticks after each event
    k = rng.integers(1, 2 * rows_per_event, events)  # random rows per event
    moved = steps != 0
    n_rows = k + moved
    total = int(n_rows.sum())
    ev = np.repeat(np.arange(events), n_rows)
    first = np.concatenate(([0], np.cumsum(n_rows)[:-1]))
    pos = np.arange(total) - first[ev]  # row number within its event
    side = np.where(rng.random(total) < 0.5, BID, ASK).astype(np.int8)
    dist = np.minimum(1 + rng.geometric(0.25, total), levels)
    price_t = np.where(side == BID, mid[ev] - dist, mid[ev] + dist)
    amount = np.round(rng.exponential(2.0, total), 3) + 0.001
    amount[rng.random(total) < 0.2] = 0.0
    lead = moved[ev] & (pos == 0)  # a move's first row removes the level the mid moved onto
    side[lead] = np.where(steps[ev[lead]] > 0, ASK, BID)
    price_t[lead] = mid[ev[lead]]
    amount[lead] = 0.0
    m0 = round(start_price / tick)
    snap_side = np.concatenate((np.full(levels, BID), np.full(levels, ASK))).astype(np.int8)
    snap_price = np.concatenate((m0 - np.arange(1, levels + 1), m0 + np.arange(1, levels + 1)))
    snap_amount = np.round(rng.exponential(2.0, 2 * levels), 3) + 0.001
    dt = np.maximum(1, rng.exponential(10_000.0, events).astype(np.int64))  # ~10 ms apart
    t_ev = start_us + np.cumsum(dt)
    uid_ev = 1_000 + np.arange(1, events + 1, dtype=np.int64)
    cols: dict[str, npt.NDArray[Any]] = {
        "time_us": np.concatenate((np.full(2 * levels, start_us), t_ev[ev])).astype(np.int64),
        "update_id": np.concatenate((np.full(2 * levels, 1_000), uid_ev[ev])).astype(np.int64),
        "prev_update_id": np.concatenate((np.full(2 * levels, -1), uid_ev[ev] - 1)).astype(np.int64),
        "snapshot": np.concatenate((np.ones(2 * levels), np.zeros(total))).astype(np.int8),
        "side": np.concatenate((snap_side, side)).astype(np.int8),
        "price": np.round(np.concatenate((snap_price, price_t)) * tick, 10),
        "amount": np.concatenate((snap_amount, amount)),
        "resync": np.zeros(2 * levels + total, dtype=np.int8),
    }
    return BookEvents(market, f"SYNTHETIC book (seed {seed}, {events:,} events)", cols)
