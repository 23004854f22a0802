"""The columnar store: every source (import, recording, fetch) as typed columns in Parquet, one dataset per market
and data kind, partitioned by UTC day.

Layout (users open the same files with pandas, polars or DuckDB):

    <root>/<kind>/<MARKET>/day=YYYY-MM-DD/part-0.parquet
    <root>/<kind>/<MARKET>/_source.json     what was ingested: path(s), size, mtime, sha256, rows, when

`ingest()` rebuilds a dataset only when its source changed: an unchanged size and mtime trust the stored hash; a
changed stat re-hashes the content, and only a different hash rebuilds (a `touch` costs one hash, no rebuild).
Reads are memory-mapped, uncompressed Parquet (market data compresses poorly and decoding costs more than it saves).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

Kind = Literal["candles", "trades", "book"]
KINDS: tuple[str, ...] = ("candles", "trades", "book")
# The time column each kind is partitioned and windowed by, and its unit per day.
TIME_COLUMN: dict[str, tuple[str, int]] = {
    "candles": ("time_ms", 86_400_000),
    "trades": ("time_ms", 86_400_000),
    "book": ("time_us", 86_400_000_000),
}
SOURCE_FILE = "_source.json"
EMPTY_FILE = "_empty.parquet"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Ingested:
    """The outcome of `Store.ingest`: the dataset's table and whether this call (re)built it."""

    table: pa.Table
    rebuilt: bool
    reason: str
    sha256: str


def file_sha256(paths: Sequence[Path]) -> str:
    """One hash over the contents of the files, in the order given (names are not part of it)."""
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _stats(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        st = p.stat()
        out.append({"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


class Store:
    """A directory of Parquet datasets (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def dataset_dir(self, kind: str, market: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown data kind {kind!r}: one of {', '.join(KINDS)}")
        if not market or "/" in market or market.startswith("."):
            raise ValueError(f"market {market!r} is not a WhiteBIT market name such as 'XRP_ETH'")
        return self.root / kind / market

    def info(self, kind: str, market: str) -> dict[str, Any] | None:
        """The dataset's `_source.json`, or None when there is no complete dataset."""
        path = self.dataset_dir(kind, market) / SOURCE_FILE
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return doc

    def datasets(self) -> list[tuple[str, str]]:
        """(kind, market) of every complete dataset."""
        out = []
        for kind in KINDS:
            base = self.root / kind
            if base.is_dir():
                out += [(kind, d.name) for d in sorted(base.iterdir()) if (d / SOURCE_FILE).is_file()]
        return out

    def write(self, kind: str, market: str, table: pa.Table, source: dict[str, Any]) -> None:
        """Replace the dataset with `table`, one file per UTC day; `source` goes into `_source.json`.

        Written beside the old dataset and swapped in by rename, so a crash never leaves half a dataset that
        looks complete (`_source.json` is written last)."""
        final = self.dataset_dir(kind, market)
        tmp = final.with_name(f".{market}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        tcol, day_len = TIME_COLUMN[kind]
        times = table.column(tcol).to_numpy()
        if len(times) and bool((np.diff(times) < 0).any()):
            raise ValueError(f"{kind} {market}: {tcol} is not in time order; sort before storing")
        days = times // day_len
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate(([0], bounds)) if len(times) else np.array([], np.int64)
        ends = np.concatenate((bounds, [len(times)])) if len(times) else np.array([], np.int64)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            day = np.datetime64(int(days[a]), "D")
            part = tmp / f"day={day}"
            part.mkdir()
            pq.write_table(table.slice(a, b - a), part / "part-0.parquet", compression="none",
                           use_dictionary=False, write_statistics=True)
        if not len(times):  # no rows (e.g. a recording without trades): keep the schema, so reads give 0 rows
            pq.write_table(table, tmp / EMPTY_FILE, compression="none")
        doc = dict(source)
        doc.update({"kind": kind, "market": market, "rows": table.num_rows, "days": len(starts),
                    "columns": {f.name: str(f.type) for f in table.schema}, "written_at": time.time()})
        (tmp / SOURCE_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True))
        old = final.with_name(f".{market}.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)

    def read(self, kind: str, market: str, start: int | None = None, end: int | None = None) -> pa.Table:
        """The dataset (or the rows with start <= time < end, in the kind's time unit), memory-mapped."""
        d = self.dataset_dir(kind, market)
        info = self.info(kind, market)
        if info is None:
            raise FileNotFoundError(f"no {kind} dataset for {market} in {self.root} (import, record or fetch first)")
        tcol, day_len = TIME_COLUMN[kind]
        every = sorted(d.glob("day=*/part-0.parquet"))
        files = every
        if start is not None or end is not None:
            lo = np.datetime64(start // day_len, "D") if start is not None else None
            hi = np.datetime64(end // day_len, "D") if end is not None else None
            files = [f for f in files if (lo is None or np.datetime64(f.parent.name[4:]) >= lo)
                     and (hi is None or np.datetime64(f.parent.name[4:]) <= hi)]
        if not files:
            if every:
                return pq.read_schema(every[0]).empty_table()
            if (d / EMPTY_FILE).is_file():
                return pq.read_table(d / EMPTY_FILE)
            raise FileNotFoundError(f"{d}: the dataset has no day files; ingest it again")
        tables = [pq.read_table(f, memory_map=True, use_threads=True) for f in files]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if start is not None or end is not None:
            col = table.column(tcol)
            mask = None
            if start is not None:
                mask = pc.greater_equal(col, start)
            if end is not None:
                upper = pc.less(col, end)
                mask = upper if mask is None else pc.and_(mask, upper)
            table = table.filter(mask)
        return table

    def ingest(
        self,
        kind: str,
        market: str,
        paths: Sequence[str | Path],
        build: Callable[[], pa.Table],
        *,
        options: dict[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Ingested:
        """The dataset built from `paths` by `build()`, rebuilt only when the sources (or `options`) changed."""
        files = [Path(p) for p in paths]
        stats = _stats(files)
        opts = options or {}
        info = self.info(kind, market)
        reason = "new dataset"
        if info is not None:
            if info.get("options", {}) != json.loads(json.dumps(opts)):
                reason = "import options changed"
            elif [s["path"] for s in info.get("files", [])] != [s["path"] for s in stats]:
                reason = "different source files"
            elif info.get("files") == stats:
                return Ingested(self.read(kind, market), False, "source unchanged (size and mtime)", info["sha256"])
            else:
                digest = file_sha256(files)
                if digest == info.get("sha256"):
                    info["files"] = stats  # touched, same content: remember the new stat, keep the data
                    (self.dataset_dir(kind, market) / SOURCE_FILE).write_text(json.dumps(info, indent=1,
                                                                                          sort_keys=True))
                    return Ingested(self.read(kind, market), False, "source unchanged (same sha256)", digest)
                reason = "source content changed"
        if progress is not None:
            progress(f"building {kind}/{market} from {', '.join(str(f) for f in files)} ({reason})")
        digest = file_sha256(files)
        table = build()
        self.write(kind, market, table, {"files": stats, "sha256": digest, "options": opts})
        return Ingested(self.read(kind, market), True, reason, digest)
