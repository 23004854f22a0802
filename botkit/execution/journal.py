"""`SqliteJournal`: the durable order journal of a live bot, so a crash never loses an order's state.

Every `record()` upserts the order's row and appends an event. "submit" records (intents) are group-committed: they
open a transaction with synchronous=FULL that `flush()` commits, and the venue calls `flush()` before any order
leaves the process, so every intent is on disk before its first byte goes out, and a callback that places 10,000
orders pays for one fsync, not 10,000. Other records commit at once with NORMAL, which in WAL mode survives a
process crash (only a power cut could lose the last few). Money is stored as Decimal strings, never REAL, so orders
come back exactly as they were. One bot writes a journal at a time (`exclusive=True` takes a lock file); the file
is 0600 in a 0700 folder, like the token store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any

from botkit.market.orders import Order, OrderStatus, OrderType

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_id     TEXT PRIMARY KEY,
    market        TEXT NOT NULL,
    side          TEXT NOT NULL,
    type          TEXT NOT NULL,
    amount        TEXT NOT NULL,
    price         TEXT,
    stop_price    TEXT,
    flags         TEXT NOT NULL,
    status        TEXT NOT NULL,
    filled        TEXT NOT NULL,
    filled_quote  TEXT NOT NULL,
    fee           TEXT NOT NULL,
    exchange_id   TEXT,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    reject_reason TEXT,
    run_id        TEXT NOT NULL,
    venue         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE INDEX IF NOT EXISTS orders_updated ON orders(updated_ms);
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    client_id TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_client ON events(client_id);
"""

_UPSERT = """
INSERT INTO orders (client_id, market, side, type, amount, price, stop_price, flags, status, filled, filled_quote,
                    fee, exchange_id, created_ms, updated_ms, reject_reason, run_id, venue)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(client_id) DO UPDATE SET
    market=excluded.market, side=excluded.side, type=excluded.type, amount=excluded.amount, price=excluded.price,
    stop_price=excluded.stop_price, flags=excluded.flags, status=excluded.status, filled=excluded.filled,
    filled_quote=excluded.filled_quote, fee=excluded.fee, exchange_id=excluded.exchange_id,
    updated_ms=excluded.updated_ms, reject_reason=excluded.reject_reason, run_id=excluded.run_id,
    venue=excluded.venue
"""

_COLUMNS = ("client_id, market, side, type, amount, price, stop_price, flags, status, filled, filled_quote, fee, "
            "exchange_id, created_ms, updated_ms, reject_reason")
_OPEN = tuple(s.value for s in OrderStatus if not s.is_terminal)
_TYPES: frozenset[str] = frozenset({"limit", "market", "stop_market", "stop_limit"})


class JournalError(RuntimeError):
    """The journal file cannot be used (wrong schema, corrupt row): says which file or row and what to do."""


class JournalLocked(JournalError):
    """Another running bot writes this journal."""


