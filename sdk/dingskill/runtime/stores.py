"""Conversation context, message-id dedup, token buckets and stored audit records in one of
three backends: memory (one process), SQLite (embedded default) or Redis (several replicas).

With a :class:`~dingskill.security.crypto.Keyring`, contexts and audit records are sealed
with AES-256-GCM before they are written: plaintext never reaches SQLite or Redis."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ..security.crypto import Keyring
from .redis_batch import CommandBatcher
from .storage import DedupState, Replying

__all__ = ["Store", "MemoryStore", "SqliteStore", "RedisStore", "make_store", "StoreUnavailable"]


ID_KEY = "meta:id-key"
_TEN_YEARS = 10 * 365 * 86400


class StoreUnavailable(RuntimeError):
    """The storage backend cannot be reached."""


class Store:
    """Interface of the storage backends (all methods async)."""

    kind = "abstract"
    # end_turn / set_context take ``replying``: a message's mark stored with its turn
    replying_with_turn = True

    def __init__(self, keyring: Keyring | None = None, context_ttl_s: float = 7 * 86400) -> None:
        self.keyring = keyring
        self.context_ttl_s = context_ttl_s
        self._id_key: bytes | None = None
        self._hashed: dict[str, str] = {}  # names hashed lately (an HMAC each: ~3 us)

    # ids in key names --------------------------------------------------------------------------
    async def hash_id(self, name: str) -> str:
        """``name`` (``ctx:<conversation>:<staff id>``, ``user:<staff id>``, ...) with the ids
        replaced by an HMAC, so SQLite rows and Redis key names do not show who talks to the
        bot. The HMAC key is random, made at first use and kept in the store sealed with the
        data keyring (``meta:id-key``, re-sealed on key rotation, so names do not change).
        Without a keyring the name is kept (the runtime warns that it stores plaintext)."""
        if self.keyring is None:
            return name
        hashed = self._hashed.get(name)
        if hashed is not None:
            return hashed
        if self._id_key is None:
            blob = await self.get_raw(ID_KEY)
            if blob is None:
                await self.set_raw(
                    ID_KEY, self.keyring.encrypt(os.urandom(32), ID_KEY.encode()), _TEN_YEARS
                )
                blob = await self.get_raw(ID_KEY)  # a replica that raced us: use what is stored
            self._id_key = self.keyring.decrypt(blob, ID_KEY.encode())
        prefix, _, rest = name.partition(":")
        digest = hmac.new(self._id_key, rest.encode(), hashlib.sha256).hexdigest()[:32]
        if len(self._hashed) >= 4096:  # bounded: the conversations of the last while
            self._hashed.clear()
        hashed = self._hashed[name] = f"{prefix}:h:{digest}"
        return hashed

    # sealing ---------------------------------------------------------------------------------
    def _seal(self, key: str, value: dict) -> bytes:
        raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return self.keyring.encrypt(raw, key.encode()) if self.keyring else raw

    def _open(self, key: str, blob: bytes | None) -> dict | None:
        if blob is None:
            return None
        if Keyring.is_sealed(blob):
            if self.keyring is None:
                raise StoreUnavailable(
                    f"stored value {key} is encrypted and no data key is configured"
                )
            blob = self.keyring.decrypt(blob, key.encode())
        return json.loads(blob)

    # interface ---------------------------------------------------------------------------------
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool:
        raise NotImplementedError

    async def get_raw(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set_raw(self, key: str, blob: bytes, ttl_s: float) -> None:
        raise NotImplementedError

    async def claim(self, msg_id: str, ttl_s: float) -> DedupState:
        """Atomic set-if-absent: store ``processing`` for ``ttl_s`` unless an unexpired state
        is stored; returns the state found (``NEW`` when this call set it)."""
        raise NotImplementedError

    async def replying(self, msg_id: str, ttl_s: float) -> None:
        """Mark a message as being replied to: from here on its reply may have reached the
        user, so nobody answers it again (kept ``ttl_s``)."""
        raise NotImplementedError

    async def finish(self, msg_id: str, ttl_s: float) -> None:
        """Mark a message answered (kept ``ttl_s`` to ignore later deliveries)."""
        raise NotImplementedError

    async def release(self, msg_id: str) -> None:
        """Forget a message whose attempt failed before its reply: a later delivery (a
        broker retry, a platform resend) handles it again."""
        raise NotImplementedError

    async def take(self, bucket: str, rate: float, capacity: float) -> bool:
        raise NotImplementedError

    async def append_audit(self, blob: bytes) -> None:
        raise NotImplementedError

    async def append_audit_many(self, blobs: list[bytes]) -> None:
        """Several records in one round trip (the audit writer's batches)."""
        for blob in blobs:
            await self.append_audit(blob)

    async def audit_records(self) -> list[bytes]:
        raise NotImplementedError

    async def keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    # conversation turns across processes -------------------------------------------------------
    async def acquire_turn(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the turn lease of conversation ``key`` for ``owner`` (unique per process) for
        ``ttl_s`` seconds, in one atomic step; False while someone else holds an unexpired
        one. Processes sharing the store use it to run a conversation's turns one at a time."""
        raise NotImplementedError

    async def release_turn(self, key: str, owner: str) -> None:
        """Give the lease back if ``owner`` still holds it (never someone else's)."""
        raise NotImplementedError

    async def begin_turn(self, key: str, owner: str, ttl_s: float) -> dict | None:
        """:meth:`acquire_turn` and then :meth:`get_context` in one step where the backend
        can (one operation, one round trip): the context, or None while someone else holds
        the lease. On failure the lease may be held: the caller gives it back."""
        if not await self.acquire_turn(key, owner, ttl_s):
            return None
        return await self.get_context(key)

    async def end_turn(
        self, key: str, owner: str, context: dict, replying: Replying | None = None
    ) -> None:
        """:meth:`set_context` and then :meth:`release_turn` in one step where the backend
        can, and with ``replying``, that message's :meth:`replying` mark too (the turn's
        effects and "its reply may go out" stored together). On failure any of them may
        have happened: the caller makes the calls again (each can be repeated), the context
        first."""
        await self.set_context(key, context)
        await self.release_turn(key, owner)
        if replying is not None:
            await self.replying(*replying)

    async def get_context(self, key: str) -> dict:
        name = await self.hash_id(f"ctx:{key}")
        return self._open(name, await self.get_raw(name)) or {}

    async def set_context(self, key: str, context: dict, replying: Replying | None = None) -> None:
        """Store ``context`` (sealed); with ``replying`` (``(msg_id, ttl_s)``), that
        message's :meth:`replying` mark too, in one step where the backend can."""
        name = await self.hash_id(f"ctx:{key}")
        await self.set_raw(name, self._seal(name, context), self.context_ttl_s)
        if replying is not None:
            await self.replying(*replying)

    async def add_audit(self, record: dict) -> None:
        await self.append_audit(self._seal("audit", record))

    async def add_audit_many(self, records: list[dict]) -> None:
        """Several audit records in one round trip, in order."""
        await self.append_audit_many([self._seal("audit", r) for r in records])

    async def read_audit(self) -> list[dict]:
        return [self._open("audit", b) for b in await self.audit_records()]

    async def reencrypt(self, new: Keyring) -> int:
        """Re-seal every stored context and audit record with ``new``'s active key."""
        n = 0
        for k in await self.keys("ctx:"):
            blob = await self.get_raw(k)
            if blob is None:
                continue
            value = self._open(k, blob)
            self.keyring, old = new, self.keyring
            await self.set_raw(k, self._seal(k, value), self.context_ttl_s)
            self.keyring = old
            n += 1
        blob = await self.get_raw(ID_KEY)
        if blob is not None:
            key = self.keyring.decrypt(blob, ID_KEY.encode())
            await self.set_raw(ID_KEY, new.encrypt(key, ID_KEY.encode()), _TEN_YEARS)
        records = await self.read_audit()
        self.keyring = new
        await self._replace_audit([self._seal("audit", r) for r in records])
        return n + len(records)

    async def _replace_audit(self, blobs: list[bytes]) -> None:
        raise NotImplementedError


def _bucket_take(
    state: tuple[float, float] | None, now: float, rate: float, capacity: float
) -> tuple[bool, tuple[float, float]]:
    tokens, last = state if state else (capacity, now)
    tokens = min(capacity, tokens + (now - last) * rate)
    if tokens >= 1:
        return True, (tokens - 1, now)
    return False, (tokens, now)


def _put_last(entries: OrderedDict, key, value) -> None:
    entries[key] = value
    entries.move_to_end(key)


def _drop_expired(entries: OrderedDict, expired, most: int = 8) -> None:
    """Drop up to ``most`` expired entries from the front of ``entries`` (oldest write
    first): more than the one entry a write adds, so the front keeps up at any rate, and
    never more than ``most`` in one write."""
    for _ in range(most):
        if not entries:
            return
        key = next(iter(entries))
        if not expired(entries[key]):
            return
        del entries[key]


class MemoryStore(Store):
    """In-process store (tests, notebooks, a single replica without persistence)."""

    kind = "memory"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        # each kept in the order of its last write, which is (nearly) the order its entries
        # expire in: every write drops the expired ones at the front (a few at a time), so
        # memory holds what the TTLs keep, not every message id ever seen
        self._kv: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._claims: OrderedDict[str, tuple[float, DedupState]] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._audit: list[bytes] = []

    async def ping(self) -> bool:
        return True

    async def get_raw(self, key):
        entry = self._kv.get(key)
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    async def set_raw(self, key, blob, ttl_s):
        now = time.time()
        _put_last(self._kv, key, (blob, now + ttl_s))
        _drop_expired(self._kv, lambda e: e[1] < now)

    async def claim(self, msg_id, ttl_s):
        now = time.time()
        entry = self._claims.get(msg_id)
        if entry and entry[0] > now:
            return entry[1]
        _put_last(self._claims, msg_id, (now + ttl_s, DedupState.PROCESSING))
        _drop_expired(self._claims, lambda e: e[0] < now)
        return DedupState.NEW

    async def replying(self, msg_id, ttl_s):
        _put_last(self._claims, msg_id, (time.time() + ttl_s, DedupState.REPLYING))

    async def finish(self, msg_id, ttl_s):
        _put_last(self._claims, msg_id, (time.time() + ttl_s, DedupState.DONE))

    async def release(self, msg_id):
        self._claims.pop(msg_id, None)

    async def take(self, bucket, rate, capacity):
        now = time.monotonic()
        ok, state = _bucket_take(self._buckets.get(bucket), now, rate, capacity)
        _put_last(self._buckets, bucket, state)
        # untouched for a day: long refilled (an absent bucket reads as full)
        _drop_expired(self._buckets, lambda e: e[1] < now - 86400.0)
        return ok

    async def append_audit(self, blob):
        self._audit.append(blob)

    async def audit_records(self):
        return list(self._audit)

    async def _replace_audit(self, blobs):
        self._audit = list(blobs)

    async def keys(self, prefix):
        return [k for k in self._kv if k.startswith(prefix)]

    async def acquire_turn(self, key, owner, ttl_s):
        return True  # one process: its asyncio lock already orders the turns

    async def release_turn(self, key, owner):
        pass


class _SqliteWorker:
    """One thread owns the SQLite connection and commits queued operations in groups.

    Each operation is queued with a future (unless it takes the fast path below); what one
    turn of the event loop queues is handed to the thread together at the turn's end (one
    wake-up of the thread for all of it: on a VM each wake-up costs the loop ~10 us). The
    thread runs everything queued so far in one transaction (one commit, one WAL append for
    up to ``batch`` operations: a message's claim, context and audit writes share it with
    its neighbours'), then resolves the futures on their loops. Operations run in submission
    order, so a read sees every earlier write. Each operation runs in a savepoint, so a
    failing one is undone alone and reported to its caller while the rest of the group
    commits; one marked :func:`_atomic` (one SQL statement, atomic by itself, or reads and
    then one) runs without it (a savepoint is three statements more), unless its failure
    aborted the whole transaction: then the whole group fails, as at a savepoint's rollback.

    WAL checkpoints (the only fsyncs with ``synchronous=NORMAL``) run in a second thread on
    its own connection, PASSIVE (they never block a writer), every ``checkpoint_s``: inside
    the event loop they were the runtime's 50-90 ms stalls, and in the writer thread every
    operation queued behind one waited for its fsync (the runtime's p99).

    Fast path: when nothing is queued for the thread and the write lock is free
    this instant, the caller's thread runs the operation itself in its own transaction on a
    second connection. Without an fsync that is a write to the WAL in the page cache, 3-30 us,
    where the hop to the thread and back costs 0.1-1 ms under load: five such hops per
    message were a third of the runtime's latency. The lock is tried without waiting
    (another process writing, or the thread busy: the operation is queued as before), and
    queued operations always run first, so operations still run in submission order. Above
    ``INLINE_MAX_RATE`` operations per second (the previous ``WINDOW_S``) everything goes to
    the thread, whose group commits are cheaper in bulk."""

    # above this many operations per second the thread's group commits cost less CPU than
    # one commit each (5,000 messages through claim/context/reply marks: 94 us a message
    # inline, 58 us grouped with 200 in flight, 594 us one at a time through the thread)
    INLINE_MAX_RATE = 2000
    WINDOW_S = 0.02  # also the longest a run of inline operations can hold the loop

    def __init__(self, open_db, batch: int = 512, checkpoint_s: float = 1.0) -> None:
        self._open_db, self.batch = open_db, batch
        self._queued = 0  # operations handed to the thread and not committed yet
        self._queued_lock = threading.Lock()
        self._inline_lock = threading.Lock()
        self._inline_db: sqlite3.Connection | None = None
        self.inline_ops = 0
        self._window_start, self._window_ops, self._crowded = 0.0, 0, False
        self._q: queue.SimpleQueue = queue.SimpleQueue()  # lists of operations; None: stop
        self._pending: dict = {}  # per event loop: operations queued in its current turn
        self._hand_lock = threading.RLock()  # stop() hands over under it too
        self._thread: threading.Thread | None = None
        self._serving = False  # the thread runs (cheaper to read than is_alive() per op)
        self._start_lock = threading.Lock()
        self.commits = 0
        self.busy_waits = 0  # groups run again after another process's write lock
        self.busy_wait_s = 10.0
        self.checkpoint_s = checkpoint_s
        self.checkpoints = 0
        self.sweep_rows = 2000  # rows of each table looked at per round (0: no sweep)
        self.swept = 0  # expired rows deleted
        self._swept_to: dict[str, str] = {}
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _checkpoint_loop(self) -> None:
        db = None
        try:
            while not self._stop_checkpoints.wait(self.checkpoint_s):
                try:
                    if db is None:
                        db = self._open_db(checkpointer=True)
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    self._sweep(db)
                except sqlite3.Error:  # busy or the disk: the next round tries again
                    if db is not None and db.in_transaction:
                        db.execute("ROLLBACK")
        finally:
            if db is not None:
                db.close()

    def _sweep(self, db: sqlite3.Connection) -> None:
        """Delete expired rows: the next ``sweep_rows`` rows of each keyed table in key order
        (a read: writers go on), then the expired among them in one short write (each row's
        expiry checked again: one renewed meanwhile stays). Round after round the sweep goes
        through every table and starts over, so the file holds what the TTLs keep (a
        message id ``limits.dedup_ttl_s``, a context ``storage.context_ttl_s``) plus a lap,
        not every message ever seen."""
        if not self.sweep_rows:  # another process sharing the file sweeps it
            return
        now = time.time()
        for table, key, column, grace in _SWEPT:
            after = self._swept_to.get(table, "")
            rows = db.execute(
                f"SELECT {key}, {column} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
                (after, self.sweep_rows),
            ).fetchall()
            self._swept_to[table] = rows[-1][0] if len(rows) == self.sweep_rows else ""
            cutoff = now - grace
            dead = [(k, cutoff) for k, t in rows if t is not None and t < cutoff]
            if not dead:
                continue
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"DELETE FROM {table} WHERE {key}=? AND {column} < ?", dead)
            db.execute("COMMIT")
            self.swept += len(dead)

    def _ensure(self) -> None:
        if self._serving:
            return
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._serve, name="sqlite-store", daemon=True
                    )
                    self._serving = True
                    self._thread.start()
                if self._checkpointer is None or not self._checkpointer.is_alive():
                    self._stop_checkpoints.clear()
                    self._checkpointer = threading.Thread(
                        target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
                    )
                    self._checkpointer.start()

    def submit(self, fn, bulk: bool = False) -> asyncio.Future:
        """Queue ``fn(db)`` (or run it here, see the class); ``bulk``: an operation over many
        rows (a scan, a rewrite), never run on the caller's thread."""
        self._ensure()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        now = time.monotonic()
        if now - self._window_start >= self.WINDOW_S:  # a new window: was the last one busy?
            self._crowded = self._window_ops > self.INLINE_MAX_RATE * self.WINDOW_S
            self._window_start, self._window_ops = now, 0
        self._window_ops += 1
        if not bulk and not self._crowded and self._run_inline(fn, fut):
            return fut
        with self._queued_lock:
            self._queued += 1
        # handed to the thread once per turn of the loop, with whatever else this turn
        # queues: one wake-up of the thread for all of them (waking it costs the loop more
        # than queueing the operation)
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append((fn, fut, loop))
        return fut

    def _hand_over(self, loop) -> None:
        with self._hand_lock:  # never after stop()'s end marker
            ops = self._pending.pop(loop, None)
            if ops:
                self._q.put(ops)

    def _run_inline(self, fn, fut: asyncio.Future) -> bool:
        """Run ``fn`` here if nothing is queued and the write lock is free; False if not."""
        if not self._inline_lock.acquire(blocking=False):  # another thread is on it
            return False
        try:
            with self._queued_lock:
                if self._queued:  # queued operations run first
                    return False
            if self._inline_db is None:
                self._inline_db = self._open_db(timeout=0)
            db = self._inline_db
            try:
                db.execute("BEGIN IMMEDIATE")  # busy at once if another process is writing
                value = fn(db)
                db.execute("COMMIT")
            except Exception as exc:  # noqa: BLE001 - handed to the caller, like the thread's
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if _busy(exc):
                    return False  # nothing done: the thread runs it, waiting for the lock
                fut.set_exception(exc)
            else:
                fut.set_result(value)
            self.inline_ops += 1
            return True
        except sqlite3.Error:  # the connection itself failed: the thread reports it
            self._close_inline()
            return False
        finally:
            self._inline_lock.release()

    def _close_inline(self) -> None:
        db, self._inline_db = self._inline_db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            with self._hand_lock:
                for loop in list(self._pending):  # queued in a turn that did not end yet
                    self._hand_over(loop)
                self._q.put(None)
            self._thread.join(10)
        self._thread = None
        with self._inline_lock:
            self._close_inline()
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(10)
        self._checkpointer = None

    def _serve(self) -> None:
        try:
            self._serve_groups()
        finally:
            self._serving = False

    def _group(self, db: sqlite3.Connection, batch: list) -> list:
        """Run ``batch`` in one transaction and commit it; ``(fut, loop, exc, value)`` per
        operation. While another process holds the write lock (SQLITE_BUSY, anywhere in the
        group) nothing of the group is kept and it runs again (:func:`_while_busy`) for up to
        ``busy_wait_s``. Operations are functions of the connection alone, so running one
        again after a rollback is the same as running it once."""

        def rollback() -> None:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.busy_waits += 1

        deadline = time.monotonic() + self.busy_wait_s
        return _while_busy(lambda: self._group_once(db, batch), deadline, rollback)

    @staticmethod
    def _group_once(db: sqlite3.Connection, batch: list) -> list:
        results: list = []
        db.execute("BEGIN IMMEDIATE")
        for fn, fut, loop in batch:
            if getattr(fn, "single", False):
                # one statement: atomic by itself, no savepoint (3 statements) needed
                try:
                    results.append((fut, loop, None, fn(db)))
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    if not db.in_transaction or _busy(exc):  # the whole group's failure
                        raise
                    results.append((fut, loop, exc, None))
                continue
            db.execute("SAVEPOINT op")
            try:
                results.append((fut, loop, None, fn(db)))
                db.execute("RELEASE op")
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                if _busy(exc):  # not this operation's fault: the group waits and reruns
                    raise
                db.execute("ROLLBACK TO op")
                db.execute("RELEASE op")
                results.append((fut, loop, exc, None))
        db.execute("COMMIT")
        return results

    def _serve_groups(self) -> None:
        db = None
        while True:
            item = self._q.get()
            if item is None:
                break
            batch = list(item)
            stop = False
            while len(batch) < self.batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.extend(nxt)
            results: list = []
            try:
                if db is None:
                    db = self._open_db()
                    # waits for another process's write lock are ours (_group), in short
                    # steps: SQLite's own handler sleeps 1, 2, 5, 10 ... ms per try
                    db.execute("PRAGMA busy_timeout=0")
                results = self._group(db, batch)
                self.commits += 1
            except Exception as exc:  # noqa: BLE001 - the whole group failed (disk, lock)
                try:
                    if db is not None and db.in_transaction:
                        db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                results = [(fut, loop, exc, None) for fn, fut, loop in batch]
            with self._queued_lock:  # committed: the fast path may run again
                self._queued -= len(batch)
            by_loop: dict = {}
            for r in results:
                by_loop.setdefault(r[1], []).append(r)
            for loop, rs in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, rs)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass
            if stop:
                break
        if db is not None:
            db.close()


