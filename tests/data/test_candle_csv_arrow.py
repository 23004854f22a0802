"""The candle loader's pyarrow CSV path: the same columns as the loadtxt path on the real files, batch boundaries
invisible, and a bad line still named (pyarrow declines, loadtxt declines, the careful parser names the line)."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from botkit.backtest import data as data_mod
from botkit.backtest.data import DataError, load_candles

COLS = ("time_ms", "open", "high", "low", "close", "volume")


def _declines(*args):
    yield None


def _spy(monkeypatch):
    real = data_mod._arrow_chunks
    batches = []

    def spy(*args):
        for chunk in real(*args):
            batches.append(chunk is not None)
            yield chunk

    monkeypatch.setattr(data_mod, "_arrow_chunks", spy)
    return batches


@pytest.mark.parametrize("name", ["XRP_ETH_1m.csv", "ETH_BTC_5m.csv", "LTC_BTC_5m.csv"])
def test_arrow_path_equals_the_loadtxt_path_on_real_files(shared_data, tmp_path, monkeypatch, name):
    src = shared_data / "candles" / name
    packed = tmp_path / (name + ".gz")
    with src.open("rb") as a, gzip.open(packed, "wb") as b:
        shutil.copyfileobj(a, b)
    with monkeypatch.context() as m:
        m.setattr(data_mod, "_arrow_chunks", _declines)  # pyarrow declines: loadtxt reads it
        ref = load_candles(src, "X_Y", repair=["allow_gaps"])
    batches = _spy(monkeypatch)
    monkeypatch.setattr(data_mod, "_ARROW_BLOCK_BYTES", 4096)  # many batches: their boundaries must not show
    for path in (src, packed):
        batches.clear()
        got = load_candles(path, "X_Y", repair=["allow_gaps"])
        assert len(batches) > 10 and all(batches), "the pyarrow path must have read the file"
        for c in COLS:
            assert np.array_equal(getattr(got, c), getattr(ref, c)), (path, c)
        assert got.repairs == ref.repairs


def test_a_bad_line_is_still_named(shared_data, tmp_path, monkeypatch):
    lines = (shared_data / "candles" / "XRP_ETH_1m.csv").read_text().splitlines()
    fields = lines[700].split(",")
    fields[4] = "1.2.3"
    lines[700] = ",".join(fields)
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines) + "\n")
    batches = _spy(monkeypatch)
    with pytest.raises(DataError, match=r"bad\.csv:701: .*close"):
        load_candles(p, "XRP_ETH")
    assert batches and batches[-1] is False  # pyarrow declined the file, the careful path named the line
