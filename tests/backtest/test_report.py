"""What `botkit backtest` writes and prints, checked against the inputs by independent computations."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from botkit.backtest.analysis import fmt_money, money_decimals
from botkit.backtest.html import downsample, monthly_returns, read_equity
from botkit.backtest.report import _write_equity
from botkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "backtests" / "sample"
FILES = ("report.json", "trades.csv", "roundtrips.csv", "lots.csv", "equity.csv", "prices.csv", "report.html")


def _closes(path: Path) -> list[float]:
    with path.open() as fh:
        return [float(r["close"]) for r in csv.DictReader(fh)]


def _backtest(config: Path | str, out: Path, *extra: str, capsys: pytest.CaptureFixture[str] | None = None) -> str:
    code = main(["backtest", str(config), "--out", str(out), *extra])
    assert code == 0
    return capsys.readouterr().out if capsys is not None else ""


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_outputs_are_byte_identical_and_report_rerenders_the_same_page(tmp_path: Path, in_root: None) -> None:
    _backtest("configs/bollinger.toml", tmp_path / "a", "-q")
    _backtest("configs/bollinger.toml", tmp_path / "b", "-q")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    page = (tmp_path / "a" / "report.html").read_bytes()
    (tmp_path / "a" / "report.html").unlink()
    assert main(["report", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "report.html").read_bytes() == page
    assert b"<script src=" not in page and b"https://" not in page.split(b"<body>")[1]  # nothing to fetch


def test_report_json_trades_csv_and_summary(tmp_path: Path, in_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = _backtest("configs/bollinger.toml", tmp_path, capsys=capsys)
    rep = json.loads((tmp_path / "report.json").read_text())
    closes = _closes(SAMPLE / "BTC_USDT_1m.csv")
    assert rep["buy_and_hold"] == pytest.approx(closes[-1] / closes[0] - 1)
    assert rep["per_market"][0]["buy_and_hold"] == pytest.approx(closes[-1] / closes[0] - 1)
    assert rep["start_equity"] == 10_000.0
    assert "daily returns" in rep["conventions"]["sharpe_sortino_volatility"]
    assert "365" in rep["conventions"]["sharpe_sortino_volatility"]
    assert rep["warnings"] and "14.0 days" in rep["warnings"][0]  # the sample spans two weeks
    with (tmp_path / "trades.csv").open() as fh:
        fills = list(csv.DictReader(fh))
    assert {f["type"] for f in fills} == {"limit", "stop_market"}
    assert {f["reason"] for f in fills} == {"signal", "stop", "take-profit"}
    assert all(f["reason"] == "stop" for f in fills if f["type"] == "stop_market")
    with (tmp_path / "lots.csv").open() as fh:
        lots = list(csv.DictReader(fh))
    closed = [float(x["pnl"]) for x in lots if x["closed"] == "1"]
    assert rep["trades"]["lots"]["closed"] == len(closed)
    assert rep["trades"]["lots"]["win_rate"] == pytest.approx(sum(p > 0 for p in closed) / len(closed))
    assert rep["trades"]["lots"]["expectancy"] == pytest.approx(sum(closed) / len(closed))
    sd = float(np.std(closed, ddof=1))
    assert rep["trades"]["lots"]["sqn"] == pytest.approx(math.sqrt(len(closed)) * np.mean(closed) / sd)
    # durations from the CSV's own times
    from datetime import datetime

    def ms(s: str) -> float:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000

    durs = [ms(x["exit_time"]) - ms(x["entry_time"]) for x in lots if x["closed"] == "1"]
    assert rep["trades"]["lots"]["max_duration_ms"] == max(durs)
    assert rep["trades"]["lots"]["avg_duration_ms"] == pytest.approx(sum(durs) / len(durs))
    # the summary says the same, with the warning marked
    assert f"Start equity       {fmt_money(10_000.0, 2)} USDT" in out
    assert "Buy & hold" in out and "lots (FIFO)" in out and "SQN" in out and "Avg duration" in out
    assert "Sharpe (ann.)" in out and " *" in out and "extrapolate" in out


def test_rejections_are_counted_by_reason_in_the_summary(tmp_path: Path, in_root: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text().replace(
        'max_position = { BTC_USDT = "1" }', 'max_position = { BTC_USDT = "0.1" }')
    path = tmp_path / "tight.toml"
    path.write_text(cfg)
    out = _backtest(path, tmp_path / "out", capsys=capsys)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["rejections"] and sum(rep["rejections"].values()) > 0
    line = next(x for x in out.splitlines() if "Rejected orders" in x)
    total = sum(rep["rejections"].values())
    parts = ", ".join(f"{k} {v}" for k, v in rep["rejections"].items())
    assert line.split("Rejected orders")[1].strip() == f"{total} ({parts})"


def test_money_in_the_quotes_precision(tmp_path: Path, in_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    # a BTC-quoted market: ETH_BTC prices around 0.05 (the sample's ETH_USDT closes scaled), 1 BTC to start
    rows = (SAMPLE / "ETH_USDT_1m.csv").read_text().splitlines()
    head, body = rows[0], rows[1:]
    cols = head.split(",")
    scaled = [head]
    for r in body:
        v = r.split(",")
        for i, c in enumerate(cols):
            if c in ("open", "high", "low", "close"):
                v[i] = f"{float(v[i]) / 40000:.6f}"
        scaled.append(",".join(v))
    data = tmp_path / "ETH_BTC.csv"
    data.write_text("\n".join(scaled) + "\n")
    cfg = tmp_path / "ethbtc.toml"
    cfg.write_text(f"""
