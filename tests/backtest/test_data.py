"""Candle loading: the sample data, the real files in ../shared/data, and broken files with file:line errors."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import botkit.backtest.data as data_mod
from botkit.backtest.data import REPAIRS, CandleSeries, DataError, format_timeframe, load_candles, parse_timeframe

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "backtests" / "sample"
HEADER = "time_ms,open,high,low,close,volume"
T0 = 1_570_752_000_000  # 2019-10-11T00:00:00Z
M = 60_000


def write(tmp_path: Path, rows: list[str], name: str = "c.csv", header: str = HEADER) -> Path:
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return p


def good_rows(n: int = 5, start: int = T0, step: int = M) -> list[str]:
    return [f"{start + i * step},10.0,11.0,9.0,10.5,{i + 1}.0" for i in range(n)]


def expect_error(path: Path, line: int | None, *needles: str, **kw: object) -> DataError:
    with pytest.raises(DataError) as info:
        load_candles(path, "BTC_USDT", **kw)  # type: ignore[arg-type]
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err).startswith(prefix), str(err)
    for needle in needles:
        assert needle in str(err), f"{needle!r} not in {err}"
    return err


# ---- timeframes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1s", 1000), ("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000), ("1w", 604_800_000)],
)
def test_parse_timeframe(text: str, ms: int) -> None:
    assert parse_timeframe(text) == ms
    assert format_timeframe(ms) == text


@pytest.mark.parametrize("text", ["", "m", "1x", "0m", "-1m", "1.5m", "1M"])
def test_parse_timeframe_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        parse_timeframe(text)


# ---- the project's sample data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["BTC_USDT_1m.csv", "ETH_USDT_1m.csv"])
def test_sample_files_load_clean(name: str) -> None:
    s = load_candles(SAMPLE / name, name.split("_1m")[0])
    assert len(s) == 14 * 1440
    assert s.timeframe_ms == M
    assert s.repairs == ()
    assert s.time_ms.dtype == np.int64 and s.close.dtype == np.float64
    assert bool((np.diff(s.time_ms) == M).all())
    assert bool((s.high >= np.maximum(s.open, s.close)).all()) and bool((s.low <= np.minimum(s.open, s.close)).all())
    assert not s.close.flags.writeable  # shared by backtests: nobody may edit it in place
    assert s.nbytes == 6 * 8 * len(s)


# ---- the real recorded data in ../shared/data ---------------------------------------------------------------------


@pytest.fixture
def shared(shared_data: Path) -> Path:
    return shared_data / "candles"


def python_rows(path: Path) -> tuple[list[int], list[list[float]]]:
    """An independent, slow reading of a CSV: csv module + datetime, to compare the fast loader against."""
    times, vals = [], []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if "time_ms" in row:
                times.append(int(row["time_ms"]))
            else:
                dt = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
                times.append(round(dt.timestamp() * 1000))
            vals.append([float(row[k]) for k in ("open", "high", "low", "close", "volume")])
    return times, vals


@pytest.mark.parametrize(
    ("name", "tf", "rows"),
    [("BTC-PERP_1m.csv", M, 45_031), ("ETH_BTC_5m.csv", 5 * M, 5_760), ("LTC_BTC_5m.csv", 5 * M, 5_760)],
)
def test_real_gapless_files_match_an_independent_parse(shared: Path, name: str, tf: int, rows: int) -> None:
    s = load_candles(shared / name, "X_Y")
    times, vals = python_rows(shared / name)
    assert len(s) == rows == len(times)
    assert s.timeframe_ms == tf
    assert s.repairs == ()
    assert s.time_ms.tolist() == times
    v = np.array(vals)
    for k, col in enumerate((s.open, s.high, s.low, s.close, s.volume)):
        assert np.array_equal(col, v[:, k])


@pytest.mark.parametrize(("name", "tf", "rows"), [("XRP_ETH_1m.csv", M, 2_469), ("XRP_ETH_5m.csv", 5 * M, 706)])
def test_real_files_with_gaps(shared: Path, name: str, tf: int, rows: int) -> None:
    times, vals = python_rows(shared / name)
    steps = np.diff(times)
    first_gap_line = int(np.flatnonzero(steps > tf)[0]) + 3  # +1 for the diff, +1 for the header, +1 for 1-based
    expect_error(shared / name, first_gap_line, "missing", "fill_gaps", "allow_gaps")

    kept = load_candles(shared / name, "XRP_ETH", repair=["allow_gaps"])
    assert len(kept) == rows and kept.time_ms.tolist() == times
    gaps = int((steps > tf).sum())
    missing = int((steps[steps > tf] // tf - 1).sum())
    assert kept.repairs == (f"kept {gaps} gaps ({missing} missing candles) as they are",)

    filled = load_candles(shared / name, "XRP_ETH", repair=["fill_gaps"])
    assert len(filled) == (times[-1] - times[0]) // tf + 1 == rows + missing
    assert bool((np.diff(filled.time_ms) == tf).all())
    real = np.isin(filled.time_ms, times)
    for k, col in enumerate((filled.open, filled.high, filled.low, filled.close, filled.volume)):
        assert np.array_equal(col[real], np.array(vals)[:, k])  # real candles untouched
    assert bool((filled.volume[~real] == 0).all())
    assert "filled" in filled.repairs[0]


def test_real_freqtrade_json(shared: Path) -> None:
    path = shared / "freqtrade-format_BTC-quoted_1m.json"
    raw = json.loads(path.read_text())
    expect_error(path, 7, "JSON element 7", "missing", "fill_gaps")  # first gap: 23:07 -> 23:14
    s = load_candles(path, "ETH_BTC", repair=["allow_gaps"])
    assert len(s) == len(raw) == 13_681
    assert s.time_ms.tolist() == [r[0] for r in raw]
    assert s.volume.tolist() == [float(r[5]) for r in raw]
    assert s.timeframe_ms == M
    filled = load_candles(path, "ETH_BTC", repair=["fill_gaps"])
    assert len(filled) == (raw[-1][0] - raw[0][0]) // M + 1


def test_real_freqtrade_json_gz(shared: Path, tmp_path: Path) -> None:
    src = shared / "freqtrade-format_BTC-quoted_1m.json"
    gz = tmp_path / "pair-1m.json.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a = load_candles(src, "ETH_BTC", repair=["allow_gaps"])
    b = load_candles(gz, "ETH_BTC", repair=["allow_gaps"])
    assert np.array_equal(a.time_ms, b.time_ms) and np.array_equal(a.close, b.close)


# ---- formats -------------------------------------------------------------------------------------------------------


def test_iso_variants_and_offsets(tmp_path: Path) -> None:
    base = datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    ms = int(base.timestamp() * 1000)
    forms = [
        ["2021-12-31 23:01:00.000000", "2021-12-31 23:02:00.000000"],
        ["2021-12-31T23:01:00Z", "2021-12-31T23:02:00Z"],
        ["2022-01-01T01:01:00+02:00", "2022-01-01T01:02:00+02:00"],  # same instants, written in UTC+2
    ]
    for i, (a, b) in enumerate(forms):
        p = write(tmp_path, [f"{a},1,2,1,2,5", f"{b},2,3,2,3,5"], f"iso{i}.csv", "Timestamp,Open,High,Low,Close,Volume")
        s = load_candles(p, "BTC_USDT")
        assert s.time_ms.tolist() == [ms, ms + M], (a, s.time_ms)


def test_seconds_column_extra_columns_quotes_crlf(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_bytes(
        b'trades,time_s,open,high,low,close,volume\r\n7,1570752000,"1.5",2,1,1.5,3\r\n8,1570752060,1.5,2,1,1.5,4\r\n'
    )
    s = load_candles(p, "BTC_USDT")
    assert s.time_ms.tolist() == [T0, T0 + M] and s.open.tolist() == [1.5, 1.5] and s.volume.tolist() == [3, 4]


def test_gzip_csv(tmp_path: Path) -> None:
    p = tmp_path / "c.csv.gz"
    p.write_bytes(gzip.compress(("\n".join([HEADER, *good_rows(4)]) + "\n").encode()))
    assert load_candles(p, "BTC_USDT").volume.tolist() == [1, 2, 3, 4]


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    rows = good_rows(6)
    rows[4] = f"{T0 + 4 * M},10.0,11.0,9.0,-10.5,1.0"
    p = write(tmp_path, [rows[0], "", rows[1], rows[2], "", rows[3], rows[4], rows[5]])
    expect_error(p, 8, "close -10.5 is not a positive price")


def test_whitespace_line_takes_the_slow_path(tmp_path: Path) -> None:
    rows = good_rows(3)
    p = write(tmp_path, [rows[0], "   ", rows[1], rows[2]])
    assert len(load_candles(p, "BTC_USDT")) == 3


def test_window_and_between(tmp_path: Path) -> None:
    p = write(tmp_path, good_rows(10))
    full = load_candles(p, "BTC_USDT")
    part = full.between(T0 + 2 * M, T0 + 5 * M)
    assert part.time_ms.tolist() == [T0 + 2 * M, T0 + 3 * M, T0 + 4 * M]  # [start, end)
    assert np.shares_memory(part.close, full.close)  # a view, not a copy
    assert len(full.between(None, None)) == 10 and len(full.between(T0 + 20 * M, None)) == 0
    loaded = load_candles(p, "BTC_USDT", start_ms=T0 + 8 * M)
    assert loaded.time_ms.tolist() == [T0 + 8 * M, T0 + 9 * M]
    expect_error(p, None, "no candles in the window", start_ms=T0 + 100 * M)


def test_candle_series_checks_its_columns() -> None:
    t = np.arange(3, dtype=np.int64)
    f = np.ones(3)
    with pytest.raises(TypeError, match="close"):
        CandleSeries("X_Y", M, t, f, f, f, np.ones(2), f, "x")
    assert "rows=3" in repr(CandleSeries("X_Y", M, t, f, f, f, f, f, "x"))


# ---- broken inputs: the right file and line --------------------------------------------------------------------------


def test_missing_column(tmp_path: Path) -> None:
    p = write(tmp_path, ["1,2,3,1,2"], header="time_ms,open,high,low,close")
    expect_error(p, 1, "missing column 'volume'")


def test_no_time_column(tmp_path: Path) -> None:
    p = write(tmp_path, ["1,2,3,1,2,1"], header="when,open,high,low,close,volume")
    expect_error(p, 1, "no time column", "time_ms")


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("")
    expect_error(empty, 1, "no header")
    expect_error(write(tmp_path, [], "h.csv"), None, "no candles")


def test_non_numeric_value(tmp_path: Path) -> None:
    rows = good_rows(5)
    rows[2] = f"{T0 + 2 * M},10.0,11.0,9.0,abc,1.0"
    expect_error(write(tmp_path, rows), 4, "close 'abc' is not a number")


def test_wrong_field_count(tmp_path: Path) -> None:
    rows = good_rows(5)
    rows[1] = f"{T0 + M},10.0,11.0,9.0,10.5"
    expect_error(write(tmp_path, rows), 3, "5 fields where the header has 6")
    rows[1] = f"{T0 + M},10.0,11.0,9.0,10.5,1.0,7"
    expect_error(write(tmp_path, rows, "seven.csv"), 3, "7 fields where the header has 6")


def test_bad_time_values(tmp_path: Path) -> None:
    rows = good_rows(3)
    rows[2] = f"{T0 + 2 * M}.5,10.0,11.0,9.0,10.5,1.0"
    expect_error(write(tmp_path, rows), 4, "time_ms", "not a whole number")
    iso = write(
        tmp_path, ["2021-01-01 00:00:00,1,2,1,2,1", "yesterday,1,2,1,2,1"], "i.csv", "date,open,high,low,close,volume"
    )
    expect_error(iso, 3, "date 'yesterday' is not an ISO 8601 time")
    num = write(tmp_path, [f"{T0},1,2,1,2,1"], "n.csv", "timestamp,open,high,low,close,volume")
    expect_error(num, 2, "is a number, not an ISO 8601 date", "time_ms")


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("10.0,11.0,9.0,nan,1.0", "close nan is not a finite number"),
        ("10.0,inf,9.0,10.5,1.0", "high inf is not a finite number"),
        ("0,11.0,9.0,10.5,1.0", "open 0.0 is not a positive price"),
        ("10.0,11.0,-9.0,10.5,1.0", "low -9.0 is not a positive price"),
        ("10.0,10.2,9.0,10.5,1.0", "high 10.2 is below max(open 10.0, close 10.5)"),
        ("10.0,11.0,10.2,10.5,1.0", "low 10.2 is above min(open 10.0, close 10.5)"),
        ("10.0,11.0,9.0,10.5,-1.0", "volume -1.0 is negative"),
    ],
)
def test_bad_values(tmp_path: Path, row: str, needle: str) -> None:
    rows = good_rows(6)
    rows[3] = f"{T0 + 3 * M},{row}"
    err = expect_error(write(tmp_path, rows), 5, needle, "no repair option")
    assert err.fix  # always says what to do


def test_first_bad_row_wins_and_counts_the_rest(tmp_path: Path) -> None:
    rows = good_rows(8)
    rows[5] = f"{T0 + 5 * M},10.0,11.0,9.0,10.5,-1.0"
    rows[6] = f"{T0 + 6 * M},10.0,11.0,9.0,10.5,-2.0"
    rows[3] = f"{T0 + 3 * M},10.0,10.1,9.0,10.5,1.0"
    expect_error(write(tmp_path, rows), 5, "high 10.1")
    rows[3] = f"{T0 + 3 * M},10.0,11.0,9.0,10.5,1.0"
    expect_error(write(tmp_path, rows, "b.csv"), 7, "volume -1.0 is negative (2 rows like this)")


def test_unsorted_then_sort_repair(tmp_path: Path) -> None:
    rows = good_rows(6)
    rows[2], rows[4] = rows[4], rows[2]
    p = write(tmp_path, rows)
    expect_error(p, 5, "comes before the previous row", "repair=['sort']")
    s = load_candles(p, "BTC_USDT", repair=["sort"])
    assert s.time_ms.tolist() == [T0 + i * M for i in range(6)]
    assert s.volume.tolist() == [1, 2, 3, 4, 5, 6]  # rows moved whole
    assert s.repairs == ("sorted 2 rows that were out of time order",)


def test_identical_duplicates_and_drop_repair(tmp_path: Path) -> None:
    rows = good_rows(4)
    p = write(tmp_path, [rows[0], rows[1], rows[1], rows[2], rows[3]])
    expect_error(p, 4, "repeats the previous row exactly", "drop_duplicates")
    s = load_candles(p, "BTC_USDT", repair=["drop_duplicates"])
    assert s.volume.tolist() == [1, 2, 3, 4]
    assert s.repairs == ("dropped 1 identical duplicate rows",)


def test_conflicting_duplicates_stay_an_error(tmp_path: Path) -> None:
    rows = good_rows(4)
    other = f"{T0 + M},10.0,11.0,9.0,10.5,99.0"
    p = write(tmp_path, [rows[0], rows[1], rows[2], other, rows[3]])
    # unsorted AND conflicting: with sort the two rows meet, and drop_duplicates must refuse to choose
    err = expect_error(
        p, 5, "appears again with different values", "first at line 3", repair=["sort", "drop_duplicates"]
    )
    assert "only removes identical rows" in err.fix


def test_gaps_fill_and_allow(tmp_path: Path) -> None:
    rows = good_rows(5)
    rows[3] = f"{T0 + 6 * M},10.5,12.0,10.0,11.0,4.0"  # 3 candles missing before it
    rows[4] = f"{T0 + 7 * M},11.0,12.0,10.0,11.5,5.0"
    p = write(tmp_path, rows)
    expect_error(p, 5, "3 missing 1m candle(s)", "fill_gaps", "allow_gaps")
    s = load_candles(p, "BTC_USDT", repair=["fill_gaps"])
    assert s.time_ms.tolist() == [T0 + i * M for i in range(8)]
    assert s.close.tolist()[2:7] == [10.5, 10.5, 10.5, 10.5, 11.0]
    assert s.open.tolist()[3:5] == s.high.tolist()[3:5] == s.low.tolist()[3:5] == [10.5, 10.5]
    assert s.volume.tolist() == [1, 2, 3, 0, 0, 0, 4, 5]
    assert (s.open[6], s.high[6], s.low[6], s.close[6]) == (10.5, 12.0, 10.0, 11.0)  # real candle kept as it was
    assert s.repairs == ("filled 3 missing candles in 1 gaps (flat at the previous close, volume 0)",)
    kept = load_candles(p, "BTC_USDT", repair=["allow_gaps"])
    assert len(kept) == 5 and kept.repairs == ("kept 1 gaps (3 missing candles) as they are",)


def test_misaligned_and_wrong_timeframe(tmp_path: Path) -> None:
    rows = good_rows(6)
    rows[2] = f"{T0 + 2 * M + 30_000},10.0,11.0,9.0,10.5,3.0"
    expect_error(write(tmp_path, rows), 4, "not on the 1m grid", "30000 ms past")
    p = write(tmp_path, good_rows(6), "ok.csv")
    expect_error(p, 3, "not on the 5m grid", "most common step in this file is 1m", timeframe="5m")
    five = write(tmp_path, good_rows(6, step=5 * M), "five.csv")
    expect_error(
        five,
        None,
        "timeframe is 1m but the candles are always a multiple of 5m apart",
        "timeframe='5m'",
        timeframe="1m",
        repair=["fill_gaps"],
    )
    assert load_candles(five, "BTC_USDT", timeframe="5m").timeframe_ms == 5 * M


def test_repair_options_are_checked(tmp_path: Path) -> None:
    p = write(tmp_path, good_rows(3))
    with pytest.raises(ValueError, match="exclude each other"):
        load_candles(p, "BTC_USDT", repair=["fill_gaps", "allow_gaps"])
    with pytest.raises(ValueError, match="unknown repair"):
        load_candles(p, "BTC_USDT", repair=["magic"])
    assert set(REPAIRS) == {"sort", "drop_duplicates", "fill_gaps", "allow_gaps"}
    assert load_candles(p, "BTC_USDT", repair=list(REPAIRS[:3])).repairs == ()  # nothing to repair: nothing recorded


def test_json_broken_inputs(tmp_path: Path) -> None:
    def dump(name: str, data: object) -> Path:
        p = tmp_path / name
        p.write_text(json.dumps(data))
        return p

    good = [[T0 + i * M, 1.0, 2.0, 0.5, 1.5, 10.0] for i in range(5)]
    bad: list[list[object]] = [list(r) for r in good]
    bad[2] = [T0 + 2 * M, 1.0, 2.0, 0.5, 1.5]
    expect_error(dump("a.json", bad), 3, "JSON element 3", "is not a list of 6 numbers")
    bad[2] = [T0 + 2 * M, 1.0, "2.0", 0.5, 1.5, 10.0]
    expect_error(dump("b.json", bad), 3, 'high "2.0" is not a number')
    bad[2] = [T0 + 2 * M, 1.0, 2.0, 0.5, 1.5, -10.0]
    expect_error(dump("c.json", bad), 3, "JSON element 3: volume -10.0 is negative")
    expect_error(dump("d.json", {"a": 1}), None, "not a list of candles")
    broken = tmp_path / "e.json"
    broken.write_text("[[1,2,3,\n")
    expect_error(broken, 2, "not valid JSON")
    assert len(load_candles(dump("ok.json", good), "BTC_USDT")) == 5


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.csv", None, "no such file")


# ---- `botkit data check` ---------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botkit.backtest.data_cli", "data", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_check_good_and_bad(tmp_path: Path) -> None:
    rows = good_rows(4)
    rows[3] = f"{T0 + 5 * M},10.5,12.0,10.0,11.0,4.0"
    p = write(tmp_path, rows)
    bad = run_cli("check", str(p), "--market", "BTC_USDT")
    assert bad.returncode == 2
    assert f"{p}:5: 2 missing 1m candle(s)" in bad.stderr
    ok = run_cli("check", str(p), "--market", "BTC_USDT", "--repair", "fill_gaps")
    assert ok.returncode == 0, ok.stderr
    assert "rows:      6" in ok.stdout and "filled 2 missing candles" in ok.stdout
    kept = run_cli("check", str(p), "--market", "BTC_USDT", "--repair", "allow_gaps", "--timeframe", "1m")
    assert kept.returncode == 0 and "gaps:      1 (2 missing candles)" in kept.stdout


def test_json_fast_path_agrees_with_json_and_declines_odd_input(tmp_path: Path) -> None:
    from botkit.backtest.data import _freqtrade_fast

    good = [[T0 + i * M, 1.5, 2.0, 0.5, 1.25e-05, 10.0] for i in range(4)]
    pretty = json.dumps(good, indent=2).encode()
    assert np.array_equal(_freqtrade_fast(pretty), np.array(good))  # type: ignore[arg-type]
    assert np.array_equal(_freqtrade_fast(json.dumps(good).encode()), np.array(good))  # type: ignore[arg-type]
    for odd in (
        [[T0, 1, 2, 0.5, 1.5, None]],
        [[T0, 1, 2, 0.5, "1.5", 3]],
        [[T0, 1, 2, 0.5, 1.5]],
        [[T0, 1, 2, 0.5, 1.5, 3, 4]],
        [[T0, 1, 2, 0.5, 1.5, True]],
        [[[T0, 1, 2, 0.5, 1.5, 3]]],
    ):
        assert _freqtrade_fast(json.dumps(odd).encode()) is None, odd
    p = tmp_path / "nan.json"
    p.write_text(f"[[{T0}, 1, 2, 0.5, 1.5, 3], [{T0 + M}, 1, 2, 0.5, NaN, 3]]")
    expect_error(p, 2, "JSON element 2: close nan is not a finite number")


def test_cli_bench_runs_and_says_synthetic() -> None:
    out = run_cli("bench", "--rows", "20000", "--repeat", "1")
    assert out.returncode == 0, out.stderr
    assert "SYNTHETIC" in out.stdout and "load time" in out.stdout and "peak memory" in out.stdout
    assert "peak RSS:" in out.stdout and "x the columns" in out.stdout.split("peak RSS:")[1]


# ---- chunked loading: files are read in pieces to keep peak memory near the columns; pieces must not show ----------


def chunks(monkeypatch: pytest.MonkeyPatch, rows: int, json_bytes: int = 1 << 18, sample: int = 1 << 18) -> None:
    """Small chunk sizes; sample=0 pretends the file holds 1 row, so the columns must grow chunk after chunk."""
    monkeypatch.setattr(data_mod, "_CSV_CHUNK_ROWS", rows)
    monkeypatch.setattr(data_mod, "_JSON_CHUNK_BYTES", json_bytes)
    monkeypatch.setattr(data_mod, "_CHECK_ROWS", min(rows, 1 << 16))
    if sample:
        monkeypatch.setattr(data_mod, "_SAMPLE_BYTES", sample)
        monkeypatch.setattr(data_mod, "_estimate_rows", ESTIMATE)
    else:
        monkeypatch.setattr(data_mod, "_estimate_rows", lambda *args: 1)


ESTIMATE = data_mod._estimate_rows


def no_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the line-by-line CSV path ran for a file the fast path reads")

    monkeypatch.setattr(data_mod, "_parse_csv_slow", fail)


def columns(s: CandleSeries) -> list[list[float]]:
    return [s.time_ms.tolist(), *(getattr(s, n).tolist() for n in ("open", "high", "low", "close", "volume"))]


def iso_text(ms: int, style: str) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if style == "offset":  # the same instant in UTC+2: numpy cannot parse it, datetime.fromisoformat does
        return dt.astimezone(timezone(timedelta(hours=2))).isoformat()
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ" if style == "z" else "%Y-%m-%d %H:%M:%S")


def varied_csv(tmp_path: Path, time_kind: str, n: int = 40) -> tuple[Path, list[int], list[list[float]]]:
    """n candles with blank lines, quoted fields (one holding a newline) and the given time column."""
    head = {"ms": "time_ms", "s": "time_s"}.get(time_kind, "timestamp")
    lines = [f"{head},open,high,low,close,volume"]
    times, vals = [], []
    for i in range(n):
        ms = T0 + i * M
        o, c = 10.0 + (i % 7) / 4, 10.0 + (i % 5) / 4
        row = [o, max(o, c) + 0.5, min(o, c) - 0.5, c, float(i + 1)]
        if time_kind == "ms":
            t = str(ms)
        elif time_kind == "s":
            t = str(ms // 1000)
        else:
            style = time_kind if time_kind != "mixed" else ("z" if i % 3 else "naive")
            t = iso_text(ms, style)
        cells = [t, *map(str, row)]
        if i % 11 == 3:
            cells[2] = f'"{cells[2]}"'
        if i % 13 == 5:
            cells[5] = f'"{cells[5]}\n"'  # a quoted newline: this row spans two lines
        lines.append(",".join(cells))
        if i % 9 == 4:
            lines.append("")
        times.append(ms)
        vals.append(row)
    p = tmp_path / f"{time_kind}.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p, times, vals


@pytest.mark.parametrize("time_kind", ["ms", "s", "naive", "z", "offset", "mixed"])
def test_chunked_csv_reads_like_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, time_kind: str) -> None:
    p, times, vals = varied_csv(tmp_path, time_kind)
    expected = [times, *(list(col) for col in zip(*vals, strict=True))]
    no_slow_path(monkeypatch)
    for rows in (1, 2, 3, 7, 39, 40, 41, 1 << 15):
        for sample in (0, 8, 1 << 18):
            chunks(monkeypatch, rows, sample=sample)
            s = load_candles(p, "BTC_USDT")
            assert columns(s) == expected, (rows, sample)
            assert not s.close.flags.writeable


@pytest.mark.parametrize(
    ("time_kind", "bad_time", "needle"),
    [
        ("ms", None, "volume -1.0 is negative"),  # found by the vectorised checks after loading
        ("ms", "abc", "close 'abc' is not a number"),  # loadtxt fails: the line-by-line path names the line
        ("s", "sub", "has a sub-millisecond part"),  # time_s checks, chunk by chunk
        ("naive", "yesterday", "date 'yesterday' is not an ISO 8601 time"),  # numpy fails: Python parser pass
    ],
)
def test_bad_row_at_every_chunk_edge_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, time_kind: str, bad_time: str | None, needle: str
) -> None:
    n = 10
    head = {"ms": "time_ms", "s": "time_s", "naive": "date"}[time_kind]
    for bad in range(n):
        rows = []
        for i in range(n):
            ms = T0 + i * M
            t = str(ms) if time_kind == "ms" else str(ms // 1000) if time_kind == "s" else iso_text(ms, "naive")
            close, volume = "10.5", f"{i + 1}.0"
            if i == bad:
                if bad_time is None:
                    volume = "-1.0"
                elif bad_time == "abc":
                    close = "abc"
                elif bad_time == "sub":
                    t = f"{ms / 1000 + 0.0005:.4f}"
                else:
                    t = bad_time
            rows.append(f"{t},10.0,11.0,9.0,{close},{volume}")
        p = write(tmp_path, [*rows[:4], "", *rows[4:]], f"bad{bad}.csv", f"{head},open,high,low,close,volume")
        line = bad + 2 + (1 if bad >= 4 else 0)  # header, 1-based, and the blank line after the 4th row
        for size in (1, 2, 3, 4, 1 << 15):
            chunks(monkeypatch, size)
            expect_error(p, line, needle)


def test_a_problem_in_a_later_chunk_outranks_as_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors found chunk by chunk are held back until the file is read: the whole-file ranking decides."""
    iso = [f"{iso_text(T0 + i * M, 'naive')},10,11,9,10.5,1" for i in range(12)]
    iso[2] = "yesterday,10,11,9,10.5,1"
    iso[9] = f"{T0 + 9 * M},10,11,9,10.5,1"  # numeric times are THE error in an ISO column, wherever they are
    iso_p = write(tmp_path, iso, "iso.csv", "date,open,high,low,close,volume")
    secs = [f"{(T0 + i * M) // 1000},10,11,9,10.5,1" for i in range(12)]
    secs[1] = f"{(T0 + M) / 1000 + 0.0005:.4f},10,11,9,10.5,1"
    secs[8] = "nan,10,11,9,10.5,1"  # a non-finite time outranks a sub-ms one
    secs_p = write(tmp_path, secs, "s.csv", "time_s,open,high,low,close,volume")
    good = [[T0 + i * M, 1.0, 2.0, 0.5, 1.5, 10.0] for i in range(12)]
    elements: list[list[object]] = [list(r) for r in good]
    elements[1][0] = T0 + M + 0.5  # not whole ms ...
    elements[8][3] = "0.5"  # ... but a string further on is what the careful JSON path reports
    json_p = tmp_path / "e.json"
    json_p.write_text(json.dumps(elements))
    for rows, json_bytes in ((2, 30), (3, 64), (1 << 15, 1 << 18)):
        chunks(monkeypatch, rows, json_bytes)
        expect_error(iso_p, 11, "date '1570752540000' is a number, not an ISO 8601 date")
        expect_error(secs_p, 10, "time_s nan is not a finite time")
        expect_error(json_p, 9, 'JSON element 9: low "0.5" is not a number')