@dataclass(frozen=True, slots=True)
class JournalEvent:
    seq: int
    time_ms: int
    kind: str
    client_id: str
    detail: str


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class SqliteJournal:
    """Implements the engine's `Journal` protocol on one SQLite file (one connection, used from one thread)."""

    def __init__(self, path: str | Path, *, run_id: str = "", venue: str = "", exclusive: bool = False) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.venue = venue
        self._lock: int | None = None
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700)
        if exclusive:
            self._lock = self._take_lock()
        fresh = not self.path.exists()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-128")  # 128 KiB of page cache: a long run's memory stays flat
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise JournalError(
                    f"order journal {self.path} has schema version {version}, this botkit writes version "
                    f"{SCHEMA_VERSION}; point [run] journal at a new file or upgrade botkit"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise JournalError(f"order journal {self.path} cannot be opened as SQLite: {exc}; "
                               "move it aside or point [run] journal at a new file") from None
        if fresh:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        self._full = False
        self._pending = False  # a transaction of intents is open, waiting for flush()

    def _take_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalLocked(
                f"order journal {self.path} is in use by another running bot (pid {holder}); one journal has one "
                "writer: stop that bot, or give this one its own [run] journal (bots may share an account, not a "
                "journal)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                os.close(self._lock)
            self._lock = None

    def __repr__(self) -> str:
        return f"SqliteJournal({str(self.path)!r}, run_id={self.run_id!r}, venue={self.venue!r})"

    # ---- Journal protocol --------------------------------------------------------------------------------------

    def record(self, kind: str, order: Order, detail: str = "") -> None:
        """Upsert the order and append the event atomically. An intent ("submit") joins the open group of intents
        that `flush()` commits with an fsync; other records commit at once (or with the open group)."""
        o = order
        flags = json.dumps({"post_only": o.post_only, "ioc": o.ioc, "oco_group": o.oco_group, "held": o.held},
                           sort_keys=True)
        row = (o.client_id, o.market, o.side, o.type, str(o.amount), _dec(o.price), _dec(o.stop_price), flags,
               o.status.value, str(o.filled), str(o.filled_quote), str(o.fee), o.exchange_id, o.created_ms,
               o.updated_ms, o.reject_reason, self.run_id, self.venue)
        db = self._db
        if not self._pending:
            self._sync(kind == "submit")
            db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_UPSERT, row)
            db.execute("INSERT INTO events (time, kind, client_id, detail) VALUES (?, ?, ?, ?)",
                       (o.updated_ms, kind, o.client_id, detail))
        except BaseException:
            db.execute("ROLLBACK")
            self._pending = False
            raise
        if kind == "submit":
            self._pending = True
        elif not self._pending:
            db.execute("COMMIT")

    def flush(self) -> None:
        """Commit the open group of intents, fsynced (synchronous=FULL): call before an order leaves the process."""
        if self._pending:
            self._db.execute("COMMIT")
            self._pending = False

    # ---- loading -----------------------------------------------------------------------------------------------

    def open_orders(self, venue: str | None = None) -> list[Order]:
        """Orders not yet in a final state (new, open, partially filled): what a restarted bot must settle. With
        `venue`, only those placed on that exchange and account (an embedded sandbox is a new exchange each run)."""
        marks = ",".join("?" * len(_OPEN))
        sql = f"SELECT {_COLUMNS} FROM orders WHERE status IN ({marks})"
        args: tuple[Any, ...] = _OPEN
        if venue is not None:
            sql, args = sql + " AND venue = ?", (*args, venue)
        rows = self._db.execute(sql + " ORDER BY created_ms, client_id", args).fetchall()
        return [self._order(r) for r in rows]

    def orders_since(self, ms: int) -> list[Order]:
        """Orders updated at or after `ms` (epoch milliseconds), any status."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE updated_ms >= ? ORDER BY created_ms, client_id", (ms,)
        ).fetchall()
        return [self._order(r) for r in rows]

    def order(self, client_id: str) -> Order | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return self._order(row) if row is not None else None

    def client_ids(self) -> frozenset[str]:
        """Every clientOrderId this bot ever journaled: its own orders, never "foreign" ones."""
        return frozenset(r[0] for r in self._db.execute("SELECT client_id FROM orders"))

    def events(self, client_id: str | None = None) -> list[JournalEvent]:
        sql = "SELECT seq, time, kind, client_id, detail FROM events"
        args: tuple[Any, ...] = ()
        if client_id is not None:
            sql, args = sql + " WHERE client_id = ?", (client_id,)
        return [JournalEvent(*r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    def close(self) -> None:
        self.flush()
        self._db.close()
        self._release_lock()

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------------------------------

    def _sync(self, full: bool) -> None:
        if full != self._full:
            self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._full = full

    def _order(self, r: tuple[Any, ...]) -> Order:
        cid = str(r[0])
        try:
            otype = str(r[3])
            if otype not in _TYPES:
                raise ValueError(f"type {otype!r}")
            side = str(r[2])
            if side not in ("buy", "sell"):
                raise ValueError(f"side {side!r}")
            flags = json.loads(r[7])
            typed: OrderType = otype  # type: ignore[assignment]
            return Order(
                client_id=cid, market=str(r[1]), side="buy" if side == "buy" else "sell", type=typed,
                amount=Decimal(r[4]), price=Decimal(r[5]) if r[5] is not None else None,
                stop_price=Decimal(r[6]) if r[6] is not None else None,
                post_only=bool(flags.get("post_only")), ioc=bool(flags.get("ioc")), oco_group=flags.get("oco_group"),
                status=OrderStatus(r[8]), filled=Decimal(r[9]), filled_quote=Decimal(r[10]), fee=Decimal(r[11]),
                exchange_id=r[12], created_ms=int(r[13]), updated_ms=int(r[14]), reject_reason=r[15],
                held=bool(flags.get("held")),
            )
        except (ValueError, InvalidOperation, TypeError, json.JSONDecodeError) as exc:
            raise JournalError(f"order journal {self.path}: row {cid!r} is corrupt ({exc}); "
                               "fix or delete that row") from None