name = "ethbtc"
[strategy]
plugin = "strategies/sma_cross.py:SmaCross"
params = {{ fast = 20, slow = 100, fraction = "0.95" }}
[markets.ETH_BTC]
stock_prec = 4
money_prec = 6
[balances]
BTC = "1"
[data]
files = {{ ETH_BTC = "{data}" }}
""")
    out = _backtest(cfg, tmp_path / "out", capsys=capsys)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    line = next(x for x in out.splitlines() if "Final equity" in x)
    value = line.split("Final equity")[1].split()[0]
    assert line.strip().endswith("BTC") and len(value.split(".")[1]) >= 6
    assert float(value) == pytest.approx(rep["final_equity"], abs=1e-6)


def test_fmt_money_keeps_significant_digits() -> None:
    assert fmt_money(0.934512345, 2) == "0.934512"  # 2 decimals would say 0.93
    assert fmt_money(10_234.5678, 2) == "10,234.57"
    assert fmt_money(0.00012345678, 8) == "0.000123457"  # more than the precision when needed
    assert money_decimals(0.0, 2) == 2 and fmt_money(None, 2) == "n/a"


def test_equity_csv_writer_is_exact_and_shortest(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    e = np.repeat(10_000 * np.cumprod(1 + rng.normal(0, 0.01, 300)), rng.integers(1, 5, 300))
    e[:6] = [10_000.0, 0.1 + 0.2, 1e-05, 1e20, 5e-324, 123456789.125]
    t = np.arange(len(e), dtype=np.int64) * 60_000 + 1_700_000_000_000
    _write_equity(tmp_path / "e.csv", t, e)
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[0] == "time_ms,equity" and len(lines) == len(e) + 1
    cells = [line.split(",") for line in lines[1:]]
    assert [int(a) for a, _ in cells] == t.tolist()
    assert [float(b) for _, b in cells] == e.tolist()  # every value exact ...
    def digits(text: str) -> str:  # significant digits: "0.00001" and "1e-05" both have one
        return text.split("e")[0].replace("-", "").replace(".", "").strip("0")

    assert all(digits(b) == digits(repr(x)) for (_, b), x in zip(cells, e.tolist(), strict=True))  # ... and short
    assert cells[0][1] == "10000" and cells[1][1] == "0.30000000000000004"
    t2, e2 = read_equity(tmp_path / "e.csv")
    assert np.array_equal(t2, t) and np.array_equal(e2, e)
    _write_equity(tmp_path / "empty.csv", t[:0], e[:0])
    assert (tmp_path / "empty.csv").read_text() == "time_ms,equity\n"
    assert len(read_equity(tmp_path / "empty.csv")[0]) == 0


def test_downsample_keeps_extremes_and_ends() -> None:
    rng = np.random.default_rng(1)
    v = np.cumsum(rng.normal(size=1_000_003))
    t = np.arange(len(v), dtype=np.int64)
    dt, dv = downsample(t, v, 4000)
    assert len(dv) <= 4000
    assert dv.min() == v.min() and dv.max() == v.max()
    assert (dt[0], dt[-1]) == (0, len(v) - 1) and bool(np.all(np.diff(dt) > 0))
    assert np.array_equal(dv, v[dt])  # real points, not averages
    _, small_v = downsample(t[:100], v[:100], 4000)
    assert len(small_v) == 100


def test_monthly_returns_by_hand() -> None:
    day = 86_400_000
    jan1 = 1_704_067_200_000  # 2024-01-01T00:00Z
    # close times: Jan 1 00:01 (start), Jan 31 12:00, Feb 1 00:00 (closes Jan 31), Feb 15, Mar 2
    t = np.array([jan1 + 60_000, jan1 + 30 * day + day // 2, jan1 + 31 * day, jan1 + 45 * day, jan1 + 61 * day])
    e = np.array([100.0, 105.0, 110.0, 99.0, 108.9])
    ((year, months, total),) = monthly_returns(t, e)
    assert year == 2024
    assert months[0] == pytest.approx(0.10)  # 100 -> 110 (the bar closing at Feb 1 00:00 ends January)
    assert months[1] == pytest.approx(-0.10)  # 110 -> 99
    assert months[2] == pytest.approx(0.10)  # 99 -> 108.9
    assert months[3:] == [None] * 9
    assert total == pytest.approx(0.089)


def test_compare_prints_the_runs_side_by_side(tmp_path: Path, in_root: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _backtest("configs/sma_cross.toml", tmp_path / "sma", "-q")
    _backtest("configs/grid.toml", tmp_path / "grid", "-q")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "sma"), str(tmp_path / "grid"), "--html", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "sma" in lines[0] and "grid" in lines[0]
    for name in ("sma", "grid"):
        rep = json.loads((tmp_path / name / "report.json").read_text())
        fills_line = next(x for x in lines if x.strip().startswith("Fills"))
        assert str(rep["fills"]) in fills_line.split()
        ret_line = next(x for x in lines if x.strip().startswith("Total return"))
        assert f"{rep['metrics']['total_return'] * 100:.2f}%" in ret_line
    assert (tmp_path / "c.html").stat().st_size > 1_000_000  # plotly.js is inside
    assert main(["compare", str(tmp_path / "nothing-here")]) == 2


def test_iso_many_matches_iso() -> None:
    from botkit.backtest.report import iso, iso_many

    ms = [0, 1_700_000_000_123, 1_767_571_199_999, 1_767_571_200_000]
    assert iso_many(ms) == [iso(m) for m in ms]


STRATEGY = '''
from decimal import Decimal
from botkit import Strategy


class Both(Strategy):
    scopes = frozenset({"orders.create", "balances.read"})

    def on_start(self, ctx):
        self.n = 0

    def on_candle(self, ctx, candle):
        if candle.market != "ETH_USDT":
            return
        self.n += 1
        if self.n == 10:
            ctx.buy("BTC_USDT", Decimal("3000"))
            ctx.buy("ETH_USDT", Decimal("3000"))
        elif self.n == 5000:
            ctx.sell("ETH_USDT", ctx.position("ETH_USDT"))
'''


def test_per_market_breakdown(tmp_path: Path, in_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "both.py").write_text(STRATEGY)
    cfg = tmp_path / "both.toml"
    cfg.write_text(f"""