def test_iso_rules_apply_to_the_whole_column_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'Z' is stripped only if every row has it, and numpy parses only if it can parse every row ('now' is a
    time to numpy, not to datetime.fromisoformat): decided for the whole file, not chunk by chunk."""
    times = [iso_text(T0 + i * M, "z") for i in range(8)]
    mixed = [*times[:4], *(t.rstrip("Z") for t in times[4:])]
    mixed[6] = "now"
    mixed_p = write(tmp_path, [f"{t},10,11,9,10.5,1" for t in mixed], "mixed.csv", "date,open,high,low,close,volume")
    all_z = [*times]
    all_z[5] = "yesterdayZ"
    all_z_p = write(tmp_path, [f"{t},10,11,9,10.5,1" for t in all_z], "z.csv", "date,open,high,low,close,volume")
    frac = [[T0 + i * M, 1.0, 2.0, 0.5, 1.5, 10.0] for i in range(12)]
    frac[9][0] = T0 + 9 * M + 0.5
    frac_p = tmp_path / "frac.json"
    frac_p.write_text(json.dumps(frac))
    dated = [f"{iso_text(T0 + i * M, 'naive')},10,11,9,10.5,1" for i in range(12)]
    dated[2] = "20191011,10,11,9,10.5,1"  # all digits, yet a date to Python: not the error, so reading goes on
    dated[9] = "yesterday,10,11,9,10.5,1"
    dated_p = write(tmp_path, dated, "dated.csv", "date,open,high,low,close,volume")
    for rows, json_bytes in ((2, 30), (4, 64), (1 << 15, 1 << 18)):
        chunks(monkeypatch, rows, json_bytes)
        expect_error(dated_p, 11, "date 'yesterday' is not an ISO 8601 time")
        expect_error(mixed_p, 8, "date 'now' is not an ISO 8601 time")
        expect_error(all_z_p, 7, "date 'yesterday' is not an ISO 8601 time")  # Z stripped: every row had one
        expect_error(frac_p, 10, "JSON element 10: time 1570752540000.5 is not a whole number of milliseconds")


def test_big_iso_files_that_numpy_cannot_parse_do_not_crash(tmp_path: Path) -> None:
    """numpy 2.4 segfaults casting >500 strings to datetime64 when one warns (offsets) or fails ('yesterday').

    Run in a child process so a regression fails this test instead of killing the test run.
    """
    n = 3000
    offsets = [f"{iso_text(T0 + i * M, 'offset')},10,11,9,10.5,1" for i in range(n)]
    bad = [f"{iso_text(T0 + i * M, 'naive')},10,11,9,10.5,1" for i in range(n)]
    bad[2500] = "yesterday,10,11,9,10.5,1"
    header = "timestamp,open,high,low,close,volume"
    ok_p, bad_p = write(tmp_path, offsets, "off.csv", header), write(tmp_path, bad, "bad.csv", header)
    code = (
        "import sys\n"
        "from botkit.backtest.data import DataError, load_candles\n"
        "s = load_candles(sys.argv[1], 'BTC_USDT')\n"
        "print(len(s), int(s.time_ms[0]), int(s.time_ms[-1]))\n"
        "try:\n"
        "    load_candles(sys.argv[2], 'BTC_USDT')\n"
        "except DataError as exc:\n"
        "    print(exc.line, exc.problem)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ok_p), str(bad_p)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-500:]}"
    assert out.stdout.splitlines() == [
        f"{n} {T0} {T0 + (n - 1) * M}",
        "2502 timestamp 'yesterday' is not an ISO 8601 time",
    ]


def freqtrade_texts() -> list[tuple[str, str]]:
    rows = [[T0 + i * M, 1.5 + i / 8, 2.5 + i, 1.25e-05, 1.5 + i, 10.0 * i] for i in range(30)]
    inner = ["[" + ", ".join(map(str, r)) + "]" for r in rows]
    return [
        ("compact", json.dumps(rows, separators=(",", ":"))),
        ("spaced", json.dumps(rows)),
        ("pretty", json.dumps(rows, indent=2)),
        ("odd seams", "\n [" + " ,\n".join(inner) + " ]\n"),  # ' ,' never cuts a piece: read as one
        ("mixed seams", "[" + ",".join(inner[:10]) + " , " + ",\n".join(inner[10:]) + "]"),
    ]


@pytest.mark.parametrize(("name", "text"), freqtrade_texts())
def test_chunked_freqtrade_reads_like_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    rows = json.loads(text)
    expected = [[int(r[0]) for r in rows], *([float(r[k]) for r in rows] for k in range(1, 6))]
    plain = tmp_path / "a.json"
    plain.write_text(text)
    packed = tmp_path / "a.json.gz"
    packed.write_bytes(gzip.compress(text.encode()))

    def careful(*args: object) -> None:
        raise AssertionError("the whole-file json.loads path ran for a file the fast path reads")

    monkeypatch.setattr(data_mod, "_freqtrade_careful", careful)
    for json_bytes in (1, 7, 40, 150, 1 << 18):
        for sample in (0, 8, 1 << 18):
            chunks(monkeypatch, 1 << 15, json_bytes, sample)
            for path in (plain, packed):
                assert columns(load_candles(path, "BTC_USDT")) == expected, (name, json_bytes, sample, path)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (f"[[{T0},1,2,0.5,1.5,3],[{T0 + M},1,2,0.5,1.5,3],]", 1, "not valid JSON"),  # trailing comma
        (f"[[{T0},1,2,0.5,1.5,3],[{T0 + M},1,2,0.5,1.5,3]],", 1, "not valid JSON"),  # junk after the list
        (f"[[{T0},1,2,0.5,1.5,3],[{T0 + M},1,2,0.5,1.5]]", 2, "is not a list of 6 numbers"),
        (f"[[{T0},1,2,0.5,1.5,3],[{T0 + M},1,2,0.5,1.5,null]]", 2, "volume null is not a number"),
        (f"[[{T0},1,2,0.5,1.5,3], [[{T0 + M},1,2,0.5,1.5,3]]]", 2, "is not a list of 6 numbers"),
        ("[]", None, "holds no candles"),
        ("", 1, "not valid JSON"),
    ],
)
def test_chunked_freqtrade_hands_odd_files_to_the_careful_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int | None, needle: str
) -> None:
    p = tmp_path / "odd.json"
    p.write_text(text)
    for json_bytes in (1, 5, 16, 1 << 18):
        chunks(monkeypatch, 1 << 15, json_bytes)
        expect_error(p, line, needle)


def test_freqtrade_with_bom_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps([[T0 + i * M, 1, 2, 0.5, 1.5, 3] for i in range(3)]).encode())
    chunks(monkeypatch, 1 << 15, 8)
    assert load_candles(p, "BTC_USDT").time_ms.tolist() == [T0, T0 + M, T0 + 2 * M]


@pytest.mark.parametrize("kind", ["csv", "iso", "json"])
def test_load_holds_little_beyond_the_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Allocation peak (tracemalloc: deterministic, unlike RSS) stays near the columns: no whole-file copies.

    Loading everything at once and then copying columns out needs at least twice the columns (JSON: ~5x).
    Chunks are made small so their fixed size does not dominate this 60,000-row file.
    """
    from botkit.backtest.data_cli import _write_freqtrade_json, _write_iso_csv
    from botkit.backtest.sample import generate_candles, write_candles_csv

    series = generate_candles("BTC_USDT", start_ms=T0, count=60_000, seed=3)
    p = tmp_path / ("c.json" if kind == "json" else "c.csv")
    if kind == "csv":
        write_candles_csv(series, p, 2, 6)
    elif kind == "iso":
        _write_iso_csv(series, p)
    else:
        _write_freqtrade_json(series, p)
    del series
    chunks(monkeypatch, 2048, 1 << 15, 1 << 14)
    tracemalloc.start()
    try:
        loaded = load_candles(p, "BTC_USDT")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(loaded) == 60_000
    assert peak < 1.5 * loaded.nbytes, f"peak {peak / loaded.nbytes:.2f}x the columns"
