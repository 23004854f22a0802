"""`botkit run` with an OAuth session (live mode against the sandbox, both over real sockets): the token layer keeps
the session alive through rotations for the whole run without the strategy noticing, and a dead grant halts the bot
once, cancels its orders, and a restart asks for a login without spending a request."""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from botkit.auth.clock import SYSTEM_CLOCK, ScaledClock, TokenClock
from botkit.auth.errors import ReauthRequired
from botkit.auth.login import complete_login
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import auth_settings_from_mapping
from botkit.auth.signing import HmacSigner
from botkit.auth.store import StoredCredentials, store_for
from botkit.auth.tokens import ApiKeyCredentials
from botkit.config import BotConfig
from botkit.market.grants import Grant
from botkit.runner import LiveRunner, RunNeedsReauth
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import running_sandbox
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, fast_config
from .run_strategies import SteadyBuyer

TRADING = frozenset({"orders.create", "orders.delete", "orders.read", "balances.read", "orders_history.read"})


@pytest_asyncio.fixture
async def short_tokens(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """Access tokens live 3 s and refresh tokens 8 s (WhiteBIT: 300 s / 600 s), rotating on every refresh; the
    authorization server in WhiteBIT's dialect, or in RFC 6749's when a test asks (indirect parameter)."""
    dialect = getattr(request, "param", "whitebit")
    cfg = fast_config()
    cfg = cfg.model_copy(update={"oauth": cfg.oauth.model_copy(update={"access_ttl": 3.0, "refresh_ttl": 8.0,
                                                                       "dialect": dialect})})
    async with running_sandbox(cfg) as sb:
        yield sb


async def _login(sandbox: Sandbox, token_dir: Path, client_id: str = "botkit-demo", *, key: bool = True,
                 clock: TokenClock = SYSTEM_CLOCK, **extra: Any) -> dict[str, Any]:
    """The authorization-code flow against the sandbox (which consents by itself), then the Fast API key beside
    the session in the token store: what `botkit auth login` + `botkit auth apikey` leave behind (`key=False`: the
    login alone)."""
    registered = next(c for c in sandbox.config.oauth.clients if c.client_id == client_id)
    redirect = registered.redirect_uris[0]
    auth = {"base_url": sandbox.base_url, "client_id": client_id, "token_dir": str(token_dir),
            "redirect_uri": redirect, "leeway_s": 60, **extra}
    secret = registered.client_secret.get_secret_value()
    settings = auth_settings_from_mapping(auth, {"BOTKIT_AUTH__CLIENT_SECRET": secret})
    async with httpx.AsyncClient(timeout=10) as http:
        client = OAuthClient(settings, http, clock=clock.time)
        if settings.use_metadata:
            await client.discover()
        req = client.authorization_request(redirect)
        url = req.url
        for _ in range(10):
            r = await http.get(url)
            url = urllib.parse.urljoin(url, r.headers["Location"])
            if url.startswith(redirect):
                break
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        token = await complete_login(client, req, params)
    stored_key = ApiKeyCredentials("demo-key", SecretStr("demo-secret"), None, TRADING, time.time()) if key else None
    store_for(settings).save(StoredCredentials(token=token, api_key=stored_key))
    return auth


@pytest_asyncio.fixture
async def session(short_tokens: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Logged in (session + key in the store), with no key in the environment: the store is what the bot uses."""
    monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", "botkit-demo-secret")
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    if short_tokens.config.oauth.dialect == "rfc6749":
        return await _login(short_tokens, tmp_path / "tokens", dialect="rfc6749", use_metadata=True)
    return await _login(short_tokens, tmp_path / "tokens")


def _live(sandbox: Sandbox, auth: dict[str, Any], tmp: Path, duration: float) -> BotConfig:
    cfg = bot_config("SteadyBuyer", mode="live", duration_s=duration, base_url=sandbox.base_url, ws_url=sandbox.ws_url,
                     journal=str(tmp / "journal.sqlite"), credentials="oauth")
    return cfg.model_copy(update={"auth": auth})


async def test_a_long_run_keeps_the_oauth_session_alive_through_rotations(
        short_tokens: Sandbox, session: dict[str, Any], tmp_path: Path) -> None:
    """Credential (c): the session beside the key. 12 s of token time (6 s of wall time on a clock running twice as
    fast, shared by the bot's token layer and the sandbox's authorization server)."""
    auth = session
    clock = ScaledClock(2.0)
    short_tokens.oauth.clock = clock.time
    await _reissue(short_tokens, auth, clock)
    strategy = SteadyBuyer()
    runner = LiveRunner(_live(short_tokens, auth, tmp_path, 6), strategy=strategy, out=None, handle_signals=False,
                        token_clock=clock)
    summary = await runner.run()
    assert runner.account is not None and runner.account.tokens is not None
    tokens = runner.account.tokens
    c = short_tokens.oauth.counters
    # 12 s of 3 s tokens refreshed ahead of expiry: several rotations, each one request (single-flight), none lost
    assert tokens.refresh_count >= 5 and c.refresh_ok == tokens.refresh_count == c.refresh_requests
    assert c.refresh_rejected == 0 and c.reuse_detected == 0
    stored = store_for(auth_settings_from_mapping(auth, {})).load()
    assert stored is not None and stored.token is not None and tokens.token is not None
    assert stored.token.refresh_token.get_secret_value() == tokens.token.refresh_token.get_secret_value()  # type: ignore[union-attr]
    assert stored.api_key is not None  # the session and the key live side by side
    # trading went on throughout: a fill for (nearly) every candle, nothing refused
    assert summary.rejections == {} and summary.fills >= len(strategy.candles) - 2 >= 3
    assert runner.account.grant.covers({"users.balances.read", "orders.create"})  # the union of session and key


async def _reissue(sandbox: Sandbox, auth: dict[str, Any], clock: ScaledClock) -> None:
    """A fresh login on the scaled clock (the fixture logged in on the system clock, whose token times the scaled
    server would read differently)."""
    stored = store_for(auth_settings_from_mapping(auth, {})).load()
    assert stored is not None
    await _login(sandbox, Path(auth["token_dir"]), auth["client_id"], key=stored.api_key is not None, clock=clock,
                 **{k: v for k, v in auth.items() if k in ("trading_auth",)})


@pytest.mark.parametrize("short_tokens", ["whitebit", "rfc6749"], indirect=True)
async def test_a_dead_grant_halts_the_bot_and_a_restart_asks_for_a_login(
        short_tokens: Sandbox, session: dict[str, Any], tmp_path: Path) -> None:
    """WhiteBIT's dialect: the grant is revoked on the server (no revocation endpoint is documented). RFC 6749: the
    user revokes the refresh token through the standard endpoint (RFC 7009), which ends the grant."""
    auth = session
    strategy = SteadyBuyer()
    runner = LiveRunner(_live(short_tokens, auth, tmp_path, 30), strategy=strategy, out=None, handle_signals=False)
    task = asyncio.create_task(runner.run())
    while strategy.resting is None or strategy.resting.status.value != "open":
        await asyncio.sleep(0.05)
    if short_tokens.config.oauth.dialect == "rfc6749":
        live = store_for(auth_settings_from_mapping(auth, {})).load()
        assert live is not None and live.token is not None and live.token.refresh_token is not None
        async with httpx.AsyncClient() as http:
            r = await http.post(short_tokens.base_url + "/revoke", auth=("botkit-demo", "botkit-demo-secret"),
                                data={"token": live.token.refresh_token.get_secret_value(),
                                      "token_type_hint": "refresh_token"})
        assert r.status_code == 200 and short_tokens.oauth.counters.revoked == 1
    else:
        short_tokens.oauth.revoke_all_refresh_tokens()
    revoked_at = time.monotonic()
    with pytest.raises(RunNeedsReauth) as err:
        await task
    assert time.monotonic() - revoked_at < 6  # within one refresh cycle (tokens refresh every 1.5 s here)
    assert "botkit auth login" in err.value.command
    c = short_tokens.oauth.counters
    assert c.refresh_rejected == 1  # one failed refresh, never a loop
    # the bot's own resting order was cancelled with the API key, which still works
    async with httpx.AsyncClient() as http:
        rest = WhiteBitRest(short_tokens.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                            key_grant=Grant(TRADING))
        assert await rest.call("open_orders", {"market": "BTC_USDT", "limit": 100}) == []
    # the dead token set left the store (the key stayed): a restart fails at once, without a token request
    stored = store_for(auth_settings_from_mapping(auth, {})).load()
    assert stored is not None and stored.token is None and stored.api_key is not None
    before = c.refresh_requests
    with pytest.raises(ReauthRequired) as again:
        await LiveRunner(_live(short_tokens, auth, tmp_path, 30), strategy=SteadyBuyer(), out=None,
                         handle_signals=False).run()
    assert "botkit auth login" in str(again.value)
    assert c.refresh_requests == before  # no request to the token endpoint


def test_the_cli_exits_3_with_the_login_command_when_there_is_no_session(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from botkit.cli import main

    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    root = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "oauth_bot.toml"
    cfg.write_text(f"""
[strategy]
plugin = "{root}/strategies/sma_cross.py:SmaCross"
[markets.BTC_USDT]
[run]
mode = "live"
base_url = "http://127.0.0.1:9"
credentials = "oauth"
[auth]
base_url = "http://127.0.0.1:9"
client_id = "botkit-demo"
token_dir = "{tmp_path / 'tokens'}"
redirect_uri = "http://127.0.0.1:8765/callback"
""")
    assert main(["run", str(cfg)]) == 3
    err = capsys.readouterr().err
    assert "no OAuth session in the token store" in err and f"botkit auth login {cfg}" in err


@pytest.mark.parametrize("config", ["sandbox_oauth.toml", "sandbox_oauth_rfc.toml", "sandbox_oauth_bearer.toml"])
def test_the_shipped_sandbox_oauth_configs_log_in_and_rotate(
        config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped OAuth configs on a fresh clone, one per dialect (WhiteBIT's, RFC 6749) and Bearer-only trading:
    the real authorization-code flow against the embedded sandbox, then a session kept alive through rotations
    (lifetimes shortened here from 20 s / 60 s to 3 s / 10 s)."""
    import json

    from botkit.cli import main

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET", "BOTKIT_AUTH__CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    for name, value in (("SANDBOX_ACCESS_TTL_S", "3"), ("SANDBOX_REFRESH_TTL_S", "10"), ("STATUS_EVERY_S", "2")):
        monkeypatch.setenv(f"BOTKIT_RUN__{name}", value)
    monkeypatch.setenv("BOTKIT_OUTPUT__DIR", str(tmp_path))
    assert main(["run", f"configs/{config}", "--duration", "7"]) == 0
    out = capsys.readouterr().out
    client = "botkit-trader" if "bearer" in config else "botkit-demo"
    assert f"logged in to the embedded sandbox as OAuth client '{client}'" in out
    refreshes = [int(line.split(" refreshes")[0].rsplit(" ", 1)[1]) for line in out.splitlines()
                 if line.startswith("status ") and " refreshes" in line]
    assert len(refreshes) >= 2 and refreshes == sorted(refreshes) and refreshes[-1] >= 2, out
    assert "OAuth session:" in out and "(0 failed)" in out
    report = json.loads((tmp_path / "sandbox" / "report.json").read_text())
    assert int(report["session"].split(" refreshes")[0]) >= 2 and "(0 failed)" in report["session"]
    assert report["outcome"] == "complete" and report["rejections"] == {} and report["fills"] >= 0
    tokens = tmp_path / "sandbox" / "tokens"
    assert tokens.is_dir() and (tokens.stat().st_mode & 0o777) == 0o700
    files = [p for p in tokens.iterdir() if p.is_file() and not p.name.endswith(".lock")]
    assert files and all((p.stat().st_mode & 0o777) == 0o600 for p in files)
    base_url = next(line for line in out.splitlines() if line.startswith("running ")).split(" on ")[1].split()[0]
    stored = store_for(auth_settings_from_mapping(
        {"client_id": client, "base_url": base_url, "token_dir": str(tokens)}, {})).load()
    assert stored is not None and stored.token is not None
    assert (stored.api_key is None) == ("bearer" in config)  # Bearer-only trading keeps no key at all
    if "rfc" in config:  # the RFC `scope` request was honoured (WhiteBIT's dialect grants the client's 8 scopes)
        assert stored.token.scopes == {"users.balances.read", "users.orders.read", "users.deals.read"}
    else:
        assert len(stored.token.scopes) >= 8


def test_the_oauth_run_benchmark_at_a_small_size_fails_no_call() -> None:
    """backtests/bench_oauth_run.py at a small size (its full run is minutes of real time): half a minute of token
    time at 5x (6 s of wall time); no rejected refresh, no reuse, no refused order, a fill for every candle."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "backtests" / "bench_oauth_run.py"), "--minutes", "0.5",
                        "--rate", "5"], capture_output=True, text=True, timeout=180, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0 and r.stdout.rstrip().endswith("OK"), r.stdout + r.stderr
    assert "clock rate 5" in r.stdout


class _CancelsWhatItFinds(SteadyBuyer):
    """A restarted bot: cancels every open order it knows (restored from the journal), buys on every candle."""

    scopes = frozenset({"orders.create", "orders.delete", "orders.read"})

    def on_candle(self, ctx: Any, candle: Any) -> None:
        if self.resting is None:
            self.resting = next(iter(ctx.open_orders()), None)
            ctx.cancel_all()
        self.placed.append(ctx.buy(candle.market, "20"))


@pytest_asyncio.fixture
async def bearer_sandbox() -> AsyncIterator[Sandbox]:
    """Short tokens, and the sandbox's opt-in Bearer trading (not in WhiteBIT's public docs) switched on."""
    cfg = fast_config(bearer_trading=True)
    cfg = cfg.model_copy(update={"oauth": cfg.oauth.model_copy(update={"access_ttl": 3.0, "refresh_ttl": 8.0})})
    async with running_sandbox(cfg) as sb:
        yield sb


async def test_bearer_only_trading_places_fills_cancels_and_reconciles_after_a_restart(
        bearer_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credential (d): `trading_auth = "bearer"` with no API key in the environment or the store: orders, cancels,
    balances, reconciliation and the private stream's token all go out with the OAuth access token."""
    sb = bearer_sandbox
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", "botkit-trader-secret")
    auth = await _login(sb, tmp_path / "tokens", "botkit-trader", key=False, trading_auth="bearer")
    stored = store_for(auth_settings_from_mapping(auth, {})).load()
    assert stored is not None and stored.api_key is None and stored.token is not None
    demo_key = sb.keys.get("demo-key")
    assert demo_key is not None
    demo_key.enabled = False  # the account's only API key is off: any HMAC request would fail

    first = SteadyBuyer()
    runner = LiveRunner(_live(sb, auth, tmp_path, 5), strategy=first, out=None, handle_signals=False)
    summary = await runner.run()
    assert runner.account is not None and runner.account.rest.signer is None  # nothing could sign with a key
    tokens = runner.account.tokens
    assert tokens is not None and runner.account.grant.scopes == tokens.grant.scopes
    assert summary.rejections == {} and summary.fills >= len(first.candles) - 2 >= 2 and not summary.notes
    assert first.resting is not None and first.resting.status.value == "open"
    assert sb.exchange.ws_tokens, "the private stream's token was fetched with the Bearer token"
    assert runner.venue is not None and runner.venue.ws is not None and runner.venue.ws.connects >= 1  # type: ignore[union-attr]
    assert tokens.refresh_count >= 1 and sb.oauth.counters.refresh_rejected == 0

    # A restart on the same journal: the resting order is restored, reconciled against the exchange, cancelled.
    second = _CancelsWhatItFinds()
    again = LiveRunner(_live(sb, auth, tmp_path, 3), strategy=second, out=None, handle_signals=False)
    summary2 = await again.run()
    assert summary2.restored == 1 and summary2.adopted == 0 and summary2.rejections == {}
    assert again.venue is not None and again.venue.reconciles >= 1  # type: ignore[union-attr]  # over Bearer
    assert second.resting is not None and second.resting.client_id == first.resting.client_id
    assert summary2.orders_by_status.get("cancelled") == 1 and summary2.fills >= 1 and not summary2.notes
    mine = [o for o in sb.exchange.history.get("demo", []) if o.client_order_id == first.resting.client_id]
    assert [o.status for o in mine] == ["CANCELED"]
    assert sb.exchange.account_orders("demo") == []
    assert sb.oauth.counters.bearer_rejected == 0


async def test_a_minute_of_token_time_bearer_trading_every_refresh_single_flight_and_persisted(
        bearer_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 8's suite run: 60 s of token time with access 3 s / refresh 8 s, rotating on every refresh, under
    Bearer-only trading so every order, cancel, balance read and reconciliation depends on the token being alive.
    Token time runs 5x faster than the wall (one ScaledClock shared by the bot's token layer and the sandbox's
    authorization server and API token checks; the sockets are real), so the minute takes 12 s."""
    from botkit.auth.store import TokenStore

    rate, wall_s = 5.0, 12.0
    sb = bearer_sandbox
    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", "botkit-trader-secret")
    clock = ScaledClock(rate)
    sb.oauth.clock = clock.time
    auth = await _login(sb, tmp_path / "tokens", "botkit-trader", key=False, trading_auth="bearer", clock=clock)
    saves: list[tuple[str, bytes, int]] = []  # (refresh token, file bytes, file mode) after every save
    real_save = TokenStore.save

    def observed_save(self: TokenStore, creds: StoredCredentials) -> None:
        real_save(self, creds)
        rt = creds.token.refresh_token if creds.token is not None else None
        saves.append((rt.get_secret_value() if rt is not None else "", self.path.read_bytes(),
                      self.path.stat().st_mode & 0o777))

    monkeypatch.setattr(TokenStore, "save", observed_save)
    strategy = SteadyBuyer()
    runner = LiveRunner(_live(sb, auth, tmp_path, wall_s), strategy=strategy, out=None, handle_signals=False,
                        token_clock=clock)
    t0 = clock.monotonic()
    summary = await runner.run()
    token_seconds = clock.monotonic() - t0
    assert runner.account is not None and runner.account.tokens is not None
    tokens = runner.account.tokens
    c = sb.oauth.counters
    assert token_seconds >= 60.0
    # about one refresh per 1.5 s of token time (3 s tokens, refreshed at half life): >= 60/3 with slack
    assert tokens.refresh_count >= 60 / 3 - 2, tokens.refresh_count
    # single-flight: the server saw exactly the refreshes the bot made, each accepted, none replayed or throttled
    assert c.refresh_requests == c.refresh_ok == tokens.refresh_count
    assert c.refresh_rejected == 0 and c.reuse_detected == 0 and c.refresh_rate_limited == 0
    gaps = [b - a for a, b in itertools.pairwise(c.refresh_times)]
    assert min(gaps) >= 1.0 and max(gaps) < 3.0, gaps  # 1/s respected; no access token ever lapsed between them
    # every rotated refresh token persisted before use: one save per refresh, each a new token and new file content,
    # the file 0600 every time, and the last one saved is the one in use
    assert len(saves) == tokens.refresh_count, (len(saves), tokens.refresh_count)
    assert len({rt for rt, _, _ in saves}) == len(saves) and all(rt for rt, _, _ in saves)
    assert all(a[1] != b[1] for a, b in itertools.pairwise(saves))
    assert {mode for _, _, mode in saves} == {0o600}
    assert tokens.token is not None and tokens.token.refresh_token is not None
    assert saves[-1][0] == tokens.token.refresh_token.get_secret_value()
    # 0 failed calls, trading uninterrupted: no Bearer call refused, nothing rejected, a fill for every candle
    assert c.bearer_rejected == 0 and c.bearer_checks >= summary.fills
    assert summary.rejections == {} and not summary.notes and summary.outcome == "complete"
    assert summary.fills >= len(strategy.candles) - 2 >= wall_s - 4
    assert "0 failed" in (summary.session or "")


async def test_bearer_trading_on_a_server_that_refuses_it_stops_at_start_and_keeps_the_session(
        short_tokens: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(d) against a server without Bearer trading (WhiteBIT as documented; the sandbox with `bearer_trading` off):
    a clear error before anything trades (exit 2), not a 401 that looks like a dead grant and costs the session."""
    from botkit.runner import RunError

    for var in ("BOTKIT_RUN__API_KEY", "BOTKIT_RUN__API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BOTKIT_AUTH__CLIENT_SECRET", "botkit-trader-secret")
    assert not short_tokens.config.server.bearer_trading
    auth = await _login(short_tokens, tmp_path / "tokens", "botkit-trader", key=False, trading_auth="bearer")
    runner = LiveRunner(_live(short_tokens, auth, tmp_path, 5), strategy=SteadyBuyer(), out=None,
                        handle_signals=False)
    with pytest.raises(RunError) as err:
        await runner.run()
    assert "does not accept Bearer trading" in str(err.value) and 'trading_auth = "hmac"' in str(err.value)
    assert runner.engine is None  # nothing started
    stored = store_for(auth_settings_from_mapping(auth, {})).load()
    assert stored is not None and stored.token is not None  # the session survives the misconfiguration
    assert short_tokens.oauth.counters.refresh_requests == 0 and not short_tokens.exchange.account_orders("demo")
