"""Recorded candles: load CSV or freqtrade JSON into numpy columns, validate them, repair only when asked.

Backtests are only as honest as their data, so a bad file stops the load with the file, the line and the fix, and a
repair (sort, drop identical duplicates, fill or keep gaps) happens only when the caller names it; each repair applied
is written into `CandleSeries.repairs` so reports can show it. Nothing is ever dropped silently.

Loading 1M rows must take seconds, keep no per-row Python objects and peak near the size of the columns, so the
fast paths read the file in chunks straight into the six final columns (sized from a row estimate). CSV (plain or
gzip) with numeric times goes through pyarrow's streaming CSV reader in 64 KiB record batches (1M rows: 0.8 s vs
2.4-3.2 s with loadtxt on the shared 2-core machine; peak RSS 1.5x the columns vs 1.25x); ISO times, and what
pyarrow's strict reader declines (quoted newlines, padded numbers), go through `numpy.loadtxt` 32k rows at a time.
Freqtrade JSON gets a byte-level structure check plus a numpy parse of 256 KiB at a time; then vectorised checks.
Chunks read exactly as one whole-file pass would: problems found in
a chunk are raised only once the file is read, in the whole-file order. A line-by-line Python parser runs only
when a fast path fails, to name the bad line (and JSON falls back to a whole-file parse for the same reason).
CSV rows with more fields than the header are read by position when the header has extra columns (extra columns
are ignored), and are an error otherwise.

Conventions: times are candle OPEN times in ms since the epoch, UTC; ISO 8601 times without an offset are UTC.
Alignment is checked against the epoch for timeframes that divide a day, otherwise against the first candle.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
import math
import os
import re
import warnings
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

REPAIRS: tuple[str, ...] = ("sort", "drop_duplicates", "fill_gaps", "allow_gaps")

Fmt = Literal["auto", "csv", "freqtrade"]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Recognised time columns, best first (exact integers beat floats beat text).
_TIME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time_ms", "ms"),
    ("time_s", "s"),
    ("time", "s"),
    ("timestamp", "iso"),
    ("datetime", "iso"),
    ("date", "iso"),
)
_VALUE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_DAY_MS = 86_400_000
_ISO_WIDTH = 40  # bytes kept per ISO time by the fast path ("2021-12-31T23:01:00.000000+02:00" is 32)
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": _DAY_MS, "w": 7 * _DAY_MS}
_TIMEFRAME_RE = re.compile(r"^\s*(\d+)\s*([smhdwM])\s*$")
# Chunk sizes: big enough that per-call overhead vanishes, small next to the columns (peak RSS = columns + a chunk).
_CSV_CHUNK_ROWS = 1 << 15  # rows per np.loadtxt call (~1.5 MB of records)
# Bytes of CSV per pyarrow record batch, parsed on this thread: 256 KiB parses ~25 % faster than 64 KiB (fewer
# batches) for a peak RSS of 1.7x the columns (64 KiB: 1.5x, 1 MiB: 2.5x); threads gain nothing on the shared
# cores and hold more batches in flight.
_ARROW_BLOCK_BYTES = 1 << 18
_JSON_CHUNK_BYTES = 1 << 18  # freqtrade JSON read and parsed 256 KiB at a time
_SAMPLE_BYTES = 1 << 18  # read once to estimate the row count, which sizes the columns
_CHECK_ROWS = 1 << 16  # rows per block in checks that would otherwise need full-length temporaries
# numpy releases the GIL in loops over more than 500 elements, and its bytes -> datetime64 cast then crashes the
# interpreter (segfault, numpy 2.4) when a string warns (a time zone) or fails to parse: cast in pieces this big.
_DATETIME_CAST_ROWS = 500


# ---- public types ---------------------------------------------------------------------------------------------------


class DataError(ValueError):
    """Bad candle data: names the file, the 1-based line (JSON: element number) and how to fix it."""

    def __init__(self, path: str, line: int | None, problem: str, fix: str = "") -> None:
        self.path = path
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{path}:{line}" if line is not None else path
        text = f"{where}: {problem}."
        if fix:
            text += f" {fix}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """One market's candles as read-only numpy columns; cheap to slice, safe to share between backtests."""

    market: str
    timeframe_ms: int
    time_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    source: str
    repairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.time_ms)
        if self.time_ms.dtype != np.int64:
            raise TypeError(f"CandleSeries.time_ms must be int64, got {self.time_ms.dtype}")
        for name in _VALUE_COLUMNS:
            col = getattr(self, name)
            if col.dtype != np.float64 or col.shape != (n,):
                raise TypeError(f"CandleSeries.{name} must be float64 of shape ({n},), got {col.dtype} {col.shape}")
        if self.timeframe_ms <= 0:
            raise ValueError(f"CandleSeries.timeframe_ms must be positive, got {self.timeframe_ms}")

    def __len__(self) -> int:
        return len(self.time_ms)

    def __repr__(self) -> str:
        span = f"{iso_time(int(self.time_ms[0]))} .. {iso_time(int(self.time_ms[-1]))}" if len(self) else "empty"
        return (
            f"CandleSeries(market={self.market!r}, timeframe={format_timeframe(self.timeframe_ms)}, rows={len(self)}, "
            f"span={span}, source={self.source!r}, repairs={self.repairs!r})"
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the six columns (the 'raw data size' that memory budgets are measured against)."""
        return sum(int(getattr(self, n).nbytes) for n in ("time_ms", *_VALUE_COLUMNS))

    def between(self, start_ms: int | None, end_ms: int | None) -> CandleSeries:
        """Candles whose open time is in [start_ms, end_ms); views, no copy."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.time_ms, start_ms, side="left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.time_ms, end_ms, side="left"))
        hi = max(lo, hi)
        s = slice(lo, hi)
        return replace(
            self,
            time_ms=self.time_ms[s],
            open=self.open[s],
            high=self.high[s],
            low=self.low[s],
            close=self.close[s],
            volume=self.volume[s],
        )


def parse_timeframe(text: str) -> int:
    """'1m' -> 60000. Units: s, m, h, d, w (lower case m is minutes; months have no fixed length)."""
    m = _TIMEFRAME_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(
            f"timeframe {text!r} is not understood: write a number and a unit s, m, h, d or w, "
            "e.g. '1m', '5m', '1h', '1d'"
        )
    n, unit = int(m.group(1)), m.group(2)
    if unit == "M":
        raise ValueError(
            f"timeframe {text!r}: months have no fixed length and are not supported; use days, e.g. '30d' "
            "(or '1m' for one minute)"
        )
    if n <= 0:
        raise ValueError(f"timeframe {text!r} must be positive, e.g. '1m'")
    return n * _UNIT_MS[unit]