name = "both"
[strategy]
plugin = "{tmp_path / 'both.py'}:Both"
[markets.BTC_USDT]
stock_prec = 6
[markets.ETH_USDT]
stock_prec = 4
[balances]
USDT = "10000"
[data]
files = {{ BTC_USDT = "{SAMPLE / 'BTC_USDT_1m.csv'}", ETH_USDT = "{SAMPLE / 'ETH_USDT_1m.csv'}" }}
""")
    out = _backtest(cfg, tmp_path / "out", capsys=capsys)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    btc, eth = rep["per_market"]
    bh = {}
    for m in ("BTC_USDT", "ETH_USDT"):
        closes = _closes(SAMPLE / f"{m}_1m.csv")
        bh[m] = closes[-1] / closes[0] - 1
    assert (btc["market"], eth["market"]) == ("BTC_USDT", "ETH_USDT")
    assert btc["buy_and_hold"] == pytest.approx(bh["BTC_USDT"]) and eth["buy_and_hold"] == pytest.approx(bh["ETH_USDT"])
    assert rep["buy_and_hold"] == pytest.approx((bh["BTC_USDT"] + bh["ETH_USDT"]) / 2)
    assert (btc["fills"], eth["fills"]) == (1, 2)
    # exposure from the fills' times: BTC held from its fill to the end, ETH for 4,990 one-minute candles
    with (tmp_path / "out" / "trades.csv").open() as fh:
        fills = list(csv.DictReader(fh))
    t0 = datetime_ms(rep["period"]["start"])
    span = datetime_ms(rep["period"]["end"]) - t0
    btc_in = next(int(f["time_ms"]) for f in fills if f["market"] == "BTC_USDT")
    eth_in, eth_out = (int(f["time_ms"]) for f in fills if f["market"] == "ETH_USDT")
    assert btc["exposure"] == pytest.approx((t0 + span - btc_in) / span)
    assert eth["exposure"] == pytest.approx((eth_out - eth_in) / span)
    # P&L per market adds up to the equity change; the ETH lot is closed, the BTC one marked at the last close
    # (to a cent: ETH dust below the amount step stays held after the sell, valued at the sell's price in the lot)
    assert btc["pnl"] + eth["pnl"] == pytest.approx(rep["final_equity"] - rep["start_equity"], abs=0.01)
    assert "Market" in out and "BTC_USDT" in out.split("Market")[-1] and "ETH_USDT" in out.split("Market")[-1]


def datetime_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_equity_csv_is_written_beside_the_other_files_and_its_errors_reach_the_caller(
        tmp_path: Path, in_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import botkit.backtest.report as report
    from botkit.backtest.run import run_backtest
    from botkit.config import load_config

    result = run_backtest(load_config("configs/sma_cross.toml"))
    real = report._write_equity
    threads: list[str] = []

    def spy(path: Path, t: np.ndarray, e: np.ndarray) -> None:
        threads.append(threading.current_thread().name)
        real(path, t, e)

    monkeypatch.setattr(report, "_write_equity", spy)
    paths = report.write_report(result, tmp_path / "ok", "x", html=False)
    assert threads == ["botkit-equity-csv"]  # not the caller's thread
    assert [p.name for p in paths] == ["report.json", "trades.csv", "roundtrips.csv", "lots.csv", "equity.csv",
                                       "prices.csv"]
    t, e = read_equity(tmp_path / "ok" / "equity.csv")  # complete when write_report returns
    assert np.array_equal(t, result.event_time_ms) and np.array_equal(e, result.equity)

    def full(path: Path, t: np.ndarray, e: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "_write_equity", full)
    with pytest.raises(OSError, match="No space left"):
        report.write_report(result, tmp_path / "full", "x", html=False)


def _months_by_date(t: np.ndarray, e: np.ndarray) -> list[tuple[int, list[float | None], float]]:
    """monthly_returns the plain way: a calendar month per bar."""
    month = ((t - 1).astype("datetime64[ms]")).astype("datetime64[M]").astype(np.int64)
    last = np.flatnonzero(np.append(month[1:] != month[:-1], True))
    closes = e[last]
    base = np.concatenate(([e[0]], closes[:-1]))
    rets = np.where(base > 0, closes / np.where(base > 0, base, 1.0) - 1.0, 0.0)
    by_year: dict[int, list[float | None]] = {}
    growth: dict[int, float] = {}
    for mo, r in zip(month[last].tolist(), rets.tolist(), strict=True):
        by_year.setdefault(1970 + mo // 12, [None] * 12)[mo % 12] = r
        growth[1970 + mo // 12] = growth.get(1970 + mo // 12, 1.0) * (1.0 + r)
    return [(y, by_year[y], growth[y] - 1.0) for y in sorted(by_year)]


def _m4(t: np.ndarray, v: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """downsample the plain way: first, min, max, last of each bucket (first index of the min and the max)."""
    if len(v) <= points:
        return t, v
    edges = np.linspace(0, len(v), points // 4 + 1).astype(np.int64).tolist()
    idx: list[int] = []
    for a, b in itertools.pairwise(edges):
        for i in sorted((a, a + int(np.argmin(v[a:b])), a + int(np.argmax(v[a:b])), b - 1)):
            if not idx or idx[-1] != i:
                idx.append(i)
    return t[idx], v[idx]


def test_downsample_drawdown_and_monthly_returns_match_the_plain_computations() -> None:
    from botkit.backtest.html import drawdown

    rng = np.random.default_rng(11)
    day = 86_400_000
    for trial in range(120):
        n = int(rng.choice([2, 3, 50, 4001, 5003, 20011]))
        step = int(rng.choice([60_000, 3_600_000, day, 7 * day, 40 * day]))
        t = 1_704_067_200_000 + np.cumsum(rng.integers(0, 3, n) * step) + int(rng.choice([0, 1, -1]))
        if trial % 7 == 0:
            t -= t % day  # bars closing exactly at midnight close the day (and month) before
        if trial % 11 == 0:
            t = rng.permutation(t)  # out of time order
        v = [np.cumsum(rng.normal(size=n)) + 100, np.zeros(n), np.round(rng.normal(size=n), 1) + 5,
             np.repeat(rng.normal(size=n // 10 + 1), 10)[:n] + 50][trial % 4]
        got, want = monthly_returns(t, v), _months_by_date(t, v)
        assert got == want, trial
        for points in (4000, 400):
            (dt, dv), (wt, wv) = downsample(t, v, points), _m4(t, v, points)
            assert np.array_equal(dt, wt) and np.array_equal(dv, wv), trial
        peak = np.maximum.accumulate(v)
        plain = np.where(peak > 0, v / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
        assert np.array_equal(drawdown(v), plain), trial


def test_trade_prices_are_twelve_significant_digits_without_trailing_zeros() -> None:
    import random
    from decimal import Decimal

    from botkit.backtest.report import _price
    from botkit.market.rules import fmt

    def plain(v: Decimal | None) -> str:  # the definition: round to 12 digits, read back, write as fmt does
        if v is None:
            return ""
        return fmt(Decimal(format(v, ".12g"))) if v else "0"

    rng = random.Random(3)
    values = [None, Decimal(0), Decimal("-0"), Decimal("1E+5"), Decimal("100"), Decimal("1.500"),
              Decimal("0.0000001234"), Decimal("123456789012345"), Decimal("0.000001"), Decimal("-2.5E-7")]
    for _ in range(20_000):
        d = Decimal(rng.randint(-10**20, 10**20)).scaleb(rng.randint(-30, 10))
        values += [d, d / Decimal(rng.randint(1, 10**6))]
    assert [_price(v) for v in values] == [plain(v) for v in values]
    assert _price(Decimal("30037.550000")) == "30037.55" and _price(Decimal("1E+5")) == "100000"


def test_csv_rows_come_back_as_the_dicts_the_file_reads_back(tmp_path: Path) -> None:
    from botkit.backtest.report import _write_csv

    head = ["market", "side", "note"]
    rows = [["BTC_USDT", "buy", f"n{i}"] for i in range(2500)] + [["ETH_USDT", "sell", 'a "quoted", text']]
    got = _write_csv(tmp_path / "r.csv", head, rows)
    with (tmp_path / "r.csv").open(newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(got) == len(back) == 2501
    assert list(got) == back and got[:1000] == back[:1000] and got[-1] == back[-1] and got[7] == back[7]


def test_csv_files_are_what_csv_writer_writes_whatever_the_fields(tmp_path: Path) -> None:
    import io

    from botkit.backtest.report import _write_csv

    head = ["a", "b", "c"]
    cases = [
        [["1", "2", "3"], ["x y", "", "z"]],  # the usual: nothing to quote (written by the fast path)
        [["1", "2,5", "3"]], [["1", 'say "hi"', "3"]], [["1", "two\nlines", "3"]], [["1", "cr\r", "3"]],
        [["1", "2"]],  # a short row
        [],
    ]
    for rows in cases:
        want = io.StringIO()
        w = csv.writer(want, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)
        _write_csv(tmp_path / "t.csv", head, rows)
        assert (tmp_path / "t.csv").read_bytes() == want.getvalue().encode(), rows
    _write_csv(tmp_path / "one.csv", ["only"], [[""], ["x"]])
    assert (tmp_path / "one.csv").read_text() == 'only\n""\nx\n'


def test_drawdown_and_downsample_of_curves_with_nan_are_the_plain_computations() -> None:
    from botkit.backtest.html import drawdown

    v = np.array([100.0, 110.0, np.nan, 90.0, 120.0, 60.0] * 2000)
    peak = np.maximum.accumulate(v)
    want = np.where(peak > 0, v / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    assert np.array_equal(drawdown(v), want, equal_nan=True)
    w = np.cumsum(np.ones(9000))
    w[5] = np.inf
    t = np.arange(len(w))
    (dt, dv), (wt, wv) = downsample(t, w, 400), _m4(t, w, 400)
    assert np.array_equal(dt, wt) and np.array_equal(dv, wv)
