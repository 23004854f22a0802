"""The order journal across crashes: `botkit run` killed with SIGKILL and restarted on the same journal knows its
orders, reports what happened to them while it was down exactly once, and never sends an intent twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from botkit.config import GrantConfig
from botkit.execution.journal import SqliteJournal
from botkit.market.orders import Order, OrderStatus
from botkit.runner import LiveRunner, journal_venue
from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import FakeClock
from botkit.whitebit.rest import WhiteBitRest

from .conftest import bot_config, clocked_sandbox, run_driven
from .run_strategies import Recorder

MARKET = "BTC_USDT"
PROBE = Path(__file__).with_name("journal_probe.py")
SCOPES = ["orders.create", "orders.delete", "orders.read", "balances.read", "orders_history.read"]


def _log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def _until(cond, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"{what}: not met in {timeout} s"
        await asyncio.sleep(0.05)


def _journal_rows(path: Path) -> dict[str, Order]:
    if not path.exists():
        return {}
    with SqliteJournal(path) as j:
        return {o.client_id: o for o in j.orders_since(0)}


def _write_config(tmp: Path, sandbox: Sandbox, *, place: bool, log: Path, journal: Path) -> Path:
    cfg = tmp / f"bot-{'place' if place else 'restart'}.toml"
    cfg.write_text(f"""
