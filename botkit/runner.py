"""`LiveRunner`: one strategy, live, on the embedded sandbox (default), on paper, or on WhiteBIT.

The same event loop, execution layer and strategy API as a backtest; only the venue, the event source and the clock
differ. Everything reaches the loop through one queue consumed by one task, so callbacks never nest and never run
concurrently: closed candles (and trades/book when the strategy overrides on_trade/on_book) from the WebSocket
client, and a wake-up whenever the venue reported order events. The run stops on SIGINT/SIGTERM or after
`duration_s`, calls on_stop, waits for in-flight orders to be answered, and writes its trades and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import httpx

from botkit.auth.clock import SYSTEM_CLOCK, TokenClock
from botkit.auth.errors import ReauthRequired
from botkit.auth.signing import HmacSigner
from botkit.config import BotConfig
from botkit.execution.engine import ExecutionEngine, MemoryJournal, Rejection
from botkit.execution.journal import JournalLocked, SqliteJournal
from botkit.execution.portfolio import mark_to_market
from botkit.execution.risk import RiskManager
from botkit.loop import EventLoop, MarketClock, StrategyFailure, StrategyHalted, WallClock
from botkit.market.buffer import CandleBuffer, MarketState
from botkit.market.grants import Grant
from botkit.market.orders import ClientIdFactory, Order
from botkit.market.rules import MarketRules, fmt
from botkit.market.types import Balance, Candle
from botkit.plugins import build_strategy
from botkit.run_report import RunReporter, balances_json, iso, money, write_json
from botkit.strategy import Strategy
from botkit.venues.simulated import SimulatedVenue
from botkit.venues.whitebit import WhiteBitVenue
from botkit.whitebit.account import Account, AccountError, identity_of, open_account
from botkit.whitebit.errors import WhiteBitError
from botkit.whitebit.rest import WhiteBitRest
from botkit.whitebit.ws import (
    BookChanged,
    CandleClosed,
    Connected,
    DepthGap,
    Disconnected,
    LastPrice,
    Stale,
    TradePrinted,
    WsClient,
    WsConnectionLost,
    WsEvent,
    WsRpcError,
)

if TYPE_CHECKING:
    from botkit.sandbox.config import SandboxConfig
    from botkit.sandbox.server import Sandbox

log = logging.getLogger("botkit.runner")

BOT_ID_RE = re.compile(r"^bk[0-9a-f]{1,6}-[0-9a-z]+$")  # client ids botkit bots give their orders


class RunError(Exception):
    """The bot cannot start as configured (credentials, markets, sandbox account). CLI exit code 2."""


def journal_venue(base_url: str, api_key: str) -> str:
    """Which exchange and account a journaled order lives on (the key hashed: the journal holds no credential)."""
    return f"{base_url}#{identity_of(api_key)}"


def wall_ms() -> int:
    return int(time.time() * 1000)


class RunFailed(Exception):
    """The run could not do its job (no connection at start, no market data): CLI exit code 1."""


class RunNeedsReauth(Exception):
    """The OAuth grant is gone: the bot halted (orders cancelled where the key allows, journal flushed); a person
    must log in again. CLI exit code 3, so a supervisor can tell it from a crash and not restart in a loop."""

    def __init__(self, cause: ReauthRequired, summary: RunSummary) -> None:
        super().__init__(str(cause))
        self.command = cause.command
        self.summary = summary


class RunHalted(Exception):
    """The strategy failed and the error policy halted the bot (after on_stop and cancels): CLI exit code 1."""

    def __init__(self, failure: StrategyFailure, summary: RunSummary) -> None:
        super().__init__(failure.text())
        self.failure = failure
        self.summary = summary


@dataclass(slots=True)
class RunSummary:
    mode: str
    strategy: str
    seconds: float
    candles: int
    orders_by_status: dict[str, int]
    fills: int
    rejections: dict[str, int]
    rejection_examples: list[Rejection]
    start_balances: dict[str, Balance]
    final_balances: dict[str, Balance]
    pnl: dict[str, Decimal] = field(default_factory=dict)
    equity_start: float | None = None
    equity_end: float | None = None
    quote: str = ""
    quote_places: int = 2
    reconnects: int = 0
    depth_resubscribes: int = 0
    stale_events: int = 0
    adopted: int = 0
    restored: int = 0
    journal: str | None = None
    out_dir: str | None = None
    outcome: str = "complete"
    strategy_errors: int = 0
    session: str | None = None  # the OAuth session: refreshes done and failed, when the token expires
    notes: list[str] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(self.orders_by_status.values())

    def text(self) -> str:
        status = ", ".join(f"{k} {v}" for k, v in sorted(self.orders_by_status.items())) or "none"
        rej = sum(self.rejections.values())
        lines = [
            f"run {self.mode}: {self.strategy} for {self.seconds:.1f} s, {self.candles} closed candles"
            + ("" if self.outcome == "complete" else f" ({self.outcome})"),
            f"orders: {self.orders} ({status}); fills: {self.fills}; rejections: {rej}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(self.rejections.items()))})" if rej else ""),
        ]
        if self.pnl:
            lines.append("this bot's result (own fills, at last prices): " + ", ".join(
                f"{'+' if v >= 0 else ''}{money(v, self.quote_places)} {q}" for q, v in sorted(self.pnl.items())))
        if self.equity_start is not None and self.equity_end is not None:
            lines.append(f"account equity: {money(self.equity_start, self.quote_places)} -> "
                         f"{money(self.equity_end, self.quote_places)} {self.quote}")
        if self.strategy_errors:
            lines.append(f"strategy errors passed over (on_error = continue): {self.strategy_errors}")
        if self.session is not None:
            lines.append(f"OAuth session: {self.session}")
        if self.restored:
            lines.append(f"open orders restored from the journal: {self.restored}")
        if self.adopted:
            lines.append(f"adopted open orders found on the exchange: {self.adopted}")
        if self.reconnects or self.depth_resubscribes or self.stale_events:
            lines.append(f"websocket: {self.reconnects} reconnects, {self.depth_resubscribes} depth resubscribes, "
                         f"{self.stale_events} staleness alerts")
        for r in self.rejection_examples[:5]:
            lines.append(f"  rejected {r.client_id} ({r.rule}): {r.message}")
        lines.append("balances (start -> end):")
        for a in sorted(set(self.start_balances) | set(self.final_balances)):
            s = self.start_balances.get(a)
            e = self.final_balances.get(a)
            lines.append(f"  {a:<6} {fmt(s.total) if s else 0} -> {fmt(e.total) if e else 0}")
        if self.journal is not None:
            lines.append(f"order journal: {self.journal}")
        if self.out_dir is not None:
            lines.append(f"wrote {self.out_dir}/trades.csv, {self.out_dir}/report.json")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "botkit_run_report": 1, "mode": self.mode, "strategy": self.strategy, "outcome": self.outcome,
            "seconds": round(self.seconds, 3), "candles": self.candles,
            "orders": dict(sorted(self.orders_by_status.items())),
            "fills": self.fills, "rejections": dict(sorted(self.rejections.items())),
            "pnl": {q: fmt(v) for q, v in sorted(self.pnl.items())},
            "equity": {"quote": self.quote, "start": self.equity_start, "end": self.equity_end},
            "start_balances": balances_json(self.start_balances), "final_balances": balances_json(self.final_balances),
            "restored": self.restored, "adopted": self.adopted, "reconnects": self.reconnects,
            "strategy_errors": self.strategy_errors, "session": self.session, "journal": self.journal,
            "notes": self.notes,
        }


class _FreshIds(ClientIdFactory):
    """Client ids that skip every id the journal already holds, so a restarted bot never reuses one."""

    def __init__(self, prefix: str, used: frozenset[str]) -> None:
        super().__init__(prefix)
        self.used = used

    def __call__(self) -> str:
        cid = super().__call__()
        while cid in self.used:
            cid = super().__call__()
        return cid


def _overrides(strategy: Strategy, name: str) -> bool:
    return getattr(type(strategy), name) is not getattr(Strategy, name)


class EventSource(Protocol):
    """Where a run's market events come from instead of the WebSocket (e.g. a recording being replayed)."""

    finished: bool

    async def start(self, put: Callable[[WsEvent], None]) -> None: ...

    async def close(self) -> None: ...