# the keyed tables the sweep clears: (table, key, expiry column, grace in seconds); a rate
# limit's bucket untouched for a day has long refilled, and an absent one reads as full
_SWEPT = (
    ("claims", "id", "exp", 0.0),
    ("kv", "k", "exp", 0.0),
    ("turns", "k", "exp", 0.0),
    ("buckets", "k", "last", 86400.0),
)

# statements more than one operation runs
_KV_GET = "SELECT v, exp FROM kv WHERE k=?"
_KV_PUT = "INSERT OR REPLACE INTO kv VALUES (?,?,?)"
# insert, or take over an expired lease; 0 rows changed: someone else holds it
_TURN_TAKE = (
    "INSERT INTO turns VALUES (?,?,?) ON CONFLICT(k) DO UPDATE"
    " SET owner=excluded.owner, exp=excluded.exp WHERE turns.exp <= ?"
)
_TURN_GIVE = "DELETE FROM turns WHERE k=? AND owner=?"
_CLAIM_PUT = "INSERT OR REPLACE INTO claims VALUES (?,?,?)"


def _atomic(fn):
    """Mark ``fn(db)`` as needing no savepoint in the worker's group: one SQL statement
    (a failing statement undoes only its own changes), or reads before one such write, or
    an operation whose callers handle a partial failure (:meth:`Store.end_turn`)."""
    fn.single = True
    return fn


