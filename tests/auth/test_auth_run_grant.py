"""The grant a run starts with (issue 8): the API key's permissions are re-read from /oauth2/api-key/info when the
session's token carries `apikeys.read` (the user may have changed them in the dashboard since `botkit auth apikey`
stored them), else the stored ones are used; a grant that misses scopes refuses to start, listing every one."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.auth.settings import load_auth_settings
from botkit.config import BotConfig
from botkit.market.grants import Grant, InsufficientScope
from botkit.runner import LiveRunner
from botkit.whitebit.account import open_account

from .conftest import WB_CLIENT, Cli
from .test_auth_cli import wb_setup

ROOT = Path(__file__).resolve().parents[2]
STORED = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read", "deals.read",
                    "orders_history.read"})  # what the sandbox's consent gives the Fast API key (api_key_permissions)


async def _cli(command: str, cfg: str) -> None:
    cli = Cli(command, cfg)
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        await browser.get(await cli.url)
    assert await cli.result() == 0, cli.text


def _bot(cfg: str, base_url: str, tmp_path: Path) -> BotConfig:
    auth = tomllib.loads(Path(cfg).read_text())["auth"]
    return BotConfig(
        name="grant", strategy={"plugin": f"{ROOT}/tests/run/run_strategies.py:SteadyBuyer"},
        markets={"BTC_USDT": {}}, auth=auth, output={"dir": str(tmp_path / "out")},
        run={"mode": "live", "base_url": base_url, "credentials": "oauth", "interval": 1, "duration_s": 5},
    )


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)


async def test_with_apikeys_read_the_run_uses_the_permissions_the_server_reports_now(
        wb_harness: Any, tmp_path: Path, secret_env: Any, no_env_key: None) -> None:
    h, sb, cfg, _redirect = await wb_setup(wb_harness, tmp_path, secret_env)
    await _cli("login", cfg)
    await _cli("apikey", cfg)
    settings = load_auth_settings(cfg)
    from botkit.auth.store import store_for

    stored = store_for(settings).load()
    assert stored is not None and stored.api_key is not None and stored.api_key.permissions == STORED
    assert "apikeys.read" in stored.token.scopes  # type: ignore[union-attr]
    # The user narrows the key in the dashboard: no more trading, no order history.
    key = sb.keys.for_oauth("demo", WB_CLIENT)
    assert key is not None
    key.permissions = frozenset({"orders.read", "balances.read", "deals.read"})
    before = sb.oauth.counters.apikey_info_requests
    async with httpx.AsyncClient() as http:
        account = await open_account(h.base_settings["base_url"], http, env_key=None, env_secret=None,
                                     config_grant=Grant(frozenset()), auth=settings, require_session=True)
        await account.aclose()
    assert sb.oauth.counters.apikey_info_requests == before + 1  # re-read once, at start
    assert account.rest.key_grant is not None and account.rest.key_grant.scopes == key.permissions
    assert not account.grant.covers({"orders.create"})
    assert account.grant.covers({"orders.read", "users.balances.read"})
    # ... so the bot refuses to start, naming every scope it lacks (the strategy's and the venue's) at once
    runner = LiveRunner(_bot(cfg, h.base_settings["base_url"], tmp_path), out=None, handle_signals=False)
    with pytest.raises(InsufficientScope) as err:
        await runner.run()
    assert err.value.missing == {"orders.create", "orders.delete", "orders_history.read"}
    assert all(s in str(err.value) for s in err.value.missing)
    assert runner.engine is None and runner.venue is None  # refused before the venue or the engine existed


async def test_without_apikeys_read_the_run_uses_the_stored_permissions(
        wb_harness: Any, tmp_path: Path, secret_env: Any, no_env_key: None) -> None:
    h, sb, cfg, _redirect = await wb_setup(wb_harness, tmp_path, secret_env)
    await _cli("apikey", cfg)  # the key flow needs apikeys.read ...
    sb.oauth._clients[WB_CLIENT].scopes.remove("apikeys.read")  # ... the session logged in afterwards lacks it
    await _cli("login", cfg)
    settings = load_auth_settings(cfg)
    from botkit.auth.store import store_for

    stored = store_for(settings).load()
    assert stored is not None and stored.api_key is not None and stored.token is not None
    assert "apikeys.read" not in stored.token.scopes
    key = sb.keys.for_oauth("demo", WB_CLIENT)
    assert key is not None
    key.permissions = frozenset({"orders.read"})  # changed on the server: the bot cannot know
    before = sb.oauth.counters.apikey_info_requests
    async with httpx.AsyncClient() as http:
        account = await open_account(h.base_settings["base_url"], http, env_key=None, env_secret=None,
                                     config_grant=Grant(frozenset()), auth=settings, require_session=True)
        await account.aclose()
    assert sb.oauth.counters.apikey_info_requests == before  # not asked: the token may not read it
    assert account.rest.key_grant is not None and account.rest.key_grant.scopes == STORED
    assert account.grant.covers(STORED | {"users.balances.read"})
