"""One configuration system: the bot's, the sandbox's and `[auth]` read and report the same way; environment
overrides name their variable; a misspelt BOTKIT_ variable is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit.cli import main
from botkit.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = f"""
[strategy]
plugin = "{ROOT}/strategies/sma_cross.py:SmaCross"
[markets.BTC_USDT]
[balances]
USDT = "1000"
"""


def _cfg(tmp_path: Path, body: str = GOOD) -> Path:
    p = tmp_path / "bot.toml"
    p.write_text(body)
    return p


def test_an_environment_override_error_names_the_variable_not_the_file(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_RISK__MAX_OPEN_ORDERS", "many")
    with pytest.raises(ConfigError) as err:
        load_config(_cfg(tmp_path))
    text = str(err.value)
    assert "risk.max_open_orders (from the environment variable BOTKIT_RISK__MAX_OPEN_ORDERS) = 'many'" in text
    monkeypatch.setenv("BOTKIT_RISK__MAX_OPEN_ORDERS", "3")
    assert load_config(_cfg(tmp_path)).risk.max_open_orders == 3


def test_a_misspelt_botkit_section_is_an_error_not_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOTKIT_RSIK__MAX_OPEN_ORDERS", "3")
    with pytest.raises(ConfigError) as err:
        load_config(_cfg(tmp_path))
    assert "BOTKIT_RSIK__MAX_OPEN_ORDERS: no config section or key 'rsik'; did you mean BOTKIT_RISK__...?" in str(
        err.value)
    monkeypatch.delenv("BOTKIT_RSIK__MAX_OPEN_ORDERS")
    monkeypatch.setenv("BOTKIT_BACKTST__SLIPPAGE_PCT", "1")
    assert main(["backtest", str(_cfg(tmp_path)), "-q"]) == 2
    assert "BOTKIT_BACKTST__SLIPPAGE_PCT" in capsys.readouterr().err


def test_variables_that_are_not_overrides_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_REQUIRE_SHARED_DATA", "1")
    monkeypatch.setenv("BOTKIT_TOKEN_KEY", "x")
    monkeypatch.setenv("BOTKIT_NAME", "from-env")
    assert load_config(_cfg(tmp_path)).name == "from-env"  # a known top-level key; the others are not overrides


def test_one_error_type_for_every_config(tmp_path: Path) -> None:
    from botkit.auth.settings import ConfigError as AuthConfigError
    from botkit.configfile import ConfigError as Base
    from botkit.sandbox.config import SandboxConfigError, load_sandbox_config

    assert ConfigError is Base and AuthConfigError is Base and issubclass(SandboxConfigError, Base)
    with pytest.raises(Base, match="sandbox config .* does not exist"):
        load_sandbox_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_api_keys_in_the_file_are_refused_by_the_one_loader(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run.api_secret: keys never go in the config file; set BOTKIT_RUN__API"):
        load_config(_cfg(tmp_path, GOOD + '[run]\napi_secret = "s3cr3t"\n'))
