"""`botkit backtest` arguments and messages (issue 12): --repair, open windows, directories, --data merging, and the
data-mismatch warnings said at the start and kept in report.json. Each test runs the CLI and reads its text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from botkit.backtest.checks import data_warnings
from botkit.backtest.data import load_candles
from botkit.cli import main
from botkit.market.rules import MarketRules

ROOT = Path(__file__).resolve().parents[2]
M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def candles(
    path: Path,
    n: int = 300,
    *,
    t0: int = T0,
    tf: int = M,
    price: float = 100.0,
    decimals: int = 2,
    skip: tuple[int, ...] = (),
) -> Path:
    """A small valid candle CSV: a gentle random walk around `price`, rows in `skip` left out (gaps)."""
    rng = np.random.default_rng(len(path.name))
    close = price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    fmt = f"{{:.{decimals}f}}"
    lines = ["time_ms,open,high,low,close,volume"]
    prev = close[0]
    for i in range(n):
        if i in skip:
            continue
        o, c = prev, close[i]
        hi, lo = max(o, c) * 1.001, min(o, c) * 0.999
        lines.append(f"{t0 + i * tf},{fmt.format(o)},{fmt.format(hi)},{fmt.format(lo)},{fmt.format(c)},1.5")
        prev = c
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path: Path, files: dict[str, Path], extra_data: str = "", markets: dict[str, int] | None = None) -> Path:
    """A bot config with sma_cross on the given files; markets default to the files' markets at money_prec 2."""
    markets = markets or dict.fromkeys(files, 2)
    quote = next(iter(markets)).split("_")[1]
    tables = "\n".join(f"[markets.{m}]\nstock_prec = 4\nmoney_prec = {p}\n" for m, p in markets.items())
    listed = ", ".join(f'{m} = "{p}"' for m, p in files.items())
    body = f"""
        name = "t"
        [strategy]
        plugin = "{ROOT}/strategies/sma_cross.py:SmaCross"
        params = {{ fast = 3, slow = 8 }}
        {{tables}}
        [balances]
        {quote} = "1000"
        [data]
        files = {{{{ {listed} }}}}
        {extra_data}
        [backtest]
        progress = false
        [output]
        dir = "{tmp_path / 'out'}"
    """
    p = tmp_path / "bot.toml"
    p.write_text(textwrap.dedent(body).replace("{tables}", tables).replace("{{", "{").replace("}}", "}"))
    return p


