"""`LiveRunner`: one strategy, live, on the embedded sandbox (default), on paper, or on WhiteBIT.

The same ExecutionEngine, Context and StrategyRunner as a backtest; only the venue and the clock differ. Everything
reaches the strategy through one queue consumed by one loop, so callbacks never nest and never run concurrently:
closed candles (and trades/book when the strategy overrides on_trade/on_book) from the WebSocket client, and a
wake-up whenever the venue reported order events. After each callback the runner delivers engine events
(`engine.drain()`), then due timers. It stops on SIGINT/SIGTERM or after `duration_s`, calls on_stop, waits for
in-flight orders to be answered and prints a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import httpx
import numpy as np

from botkit.auth.grants import Grant
from botkit.auth.signing import HmacSigner
from botkit.config import BotConfig
from botkit.execution.engine import ExecutionEngine, Rejection
from botkit.execution.journal import SqliteJournal
from botkit.execution.orders import ClientIdFactory, Order
from botkit.execution.portfolio import mark_to_market
from botkit.execution.risk import RiskManager
from botkit.market.rules import MarketRules, fmt
from botkit.market.types import Candle
from botkit.plugins import build_strategy
from botkit.strategy import CandleArrays, Context, Strategy, StrategyRunner
from botkit.venues.base import Balance
from botkit.venues.simulated import SimulatedVenue
from botkit.venues.whitebit import WhiteBitVenue
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

VENUE_SCOPES = frozenset({"balances.read", "orders.read"})


class RunError(Exception):
    """The bot cannot start as configured (credentials, markets, sandbox account). CLI exit code 2."""


def journal_venue(base_url: str, api_key: str) -> str:
    """Which exchange and account a journaled order lives on (the key hashed: the journal holds no credential)."""
    return f"{base_url}#{hashlib.sha256(api_key.encode()).hexdigest()[:12]}"


def wall_ms() -> int:
    return int(time.time() * 1000)


class LiveCandles:
    """Closed candles per market as they arrive (the live `MarketData`), plus the last traded price."""

    def __init__(self, markets: list[str]) -> None:
        self.rows: dict[str, list[tuple[int, float, float, float, float, float]]] = {m: [] for m in markets}
        self.last: dict[str, float] = {}

    def add(self, c: Candle) -> bool:
        rows = self.rows[c.market]
        if rows and c.time_ms <= rows[-1][0]:
            return False  # never out of order, never twice
        rows.append((c.time_ms, c.open, c.high, c.low, c.close, c.volume))
        self.last.setdefault(c.market, c.close)
        return True

    def candles(self, market: str, n: int | None) -> CandleArrays:
        rows = self.rows[market] if n is None else self.rows[market][-n:] if n > 0 else []
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        cols = [a[:, k].copy() for k in range(6)]
        for c in cols:
            c.setflags(write=False)
        t = cols[0].astype(np.int64)
        t.setflags(write=False)
        return CandleArrays(t, cols[1], cols[2], cols[3], cols[4], cols[5])

    def last_price(self, market: str) -> float | None:
        if market in self.last:
            return self.last[market]
        rows = self.rows.get(market)
        return rows[-1][4] if rows else None


@dataclass(slots=True)
class RunSummary:
    mode: str
    strategy: str
    seconds: float
    candles: int
    orders: list[Order]
    fills: int
    rejections: list[Rejection]
    start_balances: dict[str, Balance]
    final_balances: dict[str, Balance]
    reconnects: int = 0
    depth_resubscribes: int = 0
    stale_events: int = 0
    adopted: int = 0
    restored: int = 0
    journal: str | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        by_status: dict[str, int] = {}
        for o in self.orders:
            by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
        status = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"
        lines = [
            f"run {self.mode}: {self.strategy} for {self.seconds:.1f} s, {self.candles} closed candles",
            f"orders: {len(self.orders)} ({status}); fills: {self.fills}; rejections: {len(self.rejections)}",
        ]
        if self.restored:
            lines.append(f"open orders restored from the journal: {self.restored}")
        if self.adopted:
            lines.append(f"adopted open orders found on the exchange: {self.adopted}")
        if self.reconnects or self.depth_resubscribes or self.stale_events:
            lines.append(f"websocket: {self.reconnects} reconnects, {self.depth_resubscribes} depth resubscribes, "
                         f"{self.stale_events} staleness alerts")
        for r in self.rejections[:5]:
            lines.append(f"  rejected {r.client_id} ({r.rule}): {r.message}")
        lines.append("balances (start -> end):")
        for a in sorted(set(self.start_balances) | set(self.final_balances)):
            s = self.start_balances.get(a)
            e = self.final_balances.get(a)
            lines.append(f"  {a:<6} {fmt(s.total) if s else 0} -> {fmt(e.total) if e else 0}")
        if self.journal is not None:
            lines.append(f"order journal: {self.journal}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


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


class LiveRunner:
    """Runs `cfg`'s strategy in `cfg.run.mode`. `sandbox` may be a running Sandbox to use instead of starting one."""

    def __init__(
        self,
        cfg: BotConfig,
        *,
        strategy: Strategy | None = None,
        sandbox: Sandbox | None = None,
        out: TextIO | None = sys.stdout,
        handle_signals: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_cfg = cfg.run
        self.mode = cfg.run.mode
        self.strategy = strategy or build_strategy(cfg.strategy.plugin, cfg.strategy.params)
        self.rules: dict[str, MarketRules] = cfg.market_rules()
        self.markets = list(cfg.markets)
        self.data = LiveCandles(self.markets)
        self.out = out
        self.handle_signals = handle_signals
        self.sandbox: Sandbox | None = sandbox
        self._own_sandbox = False
        self.queue: asyncio.Queue[WsEvent | None] = asyncio.Queue()
        self.stop_event = asyncio.Event()
        self.engine: ExecutionEngine | None = None
        self.journal: SqliteJournal | None = None
        self.restored: list[Order] = []
        self.venue: WhiteBitVenue | SimulatedVenue | None = None
        self.feeds: list[WsClient] = []
        self.http: httpx.AsyncClient | None = None
        self.candles_seen: list[Candle] = []
        self.stale_events = 0
        self._stopped = False
        self._where = ""
        self._signals: list[signal.Signals] = []
        self.log = logging.getLogger(f"botkit.strategy.{type(self.strategy).__name__}")

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
        return cfg

    async def _live_credentials_and_grant(self) -> tuple[str, str, Grant]:
        """Key from the environment (grant: config [grant]) or from the token store that `botkit auth apikey`
        filled (grant: the key's permissions as WhiteBIT reported them)."""
        key, secret = self.run_cfg.api_key, self.run_cfg.api_secret
        if key is not None and secret is not None and key.get_secret_value() and secret.get_secret_value():
            return key.get_secret_value(), secret.get_secret_value(), Grant.of(self.cfg.grant.scopes, "config [grant]")
        if self.cfg.auth is not None:
            import os

            from botkit.auth.settings import ConfigError as AuthConfigError
            from botkit.auth.settings import auth_settings_from_mapping
            from botkit.auth.store import store_for

            try:
                settings = auth_settings_from_mapping(self.cfg.auth, os.environ, source="[auth]")
            except AuthConfigError as exc:
                raise RunError(str(exc)) from None
            stored = await asyncio.to_thread(store_for(settings).load)
            if stored is not None and stored.api_key is not None:
                k = stored.api_key
                return k.api_key, k.api_secret.get_secret_value(), Grant(k.permissions, "API key permissions (store)")
        raise RunError(
            "live mode needs an API key: set BOTKIT_RUN__API_KEY and BOTKIT_RUN__API_SECRET in the environment, "
            "or run `botkit auth apikey CONFIG` to store a Fast API key (needs an [auth] table); keys never go in "
            "the config file"
        )

    # ---- run ---------------------------------------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        t0 = time.monotonic()
        try:
            await self._setup()
            assert self.engine is not None
            summary_start = self._balances()
            ctx = Context(self.engine, self.data, wall_ms, self.log)
            runner = StrategyRunner(self.strategy, ctx)
            self.engine.sink = runner
            self._install_signals()
            if self.out is not None:
                until = f"for {self.run_cfg.duration_s:g} s" if self.run_cfg.duration_s else "until Ctrl-C"
                print(f"running {type(self.strategy).__name__} in {self.mode} mode on {self._where} "
                      f"({', '.join(self.markets)}, {self.run_cfg.interval} candles) {until}",
                      file=self.out, flush=True)
            self.strategy.on_start(ctx)
            self.engine.drain()
            await self._loop(runner, ctx)
            self.strategy.on_stop(ctx)
            self._stopped = True  # from here on only order events are delivered, no market data
            self.engine.drain()
            if isinstance(self.venue, WhiteBitVenue):
                await self.venue.settle()
                await asyncio.sleep(0.2)  # late stream events of the last orders
                with contextlib.suppress(Exception):
                    await self.venue.reconcile()
            self._pump_nowait(runner)
            self.engine.drain()
            summary = RunSummary(
                mode=self.mode,
                strategy=type(self.strategy).__name__,
                seconds=time.monotonic() - t0,
                candles=len(self.candles_seen),
                orders=list(self.engine.orders.values()),
                fills=len(self.engine.fills),
                rejections=list(self.engine.rejections),
                start_balances=summary_start,
                final_balances=self._balances(),
                reconnects=sum(max(0, f.connects - 1) for f in self._all_ws()),
                depth_resubscribes=sum(f.depth_resubscribes for f in self.feeds),
                stale_events=self.stale_events,
                adopted=len(self.venue.adopted) if isinstance(self.venue, WhiteBitVenue) else 0,
                restored=len(self.restored),
                journal=str(self.journal.path) if self.journal is not None else None,
                notes=list(self.venue.errors) if isinstance(self.venue, WhiteBitVenue) else [],
            )
            if self.out is not None:
                print(summary.text(), file=self.out)
            return summary
        finally:
            await self._teardown()

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
        elif mode == "live":
            key, secret, grant = await self._live_credentials_and_grant()
            self._check_start(grant, declared)
            base_url, ws_url = rc.base_url, rc.resolved_ws_url()
        else:
            grant = Grant.of(self.cfg.grant.scopes, "config [grant]")
            self._check_start(grant, declared)
            base_url, ws_url = rc.base_url, rc.resolved_ws_url()

        if mode != "paper":
            # The venue reads balances and reconciles open orders: without these it would trade blind.
            grant.require("the whitebit venue (balances and order reconciliation)", VENUE_SCOPES)
        self._where = base_url
        clock = wall_ms
        if mode == "paper":
            venue: WhiteBitVenue | SimulatedVenue = SimulatedVenue(
                self.rules, dict(self.cfg.balances), self.cfg.fill_model())
        else:
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            from pydantic import SecretStr

            rest = WhiteBitRest(base_url, self.http, signer=HmacSigner(key, SecretStr(secret)), key_grant=grant)
            venue = WhiteBitVenue(rest, self.rules, ws_url=ws_url, notify=self._wake, adopt=self._adopt,
                                  clock_ms=clock, ping_interval=rc.ping_interval_s)
        self.venue = venue
        ids_prefix = f"bk{int(time.time()) % 1_000_000:x}"
        ids = ClientIdFactory(ids_prefix)
        if mode != "paper":
            where = journal_venue(base_url, key)
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
            clock=clock,
            last_price=self.data.last_price,
            equity=self._equity,
            ids=ids,
            journal=self.journal,
        )
        if self.journal is not None and isinstance(venue, WhiteBitVenue):
            # Ours from an earlier run: back on the books before the venue's reconciliation settles them.
            self.restored = self.journal.open_orders(venue=self.journal.venue)
            self.engine.restore(self.restored)
            for order in self.restored:
                venue.track(order)
            if self.restored:
                log.info("restored %d open order(s) from the journal %s", len(self.restored), self.journal.path)
        if isinstance(venue, WhiteBitVenue):
            await venue.start()
        await self._start_feeds(ws_url)

    def journal_path(self) -> Path:
        """`[run] journal`, or `<[output] dir>/<name>/journal.sqlite`."""
        if self.run_cfg.journal is not None:
            return self.run_cfg.journal
        return self.cfg.output.dir / self.cfg.name / "journal.sqlite"

    def _open_journal(self, venue: str) -> SqliteJournal:
        """Opened on the loop thread (sqlite3 connections stay on theirs), once, before anything trades."""
        return SqliteJournal(self.journal_path(), run_id=f"{self.cfg.name}-{wall_ms()}", venue=venue)

    def _equity(self) -> float:
        """Account value in the first market's quote currency at last prices (for the daily loss limit)."""
        assert self.venue is not None
        quote = self.rules[self.markets[0]].money
        return mark_to_market(self.venue.balances(), self.rules, quote, self.data.last_price)

    def _check_start(self, grant: Grant, declared: frozenset[str]) -> None:
        grant.require(f"strategy {type(self.strategy).__name__} start", declared)

    async def _start_feeds(self, ws_url: str) -> None:
        want_trades = _overrides(self.strategy, "on_trade")
        want_book = _overrides(self.strategy, "on_book")
        for market in self.markets:
            feed = WsClient(ws_url, self.queue.put_nowait, ping_interval=self.run_cfg.ping_interval_s,
                            stale_after=self.run_cfg.staleness_s, name=f"market-ws {market}")
            feed.subscribe_candles(market, self.run_cfg.interval_s)
            feed.subscribe_lastprice([market])
            if want_trades:
                feed.subscribe_trades([market])
            if want_book:
                feed.subscribe_depth(market, 20)
            self.feeds.append(feed)
            await feed.start(wait=10.0)
            await self._load_history(feed, market)

    async def _load_history(self, feed: WsClient, market: str) -> None:
        """Closed candles before the first callback, so `ctx.candles()` has history (callbacks get new ones only)."""
        n, iv = self.run_cfg.history, self.run_cfg.interval_s
        if n <= 0:
            return
        now = int(time.time())
        current = now - now % iv
        try:
            rows = await feed.request("candles_request", [market, current - n * iv, current, iv])
        except (TimeoutError, WsConnectionLost, WsRpcError) as exc:
            log.warning("no candle history for %s: %s", market, exc)
            return
        for r in rows or []:
            t = int(r[0])
            if t < current:
                o, c, h, lo, v = (float(x) for x in r[1:6])
                self.data.add(Candle(market, t * 1000, (t + iv) * 1000, o, h, lo, c, v))
        if self.data.rows[market]:
            self.data.last[market] = self.data.rows[market][-1][4]

    def _wake(self) -> None:
        self.queue.put_nowait(None)

    def _adopt(self, order: Order) -> None:
        """An open order found on the exchange joins the engine's books (as if placed), so it can be managed."""
        assert self.engine is not None
        self.engine.adopt(order)

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

    async def _loop(self, runner: StrategyRunner, ctx: Context) -> None:
        assert self.engine is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.run_cfg.duration_s if self.run_cfg.duration_s else None
        stop_wait = asyncio.ensure_future(self.stop_event.wait())
        try:
            while not self.stop_event.is_set():
                timeout = 0.1
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    timeout = min(timeout, left)
                get = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    self._handle(get.result(), runner, ctx)
                    self._pump_nowait(runner)
                else:
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get
                self._settle(runner, wall_ms())
        finally:
            stop_wait.cancel()

    def _pump_nowait(self, runner: StrategyRunner) -> None:
        while not self.queue.empty():
            self._handle(self.queue.get_nowait(), runner, runner.ctx)

    def _settle(self, runner: StrategyRunner, now: int) -> None:
        assert self.engine is not None
        self.engine.drain()
        if runner.ctx.timers:
            runner.fire_timers(now)
            self.engine.drain()

    def _handle(self, ev: WsEvent | None, runner: StrategyRunner, ctx: Context) -> None:
        engine = self.engine
        assert engine is not None
        if ev is None:
            engine.drain()
            return
        if self._stopped:
            return
        if isinstance(ev, CandleClosed):
            c = ev.candle
            if not self.data.add(c):
                return
            self.data.last[c.market] = c.close
            if isinstance(self.venue, SimulatedVenue):
                self.venue.process_candle(c.market, c.time_ms, c.open, c.high, c.low, c.close_time_ms)
                engine.drain()
            self.candles_seen.append(c)
            self.strategy.on_candle(ctx, c)
            self._settle(runner, wall_ms())
        elif isinstance(ev, TradePrinted):
            self.data.last[ev.trade.market] = ev.trade.price
            self.strategy.on_trade(ctx, ev.trade)
            engine.drain()
        elif isinstance(ev, BookChanged):
            self.strategy.on_book(ctx, ev.book)
            engine.drain()
        elif isinstance(ev, LastPrice):
            self.data.last[ev.market] = ev.price
        elif isinstance(ev, Stale):
            self.stale_events += 1
            self.log.warning("market data silent for %.1f s", ev.silent_s)
        elif isinstance(ev, DepthGap | Disconnected | Connected):
            log.info("market feed: %s", ev)

    async def _teardown(self) -> None:
        self._remove_signals()
        for feed in self.feeds:
            await feed.close()
        self.feeds = []
        if isinstance(self.venue, WhiteBitVenue):
            await self.venue.stop()
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if self._own_sandbox and self.sandbox is not None:
            await self.sandbox.stop()
            self.sandbox = None
        if self.journal is not None:
            self.journal.close()

