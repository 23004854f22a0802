"""Trade and order-book importers on the real files in ../shared/data, checked against independent parses (the csv
and json modules), plus the errors a bad file gets: file, line, fix."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from botkit.backtest.books import ASK, BID, load_binance_depth, load_wide_book
from botkit.backtest.data import DataError
from botkit.backtest.importers import SIDE_BUY, SIDE_SELL, load_trades


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_trades_csv_with_side_matches_an_independent_parse(shared_data):
    path = shared_data / "trades" / "XRP_ETH_trades.csv"
    rows = _csv_rows(path)
    t = load_trades(path, "XRP_ETH")
    assert t.market == "XRP_ETH" and len(t) == len(rows) == 12_477 and t.repairs == ()
    assert t.time_ms.tolist() == [int(r["time_ms"]) for r in rows]
    assert t.id.tolist() == [int(r["id"]) for r in rows]
    assert t.price.tolist() == [float(r["price"]) for r in rows]
    assert t.amount.tolist() == [float(r["amount"]) for r in rows]
    assert t.side.tolist() == [SIDE_BUY if r["side"] == "buy" else SIDE_SELL for r in rows]


def test_freqtrade_trades_json_gz_equals_the_csv_of_the_same_trades(shared_data):
    path = shared_data / "trades" / "freqtrade-format_XRP_ETH_trades.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))
    t = load_trades(path, "XRP_ETH")
    assert len(t) == len(raw) == 12_477
    assert t.time_ms.tolist() == [r[0] for r in raw]
    assert t.id.tolist() == [int(r[1]) for r in raw]
    assert t.price.tolist() == [r[4] for r in raw] and t.amount.tolist() == [r[5] for r in raw]
    same = load_trades(shared_data / "trades" / "XRP_ETH_trades.csv", "XRP_ETH")
    for col in ("time_ms", "id", "price", "amount", "side"):
        assert np.array_equal(getattr(t, col), getattr(same, col)), col


def test_kraken_time_s_price_volume_without_side_or_id(shared_data):
    path = shared_data / "trades" / "kraken_BCHEUR.csv"
    rows = _csv_rows(path)
    t = load_trades(path, "BCH_EUR")
    assert len(t) == len(rows) == 148
    assert t.time_ms.tolist() == [int(r["time_s"]) * 1000 for r in rows]
    assert t.price.tolist() == [float(r["price"]) for r in rows]
    assert t.amount.tolist() == [float(r["volume"]) for r in rows]
    assert set(t.side.tolist()) == {0} and set(t.id.tolist()) == {-1}  # unknown, said so, not guessed


def test_bad_trade_files_name_the_line_and_the_fix(shared_data, tmp_path):
    src = (shared_data / "trades" / "XRP_ETH_trades.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*src[:5], src[5].replace("sell", "sideways").replace("buy", "sideways"), *src[6:20]]))
    with pytest.raises(DataError, match=r"bad\.csv:6: side 'sideways'.*buy or sell"):
        load_trades(bad, "XRP_ETH")
    bad.write_text("\n".join([*src[:8], src[8].replace(",", ",x", 1).rsplit(",", 1)[0] + ",oops", *src[9:20]]))
    with pytest.raises(DataError, match=r"bad\.csv:9: .*is not a number"):
        load_trades(bad, "XRP_ETH")
    i = next(i for i in range(1, 19) if src[i].split(",")[0] < src[i + 1].split(",")[0])
    swapped = [*src[:i], src[i + 1], src[i], *src[i + 2:20]]
    bad.write_text("\n".join(swapped))
    with pytest.raises(DataError, match=rf"bad\.csv:{i + 2}: .*before the previous line.*repair=\['sort'\]"):
        load_trades(bad, "XRP_ETH")
    fixed = load_trades(bad, "XRP_ETH", repair=["sort"])
    assert fixed.time_ms.tolist() == [int(line.split(",")[0]) for line in src[1:20]]
    assert fixed.id.tolist() == [int(line.split(",")[1]) for line in src[1:20]]
    assert fixed.repairs and "sort: 1 out-of-order" in fixed.repairs[0]
    dup = [*src[:10], src[9], *src[10:20]]
    bad.write_text("\n".join(dup))
    with pytest.raises(DataError, match=r"bad\.csv:11: trade id \d+ appears twice"):
        load_trades(bad, "XRP_ETH")
    kept = load_trades(bad, "XRP_ETH", repair=["drop_duplicates"])
    assert len(kept) == 19 and "1 identical" in kept.repairs[0]
    dup[10] = dup[10].rsplit(",", 1)[0] + ",999"
    bad.write_text("\n".join(dup))
    with pytest.raises(DataError, match="different values"):
        load_trades(bad, "XRP_ETH", repair=["drop_duplicates"])
    bad.write_text("\n".join([*src[:3], src[3].replace(src[3].split(",")[3], "-1"), *src[4:20]]))
    with pytest.raises(DataError, match=r"bad\.csv:4: price -1\.0 is not a positive number"):
        load_trades(bad, "XRP_ETH")
    with pytest.raises(ValueError, match="unknown trade repair fill_gaps"):
        load_trades(bad, "XRP_ETH", repair=["fill_gaps"])


def test_bad_freqtrade_element_is_named(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps([[1, "1", None, "buy", 1.0, 2.0, 2.0], [2, "2", None, "buy", "x", 2.0, 2.0]]))
    with pytest.raises(DataError, match=r"t\.json:2: element 2"):
        load_trades(p, "A_B")


def test_binance_snapshot_plus_updates_reports_the_real_files_gap(shared_data):
    snap, upd = shared_data / "depth" / "binance_BTCUSDT_depth_snapshot.csv", \
        shared_data / "depth" / "binance_BTCUSDT_depth_updates.csv"
    s_rows, u_rows = _csv_rows(snap), _csv_rows(upd)
    # the real update starts after the snapshot's id without chaining to it: a gap, named with its line
    assert int(u_rows[0]["pu"]) != int(s_rows[0]["last_update_id"])
    with pytest.raises(DataError, match=r"depth_updates\.csv:2: update-id gap: expected previous update id "
                                        rf"{s_rows[0]['last_update_id']}, got {u_rows[0]['pu']}.*mark_gaps"):
        load_binance_depth(snap, upd, "BTC_USDT")
    ev = load_binance_depth(snap, upd, "BTC_USDT", repair=["mark_gaps"])
    assert len(ev) == 200 and len(ev.gaps) == 1 and ev.gaps[0].line == 2 and "resync" in ev.repairs[0]
    assert ev.cols["resync"].tolist() == [0] * 100 + [1] * 100
    # rebuild by hand (independent of BookEvents.rebuild) and compare the final book
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for r in s_rows + u_rows:
        side = bids if r["side"] == "b" else asks
        if float(r["qty"]) == 0:
            side.pop(float(r["price"]), None)
        else:
            side[float(r["price"])] = float(r["qty"])
    books = [(t, dict(b.bids), dict(b.asks), b.resync) for t, b in ev.rebuild()]
    assert len(books) == 2
    assert books[0][0] == int(s_rows[0]["timestamp"]) * 1000 and not books[0][3]
    assert books[-1][1:] == (bids, asks, True)


def test_binance_updates_that_chain_are_applied_without_gaps(tmp_path):
    head = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"
    (tmp_path / "s.csv").write_text(head + "X,1,10,10,b,snap,99,1,-1\nX,1,10,10,a,snap,101,1,-1\n")
    (tmp_path / "u.csv").write_text(head + "X,2,9,12,b,set,99,0,8\nX,2,9,12,b,set,98,3,8\n"
                                    "X,3,13,15,a,set,100.5,2,12\nX,4,16,16,a,set,100.5,0,14\n")
    with pytest.raises(DataError, match=r"u\.csv:5: update-id gap: expected previous update id 15, got 14"):
        load_binance_depth(tmp_path / "s.csv", tmp_path / "u.csv", "X_Y")
    (tmp_path / "u.csv").write_text(head + "X,2,9,12,b,set,99,0,8\nX,2,9,12,b,set,98,3,8\n"
                                    "X,3,13,15,a,set,100.5,2,12\n")
    ev = load_binance_depth(tmp_path / "s.csv", tmp_path / "u.csv", "X_Y")
    final = [(dict(b.bids), dict(b.asks)) for _, b in ev.rebuild()][-1]
    assert final == ({98.0: 3.0}, {101.0: 1.0, 100.5: 2.0}) and ev.gaps == []
    assert ev.cols["side"].tolist() == [BID, ASK, BID, BID, ASK]


def test_wide_top25_snapshots_keep_microseconds_and_every_level(shared_data):
    path = shared_data / "depth" / "binance-futures_BTCUSDT_book_top25.csv"
    rows = _csv_rows(path)
    ev = load_wide_book(path, "BTC_USDT")
    books = [(t, dict(b.bids), dict(b.asks)) for t, b in ev.rebuild()]
    assert len(books) == len(rows) == 10
    for (t, bids, asks), r in zip(books, rows, strict=True):
        assert t == int(r["timestamp"])  # µs, not rounded to ms
        assert bids == {float(r[f"bids[{i}].price"]): float(r[f"bids[{i}].amount"]) for i in range(25)}
        assert asks == {float(r[f"asks[{i}].price"]): float(r[f"asks[{i}].amount"]) for i in range(25)}
        assert max(bids) < min(asks)


def test_wide_book_errors_name_the_line(tmp_path, shared_data):
    lines = (shared_data / "depth" / "binance-futures_BTCUSDT_book_top25.csv").read_text().splitlines()
    p = tmp_path / "w.csv"
    fields = lines[3].split(",")
    fields[5] = "abc"  # asks[0].amount
    p.write_text("\n".join([*lines[:3], ",".join(fields)]))
    with pytest.raises(DataError, match=r"w\.csv:4: asks\[0\]\.amount 'abc' is not a number"):
        load_wide_book(p, "BTC_USDT")
    p.write_text("\n".join([lines[0], lines[2], lines[1]]))
    with pytest.raises(DataError, match=r"w\.csv:3: timestamp .* before the previous"):
        load_wide_book(p, "BTC_USDT")