def report(tmp_path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((tmp_path / "out" / "report.json").read_text())
    return data


# ---- 1. --repair ----------------------------------------------------------------------------------------------------


def test_gap_error_names_a_repair_flag_that_backtest_accepts(tmp_path, capsys):
    gappy = candles(tmp_path / "gappy.csv", skip=(100, 101, 102))
    cfg = config(tmp_path, {"BTC_USDT": gappy})
    assert main(["backtest", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "3 missing 1m candle(s)" in err and "--repair fill_gaps" in err and '[data] repair = ["fill_gaps"]' in err

    assert main(["backtest", str(cfg), "--repair", "fill_gaps"]) == 0
    out = capsys.readouterr().out
    assert "repaired: filled 3 missing candles in 1 gaps" in out  # a repair is never silent
    rep = report(tmp_path)
    filled = "filled 3 missing candles in 1 gaps (flat at the previous close, volume 0)"
    assert rep["data"]["BTC_USDT"]["repairs"] == [filled]
    assert rep["events"] == 300


def test_repair_flag_takes_comma_lists_and_repeats_and_adds_to_the_config(tmp_path, capsys):
    rows = candles(tmp_path / "messy.csv", skip=(50,)).read_text().splitlines()
    rows[10], rows[11] = rows[11], rows[10]  # out of order
    rows.insert(20, rows[20])  # an identical duplicate
    messy = tmp_path / "messy.csv"
    messy.write_text("\n".join(rows) + "\n")
    cfg = config(tmp_path, {"BTC_USDT": messy}, 'repair = ["allow_gaps"]')
    assert main(["backtest", str(cfg), "-q", "--repair", "sort,drop_duplicates", "--repair", "fill_gaps"]) == 0
    repairs = report(tmp_path)["data"]["BTC_USDT"]["repairs"]
    assert [r.split()[0] for r in repairs] == ["sorted", "dropped", "filled"]  # fill_gaps replaced allow_gaps
    assert main(["backtest", str(cfg), "-q", "--repair", "sort,drop_duplicates"]) == 0
    assert "kept 1 gaps" in report(tmp_path)["data"]["BTC_USDT"]["repairs"][-1]  # the config's allow_gaps stays


def test_repair_flag_rejects_unknown_names_and_conflicts(tmp_path, capsys):
    cfg = config(tmp_path, {"BTC_USDT": candles(tmp_path / "a.csv")})
    with pytest.raises(SystemExit) as ei:
        main(["backtest", str(cfg), "--repair", "fil_gaps"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "--repair: unknown repair fil_gaps: choose from sort, drop_duplicates, fill_gaps, allow_gaps" in err
    assert main(["backtest", str(cfg), "--repair", "fill_gaps,allow_gaps"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    both = config(tmp_path, {"BTC_USDT": tmp_path / "a.csv"}, 'repair = ["fill_gaps", "allow_gaps"]')
    assert main(["backtest", str(both), "-q"]) == 2
    assert "[data] repair has both fill_gaps and allow_gaps" in capsys.readouterr().err


def test_bad_data_timeframe_is_an_error_not_a_traceback(tmp_path, capsys):
    cfg = config(tmp_path, {"BTC_USDT": candles(tmp_path / "a.csv")}, 'timeframe = "5x"')
    assert main(["backtest", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [data] timeframe: timeframe '5x' is not understood") and "Traceback" not in err


def test_readme_documents_every_backtest_flag():
    from botkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    bt = sub.choices["backtest"]  # type: ignore[attr-defined]
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `botkit backtest"))
    for action in bt._actions:
        if action.option_strings and "--help" not in action.option_strings:
            assert any(flag in row for flag in action.option_strings), f"README lacks {action.option_strings}"


# ---- 2. open-ended windows ------------------------------------------------------------------------------------------


def test_open_ended_windows_are_said_in_words(tmp_path, capsys):
    cfg = config(tmp_path, {"BTC_USDT": candles(tmp_path / "a.csv")})
    assert main(["backtest", str(cfg), "-q", "--from", "2030-01-01"]) == 2
    err = capsys.readouterr().err
    assert "no candles in the window from 2030-01-01T00:00:00Z to the end of the data" in err
    assert "inf" not in err and "--from/--to" in err
    assert main(["backtest", str(cfg), "-q", "--to", "2020-01-01"]) == 2
    err = capsys.readouterr().err
    assert "from the start of the data to 2020-01-01T00:00:00Z (exclusive)" in err and "inf" not in err


# ---- 3. a directory as --data ---------------------------------------------------------------------------------------


def test_directory_as_data_says_so_and_lists_candle_files(tmp_path, capsys):
    folder = tmp_path / "candles"
    folder.mkdir()
    candles(folder / "BTC_USDT_1m.csv")
    candles(folder / "ETH_USDT_1m.csv")
    (folder / "notes.txt").write_text("not candles")
    cfg = config(tmp_path, {"BTC_USDT": candles(tmp_path / "a.csv")})
    assert main(["backtest", str(cfg), "-q", "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{folder}: is a directory, not a candle file" in err and "no such file" not in err
    assert f"Candle files in it: {folder / 'BTC_USDT_1m.csv'}, {folder / 'ETH_USDT_1m.csv'}." in err
    assert f"For BTC_USDT: {folder / 'BTC_USDT_1m.csv'}" in err and "notes.txt" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["backtest", str(cfg), "-q", "--data", f"BTC_USDT={empty}"]) == 2
    assert "is a directory, not a candle file" in (err := capsys.readouterr().err) and "holds no .csv or .json" in err
    assert main(["data", "check", str(folder), "--market", "BTC_USDT"]) == 2
    assert "is a directory, not a candle file" in capsys.readouterr().err


# ---- 4. --data MARKET=PATH merges with [data] files -----------------------------------------------------------------


def test_data_override_replaces_only_the_named_market(tmp_path, capsys):
    btc = candles(tmp_path / "btc.csv", price=30000)
    eth = candles(tmp_path / "eth.csv", price=2000)
    eth2 = candles(tmp_path / "eth2.csv", price=2100)
    cfg = config(tmp_path, {"BTC_USDT": btc, "ETH_USDT": eth})
    assert main(["backtest", str(cfg), "-q", "--data", f"ETH_USDT={eth2}"]) == 0
    rep = report(tmp_path)
    assert rep["markets"] == ["BTC_USDT", "ETH_USDT"]
    assert rep["data"]["BTC_USDT"]["source"] == str(btc) and rep["data"]["ETH_USDT"]["source"] == str(eth2)


def test_data_override_for_an_unknown_market_names_the_flag(tmp_path, capsys):
    cfg = config(tmp_path, {"BTC_USDT": candles(tmp_path / "btc.csv")})
    assert main(["backtest", str(cfg), "-q", "--data", "BTC_USTD=x.csv"]) == 2
    err = capsys.readouterr().err
    assert "--data BTC_USTD=x.csv: market 'BTC_USTD' is not in [markets]" in err and "(BTC_USDT)" in err
    two = config(tmp_path, {"BTC_USDT": tmp_path / "btc.csv", "ETH_USDT": tmp_path / "btc.csv"})
    assert main(["backtest", str(two), "-q", "--data", str(tmp_path / "btc.csv")]) == 2
    assert "several markets (BTC_USDT, ETH_USDT); write --data MARKET=PATH" in capsys.readouterr().err


# ---- 7-9. data mismatches warn at the start -------------------------------------------------------------------------


def test_no_warnings_on_the_shipped_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["backtest", "configs/grid.toml", "-q", "--out", str(tmp_path / "out")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert report(tmp_path)["data_warnings"] == []


def test_markets_whose_windows_do_not_overlap_warn(tmp_path, capsys):
    btc = candles(tmp_path / "btc.csv", price=30000)
    eth = candles(tmp_path / "eth.csv", price=2000, t0=T0 + 31 * 86_400_000)  # a month later
    cfg = config(tmp_path, {"BTC_USDT": btc, "ETH_USDT": eth})
    assert main(["backtest", str(cfg)]) == 0
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert first.startswith("warning: the markets' data windows do not overlap (BTC_USDT 2024-01-01T00:00:00Z .. ")
    assert "ETH_USDT 2024-02-01T00:00:00Z .. 2024-02-01T05:00:00Z" in first and "never trade at the same time" in first
    assert "1 data warning(s)" in captured.out
    assert report(tmp_path)["data_warnings"] == [first.removeprefix("warning: ")]


def test_partly_overlapping_windows_say_how_much(tmp_path, capsys):
    btc = candles(tmp_path / "btc.csv", n=400, price=30000)
    eth = candles(tmp_path / "eth.csv", n=400, price=2000, t0=T0 + 300 * M)  # overlaps the last 100 minutes
    cfg = config(tmp_path, {"BTC_USDT": btc, "ETH_USDT": eth})
    assert main(["backtest", str(cfg), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: the markets' data windows overlap only partly: all have candles from 2024-01-01T05:00:00Z to " \
           "2024-01-01T06:40:00Z (1 h 40 min); outside that: BTC_USDT 75% of its 6 h 40 min (5 h), " \
           "ETH_USDT 75% of its 6 h 40 min (5 h)" in err
    assert "--from 2024-01-01T05:00:00Z --to 2024-01-01T06:40:00Z" in err
    assert len(report(tmp_path)["data_warnings"]) == 1


def test_mixed_timeframes_warn_with_both(tmp_path, capsys):
    btc = candles(tmp_path / "btc.csv", n=600, price=30000)
    eth = candles(tmp_path / "eth.csv", n=120, price=2000, tf=5 * M)
    cfg = config(tmp_path, {"BTC_USDT": btc, "ETH_USDT": eth})
    assert main(["backtest", str(cfg), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: mixed timeframes across markets (BTC_USDT 1m, ETH_USDT 5m)" in err
    assert "overlap" not in err  # same 10 hours
    assert report(tmp_path)["data_warnings"][0].startswith("mixed timeframes across markets (BTC_USDT 1m, ETH_USDT 5m)")


def test_prices_below_the_price_step_warn_with_the_key_and_a_value(tmp_path, capsys):
    xrp = candles(tmp_path / "xrp.csv", price=0.0014, decimals=8)
    cfg = config(tmp_path, {"XRP_ETH": xrp})
    assert main(["backtest", str(cfg), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: XRP_ETH: median close 0.001")
    assert "price steps of 0.01 ([markets.XRP_ETH] money_prec = 2)" in err and "every order would be rejected" in err
    assert "Set [markets.XRP_ETH] money_prec = 8 (the data's prices have 8 decimals)" in err
    ok = config(tmp_path, {"XRP_ETH": xrp}, markets={"XRP_ETH": 8})
    assert main(["backtest", str(ok), "-q"]) == 0
    assert "warning" not in capsys.readouterr().err and report(tmp_path)["data_warnings"] == []


def test_real_xrp_eth_at_two_decimals_warns(tmp_path, capsys, shared_data):
    real = shared_data / "candles" / "XRP_ETH_1m.csv"
    cfg = config(tmp_path, {"XRP_ETH": real}, 'repair = ["allow_gaps"]')
    assert main(["backtest", str(cfg), "-q"]) == 0
    err = capsys.readouterr().err
    assert "[markets.XRP_ETH] money_prec = 2" in err and "Set [markets.XRP_ETH] money_prec = 8" in err


def test_coarse_step_and_sub_step_candles_are_told_apart(tmp_path):
    def rules(prec: int) -> dict[str, MarketRules]:
        return {"ETH_BTC": MarketRules("ETH_BTC", "ETH", "BTC", stock_prec=4, money_prec=prec)}

    rows = [f"{T0 + i * M},0.0922,0.09222,0.09218,0.0922,1" for i in range(50)]
    path = tmp_path / "eth_btc.csv"
    path.write_text("time_ms,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    s = load_candles(path, "ETH_BTC")
    coarse = data_warnings([s], rules(2))  # a step of 0.01 on a price of 0.0922
    assert len(coarse) == 1 and "order prices round by up to 5.4%" in coarse[0]
    assert "Set [markets.ETH_BTC] money_prec = 5 (the data's prices have 5 decimals)" in coarse[0]
    fine_price = data_warnings([s], rules(4))  # 0.11 % steps are fine for prices, but candles move 0.00004
    assert len(fine_price) == 1 and "round by" not in fine_price[0]
    assert "a typical candle's range (high - low, median) of 4e-05 is less than one step" in fine_price[0]
    assert data_warnings([s], rules(5)) == []  # a step of 0.00001 holds every price of the file


def test_checks_median_is_numpys_median_without_importing_numpy_ma() -> None:
    import subprocess
    import sys

    import numpy as np

    from botkit.backtest.checks import median

    rng = np.random.default_rng(3)
    for n in [*range(1, 30), 1000, 1001]:
        for scale in (1e-9, 1.0, 1e9):
            x = rng.normal(size=n) * scale + 5e4
            assert median(x) == float(np.median(x)), (n, scale)
            assert median(np.round(x, 2)) == float(np.median(np.round(x, 2)))
    assert np.isnan(median(np.array([1.0, np.nan, 2.0])))
    code = ("import sys, numpy as np; from botkit.backtest.checks import median; median(np.arange(5.0)); "
            "print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m botkit.cli` in a fresh process: the console script's path, hard exit included."""
    return subprocess.run([sys.executable, "-m", "botkit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def test_console_backtest_exits_hard_with_every_output_written_and_all_text_flushed(tmp_path):
    """The console script leaves a batch command with os._exit (no interpreter clean-up): the pipe still gets the
    whole summary, the log handlers' lines reach stderr, and every file is complete."""
    data = candles(tmp_path / "BTC_USDT_1m.csv", 3000, skip=(1500,))
    cfg = tmp_path / "bot.toml"
    cfg.write_text((ROOT / "configs" / "sma_cross.toml").read_text()
                   .replace('"strategies/sma_cross.py:SmaCross"', f'"{ROOT / "strategies" / "sma_cross.py"}:SmaCross"')
                   .replace("backtests/sample/BTC_USDT_1m.csv", str(data))
                   .replace("repair = []", 'repair = ["allow_gaps"]'))
    done = _console(["backtest", str(cfg), "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("wrote "), done.stdout[-500:]
    assert "\nBacktest bot" in done.stdout and "repaired: kept 1 gap" in done.stdout
    assert "WARNING botkit.execution" in done.stderr  # the log handler's lines (risk rejections) are flushed too
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = (tmp_path / "out" / "equity.csv").read_text().splitlines()
    assert len(rows) == 1 + report["events"] == 3000, (len(rows), report["events"])
    assert (tmp_path / "out" / "report.html").read_text().rstrip().endswith("</html>")


def test_console_backtest_keeps_its_exit_codes(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[strategy]\nplugin = 'strategies/sma_cross.py:SmaCross'\n[backtest]\nslippage_pct = 'lots'\n")
    done = _console(["backtest", str(bad)], tmp_path)
    assert done.returncode == 2 and "slippage_pct" in done.stderr, (done.returncode, done.stderr)
    (tmp_path / "boom.py").write_text(textwrap.dedent("""\
        from botkit import Strategy
        class Boom(Strategy):
            def on_candle(self, ctx, candle):
                raise RuntimeError("boom at the first candle")
        """))
    data = candles(tmp_path / "BTC_USDT_1m.csv", 200)
    cfg = tmp_path / "boom.toml"
    cfg.write_text((ROOT / "configs" / "sma_cross.toml").read_text()
                   .replace('"strategies/sma_cross.py:SmaCross"', f'"{tmp_path / "boom.py"}:Boom"')
                   .replace("params = { fast = 20, slow = 100, fraction = \"0.95\" }", "")
                   .replace("backtests/sample/BTC_USDT_1m.csv", str(data)))
    done = _console(["backtest", str(cfg), "-q", "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 1 and "boom at the first candle" in done.stderr, (done.returncode, done.stderr)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["outcome"] == "halted"
