"""Config validation, plugin loading and the `botkit backtest` command, end to end through the CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.config import ConfigError, load_config
from botkit.plugins import PluginError, build_strategy, load_strategy_class

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "bot.toml"
    p.write_text(textwrap.dedent(body))
    return p


GOOD = f"""
name = "t"
[strategy]
plugin = "{ROOT}/strategies/sma_cross.py:SmaCross"
params = {{ fast = 5, slow = 20 }}
[markets.BTC_USDT]
stock_prec = 6
money_prec = 2
[balances]
USDT = "1000"
[data]
files = {{ BTC_USDT = "{ROOT}/backtests/sample/BTC_USDT_1m.csv" }}
"""


def test_good_config_loads_with_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    rules = cfg.market_rules()["BTC_USDT"]
    assert rules.stock == "BTC" and rules.money == "USDT" and str(rules.taker_fee) == "0.1"
    assert "orders.create" in cfg.grant.scopes


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    p = _write(tmp_path, GOOD + "\n[risk]\nmax_opn_orders = 3\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "risk.max_opn_orders: unknown key" in msg and "Did you mean 'max_open_orders'?" in msg


def test_bad_value_names_key_value_and_rule(tmp_path):
    p = _write(tmp_path, GOOD + "\n[risk]\nmax_open_orders = -1\n")
    with pytest.raises(ConfigError, match=r"risk.max_open_orders = -1: Input should be greater than or equal to 1"):
        load_config(p)
    p = _write(tmp_path, GOOD + '\n[grant]\nscopes = ["orders.creat"]\n')
    with pytest.raises(ConfigError, match="did you mean 'orders.create'"):
        load_config(p)


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTKIT_RISK__MAX_OPEN_ORDERS", "7")
    monkeypatch.setenv("BOTKIT_NAME", "from-env")
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.risk.max_open_orders == 7 and cfg.name == "from-env"


def test_cli_bad_config_exits_2_with_message(tmp_path, capsys):
    p = _write(tmp_path, GOOD + "\n[backtest]\nslippage_pct = \"lots\"\n")
    assert main(["backtest", str(p), "-q"]) == 2
    err = capsys.readouterr().err
    assert "backtest.slippage_pct = 'lots'" in err


def test_cli_bad_data_exits_2_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("time_ms,open,high,low,close,volume\n0,1,2,0.5,1,1\n60000,1,2,0.5,-1,1\n")
    p = _write(tmp_path, GOOD)
    assert main(["backtest", str(p), "-q", "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err


def test_plugin_errors_name_the_plugin(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        load_strategy_class("nope/missing.py:X")
    with pytest.raises(PluginError, match="no class 'Nope'.*SmaCross"):
        load_strategy_class(f"{ROOT}/strategies/sma_cross.py:Nope")
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginError, match="importing .*broken.py failed: ModuleNotFoundError"):
        load_strategy_class(f"{broken}:X")
    with pytest.raises(PluginError, match=r"SmaCross.*fast = 0.*Accepted params: market, fast, slow, fraction"):
        build_strategy(f"{ROOT}/strategies/sma_cross.py:SmaCross", {"fast": 0})
    with pytest.raises(PluginError, match="no entry point"):
        load_strategy_class("definitely_not_registered")


def test_plugin_from_module_path(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "strat.py").write_text("from botkit import Strategy\nclass Mine(Strategy):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_strategy_class("mypkg.strat:Mine").__name__ == "Mine"


def test_plugin_from_entry_point(tmp_path):
    """A real installed distribution advertising the entry point, found through importlib.metadata."""
    site = tmp_path / "site"
    (site / "epdemo").mkdir(parents=True)
    (site / "epdemo" / "__init__.py").write_text("from botkit import Strategy\nclass EP(Strategy):\n    pass\n")
    dist = site / "epdemo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epdemo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[botkit.strategies]\nepdemo = epdemo:EP\n")
    code = "from botkit.plugins import load_strategy_class; print(load_strategy_class('epdemo').__name__)"
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "EP"


@pytest.mark.parametrize("config", ["sma_cross", "bollinger", "grid", "sma_oco"])
def test_example_strategies_backtest_on_sample_data(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["backtest", f"configs/{config}.toml", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "Sharpe (ann.)" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["fills"] > 0, f"{config} made no trades on the sample"
    lines = (tmp_path / "trades.csv").read_text().splitlines()
    assert len(lines) == report["fills"] + 1


@pytest.mark.parametrize("config", ["sma_cross", "bollinger", "grid", "sma_oco"])
def test_example_strategies_backtest_on_real_btc_perp(config, tmp_path, monkeypatch, shared_data):
    monkeypatch.chdir(ROOT)
    real = shared_data / "candles" / "BTC-PERP_1m.csv"
    code = main(["backtest", f"configs/{config}.toml", "-q", "--out", str(tmp_path), "--data", f"BTC_USDT={real}",
                 "--from", "2022-01-03", "--to", "2022-01-17"])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["events"] > 10_000 and report["fills"] > 0
    assert report["period"]["start"].startswith("2022-01-03")


def test_progress_bar_reports_on_long_runs():
    import io

    from botkit.backtest.run import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream=stream)
    bar(0, 100)
    bar.started -= 2.0  # pretend two seconds passed
    bar(50, 100)
    bar(100, 100)
    lines = stream.getvalue().splitlines()
    assert lines and "50%" in lines[0] and "100%" in lines[-1] and "candles" in lines[-1]


def test_config_errors_never_echo_secrets_or_whole_tables(tmp_path):
    p = _write(tmp_path, GOOD + '\n[risk]\nmax_position = "hunter2-secret"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "risk.max_position" in str(ei.value)
    from pydantic import BaseModel, ValidationError

    from botkit.config import format_validation_error

    class M(BaseModel):
        api_secret: int
        table: dict[str, int]

    try:
        M(api_secret="s3cr3t-value", table={"a": "x-private"})
    except ValidationError as exc:
        msg = format_validation_error(exc, "f.toml", M)
    assert "s3cr3t-value" not in msg and "<hidden>" in msg


def test_auth_section_is_checked_at_load_and_secrets_must_come_from_env(tmp_path, monkeypatch):
    monkeypatch.delenv("BOTKIT_AUTH__CLIENT_SECRET", raising=False)
    ok = GOOD + '\n[auth]\nclient_id = "my-client"\nbase_url = "https://whitebit.com"\n'
    assert load_config(_write(tmp_path, ok)).auth["client_id"] == "my-client"
    with pytest.raises(ConfigError, match="auth.client_idd"):
        load_config(_write(tmp_path, GOOD + '\n[auth]\nclient_id = "c"\nclient_idd = "typo"\n'))
    with pytest.raises(ConfigError, match="must not be in a file") as ei:
        load_config(_write(tmp_path, GOOD + '\n[auth]\nclient_id = "c"\nclient_secret = "sup3r-s3cret"\n'))
    assert "sup3r-s3cret" not in str(ei.value)
    monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", "from-env-secret")
    cfg = load_config(_write(tmp_path, ok))
    assert cfg.auth["client_id"] == "my-client"


SHIPPED_CONFIGS = ["bollinger.toml", "grid.toml", "sandbox_oauth.toml", "sandbox_oauth_bearer.toml",
                   "sandbox_oauth_rfc.toml", "sandbox_sma.toml", "sma_cross.toml", "sma_oco.toml"]


def test_shipped_config_list_is_complete():
    """A user's own file in configs/ (the README tour writes one) is not a test case; the shipped ones all are."""
    tracked = subprocess.run(["git", "ls-files", "configs"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: cannot tell shipped configs from a user's")
    assert sorted(Path(p).name for p in tracked.stdout.split() if p.endswith(".toml")) == SHIPPED_CONFIGS


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_is_valid(name, monkeypatch):
    path = ROOT / "configs" / name
    monkeypatch.chdir(ROOT)
    cfg = load_config(path)
    build_strategy(cfg.strategy.plugin, cfg.strategy.params)


# ---- issue 12: plugin references ------------------------------------------------------------------------------------


@pytest.fixture
def clean_imports(monkeypatch):
    """sys.path without the current directory (as under the `botkit` console script); new modules forgotten after."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_no_class_error_lists_only_strategies_defined_in_that_module(tmp_path):
    mod = tmp_path / "several.py"
    mod.write_text(textwrap.dedent(f"""
        from botkit import Strategy
        from botkit.plugins import load_strategy_class
        from botkit.strategy import Strategy as Base

        Imported = load_strategy_class("{ROOT}/strategies/sma_cross.py:SmaCross")

        class Mine(Strategy):
            pass

        class Yours(Base):
            pass
    """))
    with pytest.raises(PluginError) as ei:
        load_strategy_class(f"{mod}:Mien")
    msg = str(ei.value)
    assert "no class 'Mien'" in msg and "Did you mean 'Mine'?" in msg
    assert msg.endswith("Strategy classes defined there: Mine, Yours"), msg
    with pytest.raises(PluginError, match="Strategy classes defined there: none"):
        load_strategy_class("botkit.strategy:Nope")


def test_module_ref_resolves_from_the_repository_root_like_python_m(tmp_path):
    """The issue's case: the console script (no current directory on sys.path), run from the repository root."""
    cfg = (ROOT / "configs" / "sma_cross.toml").read_text()
    cfg = cfg.replace('"strategies/sma_cross.py:SmaCross"', '"strategies.sma_cross:SmaCross"')
    assert "strategies.sma_cross:SmaCross" in cfg
    (tmp_path / "bot.toml").write_text(cfg)
    # -P: no script or current directory on sys.path, exactly like the installed `botkit` command
    cmd = [sys.executable, "-P", "-m", "botkit.cli", "backtest", str(tmp_path / "bot.toml"), "-q",
           "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["strategy"] == "SmaCross"


def test_module_ref_from_the_current_directory_appends_it_last(tmp_path, monkeypatch, clean_imports):
    (tmp_path / "cwdpkg12").mkdir()
    (tmp_path / "cwdpkg12" / "strat.py").write_text("from botkit import Strategy\nclass Here(Strategy):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    assert load_strategy_class("cwdpkg12.strat:Here").__name__ == "Here"
    assert sys.path[-1] == str(tmp_path)  # last: installed packages keep priority


def test_installed_package_wins_over_a_same_named_folder_here(tmp_path, monkeypatch, clean_imports):
    site = tmp_path / "site"
    (site / "dualpkg12").mkdir(parents=True)
    (site / "dualpkg12" / "__init__.py").write_text("")
    (site / "dualpkg12" / "strat.py").write_text("from botkit import Strategy\nclass Inst(Strategy):\n    pass\n")
    here = tmp_path / "here"
    (here / "dualpkg12").mkdir(parents=True)
    (here / "dualpkg12" / "__init__.py").write_text("")
    (here / "dualpkg12" / "strat.py").write_text("raise RuntimeError('the folder copy was imported')\n")
    (here / "dualpkg12" / "other.py").write_text("from botkit import Strategy\nclass X(Strategy):\n    pass\n")
    sys.path.insert(0, str(site))
    monkeypatch.chdir(here)
    assert load_strategy_class("dualpkg12.strat:Inst").__module__ == "dualpkg12.strat"
    with pytest.raises(PluginError) as ei:
        load_strategy_class("dualpkg12.other:X")
    assert "use the file form 'dualpkg12/other.py:X'" in str(ei.value)


def test_module_ref_not_found_anywhere_says_where_it_looked(monkeypatch, clean_imports):
    monkeypatch.chdir(ROOT)
    with pytest.raises(PluginError) as ei:
        load_strategy_class("strategies.sma_crss:SmaCross")
    msg = str(ei.value)
    assert f"neither installed nor under the current directory {ROOT}" in msg
    assert f"modules in {ROOT / 'strategies'}: bollinger_reversion, grid, sma_cross" in msg
    assert "'path/to/file.py:Class'" in msg