def _busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "another connection holds the lock" (SQLITE_BUSY)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _while_busy(attempt, deadline: float, before_retry=None):
    """``attempt()``, again while SQLite answers busy, after pauses of 50 us doubling to
    2 ms, until the monotonic ``deadline`` (then the busy error is raised): another
    process's write transaction lasts tens of microseconds, where SQLite's own busy handler
    sleeps at least 1 ms, then 2, then 5. ``before_retry()`` runs before each pause."""
    pause = 50e-6
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                raise
            if before_retry is not None:
                before_retry()
            time.sleep(pause)
            pause = min(pause * 2, 0.002)


def _resolve(results: list) -> None:
    for fut, _loop, exc, value in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class SqliteStore(Store):
    """The embedded default: one SQLite file (WAL), safe for several processes on one host.
    All disk work happens in one worker thread with group commits (see :class:`_SqliteWorker`)."""

    kind = "sqlite"

    def __init__(self, path, sweep: bool = True, **kw) -> None:
        """``sweep``: delete expired rows (:meth:`_SqliteWorker._sweep`); one process of
        several sharing the file is enough."""
        super().__init__(**kw)
        self.path = Path(path)
        self._worker = _SqliteWorker(self._connect_db)
        if not sweep:
            self._worker.sweep_rows = 0

    def _connect_db(self, checkpointer: bool = False, timeout: float = 10) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        # a new file's switch to WAL takes an exclusive lock and answers "locked" at once
        # (no busy handler) while another process is creating the same file: both workers
        # of a first `dingskill run --processes 2` did; try again for up to ``timeout``
        try:
            _while_busy(
                lambda: db.execute("PRAGMA journal_mode=WAL"), time.monotonic() + max(timeout, 0.0)
            )
        except sqlite3.Error:
            db.close()
            raise
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        if checkpointer:
            return db
        # keyed tables WITHOUT ROWID: one B-tree each, where a text primary key on a rowid
        # table is two (the table and its index), so each write dirties half the pages and
        # a message's commits append less than half as much to the WAL (60 -> 26 KB); a
        # file made before keeps its tables, which the same statements read and write
        db.executescript("""
            CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB, exp REAL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, exp REAL, state TEXT)
                WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS buckets (k TEXT PRIMARY KEY, tokens REAL, last REAL)
                WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB);
            CREATE TABLE IF NOT EXISTS turns (k TEXT PRIMARY KEY, owner TEXT, exp REAL)
                WITHOUT ROWID;
        """)
        return db

    def _run(self, fn, bulk: bool = False) -> asyncio.Future:
        return self._worker.submit(fn, bulk)  # a future to await (no coroutine in between)

    async def connect(self):
        await self._run(_atomic(lambda db: db.execute("SELECT 1")))

    async def close(self):
        await asyncio.to_thread(self._worker.stop)

    async def ping(self):
        try:
            await self._run(_atomic(lambda db: db.execute("SELECT 1").fetchone()))
            return True
        except sqlite3.Error:
            return False

    async def get_raw(self, key):
        row = await self._run(_atomic(lambda db: db.execute(_KV_GET, (key,)).fetchone()))
        if row is None or row[1] < time.time():
            return None
        return bytes(row[0])

    async def set_raw(self, key, blob, ttl_s):
        exp = time.time() + ttl_s
        await self._run(_atomic(lambda db: db.execute(_KV_PUT, (key, blob, exp))))

    async def claim(self, msg_id, ttl_s):
        now = time.time()

        def op(db):  # atomic: the worker runs it inside its transaction (BEGIN IMMEDIATE);
            # a read and then one write: a failure leaves nothing behind (no savepoint)
            row = db.execute("SELECT exp, state FROM claims WHERE id=?", (msg_id,)).fetchone()
            if row and row[0] > now:
                return DedupState.parse(row[1])
            db.execute(_CLAIM_PUT, _claim_row(msg_id, ttl_s, DedupState.PROCESSING, now))
            return DedupState.NEW

        return await self._run(_atomic(op))

    async def _mark(self, msg_id: str, state: DedupState, ttl_s: float) -> None:
        row = _claim_row(msg_id, ttl_s, state, time.time())
        await self._run(_atomic(lambda db: db.execute(_CLAIM_PUT, row)))

    async def replying(self, msg_id, ttl_s):
        await self._mark(msg_id, DedupState.REPLYING, ttl_s)

    async def finish(self, msg_id, ttl_s):
        await self._mark(msg_id, DedupState.DONE, ttl_s)

    async def release(self, msg_id):
        await self._run(_atomic(lambda db: db.execute("DELETE FROM claims WHERE id=?", (msg_id,))))

    async def take(self, bucket, rate, capacity):
        now = time.time()

        def op(db):  # a read and then one write: no savepoint
            row = db.execute("SELECT tokens, last FROM buckets WHERE k=?", (bucket,)).fetchone()
            ok, state = _bucket_take(tuple(row) if row else None, now, rate, capacity)
            db.execute("INSERT OR REPLACE INTO buckets VALUES (?,?,?)", (bucket, *state))
            return ok

        return await self._run(_atomic(op))

    async def append_audit(self, blob):
        await self._run(_atomic(lambda db: db.execute("INSERT INTO audit (v) VALUES (?)", (blob,))))

    async def append_audit_many(self, blobs):
        rows = [(b,) for b in blobs]
        await self._run(
            lambda db: db.executemany("INSERT INTO audit (v) VALUES (?)", rows), bulk=len(rows) > 16
        )

    async def audit_records(self):
        rows = await self._run(
            lambda db: db.execute("SELECT v FROM audit ORDER BY seq").fetchall(), bulk=True
        )
        return [bytes(r[0]) for r in rows]

    async def _replace_audit(self, blobs):
        def op(db):
            db.execute("DELETE FROM audit")
            db.executemany("INSERT INTO audit (v) VALUES (?)", [(b,) for b in blobs])

        await self._run(op, bulk=True)

    async def keys(self, prefix):
        rows = await self._run(
            lambda db: db.execute("SELECT k FROM kv WHERE k LIKE ?", (prefix + "%",)).fetchall(),
            bulk=True,
        )
        return [r[0] for r in rows]

    async def acquire_turn(self, key, owner, ttl_s):
        name = await self.hash_id(f"turn:{key}")
        now = time.time()
        took = await self._run(
            _atomic(lambda db: db.execute(_TURN_TAKE, (name, owner, now + ttl_s, now)).rowcount)
        )
        return bool(took)

    async def release_turn(self, key, owner):
        name = await self.hash_id(f"turn:{key}")
        await self._run(_atomic(lambda db: db.execute(_TURN_GIVE, (name, owner))))

    async def begin_turn(self, key, owner, ttl_s):
        turn, name = await self.hash_id(f"turn:{key}"), await self.hash_id(f"ctx:{key}")
        now = time.time()

        def op(db):
            # the context first, then the lease: reading changes nothing, so a failure of
            # either leaves nothing behind (no savepoint), and inside the write transaction
            # nobody writes between them (the read is thrown away if the lease is held)
            row = db.execute(_KV_GET, (name,)).fetchone()
            took = db.execute(_TURN_TAKE, (turn, owner, now + ttl_s, now)).rowcount
            return took, row

        took, row = await self._run(_atomic(op))
        if not took:
            return None
        if row is None or row[1] < time.time():
            return {}
        return self._open(name, bytes(row[0])) or {}

    async def end_turn(self, key, owner, context, replying=None):
        await self._save(key, context, replying, (await self.hash_id(f"turn:{key}"), owner))

    async def set_context(self, key, context, replying=None):
        await self._save(key, context, replying)

    async def _save(self, key, context, replying, lease: tuple | None = None) -> None:
        """The context, and in the same transaction the ``lease`` ``(turn, owner)`` given
        back and the ``replying`` mark, when given."""
        name = await self.hash_id(f"ctx:{key}")
        blob, now = self._seal(name, context), time.time()
        mark = None if replying is None else _claim_row(*replying, DedupState.REPLYING, now)

        def op(db):  # no savepoint: a failure after the first write is redone by the caller
            db.execute(_KV_PUT, (name, blob, now + self.context_ttl_s))
            if lease is not None:
                db.execute(_TURN_GIVE, lease)
            if mark is not None:
                db.execute(_CLAIM_PUT, mark)

        await self._run(_atomic(op))