class CandleReplay:
    """Recorded candles fed to a paper run as closed-candle events, in time order, as a live feed would deliver
    them (a few at a time, yielding to the event loop): the same data through the live path, for parity checks."""

    def __init__(self, candles: list[Candle], batch: int = 64) -> None:
        self.candles = sorted(candles, key=lambda c: (c.close_time_ms, c.market))
        self.batch = batch
        self.finished = False
        self._task: asyncio.Task[None] | None = None

    async def start(self, put: Callable[[WsEvent], None]) -> None:
        self._task = asyncio.create_task(self._play(put))

    async def _play(self, put: Callable[[WsEvent], None]) -> None:
        for i, c in enumerate(self.candles):
            put(CandleClosed(c))
            if i % self.batch == self.batch - 1:
                await asyncio.sleep(0)
        self.finished = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class LiveRunner:
    """Runs `cfg`'s strategy in `cfg.run.mode`. `sandbox` may be a running Sandbox to use instead of starting one;
    `source` replaces the WebSocket market feed (paper mode)."""

    def __init__(
        self,
        cfg: BotConfig,
        *,
        strategy: Strategy | None = None,
        sandbox: Sandbox | None = None,
        out: TextIO | None = sys.stdout,
        handle_signals: bool = True,
        source: EventSource | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        token_clock: TokenClock = SYSTEM_CLOCK,
    ) -> None:
        """`token_clock`: the OAuth session's own clock (wall time, monotonic time and sleep of the token layer,
        botkit/auth/clock.py), apart from the run's `clock`/`monotonic`: tests and benchmarks run token lifetimes
        faster than the market with a ScaledClock shared with the sandbox's authorization server."""
        self.token_clock = token_clock
        if source is not None and cfg.run.mode != "paper":
            raise RunError("a replayed event source needs paper mode: orders must not reach an exchange")
        if cfg.run.mode == "paper" and cfg.backtest.fills == "book":
            raise RunError('[backtest] fills = "book" is for backtests on recorded depth; paper trading fills on '
                           'candles or trades: set fills = "candles" or "trades" for `botkit run`')
        self.source = source
        # Time: `clock` (wall seconds: order and event times in sandbox and live mode, candle closes and history on
        # the market feed, token expiry in the status line) and `monotonic` (the run's own timing: `duration_s`, the
        # status line, the kill-switch re-arm cadence, feed lag). Tests inject one fake clock, shared with the
        # sandbox's, so a timed run does not wait in real time.
        self._now = clock
        self._mono = monotonic
        self.cfg = cfg
        self.run_cfg = cfg.run
        self.mode = cfg.run.mode
        self.strategy = strategy or build_strategy(cfg.strategy.plugin, cfg.strategy.params)
        self.rules: dict[str, MarketRules] = cfg.market_rules()
        self.markets = list(cfg.markets)
        keep = max(cfg.run.keep_candles, cfg.run.history)
        self.state = MarketState({m: CandleBuffer.live(keep) for m in self.markets})
        # Paper trading runs on market time (the data's own clock), so it fills exactly where a backtest would;
        # sandbox and live timestamp orders with wall time.
        self.clock: MarketClock | WallClock = MarketClock(self._wall_ms()) if self.mode == "paper" \
            else WallClock(clock)
        self.out = out
        self.handle_signals = handle_signals
        self.sandbox: Sandbox | None = sandbox
        self._own_sandbox = False
        self.queue: asyncio.Queue[WsEvent | None] = asyncio.Queue()
        self.stop_event = asyncio.Event()
        self.engine: ExecutionEngine | None = None
        self.loop: EventLoop | None = None
        self.journal: SqliteJournal | None = None
        self.restored: list[Order] = []
        self.venue: WhiteBitVenue | SimulatedVenue | None = None
        self.feeds: list[WsClient] = []
        self.http: httpx.AsyncClient | None = None
        self.account: Account | None = None
        self.reauth: ReauthRequired | None = None
        self.reporter = RunReporter(self.rules, self.out_dir(), self.clock, out)
        self.candles = 0
        self.stale_events = 0
        self.last_data_wall: float | None = None
        self._where = ""
        self._signals: list[signal.Signals] = []
        self.log = logging.getLogger(f"botkit.strategy.{type(self.strategy).__name__}")

    def _wall_ms(self) -> int:
        return int(self._now() * 1000)

    # ---- credentials and grant ---------------------------------------------------------------------------------------

    def _sandbox_key(self, sb_cfg: SandboxConfig) -> tuple[str, str, frozenset[str]]:
        account = next((a for a in sb_cfg.accounts if a.name == self.run_cfg.account), None)
        if account is None:
            names = ", ".join(a.name for a in sb_cfg.accounts)
            raise RunError(f"run.account = {self.run_cfg.account!r} is not a sandbox account; use one of: {names}")
        key = next((k for k in account.api_keys if k.enabled), None)
        if key is None:
            raise RunError(f"sandbox account {account.name!r} has no enabled API key; add one under "
                           "[[accounts.api_keys]] in the sandbox config")
        return key.key, key.secret.get_secret_value(), frozenset(key.permissions)

    def _load_sandbox_config(self) -> SandboxConfig:
        from botkit.sandbox.config import load_sandbox_config

        path: Path | None = self.run_cfg.sandbox_config
        cfg = load_sandbox_config(path)
        speed = self.run_cfg.speed
        if speed != 1.0:
            markets = [
                m.model_copy(update={"liquidity": m.liquidity.model_copy(
                    update={"tick_interval": m.liquidity.tick_interval / speed,
                            "speed": m.liquidity.speed * speed})})
                for m in cfg.markets
            ]
            cfg = cfg.model_copy(update={"markets": markets})
        ttl = {k: v for k, v in (("access_ttl", self.run_cfg.sandbox_access_ttl_s),
                                 ("refresh_ttl", self.run_cfg.sandbox_refresh_ttl_s)) if v is not None}
        if ttl:
            cfg = cfg.model_copy(update={"oauth": cfg.oauth.model_copy(update=ttl)})
        dialect = (self.cfg.auth or {}).get("dialect") if self.run_cfg.credentials == "oauth" else None
        if dialect is not None and dialect != cfg.oauth.dialect:
            # The embedded sandbox speaks the dialect the bot's [auth] asks for (`[oauth] dialect` of the sandbox).
            cfg = cfg.model_copy(update={"oauth": cfg.oauth.model_copy(update={"dialect": dialect})})
        if self._bearer_trading() and not cfg.server.bearer_trading:
            # `[auth] trading_auth = "bearer"` on the embedded sandbox: its opt-in Bearer trading (not in WhiteBIT's
            # public documentation) is switched on, since this run asked for exactly that.
            cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"bearer_trading": True})})
        return cfg

    def _bearer_trading(self) -> bool:
        return self.run_cfg.credentials == "oauth" and (self.cfg.auth or {}).get("trading_auth") == "bearer"

    async def _sandbox_oauth_account(self, key: str, secret: str, perms: frozenset[str]) -> Account:
        """Sandbox mode with `[run] credentials = "oauth"`: log in to the embedded sandbox through the real
        authorization-code flow (it consents by itself), keep the session and the account's API key in a token store
        under the run's folder, then open the account exactly as a live run does."""
        import os

        from pydantic import SecretStr

        from botkit.auth.login import complete_login
        from botkit.auth.oauth import OAuthClient
        from botkit.auth.settings import auth_settings_from_mapping
        from botkit.auth.store import StoredCredentials, store_for
        from botkit.auth.tokens import ApiKeyCredentials

        assert self.sandbox is not None and self.http is not None
        table = dict(self.cfg.auth or {})
        client_id = str(table.get("client_id") or self.sandbox.config.oauth.clients[0].client_id)
        client = next((c for c in self.sandbox.config.oauth.clients if c.client_id == client_id), None)
        if client is None or not client.redirect_uris:
            raise RunError(f"[auth] client_id = {client_id!r} is not an OAuth client of the sandbox (it has "
                           f"{[c.client_id for c in self.sandbox.config.oauth.clients]})")
        table.update(base_url=self.sandbox.base_url, client_id=client_id, redirect_uri=client.redirect_uris[0],
                     token_dir=str(self.out_dir() / "tokens"))
        env = {"BOTKIT_AUTH__CLIENT_SECRET": os.environ.get("BOTKIT_AUTH__CLIENT_SECRET")
               or client.client_secret.get_secret_value()}  # the embedded sandbox's own demo client
        settings = auth_settings_from_mapping(table, env, source="[auth] (embedded sandbox)")
        oauth = OAuthClient(settings, self.http, clock=self.token_clock.time)
        if settings.use_metadata:
            await oauth.discover()  # RFC 8414: endpoints from the server's metadata, `iss` required if advertised
        req = oauth.authorization_request(client.redirect_uris[0])
        url = req.url
        for _ in range(10):  # the browser's part: the sandbox consents and redirects to the registered callback
            r = await self.http.get(url)
            location = r.headers.get("Location")
            if location is None:
                raise RunError(f"the sandbox's authorization endpoint answered HTTP {r.status_code} without a "
                               "redirect; is auto_approve off in its [oauth] config?")
            url = urllib.parse.urljoin(url, location)
            if url.startswith(client.redirect_uris[0]):
                break
        token = await complete_login(oauth, req, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)))
        store = store_for(settings, environ={})
        # Bearer trading (credential (d)) needs no key: none is stored, so none can be used.
        key_creds = None if settings.trading_auth == "bearer" else ApiKeyCredentials(
            key, SecretStr(secret), None, perms, time.time())
        await asyncio.to_thread(store.save, StoredCredentials(token=token, api_key=key_creds))
        if self.out is not None:
            print(f"logged in to the embedded sandbox as OAuth client {client_id!r} (token lifetime "
                  f"{token.expires_at - token.obtained_at:.0f} s, scopes {','.join(sorted(token.scopes))})",
                  file=self.out, flush=True)
        try:
            return await open_account(self.sandbox.base_url, self.http, env_key=None, env_secret=None,
                                      config_grant=Grant(perms), auth=settings, require_session=True,
                                      clock=self.token_clock)
        except AccountError as exc:
            raise RunError(str(exc)) from None

    async def _live_account(self, base_url: str) -> Account:
        """The credentials of a live run: see botkit/whitebit/account.py for the four ways."""
        import os

        from botkit.auth.settings import auth_settings_from_mapping

        assert self.http is not None
        settings = auth_settings_from_mapping(self.cfg.auth, os.environ, source="[auth]") if self.cfg.auth else None
        try:
            return await open_account(base_url, self.http, env_key=self.run_cfg.api_key,
                                      env_secret=self.run_cfg.api_secret,
                                      config_grant=Grant.of(self.cfg.grant.scopes, "config [grant]"),
                                      auth=settings if self.run_cfg.credentials != "apikey" else None,
                                      require_session=self.run_cfg.credentials == "oauth", clock=self.token_clock)
        except AccountError as exc:
            raise RunError(str(exc)) from None

    # ---- run ---------------------------------------------------------------------------------------------------------

    def out_dir(self) -> Path:
        """Where this run's trades.csv, report.json and journal go: `<output dir>/<mode>` (a backtest of the same
        config writes to `<output dir>`), so runs and backtests never overwrite each other."""
        return self.cfg.out_dir / self.mode

    async def run(self) -> RunSummary:
        t0 = self._mono()
        failure: StrategyFailure | None = None
        outcome = "complete"
        try:
            await self._setup()
            assert self.engine is not None and self.loop is not None
            start_balances = self._balances()
            equity_start = self._equity_or_none()
            self._install_signals()
            if self.out is not None:
                until = f"for {self.run_cfg.duration_s:g} s" if self.run_cfg.duration_s else "until Ctrl-C"
                print(f"running {type(self.strategy).__name__} in {self.mode} mode on {self._where} "
                      f"({', '.join(self.markets)}, {self.run_cfg.interval} candles) {until}",
                      file=self.out, flush=True)
            try:
                self.loop.start()
                await self._main()
                if self.reauth is None:
                    self.loop.stop()
            except StrategyHalted as halted:
                failure, outcome = halted.failure, "halted"
                if self.out is not None:
                    print(f"halting: {failure.text()}", file=self.out, flush=True)
                n = self.loop.halt(failure, "strategy error")
                if n and self.out is not None:
                    print(f"cancelling {n} open order(s) of this bot", file=self.out, flush=True)
            if self.reauth is not None and self.loop.halt_reason is None:
                outcome = "needs re-authorization"
                if self.out is not None:
                    print(f"halting: {self.reauth}", file=self.out, flush=True)
                n = self.loop.halt(None, "the OAuth grant is gone (re-authorization required)")
                if n and self.out is not None:
                    print(f"cancelling {n} open order(s) of this bot", file=self.out, flush=True)
            await self._finish_orders()
            summary = self._summary(t0, start_balances, equity_start, outcome)
            write_json(self.out_dir() / "report.json", summary.as_dict() | (
                {"failure": {"callback": failure.callback, "market_time": iso(failure.time_ms),
                             "where": failure.where, "error": failure.error}} if failure else {}))
            if self.out is not None:
                print(summary.text(), file=self.out)
            if failure is not None:
                raise RunHalted(failure, summary)
            if self.reauth is not None:
                raise RunNeedsReauth(self.reauth, summary)
            if self.last_data_wall is None and not self.stop_event.is_set():  # (Ctrl-C before any data is fine)
                raise RunFailed(f"no market data arrived in {summary.seconds:.1f} s from {self._where}; check the "
                                "connection, the market names and [run] interval")
            return summary
        finally:
            await self._teardown()

    async def _finish_orders(self) -> None:
        """After the strategy stopped: let in-flight orders be answered and settle against the exchange."""
        assert self.engine is not None
        self.engine.drain()
        if isinstance(self.venue, WhiteBitVenue):
            dropped = self.venue.drop_queued("not sent: the bot stopped before a request slot was free")
            if dropped and self.out is not None:
                print(f"{dropped} queued order(s) were never sent (the bot stopped first)", file=self.out, flush=True)
            await self.venue.settle()
            await asyncio.sleep(0.2)  # late stream events of the last orders
            with contextlib.suppress(Exception):
                await self.venue.reconcile()
        self._pump_nowait()
        self.engine.drain()
        if self.journal is not None:
            self.journal.flush()

    def _summary(self, t0: float, start: dict[str, Balance], equity_start: float | None, outcome: str) -> RunSummary:
        assert self.engine is not None and self.loop is not None
        engine = self.engine
        by_status = dict(engine.status_counts)
        for o in engine.open.values():
            by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
        quote = self.rules[self.markets[0]].money
        return RunSummary(
            mode=self.mode,
            strategy=type(self.strategy).__name__,
            seconds=self._mono() - t0,
            candles=self.candles,
            orders_by_status=by_status,
            fills=engine.fill_count,
            rejections=dict(engine.rejection_counts),
            rejection_examples=list(engine.rejections[:5]),
            start_balances=start,
            final_balances=self._balances(),
            pnl=self.reporter.pnl(self.state.last_price),
            equity_start=equity_start,
            equity_end=self._equity_or_none(),
            quote=quote,
            quote_places=self.rules[self.markets[0]].money_prec,
            reconnects=sum(max(0, f.connects - 1) for f in self._all_ws()),
            depth_resubscribes=sum(f.depth_resubscribes for f in self.feeds),
            stale_events=self.stale_events,
            adopted=len(self.venue.adopted) if isinstance(self.venue, WhiteBitVenue) else 0,
            restored=len(self.restored),
            journal=str(self.journal.path) if self.journal is not None else None,
            out_dir=str(self.out_dir()),
            outcome=outcome,
            strategy_errors=self.loop.error_count,
            session=self._session_text(),
            notes=list(self.venue.errors) if isinstance(self.venue, WhiteBitVenue) else [],
        )

    def _all_ws(self) -> list[WsClient]:
        extra = [self.venue.ws] if isinstance(self.venue, WhiteBitVenue) and self.venue.ws is not None else []
        return self.feeds + extra

    def _balances(self) -> dict[str, Balance]:
        assert self.venue is not None
        return self.venue.balances()

    async def _setup(self) -> None:
        mode = self.mode
        rc = self.run_cfg
        declared = type(self.strategy).scopes
        if mode == "sandbox":
            from botkit.sandbox.server import Sandbox

            sb_cfg = self._load_sandbox_config() if self.sandbox is None else self.sandbox.config
            key, secret, perms = self._sandbox_key(sb_cfg)
            grant = Grant(perms, f"sandbox key of account {rc.account!r}")
            if self._bearer_trading():  # what the sandbox's OAuth client will be granted, not the key
                cid = (self.cfg.auth or {}).get("client_id")
                client = next((c for c in sb_cfg.oauth.clients if c.client_id == cid), None)
                if client is not None:
                    grant = Grant(frozenset(client.scopes), f"OAuth client {cid!r} of the sandbox")
            self._check_start(grant, declared)  # before any socket opens: nothing reaches the exchange
            sb_markets = {m.name for m in sb_cfg.markets}
            missing = [m for m in self.markets if m not in sb_markets]
            if missing:
                raise RunError(f"markets {missing} are not in the sandbox (it has {sorted(sb_markets)}); "
                               "trade those or give [run] sandbox_config with them")
            if self.sandbox is None:
                self.sandbox = Sandbox(sb_cfg)
                await self.sandbox.start()
                self._own_sandbox = True
                log.info("embedded sandbox on %s", self.sandbox.base_url)
            base_url, ws_url = self.sandbox.base_url, self.sandbox.ws_url
            if rc.credentials == "oauth":
                self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
                self.account = await self._sandbox_oauth_account(key, secret, perms)
                grant = self.account.grant
                self._check_start(grant, declared)
        elif mode == "live":
            base_url, ws_url = rc.base_url, rc.resolved_ws_url()
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            self.account = await self._live_account(base_url)
            grant = self.account.grant
            self._check_start(grant, declared)
        else:
            grant = Grant.of(self.cfg.grant.scopes, "config [grant]")
            self._check_start(grant, declared)
            base_url, ws_url = rc.base_url, rc.resolved_ws_url()

        self._where = base_url
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        if self.source is None:
            await self._rules_from_exchange(base_url)
        if mode == "paper":
            venue: WhiteBitVenue | SimulatedVenue = SimulatedVenue(
                self.rules, dict(self.cfg.balances), self.cfg.fill_model(),
                supports_oco=self.cfg.oco_mode() == "native")
        else:
            if self.account is None:  # sandbox: the sandbox account's key
                from pydantic import SecretStr

                rest = WhiteBitRest(base_url, self.http, signer=HmacSigner(key, SecretStr(secret)), key_grant=grant)
                self.account = Account(rest, grant, identity_of(key), None, f"sandbox key of account {rc.account!r}")
            venue = WhiteBitVenue(self.account.rest, self.rules, ws_url=ws_url, notify=self._wake, adopt=self._adopt,
                                  clock_ms=self._wall_ms, ping_interval=rc.ping_interval_s,
                                  max_in_flight=rc.max_in_flight, before_send=self._durable,
                                  on_reauth=self._reauth_needed)
            tokens = self.account.tokens
            if tokens is not None and tokens.s.keepalive:
                tokens.start_keepalive()  # access 300 s, rotating refresh 600 s: refreshed ahead of expiry
        self.venue = venue
        ids_prefix = f"bk{int(time.time()) % 1_000_000:x}"
        ids = ClientIdFactory(ids_prefix)
        if mode != "paper":
            assert self.account is not None
            where = f"{base_url}#{self.account.identity}"
            if mode == "sandbox":
                # The in-process sandbox is a new, empty exchange each run (and its port may be reused): its
                # orders are journaled but never restored into another run.
                where += f"#sandbox-{uuid.uuid4().hex[:12]}"
            self.journal = self._open_journal(where)
            ids = _FreshIds(ids_prefix, self.journal.client_ids())
        self.engine = ExecutionEngine(
            grant=grant,
            declared_scopes=declared,
            rules=self.rules,
            risk=RiskManager(self.cfg.risk_limits()),
            venue=venue,
            clock=self.clock,
            last_price=self.state.last_price,
            equity=self._equity,
            ids=ids,
            journal=self.journal if self.journal is not None else MemoryJournal(),  # (paper: in memory)
            keep_closed=False,
        )
        self.reporter.open()
        self.loop = EventLoop(self.strategy, self.engine, self.state, self.clock, logger=self.log,
                              fills=venue if isinstance(venue, SimulatedVenue) else None,
                              on_error=self.cfg.strategy.on_error, observers=[self.reporter])
        if self.journal is not None and isinstance(venue, WhiteBitVenue):
            # Ours from an earlier run: back on the books before the venue's reconciliation settles them.
            self.restored = self.journal.open_orders(venue=self.journal.venue)
            self.engine.restore(self.restored)
            for order in self.restored:
                at_venue = self.engine.at_venue(order)  # None: an OCO stop held by the execution layer
                if at_venue is not None:
                    venue.track(at_venue)
            if self.restored:
                log.info("restored %d open order(s) from the journal %s", len(self.restored), self.journal.path)
        if isinstance(venue, WhiteBitVenue):
            await venue.start()
        await self._start_feeds(ws_url)

    async def _rules_from_exchange(self, base_url: str) -> None:
        """Precision, minimums and fees as the exchange publishes them (`/api/v4/public/markets`); a [markets] value
        that disagrees is an error naming both (ConfigError: exit 2)."""
        assert self.http is not None
        rest = WhiteBitRest(base_url, self.http)
        try:
            items = await rest.call("markets")
        except (WhiteBitError, httpx.HTTPError) as exc:
            raise RunFailed(f"cannot read the market rules from {base_url}/api/v4/public/markets: {exc}") from None
        exchange = {str(i["name"]): MarketRules.from_whitebit(i) for i in items or [] if isinstance(i, dict)}
        rules = self.cfg.market_rules(exchange)
        self.rules.clear()
        self.rules.update(rules)  # the reporter and the status line hold this dict

    def journal_path(self) -> Path:
        """`[run] journal`, or `<output dir>/<mode>/journal.sqlite`."""
        if self.run_cfg.journal is not None:
            return self.run_cfg.journal
        return self.out_dir() / "journal.sqlite"

    def _open_journal(self, venue: str) -> SqliteJournal:
        """Opened on the loop thread (sqlite3 connections stay on theirs), once, before anything trades. One writer:
        a second bot on the same journal is refused."""
        try:
            return SqliteJournal(self.journal_path(), run_id=f"{self.cfg.name}-{wall_ms()}", venue=venue,
                                 exclusive=True)
        except JournalLocked as exc:
            raise RunError(str(exc)) from None

    def _durable(self) -> None:
        """Before an order leaves the process: its intent is on disk (one fsync for all intents queued so far)."""
        if self.journal is not None:
            self.journal.flush()

    def _equity(self) -> float:
        """Account value in the first market's quote currency at last prices (for the daily loss limit)."""
        assert self.venue is not None
        quote = self.rules[self.markets[0]].money
        return mark_to_market(self.venue.balances(), self.rules, quote, self.state.last_price)

    def _equity_or_none(self) -> float | None:
        return self._equity() if any(self.state.last_price(m) is not None for m in self.markets) else None

    def _check_start(self, grant: Grant, declared: frozenset[str]) -> None:
        """One check for everything the bot will need, so a refusal lists every missing scope at once: the
        strategy's declared scopes and, except on paper, what the venue itself calls (balances, reconciliation,
        lost-answer lookups, the private stream's token)."""
        if self.mode == "paper":
            grant.require(f"strategy {type(self.strategy).__name__} start", declared)
        else:
            grant.require(f"strategy {type(self.strategy).__name__} start (its declared scopes and those of the "
                          "whitebit venue: balances, reconciliation, lost-answer lookups)",
                          declared | WhiteBitVenue.required_scopes())

    async def _start_feeds(self, ws_url: str) -> None:
        if self.source is not None:
            await self.source.start(self.queue.put_nowait)
            return
        # Paper trading with the trades fill model fills on the public trades, so it listens to them anyway.
        want_trades = _overrides(self.strategy, "on_trade") or (self.mode == "paper"
                                                                and self.cfg.backtest.fills == "trades")
        want_book = _overrides(self.strategy, "on_book")
        for market in self.markets:
            feed = WsClient(ws_url, self.queue.put_nowait, ping_interval=self.run_cfg.ping_interval_s,
                            stale_after=self.run_cfg.staleness_s, name=f"market-ws {market}",
                            clock=self._now, monotonic=self._mono)
            feed.subscribe_candles(market, self.run_cfg.interval_s)
            feed.subscribe_lastprice([market])
            if want_trades:
                feed.subscribe_trades([market])
            if want_book:
                feed.subscribe_depth(market, 20)
            self.feeds.append(feed)
            await feed.start(wait=self.run_cfg.connect_timeout_s)
            if not feed.connected:
                raise RunFailed(f"cannot connect to the market data stream {ws_url} within "
                                f"{self.run_cfg.connect_timeout_s:g} s: {feed.last_error or 'no answer'}")
            await self._load_history(feed, market)

    async def _load_history(self, feed: WsClient, market: str) -> None:
        """Closed candles before the first callback, so `ctx.candles()` has history (callbacks get new ones only)."""
        n, iv = self.run_cfg.history, self.run_cfg.interval_s
        if n <= 0:
            return
        now = int(self._now())
        current = now - now % iv
        try:
            rows = await feed.request("candles_request", [market, current - n * iv, current, iv])
        except (TimeoutError, WsConnectionLost, WsRpcError) as exc:
            log.warning("no candle history for %s: %s", market, exc)
            return
        buf = self.state.buffers[market]
        for r in rows or []:
            t = int(r[0])
            if t < current:
                o, c, h, lo, v = (float(x) for x in r[1:6])
                if buf.append(t * 1000, o, h, lo, c, v) is not None:
                    buf.cur += 1
                    self.state.last[market] = c

    def _wake(self) -> None:
        self.queue.put_nowait(None)

    def _reauth_needed(self, exc: ReauthRequired) -> None:
        """The OAuth grant is gone: stop trading at once (the main loop then halts the bot)."""
        if self.reauth is None:
            self.reauth = exc
            log.error("%s", exc)
        self.stop_event.set()

    def _adopt(self, order: Order) -> bool:
        """An open order found on the exchange joins the engine's books (as if placed), so it can be managed;
        another bot's order (a botkit id this bot never journaled) is left alone, so each bot reports its own."""
        assert self.engine is not None
        if BOT_ID_RE.match(order.client_id):
            log.info("open order %s belongs to another botkit bot on this account; not adopted", order.client_id)
            return False
        self.engine.adopt(order)
        return True

    def _install_signals(self) -> None:
        if not self.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop_event.set)
                self._signals.append(sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []

    async def _main(self) -> None:
        """Market events one at a time from the queue; between them, `tick` delivers order events and fires timers.
        The deadline and Ctrl-C are checked at least every 100 ms, whatever the strategy and the venue are doing."""
        assert self.loop is not None
        deadline = self._mono() + self.run_cfg.duration_s if self.run_cfg.duration_s else None
        status_every = self.run_cfg.status_every_s
        next_status = self._mono() + status_every if status_every else None
        # The dead-man switch is re-armed from this loop, never from a side task: if the loop stalls (a strategy
        # that blocks, a hung process), re-arming stops and the exchange cancels the bot's orders.
        kill_every = self.run_cfg.kill_switch_s / 3 if self.run_cfg.kill_switch_s and self._venue_is_live() else None
        next_kill = self._mono()
        stop_wait = asyncio.ensure_future(self.stop_event.wait())
        try:
            while not self.stop_event.is_set():
                timeout = 0.1
                if deadline is not None:
                    left = deadline - self._mono()
                    if left <= 0:
                        break
                    timeout = min(timeout, left)
                get = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    self._handle(get.result())
                    self._pump_nowait()
                else:
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get
                tokens = self.account.tokens if self.account is not None else None
                if tokens is not None and tokens.reauth_required is not None:
                    self._reauth_needed(tokens.reauth_required)  # seen by the keep-alive between calls
                    break
                if self.reauth is not None:
                    break
                self.loop.tick()
                if kill_every is not None and self._mono() >= next_kill:
                    next_kill = self._mono() + kill_every
                    self._rearm_kill_switch()
                if next_status is not None and self._mono() >= next_status:
                    next_status = self._mono() + status_every
                    self._print_status()
                if self.source is not None and self.source.finished and self.queue.empty():
                    break  # the replay is over
        finally:
            stop_wait.cancel()

    def _venue_is_live(self) -> bool:
        return isinstance(self.venue, WhiteBitVenue)

    def _rearm_kill_switch(self) -> None:
        assert isinstance(self.venue, WhiteBitVenue) and self.run_cfg.kill_switch_s is not None
        for market in self.markets:
            self.venue.arm_kill_switch(market, self.run_cfg.kill_switch_s)

    def _print_status(self) -> None:
        if self.out is None or self.engine is None or self.venue is None:
            return
        quote = self.rules[self.markets[0]].money
        positions = {m: self.venue.balance(self.rules[m].stock).total for m in self.markets}
        lag = self._mono() - self.last_data_wall if self.last_data_wall is not None else None
        print(self.reporter.status_line(equity=self._equity_or_none(), quote=quote, positions=positions,
                                        open_orders=len(self.engine.open), feed_lag_s=lag,
                                        token=self._token_status(), pnl=self.reporter.pnl(self.state.last_price)),
              file=self.out, flush=True)

    def _session_text(self) -> str | None:
        tokens = self.account.tokens if self.account is not None else None
        if tokens is None:
            return None
        failed = "re-authorization required" if tokens.reauth_required is not None else "0 failed"
        t = tokens.token  # token times are on the token clock
        left = f"token expires in {t.expires_at - self.token_clock.time():.0f} s" if t is not None else "no token"
        return f"{tokens.refresh_count} refreshes ({failed}), {left}"

    def _token_status(self) -> str:
        tokens = self.account.tokens if self.account is not None else None
        if tokens is None or tokens.token is None:
            return "n/a (paper)" if self.mode == "paper" else "none (API key)"
        left = tokens.token.expires_at - self.token_clock.time()
        return f"expires in {left:.0f} s, {tokens.refresh_count} refreshes"

    def _pump_nowait(self) -> None:
        while not self.queue.empty():
            self._handle(self.queue.get_nowait())

    def _handle(self, ev: WsEvent | None) -> None:
        loop = self.loop
        assert loop is not None
        if ev is None:
            loop.engine.drain()
            return
        if loop.stopped:
            return  # after on_stop only order events are delivered, no market data
        if isinstance(ev, CandleClosed):
            self.last_data_wall = self._mono()
            if loop.candle(ev.candle):
                self.candles += 1
        elif isinstance(ev, TradePrinted):
            self.last_data_wall = self._mono()
            loop.trade(ev.trade)
        elif isinstance(ev, BookChanged):
            self.last_data_wall = self._mono()
            loop.book(ev.book)
        elif isinstance(ev, LastPrice):
            self.last_data_wall = self._mono()
            self.state.last[ev.market] = ev.price
        elif isinstance(ev, Stale):
            self.stale_events += 1
            self.log.warning("market data silent for %.1f s", ev.silent_s)
        elif isinstance(ev, DepthGap | Disconnected | Connected):
            log.info("market feed: %s", ev)

    async def _teardown(self) -> None:
        self._remove_signals()
        if self.source is not None:
            await self.source.close()
        for feed in self.feeds:
            await feed.close()
        self.feeds = []
        if isinstance(self.venue, WhiteBitVenue):
            await self.venue.stop()
        if self.account is not None:
            await self.account.aclose()
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if self._own_sandbox and self.sandbox is not None:
            await self.sandbox.stop()
            self.sandbox = None
        self.reporter.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