name = "journal-test"
[strategy]
plugin = "{PROBE}:JournalProbe"
[strategy.params]
log = "{log}"
place = {'true' if place else 'false'}
[markets.{MARKET}]
stock_prec = 6
money_prec = 2
min_amount = "0.00001"
min_total = "1"
[balances]
USDT = "1000"
[grant]
scopes = {json.dumps(SCOPES)}
[output]
dir = "{tmp / 'out'}"
[run]
mode = "live"
base_url = "{sandbox.base_url}"
ws_url = "{sandbox.ws_url}"
interval = 1
history = 5
staleness_s = 5
journal = "{journal}"
""", encoding="utf-8")
    return cfg


async def _start_bot(cfg: Path, tmp: Path, name: str) -> tuple[asyncio.subprocess.Process, Path]:
    env = {**os.environ, "BOTKIT_RUN__API_KEY": "demo-key", "BOTKIT_RUN__API_SECRET": "demo-secret"}
    out = tmp / f"{name}.out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from botkit.cli import main; sys.exit(main())", "run", str(cfg),
        env=env, cwd=tmp, stdout=out.open("wb"), stderr=asyncio.subprocess.STDOUT,
    )
    return proc, out


async def test_sigkill_then_restart_settles_orders_exactly_once(
    sandbox: Sandbox, rest: WhiteBitRest, tmp_path: Path
) -> None:
    journal, log = tmp_path / "journal.sqlite", tmp_path / "strategy.jsonl"
    first, first_out = await _start_bot(_write_config(tmp_path, sandbox, place=True, log=log, journal=journal),
                                        tmp_path, "first")
    try:
        await _until(lambda: sum(o.status == OrderStatus.OPEN for o in _journal_rows(journal).values()) == 3,
                     timeout=15, what="three orders journaled as open")
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL, first_out.read_text()
    before = _journal_rows(journal)
    placed = [r for r in _log(log) if r["ev"] == "placed"]
    assert {r["cid"] for r in placed} == set(before) and len(placed) == 3
    fill_cid, cancel_cid, keep_cid = (r["cid"] for r in placed)
    filled, cancelled, kept = before[fill_cid], before[cancel_cid], before[keep_cid]
    on_exchange = {r["clientOrderId"]: r for r in await rest.call("open_orders", {"market": MARKET, "limit": 100})}
    assert {c: str(on_exchange[c]["orderId"]) for c in before} == {c: o.exchange_id for c, o in before.items()}

    # While the bot is dead: one order fills, one is cancelled, one stays open.
    assert filled.price is not None
    sandbox.exchange.print_trade(MARKET, filled.price, Decimal("0.01"), "sell")
    await rest.call("order_cancel", {"market": MARKET, "orderId": int(cancelled.exchange_id or 0)})
    hist = (await rest.call("order_history", {"market": MARKET, "limit": 100})).get(MARKET, [])
    by_cid = {r["clientOrderId"]: r for r in hist}
    assert by_cid[fill_cid]["status"] == "FILLED" and by_cid[cancel_cid]["status"] == "CANCELED"
    n_log = len(_log(log))

    second, second_out = await _start_bot(_write_config(tmp_path, sandbox, place=False, log=log, journal=journal),
                                          tmp_path, "second")
    try:
        def settled() -> bool:
            rows = _journal_rows(journal)
            return rows[fill_cid].status == OrderStatus.FILLED and rows[cancel_cid].status == OrderStatus.CANCELLED

        await _until(settled, timeout=15, what="the restarted bot settles both orders")
        await asyncio.sleep(1.5)  # room for any duplicate report to show up
    finally:
        if second.returncode is None:
            second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 15)
    summary = second_out.read_text()
    assert second.returncode == 0, summary
    assert "open orders restored from the journal: 3" in summary and "adopted" not in summary

    after = _log(log)[n_log:]
    # Settled before on_start (the reconciliation runs first); their events follow it, the third is still ours.
    assert after[0] == {"ev": "start", "open": [keep_cid]}
    fills = [(r["cid"], Decimal(r["amount"]), Decimal(r["price"])) for r in after if r["ev"] == "fill"]
    assert fills == [(fill_cid, filled.amount, filled.price)]
    updates = [(r["cid"], r["status"]) for r in after if r["ev"] == "update"]
    assert sorted(updates) == sorted([(fill_cid, "filled"), (cancel_cid, "cancelled")])
    assert not [r for r in after if r["ev"] == "placed"]

    # The journal's final state is the exchange's; nothing was sent again.
    rows = _journal_rows(journal)
    assert set(rows) == {fill_cid, cancel_cid, keep_cid}
    hist = (await rest.call("order_history", {"market": MARKET, "limit": 100})).get(MARKET, [])
    open_now = await rest.call("open_orders", {"market": MARKET, "limit": 100})
    assert [r["clientOrderId"] for r in open_now] == [keep_cid]
    assert rows[keep_cid].status == OrderStatus.OPEN and rows[keep_cid].exchange_id == str(open_now[0]["orderId"])
    assert rows[keep_cid].filled == 0 and rows[keep_cid].price == kept.price
    for r in hist:
        o = rows[r["clientOrderId"]]
        assert o.exchange_id == str(r["id"]), r
        assert o.filled == Decimal(r["dealStock"]) and o.filled_quote == Decimal(r["dealMoney"])
        assert o.fee == Decimal(r["dealFee"])
    assert rows[fill_cid].filled == filled.amount and rows[cancel_cid].filled == 0
    with SqliteJournal(journal) as j:
        assert [e.kind for e in j.events(fill_cid)].count("fill") == 1


async def test_unacknowledged_intents_resolved_by_client_id_never_resent(tmp_path: Path) -> None:
    async with clocked_sandbox() as (sandbox, clock, rest):
        await _intents_resolved(sandbox, clock, rest, tmp_path)


async def _intents_resolved(sandbox: Sandbox, clock: FakeClock, rest: WhiteBitRest, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    last = Decimal((await rest.call("ticker"))[MARKET]["last_price"])
    price = (last * Decimal("0.8")).quantize(Decimal("0.01"))
    # "sent-1" reached the exchange but the bot died before the answer; "lost-1" never left the process.
    await rest.call("order_new", {"market": MARKET, "side": "buy", "amount": "0.001", "price": str(price),
                                  "clientOrderId": "sent-1"})
    with SqliteJournal(journal, run_id="crashed", venue=journal_venue(sandbox.base_url, "demo-key")) as j:
        for cid in ("sent-1", "lost-1"):
            j.record("submit", Order(cid, MARKET, "buy", "limit", Decimal("0.001"), price, created_ms=1,
                                     updated_ms=1))
    strategy = Recorder()
    cfg = bot_config("Recorder", mode="live", duration_s=1.5, journal=str(journal), base_url=sandbox.base_url,
                     ws_url=sandbox.ws_url, api_key="demo-key", api_secret="demo-secret")
    cfg = cfg.model_copy(update={"grant": GrantConfig(scopes=SCOPES)})
    runner = LiveRunner(cfg, strategy=strategy, out=None, handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)

    assert summary.restored == 2 and summary.adopted == 0
    assert strategy.updates.count(("lost-1", "rejected")) == 1
    assert strategy.updates.count(("sent-1", "open")) == 1
    with SqliteJournal(journal) as j:
        lost, sent = j.order("lost-1"), j.order("sent-1")
        assert lost is not None and sent is not None
        assert lost.status == OrderStatus.REJECTED and "unknown to the exchange" in (lost.reject_reason or "")
        assert sent.status == OrderStatus.OPEN
    open_now = await rest.call("open_orders", {"market": MARKET, "limit": 100})
    assert [(r["clientOrderId"], str(r["orderId"])) for r in open_now] == [("sent-1", sent.exchange_id)]
    lost_hist = await rest.call("order_history", {"market": MARKET, "clientOrderId": "lost-1", "limit": 100})
    assert not (lost_hist.get(MARKET) if isinstance(lost_hist, dict) else lost_hist)  # never sent


async def test_sandbox_mode_journals_but_never_restores_into_a_new_exchange(tmp_path: Path) -> None:
    async with clocked_sandbox() as (sandbox, clock, _rest):
        await _never_restores(sandbox, clock, tmp_path)


async def _never_restores(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    with SqliteJournal(journal, run_id="old", venue=journal_venue(sandbox.base_url, "demo-key")) as j:
        j.record("submit", Order("old-1", MARKET, "buy", "limit", Decimal("0.001"), Decimal("100"), created_ms=1,
                                 updated_ms=1))
    runner = LiveRunner(bot_config("Recorder", duration_s=1, journal=str(journal)), strategy=Recorder(),
                        sandbox=sandbox, out=None, handle_signals=False, **clock.clocks())
    summary = await run_driven(runner, clock)
    assert summary.restored == 0 and summary.journal == str(journal)
    assert runner.engine is not None and "old-1" not in runner.engine.orders
    with SqliteJournal(journal) as j:
        assert [o.client_id for o in j.open_orders()] == ["old-1"]  # untouched: it belongs to another exchange