async def _all(*futures) -> None:
    """Await every future given, then raise the first one's exception."""
    done = await asyncio.gather(*futures, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result


def _claim_row(msg_id: str, ttl_s: float, state: DedupState, now: float) -> tuple:
    """A row of the claims table: ``state`` kept ``ttl_s`` from ``now``."""
    return (msg_id, now + ttl_s, state.value)


_TAKE_LUA = """
local s = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')  -- the server's clock keeps replicas consistent
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tokens, last = tonumber(s[1]), tonumber(s[2])
if tokens == nil then tokens = cap; last = now end
tokens = math.min(cap, tokens + (now - last) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'last', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / math.max(rate, 0.001) * 1000) + 1000)
return ok
"""


# set-if-absent returning what was there, in one atomic step (SET NX GET needs Redis 7)
_CLAIM_LUA = """
local old = redis.call('GET', KEYS[1])
if old then return old end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""


# delete the turn lease only if this owner still holds it
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore(Store):
    """Shared by several processes: context, message-id dedup and buckets (Lua scripts)."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "dingskill:", **kw) -> None:
        super().__init__(**kw)
        self.url, self.prefix = url, prefix
        self._r = None
        self._take = None
        self._cmd = None  # CommandBatcher: a loop turn's commands in one round trip

    async def connect(self):
        import redis.asyncio as aioredis

        # a blocking pool: under load, calls wait for a free connection instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=64,
            timeout=10,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=5,
        )
        self._r = aioredis.Redis(connection_pool=pool)
        self._take = self._r.register_script(_TAKE_LUA)
        self._claim = self._r.register_script(_CLAIM_LUA)
        self._turn_release = self._r.register_script(_RELEASE_LUA)
        self._cmd = CommandBatcher(self._r)
        try:  # fail at start-up with the address, not at the first message with a traceback
            await asyncio.wait_for(self._r.ping(), 5)
        except Exception as exc:  # noqa: BLE001 - connection, auth, timeout: all unreachable
            from .config import redact_password

            await self.close()
            reason = (str(exc) or type(exc).__name__).splitlines()[0][:200]
            raise StoreUnavailable(
                f"cannot reach Redis at {redact_password(self.url)} ({reason}): start "
                "redis-server there or fix storage.connection_string "
                "(`dingskill doctor --config FILE` checks it)"
            ) from None

    async def close(self):
        if self._r is not None:
            await self._r.aclose(close_connection_pool=True)

    def _k(self, key):
        return self.prefix + key

    async def ping(self):
        try:
            return bool(await asyncio.wait_for(self._r.ping(), 2))
        except Exception:  # noqa: BLE001 - any failure means not reachable
            return False

    async def get_raw(self, key):
        return await self._cmd.execute("GET", self._k(key))

    async def set_raw(self, key, blob, ttl_s):
        await self._set(key, blob, ttl_s)

    def _set(self, key: str, blob, ttl_s: float) -> asyncio.Future:
        """``SET key blob PX ttl``, queued now on the command pipeline."""
        return self._cmd.submit("SET", self._k(key), blob, "PX", max(1, int(ttl_s * 1000)))

    async def claim(self, msg_id, ttl_s):
        old = await self._cmd.script(
            self._claim,
            [self._k(f"msg:{msg_id}")],
            [DedupState.PROCESSING.value, max(1, int(ttl_s * 1000))],
        )
        return DedupState.parse(old)

    async def replying(self, msg_id, ttl_s):
        await self.set_raw(f"msg:{msg_id}", DedupState.REPLYING.value, ttl_s)

    async def finish(self, msg_id, ttl_s):
        await self.set_raw(f"msg:{msg_id}", DedupState.DONE.value, ttl_s)

    async def release(self, msg_id):
        await self._cmd.execute("DEL", self._k(f"msg:{msg_id}"))

    async def take(self, bucket, rate, capacity):
        # one script reading the server's clock (replicas agree), one round trip
        return bool(
            await self._cmd.script(self._take, [self._k(f"bucket:{bucket}")], [rate, capacity])
        )

    async def acquire_turn(self, key, owner, ttl_s):
        name = self._k(await self.hash_id(f"turn:{key}"))
        ms = max(1, int(ttl_s * 1000))
        return bool(await self._cmd.execute("SET", name, owner, "NX", "PX", ms))

    async def release_turn(self, key, owner):
        name = self._k(await self.hash_id(f"turn:{key}"))
        await self._cmd.script(self._turn_release, [name], [owner])

    async def begin_turn(self, key, owner, ttl_s):
        turn, name = self._k(await self.hash_id(f"turn:{key}")), await self.hash_id(f"ctx:{key}")
        ms = max(1, int(ttl_s * 1000))
        # one pipeline, in order: the lease, then the context (unused if the lease is held;
        # nobody else writes it while we hold it)
        took, blob = await asyncio.gather(
            self._cmd.submit("SET", turn, owner, "NX", "PX", ms),
            self._cmd.submit("GET", self._k(name)),
        )
        if not took:
            return None
        return self._open(name, blob) or {}

    async def end_turn(self, key, owner, context, replying=None):
        turn = self._k(await self.hash_id(f"turn:{key}"))
        saved = await self._save(key, context, replying)
        try:  # queued right behind them: one pipeline
            await self._cmd.script(self._turn_release, [turn], [owner])
        finally:
            await _all(*saved)

    async def set_context(self, key, context, replying=None):
        await _all(*await self._save(key, context, replying))  # one pipeline

    async def _save(self, key, context, replying) -> list[asyncio.Future]:
        """The context's ``SET`` (and the ``replying`` mark's, when given), queued."""
        name = await self.hash_id(f"ctx:{key}")
        queued = [self._set(name, self._seal(name, context), self.context_ttl_s)]
        if replying is not None:
            msg_id, ttl_s = replying
            queued.append(self._set(f"msg:{msg_id}", DedupState.REPLYING.value, ttl_s))
        return queued

    async def append_audit(self, blob):
        await self._r.rpush(self._k("audit"), blob)

    async def append_audit_many(self, blobs):
        if blobs:
            await self._r.rpush(self._k("audit"), *blobs)

    async def audit_records(self):
        return await self._r.lrange(self._k("audit"), 0, -1)

    async def _replace_audit(self, blobs):
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._k("audit"))
        if blobs:
            pipe.rpush(self._k("audit"), *blobs)
        await pipe.execute()

    async def keys(self, prefix):
        out = []
        async for k in self._r.scan_iter(match=self._k(prefix) + "*", count=500):
            out.append(k.decode()[len(self.prefix) :])
        return out


def make_store(config, keyring: Keyring | None = None, sweep: bool = True) -> Store:
    """The store ``config`` names; ``sweep``: this process deletes the SQLite file's
    expired rows (one process of several sharing the file is enough)."""
    s = config["storage"]
    kw = {"keyring": keyring, "context_ttl_s": s["context_ttl_s"]}
    if s["type"] == "memory":
        return MemoryStore(**kw)
    if s["type"] == "redis":
        return RedisStore(s["connection_string"], **kw)
    return SqliteStore(s["path"], sweep=sweep, **kw)