def format_timeframe(ms: int) -> str:
    """60000 -> '1m': the largest unit that divides the step exactly."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def load_candles(
    path: str | Path,
    market: str,
    *,
    fmt: Fmt = "auto",
    timeframe: str | None = None,
    repair: Iterable[str] = (),
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> CandleSeries:
    """Load, validate and (only when asked) repair one candle file; the whole file is validated, then windowed."""
    p = Path(path)
    src = str(path)
    repairs = _check_repairs(repair)
    tf = parse_timeframe(timeframe) if timeframe is not None else None
    if not market or not isinstance(market, str):
        raise ValueError(f"market must be a WhiteBIT market name such as 'BTC_USDT', got {market!r}")
    if p.is_dir():
        raise DataError(src, None, "is a directory, not a candle file", _directory_fix(p, market))
    if not p.is_file():
        raise DataError(src, None, "no such file", "Check the path (data files are read, never created).")
    with p.open("rb") as fh:
        head = fh.read(2)
    gz = head == b"\x1f\x8b"
    kind = _detect_format(p, gz, fmt)
    if kind == "freqtrade":
        cols = _parse_freqtrade_stream(src, p, gz) or _parse_freqtrade(src, _read_bytes(p, src, gz))
    else:
        cols = _parse_csv(src, p, gz)
    series = _validate(src, market, cols, tf, repairs)
    if start_ms is not None or end_ms is not None:
        window = series.between(start_ms, end_ms)
        if len(window) == 0:
            raise DataError(
                src,
                None,
                f"no candles in the window {window_text(start_ms, end_ms)}; the file covers "
                f"{iso_time(int(series.time_ms[0]))} .. {iso_time(int(series.time_ms[-1]))}",
                "Choose a window inside the file's span (--from/--to, or [data] start/end in the config).",
            )
        if len(window) != len(series):  # copy so the full file's columns can be freed
            window = CandleSeries(
                market=window.market,
                timeframe_ms=window.timeframe_ms,
                time_ms=_readonly(window.time_ms.copy()),
                open=_readonly(window.open.copy()),
                high=_readonly(window.high.copy()),
                low=_readonly(window.low.copy()),
                close=_readonly(window.close.copy()),
                volume=_readonly(window.volume.copy()),
                source=window.source,
                repairs=window.repairs,
            )
        series = window
    return series


# ---- columns as parsed, before validation ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Columns:
    time_ms: I64
    values: dict[str, F64]
    line_of: Callable[[int], int]  # row index -> 1-based line (or JSON element number)
    unit: str  # "line" or "element", for messages


def _check_repairs(repair: Iterable[str]) -> frozenset[str]:
    if isinstance(repair, str):
        repair = [repair]
    chosen = frozenset(repair)
    unknown = sorted(chosen - set(REPAIRS))
    if unknown:
        raise ValueError(f"unknown repair option(s) {unknown}: choose from {list(REPAIRS)}")
    if {"fill_gaps", "allow_gaps"} <= chosen:
        raise ValueError("repair options 'fill_gaps' and 'allow_gaps' exclude each other: choose one")
    return chosen


def _detect_format(p: Path, gz: bool, fmt: Fmt) -> Literal["csv", "freqtrade"]:
    if fmt == "csv" or fmt == "freqtrade":
        return fmt
    if fmt != "auto":
        raise ValueError(f"fmt {fmt!r} is not one of 'auto', 'csv', 'freqtrade'")
    suffixes = [s.lower() for s in p.suffixes]
    if ".json" in suffixes:
        return "freqtrade"
    if ".csv" in suffixes:
        return "csv"
    with _open_text(p, gz) as fh:
        first = fh.read(4096).lstrip()[:1]
    return "freqtrade" if first == "[" else "csv"


def _open_text(p: Path, gz: bool) -> IO[str]:
    """Text handle, gzip or not; universal newlines, so CRLF files parse like LF ones."""
    if gz:
        return gzip.open(p, "rt", encoding="utf-8-sig")
    return p.open("r", encoding="utf-8-sig")


def _read_bytes(p: Path, src: str, gz: bool) -> bytes:
    raw = p.read_bytes()
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(src, None, f"the gzip stream is broken ({exc})", "Re-download or re-compress it.") from exc
    return raw


def _read_text(p: Path, src: str, gz: bool) -> str:
    """Whole file as text (JSON, and CSV error paths only: the CSV fast path streams)."""
    return _decode(src, _read_bytes(p, src, gz))


def _decode(src: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(src, line, "the file is not UTF-8 text", "Save it as UTF-8 CSV or JSON.") from exc


# ---- chunked filling of the final columns ---------------------------------------------------------------------------


class _ColumnBuilder:
    """The six final columns, allocated once from a row estimate and filled chunk by chunk.

    Peak memory is then the columns plus one chunk. Collecting chunk pieces and concatenating would hold the data
    twice (freed pieces stay resident in the allocator's heap), and so would one big parse followed by column
    copies. np.empty pages cost nothing until written, so over-estimates are free; under-estimates grow the
    columns with ndarray.resize (realloc, no copy for large blocks); `finish` trims them to the rows read.
    """

    def __init__(self, rows_hint: int) -> None:
        self.rows = 0
        cap = max(rows_hint, 16)
        self.time: I64 = np.empty(cap, dtype=np.int64)
        self.values: dict[str, F64] = {n: np.empty(cap, dtype=np.float64) for n in _VALUE_COLUMNS}

    def extend(self, count: int) -> slice:
        """Room for `count` more rows; returns where they go."""
        need = self.rows + count
        cap = len(self.time)
        if need > cap:
            new_cap = max(need, cap + cap // 4)
            for col in (self.time, *self.values.values()):
                col.resize(new_cap, refcheck=False)  # no views of these exist while filling
        at = slice(self.rows, need)
        self.rows = need
        return at

    def finish(self) -> tuple[I64, dict[str, F64]]:
        for col in (self.time, *self.values.values()):
            if len(col) != self.rows:
                col.resize(self.rows, refcheck=False)
        return self.time, self.values


def _estimate_rows(p: Path, gz: bool, marker: bytes) -> int:
    """Rows the file probably holds (lines for CSV, ']' for JSON), from its size and its first 256 KiB."""
    size = p.stat().st_size
    try:
        with gzip.open(p, "rb") if gz else p.open("rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
            if gz:  # gzip's trailer holds the uncompressed size mod 2**32: a hint, the columns grow if it is low
                with p.open("rb") as raw:
                    raw.seek(-4, os.SEEK_END)
                    size = max(size, int.from_bytes(raw.read(4), "little"))
    except (OSError, EOFError, zlib.error):
        return 1024  # the chunked read meets the same problem and hands over to the careful path
    if len(sample) < _SAMPLE_BYTES:
        size = len(sample)
    per_byte = max(sample.count(marker), 1) / max(len(sample), 1)
    return int(size * per_byte * 1.05) + 16


# ---- CSV ------------------------------------------------------------------------------------------------------------


def _parse_csv(src: str, p: Path, gz: bool) -> _Columns:
    try:
        with _open_text(p, gz) as fh:
            header_line = fh.readline().rstrip("\n")
    except (OSError, EOFError, UnicodeDecodeError):
        _read_text(p, src, gz)  # raises the precise error
        raise
    header = [h.strip().strip('"').strip().lower() for h in next(csv.reader([header_line]), [])]
    if not header or header == [""]:
        raise DataError(src, 1, "the file is empty or has no header row", _HEADER_FIX)
    time_idx, time_kind = _find_time_column(src, header)
    idx = {}
    for name in _VALUE_COLUMNS:
        if name not in header:
            raise DataError(src, 1, f"missing column {name!r} (header has {header})", _HEADER_FIX)
        idx[name] = header.index(name)
    wanted = [time_idx, *(idx[n] for n in _VALUE_COLUMNS)]
    if any(header.count(header[i]) > 1 for i in wanted):
        dup = next(header[i] for i in wanted if header.count(header[i]) > 1)
        raise DataError(src, 1, f"column {dup!r} appears twice in the header", "Rename or remove one of them.")

    time_dtype: Any = {"ms": np.int64, "s": np.float64, "iso": f"S{_ISO_WIDTH}"}[time_kind]
    layout = _CsvLayout(
        dtype=np.dtype([(f"c{i}", time_dtype if i == time_idx else np.float64) for i in sorted(wanted)]),
        usecols=None if len(header) == len(wanted) else sorted(wanted),
        time_key=f"c{time_idx}",
        time_name=header[time_idx],
        time_kind=time_kind,
        value_keys={n: f"c{idx[n]}" for n in _VALUE_COLUMNS},
        header_width=len(header),
    )
    cols = _parse_csv_fast(src, p, gz, layout, arrow=layout.time_kind != "iso")
    if cols is None and layout.time_kind != "iso":
        cols = _parse_csv_fast(src, p, gz, layout, arrow=False)  # loadtxt takes what pyarrow would not, as before
    if cols is None:
        return _parse_csv_slow(src, _read_text(p, src, gz), header, time_idx, time_kind, idx)
    return cols


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """What the header says: the loadtxt record layout and where the time and value columns are in it."""

    dtype: np.dtype[Any]
    usecols: list[int] | None
    time_key: str
    time_name: str
    time_kind: str  # "ms", "s" or "iso"
    value_keys: dict[str, str]
    header_width: int


def _parse_csv_fast(src: str, p: Path, gz: bool, layout: _CsvLayout, *, arrow: bool) -> _Columns | None:
    """Chunked pyarrow (numeric times; `arrow`) or loadtxt straight into the final columns; None sends the file
    on: from pyarrow to loadtxt (which accepts quoted newlines, padded numbers), from loadtxt to the slow path.

    Time problems found in one chunk are only raised once every chunk has parsed: a later line that loadtxt
    rejects sends the whole file to the slow path, which reports the first bad line, exactly as the single
    whole-file loadtxt call did.
    """
    cols = _ColumnBuilder(_estimate_rows(p, gz, b"\n"))
    times: _MsTimes | _SecondTimes | _IsoTimes = (
        _MsTimes() if layout.time_kind == "ms" else _SecondTimes() if layout.time_kind == "s" else _IsoTimes()
    )
    source = _arrow_chunks(p, gz, layout) if arrow else _csv_chunks(p, gz, layout)
    with contextlib.closing(source) as chunks:
        for chunk in chunks:
            if chunk is None:
                return None
            time_col = chunk[layout.time_key]
            if layout.time_kind == "iso" and bool((np.strings.str_len(time_col) >= _ISO_WIDTH).any()):
                return None  # loadtxt truncates long strings silently: such a file takes the careful path
            at = cols.extend(len(time_col))
            for name, key in layout.value_keys.items():
                cols.values[name][at] = chunk[key]
            times.add(time_col, cols.time, at)
            del chunk, time_col
    if cols.rows == 0:
        return None  # loadtxt warned "no data" here, which took the slow path; it names the problem
    t, values = cols.finish()
    line_of = _lazy_line_map(lambda: _read_text(p, src, gz))
    if isinstance(times, _IsoTimes):
        if not times.finish(src, layout, line_of, t, lambda: _csv_chunks(p, gz, layout)):
            return None  # the file changed between the two reads: the slow path reads it once more
    elif isinstance(times, _SecondTimes):
        times.finish(src, layout.time_name, line_of)
    return _Columns(t, values, line_of, "line")


def _csv_chunks(p: Path, gz: bool, layout: _CsvLayout) -> Generator[npt.NDArray[Any] | None, None, None]:
    """The rows after the header, `_CSV_CHUNK_ROWS` at a time; a final None if loadtxt or the file failed.

    All chunks come from one open file: loadtxt stops an iterator of lines exactly after its `max_rows`-th row
    (quoted newlines included) and skips empty lines, so the chunks are the single streaming parse cut in pieces.
    """
    try:
        with _open_text(p, gz) as fh:
            fh.readline()
            while True:
                for line in fh:  # the next non-empty line; a call that finds no row would warn "no data"
                    if line != "\n":
                        break
                else:
                    return
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    # With max_rows, numpy notes each empty line it skips; skipping them is what we want.
                    warnings.filterwarnings("ignore", r"Input line \d+ contained no data", UserWarning)
                    chunk = np.loadtxt(
                        itertools.chain((line,), fh),
                        delimiter=",",
                        comments=None,
                        quotechar='"',
                        dtype=layout.dtype,
                        usecols=layout.usecols,
                        ndmin=1,
                        max_rows=_CSV_CHUNK_ROWS,
                    )
                yield chunk
    except (ValueError, UserWarning, OSError, EOFError):  # UnicodeDecodeError is a ValueError
        yield None


def _arrow_chunks(p: Path, gz: bool, layout: _CsvLayout) -> Generator[dict[str, npt.NDArray[Any]] | None, None, None]:
    """Numeric-time CSV through pyarrow's streaming CSV reader, a record batch at a time (typed columns, several
    times faster than loadtxt); a final None when it rejects anything, so the careful path names the line.

    Strict on purpose: no null markers ("", "NA", "nan" as missing), every row exactly as wide as the header; what
    it does not take goes to the line-by-line parser, which applies the loader's rules (extra fields read by
    position, the first bad line named). Empty lines are skipped, as loadtxt and the line map do.
    """
    import pyarrow as pa  # here, not at import time: `botkit --help` and every CLI start stay quick
    import pyarrow.csv as pacsv

    keys = [layout.time_key, *layout.value_keys.values()]
    types = {k: pa.int64() if k == layout.time_key and layout.time_kind == "ms" else pa.float64() for k in keys}
    try:
        with pa.input_stream(str(p), compression="gzip" if gz else None) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(layout.header_width)],
                                               skip_rows=1, block_size=_ARROW_BLOCK_BYTES, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', newlines_in_values=False,
                                                 ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(column_types=types, include_columns=keys, null_values=[],
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            for batch in reader:
                if batch.num_rows:
                    yield {k: _arrow_values(batch.column(k)) for k in keys}
    except (pa.ArrowException, OSError, EOFError, ValueError, zlib.error):
        yield None


def _arrow_values(arr: Any) -> npt.NDArray[Any]:
    """A null-free numeric Arrow array's values as a numpy view of its buffer. Not `Array.to_numpy()`: that imports
    pandas (half a second) on its first call."""
    import pyarrow as pa

    dtype = np.dtype(np.int64) if pa.types.is_int64(arr.type) else np.dtype(np.float64)
    if arr.null_count or not (pa.types.is_int64(arr.type) or pa.types.is_float64(arr.type)):
        raise ValueError(f"a {arr.type} column with {arr.null_count} nulls where int64 or float64 without nulls")
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


class _MsTimes:
    """time_ms: the parsed integers are the answer."""

    def add(self, col: npt.NDArray[Any], out: I64, at: slice) -> None:
        out[at] = col


class _SecondTimes:
    """time_s: seconds to ms; the first non-finite row outranks the first sub-ms row anywhere in the file."""

    def __init__(self) -> None:
        self.not_finite: tuple[int, float] | None = None
        self.sub_ms: tuple[int, float] | None = None

    def add(self, col: npt.NDArray[Any], out: I64, at: slice) -> None:
        sec = np.asarray(col, dtype=np.float64)
        finite = np.isfinite(sec)
        with np.errstate(invalid="ignore"):
            ms = np.rint(sec * 1000.0)
            off = np.abs(sec * 1000.0 - ms) > 1e-3
        if self.not_finite is None and not bool(finite.all()):
            row = int(np.flatnonzero(~finite)[0])
            self.not_finite = (at.start + row, float(sec[row]))
        if self.sub_ms is None and bool(off.any()):
            row = int(np.flatnonzero(off)[0])
            self.sub_ms = (at.start + row, float(sec[row]))
        ms[~finite] = 0.0  # an error is raised for these rows; avoid the cast warning
        out[at] = ms.astype(np.int64)

    def finish(self, src: str, name: str, line_of: Callable[[int], int]) -> None:
        if self.not_finite is not None:
            row, value = self.not_finite
            raise DataError(
                src, line_of(row), f"{name} {value!r} is not a finite time", "Write seconds since the epoch."
            )
        if self.sub_ms is not None:
            row, value = self.sub_ms
            raise DataError(
                src, line_of(row), f"{name} {value!r} has a sub-millisecond part", "Round times to whole ms."
            )


class _IsoTimes:
    """ISO 8601 times, chunk by chunk, with the rules of a whole-column parse.

    Whole-column rules: a numeric row anywhere is THE error; 'Z' is stripped only when every row has it; numpy
    parses the column when it can, otherwise every row goes through datetime.fromisoformat. So each chunk tries
    numpy, and if any chunk (or the file's mix of 'Z') needs the Python parser, `finish` re-reads the file for it.
    """

    def __init__(self) -> None:
        self.numeric: tuple[int, bytes] | None = None
        self.sub_ms: tuple[int, bytes] | None = None
        self.any_z = False
        self.all_z = True
        self.python = False

    def add(self, col: npt.NDArray[Any], out: I64, at: slice) -> None:
        col = np.strings.strip(col)
        if self.numeric is None:
            numeric = np.flatnonzero(np.strings.isdigit(col))
            if numeric.size:  # numpy would read 1570752000000 as a year
                self.numeric = (at.start + int(numeric[0]), bytes(col[int(numeric[0])]))
        z = np.strings.endswith(col, b"Z")
        chunk_all_z, chunk_any_z = bool(z.all()), bool(z.any())
        self.all_z &= chunk_all_z
        self.any_z |= chunk_any_z
        if self.python or (self.any_z and not self.all_z):
            return  # every row goes through the Python parser: this chunk's numpy parse would be thrown away
        if chunk_all_z:
            col = np.strings.rstrip(col, b"Z")
        try:
            us = _datetime64_us(col)
        except (ValueError, UserWarning, DeprecationWarning):
            self.python = True
            return
        if bool(np.isnat(us).any()):
            self.python = True
            return
        ticks = us.astype(np.int64)
        sub = ticks % 1000 != 0
        if self.sub_ms is None and bool(sub.any()):
            row = int(np.flatnonzero(sub)[0])
            self.sub_ms = (at.start + row, bytes(col[row]))
        out[at] = ticks // 1000

    def finish(
        self,
        src: str,
        layout: _CsvLayout,
        line_of: Callable[[int], int],
        out: I64,
        reread: Callable[[], Generator[npt.NDArray[Any] | None, None, None]],
    ) -> bool:
        """Raise the file's time error, or redo the times with Python's parser; False if the re-read differed."""
        name = layout.time_name
        if self.numeric is not None:
            row, cell = self.numeric
            _parse_iso_one(src, line_of(row), name, cell.decode())  # raises with the rename hint ...
            # ... unless Python reads it as a date (20191011): then the column goes on as usual, as before chunking
        if self.python or (self.any_z and not self.all_z):
            with contextlib.closing(reread()) as chunks:
                return _iso_python(src, layout, line_of, out, chunks, strip_z=self.all_z)
        if self.sub_ms is not None:
            row, cell = self.sub_ms
            raise DataError(
                src, line_of(row), f"{name} {cell.decode()!r} has a sub-millisecond part", "Round times to whole ms."
            )
        return True


def _datetime64_us(col: npt.NDArray[np.bytes_]) -> npt.NDArray[np.datetime64]:
    """numpy's ISO parse, warnings as errors, in pieces that keep the GIL (see _DATETIME_CAST_ROWS)."""
    out = np.empty(len(col), dtype="datetime64[us]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(0, len(col), _DATETIME_CAST_ROWS):
            out[i : i + _DATETIME_CAST_ROWS] = col[i : i + _DATETIME_CAST_ROWS].astype("datetime64[us]")
    return out


def _iso_python(
    src: str,
    layout: _CsvLayout,
    line_of: Callable[[int], int],
    out: I64,
    chunks: Iterator[npt.NDArray[Any] | None],
    *,
    strip_z: bool,
) -> bool:
    """Every time through datetime.fromisoformat (offsets, odd rows), one re-read chunk at a time."""
    row = 0
    for chunk in chunks:
        if chunk is None or row + chunk.shape[0] > len(out):
            return False
        col = np.strings.strip(chunk[layout.time_key])
        if strip_z:
            col = np.strings.rstrip(col, b"Z")
        for cell in col.tolist():
            try:
                out[row] = _parse_iso_one(src, 0, layout.time_name, cell.decode("utf-8", "replace"))
            except DataError as exc:  # the line is looked up only now: that reads the whole file
                raise DataError(src, line_of(row), exc.problem, exc.fix) from None
            row += 1
    return row == len(out)


_HEADER_FIX = (
    "The first row must name the columns: a time column (time_ms, time_s/time, or timestamp/date/datetime in "
    "ISO 8601) and open, high, low, close, volume"
)


def _find_time_column(src: str, header: list[str]) -> tuple[int, str]:
    for name, kind in _TIME_COLUMNS:
        if name in header:
            return header.index(name), kind
    raise DataError(src, 1, f"no time column among {header}", _HEADER_FIX)


def _lazy_line_map(read: Callable[[], str]) -> Callable[[int], int]:
    """Row -> line, computed only when an error needs it (loadtxt skips empty lines, so rows != lines - 1)."""
    cache: list[I64] = []

    def line_of(row: int) -> int:
        if not cache:
            lines = read().split("\n")
            nonblank = np.fromiter((i for i, ln in enumerate(lines) if ln and i > 0), dtype=np.int64)
            cache.append(nonblank + 1)
        return int(cache[0][row])

    return line_of


def _parse_csv_slow(
    src: str, text: str, header: list[str], time_idx: int, time_kind: str, idx: dict[str, int]
) -> _Columns:
    """Line-by-line parse: either names the first bad line or returns the columns (for files loadtxt dislikes)."""
    ncols = len(header)
    times: list[int] = []
    vals: dict[str, list[float]] = {n: [] for n in _VALUE_COLUMNS}
    lines: list[int] = []
    time_name = header[time_idx]
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    for row in reader:
        lineno = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != ncols:
            raise DataError(
                src,
                lineno,
                f"{len(row)} fields where the header has {ncols} ({', '.join(header)})",
                "Every row needs one value per header column.",
            )
        raw_t = row[time_idx].strip()
        times.append(_parse_one_time(src, lineno, time_name, time_kind, raw_t))
        for n in _VALUE_COLUMNS:
            cell = row[idx[n]].strip()
            try:
                vals[n].append(float(cell))
            except ValueError:
                raise DataError(
                    src, lineno, f"{n} {cell!r} is not a number", f"Write {n} as a decimal number, e.g. 123.45."
                ) from None
        lines.append(lineno)
    if not times:
        raise DataError(src, None, "no candles after the header", "Check that this is the right file.")
    line_arr = np.asarray(lines, dtype=np.int64)
    return _Columns(
        np.asarray(times, dtype=np.int64),
        {n: np.asarray(v, dtype=np.float64) for n, v in vals.items()},
        lambda row: int(line_arr[row]),
        "line",
    )


def _parse_one_time(src: str, line: int, name: str, kind: str, cell: str) -> int:
    if kind == "ms":
        try:
            return int(cell)
        except ValueError:
            raise DataError(
                src,
                line,
                f"{name} {cell!r} is not a whole number of milliseconds",
                "Write ms since the epoch, e.g. 1570752000000.",
            ) from None
    if kind == "s":
        try:
            sec = float(cell)
        except ValueError:
            raise DataError(
                src,
                line,
                f"{name} {cell!r} is not a number of seconds",
                "Write seconds since the epoch, e.g. 1570752000.",
            ) from None
        if not math.isfinite(sec):
            raise DataError(src, line, f"{name} {cell!r} is not a finite time", "Write seconds since the epoch.")
        ms = round(sec * 1000)
        if abs(sec * 1000 - ms) > 1e-3:
            raise DataError(src, line, f"{name} {cell!r} has a sub-millisecond part", "Round times to whole ms.")
        return ms
    return _parse_iso_one(src, line, name, cell)


def _parse_iso_one(src: str, line: int, name: str, cell: str) -> int:
    try:
        dt = datetime.fromisoformat(cell)
    except ValueError:
        if cell.strip().lstrip("-").isdigit():
            raise DataError(
                src,
                line,
                f"{name} {cell!r} is a number, not an ISO 8601 date",
                "Rename the column to time_ms (milliseconds) or time_s (seconds) to read the numbers as epoch times",
            ) from None
        raise DataError(
            src,
            line,
            f"{name} {cell!r} is not an ISO 8601 time",
            "Write e.g. 2021-12-31 23:01:00 or 2021-12-31T23:01:00Z.",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    if delta.microseconds % 1000:
        raise DataError(src, line, f"{name} {cell!r} has a sub-millisecond part", "Round times to whole ms.")
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# ---- freqtrade JSON -------------------------------------------------------------------------------------------------


def _parse_freqtrade_stream(src: str, p: Path, gz: bool) -> _Columns | None:
    """The fast path a MiB at a time, straight into the final columns; None hands over to `_parse_freqtrade`.

    The text is cut after a row's ']' where '],' follows, and each piece gets the checks `_freqtrade_fast` makes
    on the whole file, so a file is accepted here only if the whole-file path would accept it with the same
    numbers. Anything else (odd separators, BOM, a broken stream, a bad element) goes to the whole-file path,
    which names the problem as before. A bad time is only raised once every piece has parsed, since a bad
    element further on outranks it.
    """
    cols = _ColumnBuilder(_estimate_rows(p, gz, b"]"))
    bad_time: tuple[int, float] | None = None
    try:
        with gzip.open(p, "rb") if gz else p.open("rb") as fh:
            carry = b""
            opened = False
            while True:
                block = fh.read(_JSON_CHUNK_BYTES)
                buf = carry + block if carry else block
                if not opened:
                    buf = buf.lstrip()
                    if not buf:
                        if block:
                            continue  # only whitespace so far
                        return None
                    if buf[:1] != b"[":
                        return None
                    buf, opened = buf[1:], True
                if block:
                    cut = buf.rfind(b"],")
                    if cut < 0:
                        carry = buf
                        continue
                    piece, carry = buf[: cut + 1], buf[cut + 2 :]
                else:  # end of file: the outer list closes after the last row
                    body = buf.rstrip()
                    if body[-1:] != b"]":
                        return None
                    piece, carry = body[:-1].rstrip(), b""
                del buf
                rows = _freqtrade_rows(piece)
                del piece
                if rows is None:
                    return None
                at = cols.extend(rows.shape[0])
                t = rows[:, 0]
                bad = ~np.isfinite(t) | (t != np.floor(t))
                if bad_time is None and bool(bad.any()):
                    row = int(np.flatnonzero(bad)[0])
                    bad_time = (at.start + row, float(t[row]))
                cols.time[at] = np.where(bad, 0.0, t).astype(np.int64) if bool(bad.any()) else t.astype(np.int64)
                for i, name in enumerate(_VALUE_COLUMNS):
                    cols.values[name][at] = rows[:, i + 1]
                del rows, t, bad
                if not block:
                    break
    except (OSError, EOFError, zlib.error):
        return None  # the whole-file path reads it again and reports the broken stream
    if bad_time is not None:
        row, value = bad_time
        raise DataError(
            src, row + 1, f"JSON element {row + 1}: time {value!r} is not a whole number of milliseconds", _FT_FIX
        )
    t_ms, values = cols.finish()

    def line_of(row: int) -> int:
        return row + 1

    return _Columns(t_ms, values, line_of, "element")


def _freqtrade_rows(piece: bytes) -> F64 | None:
    """`[..], [..], ... [..]` (rows only, no outer brackets) as an (n, 6) array, or None: `_freqtrade_fast`'s checks.

    Rows hold no brackets and exactly 5 commas, one comma separates rows and nothing but whitespace comes before
    the first; numpy then parses the numbers with the brackets removed.
    """
    b = np.frombuffer(piece, dtype=np.uint8)
    opens = np.flatnonzero(b == ord("["))
    closes = np.flatnonzero(b == ord("]"))
    n = opens.size
    if n < 1 or closes.size != n or int(closes[-1]) != len(piece) - 1 or piece[: int(opens[0])].strip():
        return None
    if not (bool((opens < closes).all()) and bool((closes[:-1] < opens[1:]).all())):
        return None
    commas = np.flatnonzero(b == ord(","))
    del b
    per_row = np.searchsorted(commas, closes) - np.searchsorted(commas, opens)
    if not bool((per_row == 5).all()) or commas.size != 6 * n - 1:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(piece.translate(None, b"[]"), dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning, UserWarning):
        return None
    if flat.size != 6 * n:
        return None
    return flat.reshape(n, 6)


def _parse_freqtrade(src: str, raw: bytes) -> _Columns:
    arr = _freqtrade_fast(raw)
    if arr is None:
        arr = _freqtrade_careful(src, _decode(src, raw))
    del raw
    t = arr[:, 0]

    def line_of(row: int) -> int:
        return row + 1

    bad = ~np.isfinite(t) | (t != np.floor(t))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            src,
            row + 1,
            f"JSON element {row + 1}: time {float(t[row])!r} is not a whole number of milliseconds",
            _FT_FIX,
        )
    values = {n: np.ascontiguousarray(arr[:, i + 1]) for i, n in enumerate(_VALUE_COLUMNS)}
    return _Columns(t.astype(np.int64), values, line_of, "element")


_FT_FIX = "freqtrade candles are a JSON list of [time_ms, open, high, low, close, volume]"


def _freqtrade_fast(raw: bytes) -> F64 | None:
    """A flat list of 6-number lists, checked and parsed without building a Python object per number.

    Structure is checked with byte positions (every inner list has 5 commas and sits between its neighbours), then
    numpy parses the numbers with the brackets removed. Anything unexpected (strings, null, nesting) returns None
    and the careful json path takes over to name the bad element.
    """
    b = np.frombuffer(raw, dtype=np.uint8)
    opens = np.flatnonzero(b == ord("["))
    closes = np.flatnonzero(b == ord("]"))
    n = opens.size - 1
    body = raw.strip()
    if n < 1 or closes.size != n + 1 or body[:1] != b"[" or body[-1:] != b"]":
        return None
    inner_o, inner_c = opens[1:], closes[:-1]
    if not (bool((inner_o < inner_c).all()) and bool((inner_c[:-1] < inner_o[1:]).all())):
        return None
    if opens[0] > inner_o[0] or closes[-1] < inner_c[-1]:
        return None
    commas = np.flatnonzero(b == ord(","))
    per_row = np.searchsorted(commas, inner_c) - np.searchsorted(commas, inner_o)
    if not bool((per_row == 5).all()) or commas.size != 6 * n - 1:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(raw.translate(None, b"[]"), dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning, UserWarning):
        return None
    if flat.size != 6 * n:
        return None
    return flat.reshape(n, 6)


def _freqtrade_careful(src: str, text: str) -> F64:
    """json.loads, element checks; slow (a Python list per candle) but names the first bad element."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(src, exc.lineno, f"not valid JSON ({exc.msg}, column {exc.colno})", _FT_FIX) from None
    del text
    if not isinstance(data, list):
        raise DataError(src, None, f"the JSON top level is a {type(data).__name__}, not a list of candles", _FT_FIX)
    if not data:
        raise DataError(src, None, "the JSON list holds no candles", "Check that this is the right file.")
    for i, el in enumerate(data):
        _check_ft_element(src, el, i)
    return np.array(data, dtype=np.float64)


def _check_ft_element(src: str, el: Any, i: int | None = None) -> None:
    where = i + 1 if i is not None else None
    label = f"JSON element {where}: " if where is not None else ""
    if not isinstance(el, list) or len(el) != 6:
        raise DataError(src, where, f"{label}{json.dumps(el)[:80]} is not a list of 6 numbers", _FT_FIX)
    for name, v in zip(("time", *_VALUE_COLUMNS), el, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise DataError(src, where, f"{label}{name} {json.dumps(v)} is not a number", _FT_FIX)


# ---- validation and repairs -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Problem:
    row: int  # index into the ORIGINAL row order
    text: str
    fix: str


def _validate(src: str, market: str, cols: _Columns, tf: int | None, repairs: frozenset[str]) -> CandleSeries:
    t = cols.time_ms
    v = cols.values
    n = len(t)
    what = "JSON element {}: " if cols.unit == "element" else ""

    def err(p: _Problem) -> DataError:
        line = cols.line_of(p.row)
        prefix = what.format(line) if what else ""
        return DataError(src, line, prefix + p.text, p.fix)

    problems = _value_problems(v)
    if problems:
        raise err(min(problems, key=lambda p: p.row))

    notes: list[str] = []
    order: I64 | None = None
    if "sort" in repairs and n > 1 and bool((np.diff(t) < 0).any()):
        order = np.argsort(t, kind="stable")
        moved = int((order != np.arange(n)).sum())
        cols.time_ms = t = t[order]  # column by column, so each unsorted one is freed before the next is copied
        for k in v:
            v[k] = v[k][order]
        notes.append(f"sorted {moved} rows that were out of time order")

    def orig(row: int) -> int:
        return int(order[row]) if order is not None else row

    d = np.diff(t)
    step = _infer_step(t, d)
    grain = _positive_gcd(d)
    if tf is not None and grain > tf and grain % tf == 0:  # sparse data has some 1-step moves; this has none
        raise DataError(
            src,
            None,
            f"the timeframe is {format_timeframe(tf)} but the candles are always a multiple of "
            f"{format_timeframe(grain)} apart: every step would count as a gap",
            f"Pass timeframe='{format_timeframe(grain)}' (or leave it out to infer it); filling would invent candles.",
        )
    if tf is None:
        if step is None:
            raise DataError(
                src, None, "cannot infer the timeframe from fewer than two distinct times", "Pass timeframe, e.g. '1m'."
            )
        tf = step

    problems = []
    back = np.flatnonzero(d < 0)
    if back.size:  # out of order: gaps and duplicates mean nothing until it is sorted, so this is THE problem
        r = int(back[0]) + 1
        raise err(
            _Problem(
                orig(r),
                f"time {iso_time(int(t[r]))} comes before the previous row's {iso_time(int(t[r - 1]))} "
                f"({back.size} rows out of order)",
                "Sort the file by time, or ask for repair 'sort': " + _repair_hint("sort") + ".",
            )
        )
    dup_rows = np.flatnonzero(d == 0) + 1
    if dup_rows.size:
        same = np.ones(dup_rows.size, dtype=bool)
        for c in v.values():
            same &= c[dup_rows] == c[dup_rows - 1]
        conflicting = dup_rows[~same]
        if conflicting.size:
            r = int(conflicting[0])
            problems.append(
                _Problem(
                    orig(r),
                    f"time {iso_time(int(t[r]))} appears again with different values (first at line "
                    f"{cols.line_of(orig(r - 1))}; {conflicting.size} conflicting duplicates)",
                    "Keep the right row and delete the other: repair 'drop_duplicates' only removes identical rows.",
                )
            )
        if "drop_duplicates" not in repairs and same.any():
            r = int(dup_rows[same][0])
            problems.append(
                _Problem(
                    orig(r),
                    f"time {iso_time(int(t[r]))} repeats the previous row exactly "
                    f"({int(same.sum())} identical duplicates)",
                    "Delete the repeated rows, or ask for repair 'drop_duplicates': "
                    + _repair_hint("drop_duplicates")
                    + ".",
                )
            )
    anchor = 0 if _DAY_MS % tf == 0 else int(t[0]) if n else 0
    misaligned = _misaligned(t, anchor, tf)
    if misaligned is not None:
        r, past, count = misaligned
        hint = ""
        if step is not None and step != tf:
            hint = f" The most common step in this file is {format_timeframe(step)}: is the timeframe right?"
        problems.append(
            _Problem(
                orig(r),
                f"time {iso_time(int(t[r]))} is not on the {format_timeframe(tf)} grid ({past} ms past a candle "
                f"boundary; {count} misaligned rows)",
                "Candle times must be open times on the timeframe grid; no repair option exists for this." + hint,
            )
        )
    gap_rows = np.flatnonzero(d > tf) + 1
    if gap_rows.size and not ({"fill_gaps", "allow_gaps"} & repairs):
        r = int(gap_rows[0])
        total = int(((d[gap_rows - 1] // tf) - 1).clip(min=0).sum())
        problems.append(
            _Problem(
                orig(r),
                f"{int(d[r - 1] // tf) - 1} missing {format_timeframe(tf)} candle(s) between "
                f"{iso_time(int(t[r - 1]))} and {iso_time(int(t[r]))} "
                f"({gap_rows.size} gaps, {total} missing candles in the file)",
                "Ask for repair 'fill_gaps' to insert flat candles at the previous close with volume 0 ("
                + _repair_hint("fill_gaps")
                + "), or 'allow_gaps' to keep the gaps.",
            )
        )
    if problems:
        raise err(min(problems, key=lambda p: p.row))

    if dup_rows.size:  # only identical duplicates remain here, and drop_duplicates was asked for
        keep = np.ones(n, dtype=bool)
        keep[dup_rows] = False
        cols.time_ms = t = t[keep]
        for k in v:
            v[k] = v[k][keep]
        notes.append(f"dropped {dup_rows.size} identical duplicate rows")
        del d
        d = np.diff(t)
        gap_rows = np.flatnonzero(d > tf) + 1

    if gap_rows.size:
        missing = int((d[gap_rows - 1] // tf - 1).sum())
        if "fill_gaps" in repairs:
            t, v = _fill_gaps(t, v, tf)
            notes.append(
                f"filled {missing} missing candles in {gap_rows.size} gaps (flat at the previous close, volume 0)"
            )
        else:
            notes.append(f"kept {gap_rows.size} gaps ({missing} missing candles) as they are")

    return CandleSeries(
        market=market,
        timeframe_ms=tf,
        time_ms=_readonly(np.ascontiguousarray(t, dtype=np.int64)),
        open=_readonly(v["open"]),
        high=_readonly(v["high"]),
        low=_readonly(v["low"]),
        close=_readonly(v["close"]),
        volume=_readonly(v["volume"]),
        source=src,
        repairs=tuple(notes),
    )


def _repair_hint(name: str) -> str:
    """Every place a user can ask for a repair: the command-line flag, the config key, the Python argument."""
    config = f'[data] repair = ["{name}"]'
    return f"--repair {name} on the command line, {config} in a config, repair=['{name}'] in Python"


def _value_problems(v: dict[str, F64]) -> list[_Problem]:
    """Per-row value checks, vectorised; one problem per kind (its first row), with the count of rows affected."""
    out: list[_Problem] = []

    def add(mask: npt.NDArray[np.bool_], describe: Callable[[int], str], fix: str) -> None:
        rows = np.flatnonzero(mask)
        if rows.size:
            r = int(rows[0])
            extra = f" ({rows.size} rows like this)" if rows.size > 1 else ""
            out.append(_Problem(r, describe(r) + extra, fix))

    def said(name: str, col: F64, what: str) -> Callable[[int], str]:
        return lambda r: f"{name} {float(col[r])!r}{what}"

    no_repair = "Fix or delete the row in the source data; no repair option exists for this."
    finite = np.ones(len(v["open"]), dtype=bool)
    for name in _VALUE_COLUMNS:
        ok = np.isfinite(v[name])
        add(~ok, said(name, v[name], " is not a finite number"), no_repair)
        finite &= ok
    for name in _PRICE_COLUMNS:
        add(finite & (v[name] <= 0), said(name, v[name], " is not a positive price"), no_repair)
    o, h, lo, c = v["open"], v["high"], v["low"], v["close"]
    # Where all are finite, h < max(o, c) is (h < o) | (h < c): boolean temporaries instead of a float column.
    add(
        finite & ((h < o) | (h < c)),
        lambda r: f"high {float(h[r])!r} is below max(open {float(o[r])!r}, close {float(c[r])!r})",
        no_repair,
    )
    add(
        finite & ((lo > o) | (lo > c)),
        lambda r: f"low {float(lo[r])!r} is above min(open {float(o[r])!r}, close {float(c[r])!r})",
        no_repair,
    )
    vol = v["volume"]
    add(finite & (vol < 0), lambda r: f"volume {float(vol[r])!r} is negative", no_repair)
    return out


def _infer_step(t: I64, d: I64) -> int | None:
    """Most common positive step between consecutive times (the timeframe, when none is given); d is np.diff(t).

    A step taken by more than half of the positive steps is the answer without a copy (the usual case, gaps or
    not); otherwise sort-based: np.unique hashes and is ~10x slower on a million rows. Ties go to the smallest.
    """
    if bool((d < 0).any()):
        ordered = np.sort(t)
        d = ordered[1:] - ordered[:-1]  # np.diff, typed
        del ordered
    positive = d > 0
    npos = int(np.count_nonzero(positive))
    if npos == 0:
        return None
    first = d[int(np.argmax(positive))]
    del positive
    if 2 * int(np.count_nonzero(d == first)) > npos:
        return int(first)
    d = d[d > 0]
    d.sort()
    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    counts = np.diff(np.r_[starts, d.size])
    return int(d[starts[int(np.argmax(counts))]])


def _slices(n: int) -> Iterator[slice]:
    """Row ranges for checks done a block at a time, so no full-length temporary is made."""
    size = _CHECK_ROWS
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _positive_gcd(d: I64) -> int:
    """gcd of the positive steps (0 if none), without copying them out."""
    g = 0
    for s in _slices(len(d)):
        part = d[s]
        g = int(np.gcd(g, np.gcd.reduce(part[part > 0])))
    return g


def _misaligned(t: I64, anchor: int, tf: int) -> tuple[int, int, int] | None:
    """First row off the grid, its ms past the boundary, and how many rows are off; None if all are on it."""
    first: tuple[int, int] | None = None
    count = 0
    for s in _slices(len(t)):
        off = t[s] - anchor
        np.remainder(off, tf, out=off)
        bad = np.flatnonzero(off != 0)
        if bad.size:
            if first is None:
                first = (s.start + int(bad[0]), int(off[int(bad[0])]))
            count += int(bad.size)
    return None if first is None else (first[0], first[1], count)


def _fill_gaps(t: I64, v: dict[str, F64], tf: int) -> tuple[I64, dict[str, F64]]:
    """Flat candles at the previous close, volume 0, on every missing grid time."""
    pos = (t - t[0]) // tf
    size = int(pos[-1]) + 1
    full_t = t[0] + np.arange(size, dtype=np.int64) * tf
    src_row = np.full(size, -1, dtype=np.int64)
    src_row[pos] = np.arange(len(t))
    present = src_row >= 0
    last = np.maximum.accumulate(src_row)  # row of the last real candle at or before each slot
    prev_close = v["close"][last]
    out: dict[str, F64] = {}
    for name in _PRICE_COLUMNS:
        col = prev_close.copy()
        col[present] = v[name]
        out[name] = col
    vol = np.zeros(size, dtype=np.float64)
    vol[present] = v["volume"]
    out["volume"] = vol
    return full_t, out


# ---- helpers --------------------------------------------------------------------------------------------------------


def _readonly(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.flags.writeable = False
    return a


def iso_time(ms: int) -> str:
    """1767571200000 -> '2026-01-05T00:00:00Z' (messages and summaries)."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + (
            f" (+{ms % 1000} ms)" if ms % 1000 else ""
        )
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def window_text(start_ms: int | None, end_ms: int | None) -> str:
    """A time window for messages, open ends in words: 'from 2023-01-01T00:00:00Z to the end of the data'."""
    start = "the start of the data" if start_ms is None else iso_time(start_ms)
    end = "the end of the data" if end_ms is None else f"{iso_time(end_ms)} (exclusive)"
    return f"from {start} to {end}"


_CANDLE_SUFFIXES = (".csv", ".json", ".csv.gz", ".json.gz", ".gz")


def _directory_fix(p: Path, market: str) -> str:
    """What to pass instead of a directory: a candle file, named from the directory's contents when it has some."""
    try:
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(_CANDLE_SUFFIXES))
    except OSError:
        files = []
    expect = "Give the path of one candle file (CSV or freqtrade JSON, optionally .gz) per market"
    if not files:
        return f"{expect}; this directory holds no .csv or .json files."
    shown = ", ".join(str(f) for f in files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    mine = [f for f in files if market.lower() in f.name.lower()]
    tip = f" For {market}: {mine[0]}." if len(mine) == 1 else ""
    return f"{expect}. Candle files in it: {shown}.{tip}"
