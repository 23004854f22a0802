"""Live mode: refuses to start without credentials (with the fix), and trades over the same path as sandbox mode
when pointed at a WhiteBIT-compatible URL with a key from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from botkit.auth.settings import auth_settings_from_mapping
from botkit.auth.store import StoredCredentials, store_for
from botkit.auth.tokens import ApiKeyCredentials
from botkit.market.grants import InsufficientScope
from botkit.runner import LiveRunner
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, run_driven
from .run_strategies import Prober

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit.cli", "run", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


def _in_process(args: list[str], monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`botkit run ARGS` through the same entry point, in this process (no interpreter start-up per case)."""
    from botkit.cli import main

    monkeypatch.chdir(ROOT)
    for k in [k for k in os.environ if k.startswith("BOTKIT_")]:
        monkeypatch.delenv(k)
    try:
        code = main(["run", *args])
    except SystemExit as exc:  # argparse refuses a bad option this way
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_live_without_credentials_refuses_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_")}
    env["PYTHONPATH"] = str(ROOT)
    r = _cli(["configs/sma_cross.toml", "--mode", "live", "--duration", "1"], env)  # the real process: exit status 2
    assert r.returncode == 2
    assert "BOTKIT_RUN__API_KEY" in r.stderr and "BOTKIT_RUN__API_SECRET" in r.stderr

    cfg = tmp_path / "secret.toml"
    cfg.write_text((ROOT / "configs" / "sma_cross.toml").read_text() + '\n[run]\napi_secret = "s3cr3t-value"\n')
    code, out, err = _in_process([str(cfg), "--mode", "live"], monkeypatch, capsys)
    assert code == 2 and "run.api_secret" in err and "BOTKIT_RUN__API_SECRET" in err
    assert "s3cr3t-value" not in err + out

    code, out, err = _in_process(["configs/sma_cross.toml", "--mode", "sandbox", "--duration", "-3"], monkeypatch,
                                 capsys)
    assert code == 2 and "--duration" in err


async def test_live_mode_trades_with_a_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3.5 s live run against the sandbox, both on a fake clock (driven at 5x)."""
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _live_with_env_key(sandbox, clock, rest, monkeypatch)


async def _live_with_env_key(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_RUN__API_KEY", "demo-key")
    monkeypatch.setenv("BOTKIT_RUN__API_SECRET", "demo-secret")
    cfg = bot_config("Prober", mode="live", duration_s=3.5, base_url=sandbox.base_url, ws_url=sandbox.ws_url)
    cfg = cfg.model_copy(update={"grant": cfg.grant.model_copy(
        update={"scopes": ["orders.create", "orders.delete", "orders.read", "balances.read", "orders_history.read"]})})
    assert cfg.run.api_key is not None and "demo-key" not in repr(cfg.run)
    strategy = Prober()
    summary = await run_driven(LiveRunner(cfg, strategy=strategy, out=None, handle_signals=False,
                                          **clock.clocks()), clock)
    market = strategy.market
    assert market is not None and market.status.value == "filled"
    hist = (await rest.call("order_history", {"market": "BTC_USDT", "clientOrderId": market.client_id}))["BTC_USDT"]
    assert Decimal(hist[0]["dealStock"]) == market.filled
    assert summary.mode == "live" and summary.fills >= 1


async def test_live_mode_uses_the_stored_fast_api_key_and_its_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with clocked_sandbox() as (sandbox, clock, _rest):
        await _live_with_stored_key(sandbox, clock, tmp_path, monkeypatch)


async def _live_with_stored_key(sandbox: Sandbox, clock: FakeClock, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    auth = {"base_url": sandbox.base_url, "client_id": "botkit-demo", "token_dir": str(tmp_path)}
    store = store_for(auth_settings_from_mapping(auth, {}))
    perms = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read", "orders_history.read"})
    store.save(StoredCredentials(api_key=ApiKeyCredentials("demo-key", SecretStr("demo-secret"), None, perms,
                                                           time.time())))
    cfg = bot_config("Prober", mode="live", duration_s=2.5, base_url=sandbox.base_url, ws_url=sandbox.ws_url)
    cfg = cfg.model_copy(update={"auth": auth})
    runner = LiveRunner(cfg, strategy=Prober(), out=None, handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)
    assert runner.engine is not None and runner.engine.grant.scopes == perms
    assert summary.fills >= 1

    # a stored key without trading permissions: refused before anything is sent
    store.save(StoredCredentials(api_key=ApiKeyCredentials("reader-key", SecretStr("reader-secret"), None,
                                                           frozenset({"orders.read"}), time.time())))
    with pytest.raises(InsufficientScope):
        await LiveRunner(cfg, strategy=Prober(), out=None, handle_signals=False).run()


def test_bad_run_config_names_key_value_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from botkit.cli import main

    cfg = (ROOT / "configs" / "sma_cross.toml").read_text().replace(
        'plugin = "strategies/sma_cross.py:SmaCross"', f'plugin = "{ROOT / "strategies" / "sma_cross.py"}:SmaCross"')
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg + '\n[run]\ninterval = "7m"\nstaleness = 3\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "run.interval = '7m'" in err and "use one of" in err and "1m" in err
    assert "run.staleness: unknown key" in err and "staleness_s" in err
