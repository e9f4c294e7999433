"""Configuration, preprocessing, the three stores (encrypted at rest), rate limits, webhook
signatures: the runtime's parts, with real SQLite and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import time

import pytest
from dingskill.runtime.channels.webhook import WebhookChannel, sign
from dingskill.runtime.config import ConfigError, load_config
from dingskill.runtime.preprocess import PreprocessError, preprocess
from dingskill.runtime.ratelimit import RateLimiter
from dingskill.runtime.storage import DedupState
from dingskill.runtime.stores import MemoryStore, RedisStore, SqliteStore
from dingskill.security.crypto import Keyring
from dingskill.skills.conversation import Message


def test_defaults_are_embedded_sqlite(tmp_path):
    cfg = load_config(None, environ={"DINGSKILL_HOME": str(tmp_path)})
    assert cfg.get("storage.type") == "sqlite" and cfg.get("storage.path") == str(
        tmp_path / "runtime.db"
    )
    assert cfg.get("server.port") == 8080 and cfg.get("audit.retention_days") == 180


@pytest.mark.parametrize(
    "body,message",
    [
        ({"server": {"port": "80"}}, "server.port: '80' is not of type 'integer'"),
        ({"server": {"port": 70000}}, "server.port: 70000 is not a port"),
        (
            {"storage": {"type": "mongo"}},
            "storage.type: 'mongo' is not one of ['sqlite', 'memory', 'redis']",
        ),
        (
            {"channels": {"enterprise_chat": {"mode": "poll"}}},
            "channels.enterprise_chat.mode: 'poll'",
        ),
        ({"server": {"ssl": {"enabled": True}}}, "server.ssl.cert_path: required"),
        (
            {"limits": {"user_per_minute": -1}},
            "limits.user_per_minute: -1 is less than the minimum of 0",
        ),
        ({"storage": {"tyep": "redis"}}, "storage.tyep: unknown field"),
        (
            {"audit": {"retention_days": 0}},
            "audit.retention_days: must be > 0",
        ),
    ],
)
def test_config_errors_name_the_field(tmp_path, body, message):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(p, environ={})


def test_yaml_config_secrets_from_env_and_redacted(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("storage: {type: redis, connection_string: 'redis://:pw123@db:6379/0'}\n")
    cfg = load_config(
        p, environ={"DINGSKILL_APP_KEY": "key1", "DINGSKILL_APP_SECRET": "very-secret-value"}
    )
    assert cfg.app_secret == "very-secret-value"
    shown = repr(cfg)
    assert "very-secret-value" not in shown and "pw123" not in shown and "key1" in shown
    bad = tmp_path / "b.yaml"
    bad.write_text("server: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("@办公助手 我想请假", "我想请假"),
        ("＠HR小助手　帮我订会议室", "帮我订会议室"),
        ("ＶＰＮ连不上了！", "VPN连不上了！"),  # Chinese punctuation kept as typed
        ("book a room\u200b for 2026年12月3日", "book a room for 2026年12月3日"),  # as typed
        ("leave from 2026/1/5 please", "leave from 2026/1/5 please"),
        ("mail a@b.com", "mail a@b.com"),
        ("  \x07  ", ""),
    ],
)
def test_preprocess(raw, clean):
    assert preprocess(raw) == clean


def test_preprocess_limit():
    with pytest.raises(PreprocessError, match="limit 10"):
        preprocess("x" * 11, max_chars=10)


def _keyring():
    return Keyring({"k1": os.urandom(32)}, "k1")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    ring = _keyring()
    if request.param == "memory":
        return lambda: MemoryStore(keyring=ring)
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "rt.db", keyring=ring)
    srv = request.getfixturevalue("redis_server")
    return lambda: RedisStore(srv.url, keyring=ring)


def test_store_contract(store):
    async def go():
        store_ = store()
        await store_.connect()
        await check(store_)
        await store_.close()

    async def check(store):
        assert await store.ping()
        ctx = {"flow": {"pending": "days"}, "history": [{"user": "我想请年假"}]}
        await store.set_context("conv-1", ctx)
        assert await store.get_context("conv-1") == ctx
        assert await store.get_context("nope") == {}
        assert await store.claim("m1", 10) is DedupState.NEW
        assert await store.claim("m1", 10) is DedupState.PROCESSING
        await store.finish("m1", 60)
        assert await store.claim("m1", 10) is DedupState.DONE
        assert await store.claim("m2", 10) is DedupState.NEW
        await store.replying("m2", 10)
        assert await store.claim("m2", 10) is DedupState.REPLYING
        await store.release("m2")
        assert await store.claim("m2", 10) is DedupState.NEW
        # set-if-absent is atomic: of many claims at once exactly one finds nothing
        states = await asyncio.gather(*(store.claim("m3", 10) for _ in range(20)))
        assert states.count(DedupState.NEW) == 1
        assert await store.claim("m4", 0.05) is DedupState.NEW  # "processing" expires
        await asyncio.sleep(0.15)
        assert await store.claim("m4", 10) is DedupState.NEW
        results = [await store.take("bucket-a", 0.001, 3) for _ in range(5)]
        assert results == [True, True, True, False, False]
        await store.add_audit({"actor": "staff-1", "operation": "message", "text": "请假"})
        assert (await store.read_audit())[0]["actor"] == "staff-1"

    asyncio.run(go())


def test_sqlite_and_redis_hold_no_plaintext_and_survive_rotation(tmp_path, redis_server):
    import redis

    async def go():
        ring = _keyring()
        sq = SqliteStore(tmp_path / "rt.db", keyring=ring)
        rd = RedisStore(redis_server.url, keyring=ring)
        for s in (sq, rd):
            await s.connect()
            await s.set_context("conv-9", {"slots": {"leave_type": "年假"}, "note": "工资条保密"})
            await s.add_audit({"actor": "staff-9", "text": "工资条保密"})
        raw_sqlite = b"".join(
            bytes(r[0])
            for r in sqlite3.connect(tmp_path / "rt.db").execute(
                "SELECT v FROM kv UNION ALL SELECT v FROM audit"
            )
        )
        r = redis.Redis(port=redis_server.port)
        assert r.keys("*conv-9*") == []  # ids in key names are keyed by HMAC
        (ctx_key,) = r.keys("dingskill:ctx:h:*")
        raw_redis = r.get(ctx_key) + b"".join(r.lrange("dingskill:audit", 0, -1))
        for raw in (raw_sqlite, raw_redis):
            assert (
                "工资条".encode() not in raw
                and "年假".encode() not in raw
                and b"staff-9" not in raw
            )
            assert raw.count(b"DSE1") >= 2
        new = ring.rotated("k2")
        for s in (sq, rd):
            assert await s.reencrypt(new) == 2
            only_new = Keyring({"k2": new._keys["k2"]}, "k2")
            s.keyring = only_new
            assert (await s.get_context("conv-9"))["note"] == "工资条保密"
            assert (await s.read_audit())[0]["actor"] == "staff-9"
            await s.close()

    asyncio.run(go())


def test_rate_limiter_scopes():
    async def go():
        rl = RateLimiter(
            MemoryStore(), user_per_minute=4, conversation_per_minute=100, global_per_second=1000
        )
        m = Message(text="hi", sender_id="u1", conversation_id="c1")
        results = [await rl.check(m) for _ in range(4)]
        assert results == [None, None, "user", "user"]  # burst of half a minute: 2
        assert await rl.check(Message(text="hi", sender_id="u2", conversation_id="c1")) is None

    asyncio.run(go())


def test_webhook_signature_checks():
    ch = WebhookChannel(pipeline=None, app_secret="SEC123456")
    now = 1_800_000_000_000
    ts = str(now)
    assert ch.verify(ts, sign(ts, "SEC123456"), now) is None
    assert ch.verify(ts, sign(ts, "other"), now) == "signature does not match"
    old = str(now - 2 * 3600 * 1000)
    assert "stale" in ch.verify(old, sign(old, "SEC123456"), now)
    assert ch.verify(None, None, now) == "missing timestamp or sign header"
    assert base64.b64decode(sign(ts, "x"))


def test_config_schema_documents_and_validates_every_section():
    from dingskill.runtime.config import ConfigError, load_config
    from dingskill.runtime.settings import SECTIONS, config_schema

    schema = config_schema()
    assert list(schema["properties"]) == list(SECTIONS)
    for section in schema["properties"].values():
        for name, prop in section["properties"].items():
            assert prop.get("description"), name  # every field documented
    settings = load_config(None, environ={}).settings
    assert settings.limits.max_inflight == 1000 and settings.storage.type.value == "sqlite"
    with pytest.raises(ConfigError, match=r"limits\.max_inflight: 0 is less than the minimum"):
        load_config(None, environ={}, overrides={"limits": {"max_inflight": 0}})
    with pytest.raises(ConfigError, match=r"security\.admins: unknown field"):
        load_config(None, environ={}, overrides={"security": {"admins": {}}})


def test_schema_config_cli(capsys):
    from dingskill.cli.main import main

    assert main(["schema", "config"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["properties"]["limits"]["properties"]["max_inflight"]["minimum"] == 1


def test_max_inflight_bounds_concurrent_messages():
    import asyncio

    from dingskill.runtime.pipeline import Pipeline
    from dingskill.runtime.stores import MemoryStore
    from dingskill.skills.conversation import Message, Reply

    class SlowEngine:
        now = peak = 0

        async def handle(self, message, context):
            SlowEngine.now += 1
            SlowEngine.peak = max(SlowEngine.peak, SlowEngine.now)
            await asyncio.sleep(0.01)
            SlowEngine.now -= 1
            return Reply(text="ok", intent="x")

    engine = SlowEngine()
    limits = {"max_inflight": 2, "user_per_minute": 0, "conversation_per_minute": 0}
    p = Pipeline(lambda: engine, MemoryStore(), limits={**limits, "global_per_second": 0})

    async def run():
        msgs = [Message(text=f"m{i}", msg_id=f"id{i}", conversation_id=f"c{i}") for i in range(8)]
        return await asyncio.gather(*(p.process(m) for m in msgs))

    replies = asyncio.run(run())
    assert len(replies) == 8 and SlowEngine.peak == 2


def test_stores_split_by_concern_and_typed_dedup_states():
    import asyncio

    from dingskill.runtime.pipeline import Pipeline
    from dingskill.runtime.storage import (
        AuditStore,
        ContextStore,
        DedupStore,
        LimitStore,
        Stores,
    )
    from dingskill.runtime.stores import MemoryStore
    from dingskill.skills.conversation import Message, Reply

    backend = MemoryStore()
    for iface in (ContextStore, DedupStore, LimitStore, AuditStore):
        assert isinstance(backend, iface)
    assert DedupState.parse(None) is DedupState.NEW and DedupState.parse(b"done").answered
    assert DedupState.parse("processing:3f2a") is DedupState.PROCESSING  # an older version's
    assert DedupState.REPLYING.answered and not DedupState.PROCESSING.answered
    with pytest.raises(ValueError, match="unknown message-id dedup state 'maybe'"):
        DedupState.parse("maybe")

    class Echo:
        async def handle(self, message, context):
            context["n"] = context.get("n", 0) + 1
            return Reply(text=str(context["n"]), intent="x")

    contexts, dedup = MemoryStore(), MemoryStore()  # context apart from dedup and limits
    stores = Stores(context=contexts, dedup=dedup, limits=dedup)
    p = Pipeline(lambda: Echo(), stores, limits={"user_per_minute": 0})

    async def run():
        a = await p.process(Message(text="a", msg_id="m1"))
        dup = await p.process(Message(text="a", msg_id="m1"))
        b = await p.process(Message(text="b", msg_id="m2"))
        return a, dup, b, await contexts.get_context("local"), await dedup.get_context("local")

    a, dup, b, ctx, other = asyncio.run(run())
    assert (a.text, dup, b.text) == ("1", None, "2")
    assert ctx["n"] == 2 and other == {}


def test_dedup_states_decide_alone_without_owners_or_liveness():
    """PROCESSING: a second delivery while the first runs is refused (InProgress), a
    redelivery (the previous attempt ended) is handled again; REPLYING is never answered
    again (a redelivery of it is "uncertain"); DONE is a duplicate; a failed attempt forgets
    the message so a later delivery answers it."""
    from dingskill.runtime.metrics import Metrics
    from dingskill.runtime.pipeline import InProgress, Pipeline, ReplyUncertain
    from dingskill.skills.conversation import Reply

    class Gate:
        def __init__(self):
            self.open, self.calls, self.fail = asyncio.Event(), 0, False

        async def handle(self, message, context):
            self.calls += 1
            await self.open.wait()
            if self.fail:
                raise OSError("disk gone")
            return Reply(text="ok", intent="x")

    def outcomes(metrics):
        return {
            s.labels["outcome"]: s.value
            for m in metrics.registry.collect()
            if m.name == "dingskill_messages"
            for s in m.samples
            if s.name.endswith("_total")
        }

    async def run():
        engine, dedup, metrics = Gate(), MemoryStore(), Metrics()
        p = Pipeline(lambda: engine, dedup, metrics, limits={"user_per_minute": 0})
        sent = []

        async def sink(reply):
            sent.append(reply.text)
            return True

        first = asyncio.ensure_future(p.process(Message(text="a", msg_id="m1"), sink))
        await asyncio.sleep(0.01)
        with pytest.raises(InProgress):  # same process, first attempt running
            await p.process(Message(text="a", msg_id="m1"), sink)
        other = Pipeline(lambda: engine, dedup, metrics, limits={"user_per_minute": 0})
        with pytest.raises(InProgress):  # another process sharing the store
            await other.process(Message(text="a", msg_id="m1"), sink)
        engine.open.set()
        assert (await first).text == "ok"
        assert await other.process(Message(text="a", msg_id="m1"), sink) is None  # DONE
        # leftovers of an attempt that ended half-way: only a redelivery acts on them
        await dedup.claim("m2", 60)  # PROCESSING, nobody on it
        with pytest.raises(InProgress):
            await other.process(Message(text="b", msg_id="m2"), sink)
        assert (await other.process(Message(text="b", msg_id="m2"), sink, redelivered=True)).text
        await dedup.claim("m3", 60)
        await dedup.replying("m3", 60)
        with pytest.raises(ReplyUncertain):  # the worker dead-letters it: never answered twice
            await other.process(Message(text="c", msg_id="m3"), sink, redelivered=True)
        assert await other.process(Message(text="c", msg_id="m3"), sink) is None
        engine.fail = True  # a failed attempt forgets the message: a later delivery answers
        with pytest.raises(RuntimeError, match="not handled: OSError"):
            await other.process(Message(text="d", msg_id="m4"), sink)
        engine.fail = False
        assert (await other.process(Message(text="d", msg_id="m4"), sink)).text == "ok"
        return sent, engine.calls, outcomes(metrics)

    sent, calls, counted = asyncio.run(run())
    assert sent == ["ok", "ok", "ok"] and calls == 4
    assert counted["in_progress"] == 3 and counted["uncertain"] == 1
    assert counted["duplicate"] == 2 and counted["ok"] == 3


def test_find_project_from_cwd_env_or_argument(tmp_path, monkeypatch):
    from dingskill.project import ProjectNotFound, find_project

    proj = tmp_path / "proj"
    (proj / "skills").mkdir(parents=True)
    (proj / "datasets").mkdir()
    (proj / "deep" / "er").mkdir(parents=True)
    assert find_project(environ={}, start=proj / "deep" / "er") == proj.resolve()
    assert find_project(environ={"DINGSKILL_PROJECT": str(proj)}, start=tmp_path) == proj.resolve()
    assert find_project(str(proj), environ={}) == proj.resolve()
    with pytest.raises(ProjectNotFound, match="DINGSKILL_PROJECT"):
        find_project(environ={}, start=tmp_path)


def test_sqlite_checkpoints_run_beside_the_writer(tmp_path):
    """WAL checkpoints (the fsyncs) run in their own thread, PASSIVE, so no store operation
    waits behind one; the WAL is still folded into the database."""

    async def go():
        store = SqliteStore(tmp_path / "rt.db")
        store._worker.checkpoint_s = 0.05
        await store.connect()
        for n in range(300):
            await store.set_context(f"conv-{n}", {"slots": {"days": n}, "note": "请假" * 20})
        from tests.runtime.harness import timeout_scale

        deadline = time.monotonic() + 30 * timeout_scale()
        while store._worker.checkpoints < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert store._worker.checkpoints >= 2
        await store.close()
        assert store._worker._checkpointer is None  # stopped with the store

    asyncio.run(go())
    db = sqlite3.connect(tmp_path / "rt.db")
    busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and frames == done  # everything written reached the database file
    assert db.execute("SELECT count(*) FROM kv").fetchone()[0] == 300


def test_sqlite_keyed_tables_are_one_btree_each_and_older_files_still_work(tmp_path):
    """New files: kv, claims, buckets and turns WITHOUT ROWID (a text key on a rowid table
    is a second B-tree: every write dirtied twice the pages and the WAL grew twice as fast);
    a file made before keeps its rowid tables, which the same statements use."""
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.executescript("""
        CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, exp REAL);
        CREATE TABLE claims (id TEXT PRIMARY KEY, exp REAL, state TEXT);
        CREATE TABLE buckets (k TEXT PRIMARY KEY, tokens REAL, last REAL);
        CREATE TABLE turns (k TEXT PRIMARY KEY, owner TEXT, exp REAL);
    """)
    db.close()

    async def messages(path, n: int) -> int:
        """WAL bytes appended by ``n`` messages' store work (after 100 to fill the tables)."""
        store = SqliteStore(path)
        store._worker.checkpoint_s = 3600  # no checkpoint resets the WAL meanwhile
        await store.connect()
        try:
            size = 0
            for i in range(100 + n):
                if i == 100:
                    size = os.path.getsize(f"{path}-wal")
                mid, conv = f"m{i}-{os.urandom(6).hex()}", f"c{i % 40}"
                assert await store.claim(mid, 60) is DedupState.NEW
                assert await store.take(f"u{i % 40}", 1000.0, 1000.0)
                assert await store.begin_turn(conv, "w", 10) is not None
                await store.end_turn(conv, "w", {"n": i, "said": ["x" * 40] * 4}, (mid, 600))
                await store.finish(mid, 600)
            assert await store.claim(mid, 60) is DedupState.DONE
            assert await store.get_context(conv) == {"n": i, "said": ["x" * 40] * 4}
            return os.path.getsize(f"{path}-wal") - size
        finally:
            await store.close()

    old_bytes = asyncio.run(messages(old, 200))
    new_bytes = asyncio.run(messages(tmp_path / "new.db", 200))
    schema = sqlite3.connect(tmp_path / "new.db").execute("SELECT name, sql FROM sqlite_master")
    keyed = {name: sql for name, sql in schema if name in ("kv", "claims", "buckets", "turns")}
    assert len(keyed) == 4 and all("WITHOUT ROWID" in sql for sql in keyed.values())
    assert new_bytes < 0.7 * old_bytes, (new_bytes, old_bytes)


def test_expired_entries_leave_the_sqlite_file_and_the_memory_store(tmp_path):
    """Message ids, contexts and leases past their TTL are deleted (the SQLite store's sweep
    beside the checkpoints; the memory store on each write), live ones stay: the store
    holds what the TTLs keep, not every message ever seen."""
    from tests.runtime.harness import wait_until

    path = tmp_path / "sweep.db"

    def count(table: str) -> int:
        db = sqlite3.connect(path)
        try:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            db.close()

    async def sqlite_store():
        store = SqliteStore(path)
        store._worker.checkpoint_s, store._worker.sweep_rows = 0.02, 7  # small laps
        await store.connect()
        try:
            for i in range(40):
                await store.claim(f"gone{i}", 0.01)
                await store.set_raw(f"ctx-gone{i}", b"x", 0.01)
            assert await store.acquire_turn("c-gone", "w", 0.01)
            for i in range(5):
                await store.claim(f"kept{i}", 600)
                await store.set_raw(f"ctx-kept{i}", b"y", 600)
            await asyncio.to_thread(
                wait_until,
                lambda: (count("claims"), count("kv"), count("turns")) == (5, 5, 0),
                timeout=30,
                what="the expired rows deleted",
            )
            assert [await store.claim(f"kept{i}", 600) for i in range(5)] == [
                DedupState.PROCESSING
            ] * 5
            assert await store.get_raw("ctx-kept0") == b"y"
            assert store._worker.swept == 81
        finally:
            await store.close()

    asyncio.run(sqlite_store())
    # the workers of one `dingskill run` share the file: the first one alone sweeps it
    from dingskill.runtime.app import Runtime
    from dingskill.runtime.supervisor import WorkerRole

    cfg = load_config(
        None,
        environ={"DINGSKILL_APP_KEY": "k", "DINGSKILL_APP_SECRET": "s"},
        overrides={
            "storage": {"path": str(path)},
            "channels": {"enterprise_chat": {"enabled": False}},
            "skills": {"home": str(tmp_path / "home")},
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "security": {"encrypt": False},
        },
    )
    sweeps = [Runtime(cfg, role=WorkerRole(i, 2)).store._worker.sweep_rows for i in (0, 1)]
    assert sweeps == [2000, 0] and Runtime(cfg).store._worker.sweep_rows == 2000

    async def memory_store():
        store = MemoryStore()
        for i in range(5000):
            assert await store.claim(f"m{i}", 0.0) is DedupState.NEW
            await store.finish(f"m{i}", 0.0)
            await store.set_raw(f"k{i}", b"x", 0.0)
        assert len(store._claims) <= 10 and len(store._kv) <= 10
        assert await store.claim("kept", 600) is DedupState.NEW
        for i in range(100):
            await store.claim(f"n{i}", 0.0)
        assert await store.claim("kept", 600) is DedupState.PROCESSING

    asyncio.run(memory_store())


def test_sqlite_runs_operations_inline_unless_locked_queued_or_crowded(tmp_path):
    """An operation runs on the caller's thread when nothing is queued and the write lock is
    free; another writer holding the lock sends it to the thread (which waits for the lock),
    operations stay in submission order, and a burst goes to the thread's group commits."""

    async def go():
        store = SqliteStore(tmp_path / "rt.db")
        w = store._worker
        await store.connect()
        assert await store.claim("m1", 60) is DedupState.NEW
        await store.set_context("c1", {"slots": {"days": 1}})
        inline, commits = w.inline_ops, w.commits
        assert inline >= 2  # nothing went through the thread for these
        assert (await store.get_context("c1"))["slots"] == {"days": 1}

        other = sqlite3.connect(tmp_path / "rt.db", isolation_level=None)  # another process
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(store.set_context("c1", {"slots": {"days": 2}}))
        then = asyncio.ensure_future(store.get_context("c1"))  # queued behind it, in order
        await asyncio.sleep(0.2)
        assert not pending.done() and not then.done()  # waiting for the lock, not failed
        other.execute("COMMIT")
        other.close()
        await pending
        assert (await then)["slots"] == {"days": 2}
        assert w.commits > commits
        assert w.busy_waits >= 1  # the thread waited in its own short steps

        await asyncio.sleep(2 * w.WINDOW_S)
        before = w.commits
        rows = [f"burst-{n}" for n in range(int(w.INLINE_MAX_RATE * w.WINDOW_S) * 3)]
        states = await asyncio.gather(*(store.claim(r, 60) for r in rows))
        await asyncio.sleep(w.WINDOW_S)  # the next window knows the last one was crowded
        states += await asyncio.gather(*(store.claim(r, 60) for r in rows))
        assert states == [DedupState.NEW] * len(rows) + [DedupState.PROCESSING] * len(rows)
        assert w.commits > before  # once crowded, the thread took over
        await store.close()

    asyncio.run(go())


def test_sqlite_operations_of_one_loop_turn_reach_the_thread_together(tmp_path):
    """What the loop queues for the store's thread in one turn of the event loop is handed
    over as one list (one wake-up of the thread), in submission order; stopping the store
    hands over what a turn queued before its end, so every caller gets its answer."""
    from tests.runtime.harness import timeout_scale

    async def go():
        store = SqliteStore(tmp_path / "rt.db")
        w = store._worker
        await store.connect()
        w._run_inline = lambda fn, fut: False  # as when crowded: everything to the thread
        handed = []
        real = w._q

        class Counting:
            def put(self, item):
                handed.append(None if item is None else len(item))
                real.put(item)

            def __getattr__(self, name):
                return getattr(real, name)

        w._q = Counting()
        writes = [store._run(lambda db, n=n: _put(db, n)) for n in range(50)]
        read = store._run(lambda db: db.execute("SELECT max(n) FROM t").fetchone()[0])
        assert handed == []  # still this turn: nothing handed over yet
        await asyncio.gather(*writes)
        assert await read == 49  # run after every write queued before it
        assert handed == [51]

        last = store._run(lambda db: _put(db, 50))  # queued, and the store stops this turn
        w.stop()
        await asyncio.wait_for(last, 10 * timeout_scale())
        assert handed[1:] == [1, None]  # handed over before the end marker
        await store.close()

    def _put(db, n):
        db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
        db.execute("INSERT INTO t VALUES (?)", (n,))

    asyncio.run(go())


def test_sqlite_single_statement_operations_fail_alone_without_a_savepoint(tmp_path):
    """Operations of one SQL statement run in the thread's group without a savepoint: one
    that fails reports its error to its caller and the other operations of the same group
    still commit; one whose failure aborted the whole transaction fails the whole group; one
    that meets another process's write lock (busy) makes the whole group run again."""
    import threading

    from dingskill.runtime.stores import _atomic

    async def go():
        store = SqliteStore(tmp_path / "rt.db")
        w = store._worker
        await store.connect()
        await store.append_audit(b"first")
        seq = await store._run(
            _atomic(lambda db: db.execute("SELECT max(seq) FROM audit").fetchone()[0])
        )

        async def group(*calls):  # queued while the thread is busy: its next group
            entered, gate = threading.Event(), threading.Event()
            blocker = store._run(lambda db: entered.set() or gate.wait(10), bulk=True)
            assert await asyncio.to_thread(entered.wait, 10)
            futs = []
            for c in calls:  # queued in this order
                futs.append(asyncio.ensure_future(c()))
                await asyncio.sleep(0)
            await asyncio.sleep(0.1)
            assert not any(f.done() for f in futs)
            commits = w.commits
            gate.set()
            await asyncio.gather(blocker, return_exceptions=True)
            return await asyncio.gather(*futs, return_exceptions=True), w.commits - commits

        results, commits = await group(
            lambda: store.set_context("c1", {"n": 1}),
            lambda: store._run(  # a primary key taken: this statement alone fails
                _atomic(
                    lambda db: db.execute("INSERT INTO audit (seq, v) VALUES (?, ?)", (seq, b"x"))
                )
            ),
            lambda: store.finish("m1", 60),
        )
        assert results[0] is None and results[2] is None
        assert commits == 2  # the blocker's group, then theirs
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert (await store.get_context("c1")) == {"n": 1}
        assert await store.claim("m1", 60) is DedupState.DONE
        assert await store.audit_records() == [b"first"]

        def aborts(db):  # what SQLITE_FULL / IOERR do: the whole transaction is rolled back
            db.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")

        results, _ = await group(
            lambda: store.set_context("c2", {"n": 2}),
            lambda: store._run(_atomic(aborts)),
            lambda: store.finish("m2", 60),
        )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        assert await store.get_context("c2") == {}  # nothing of the group was written
        assert await store.claim("m2", 60) is DedupState.NEW

        tries = []

        def busy_once(db):  # another process's lock met inside the group: all of it again
            tries.append(1)
            if len(tries) == 1:
                raise sqlite3.OperationalError("database is locked")
            return db.execute("SELECT count(*) FROM kv").fetchone()[0]

        waits = w.busy_waits
        results, commits = await group(
            lambda: store.set_context("c3", {"n": 3}),
            lambda: store._run(busy_once),
            lambda: store.finish("m3", 60),
        )
        assert results[0] is None and results[2] is None and isinstance(results[1], int)
        assert len(tries) == 2 and w.busy_waits == waits + 1 and commits == 2
        assert await store.get_context("c3") == {"n": 3}
        assert await store.claim("m3", 60) is DedupState.DONE
        await store.close()

    asyncio.run(go())


def test_a_store_failing_after_the_reply_went_out_does_not_retry_it():
    """The reply was sent; only marking it done failed (Redis away a moment): the message
    counts as answered (no retry, which would find it "replying" and dead-letter it)."""
    from dingskill.runtime.pipeline import Pipeline
    from dingskill.skills.conversation import Reply

    class Engine:
        async def handle(self, message, context):
            return Reply(text="ok", intent="x")

    class FlakyFinish(MemoryStore):
        async def finish(self, msg_id, ttl_s):
            raise ConnectionError("redis away")

    async def run():
        store, sent = FlakyFinish(), []

        async def sink(reply):
            sent.append(reply.text)
            return True

        p = Pipeline(lambda: Engine(), store, limits={"user_per_minute": 0})
        reply = await p.process(Message(text="a", msg_id="m1"), sink)
        assert reply.text == "ok" and sent == ["ok"]
        assert await store.claim("m1", 10) is DedupState.REPLYING  # never answered again

    asyncio.run(run())


def test_hashed_names_are_remembered_boundedly_and_stay_the_same(tmp_path):
    """hash_id keeps the names it hashed lately (an HMAC each), at most 4096, and a store
    that remembers none (another process) hashes them the same."""

    async def go():
        keyring = Keyring({"k1": os.urandom(32)}, "k1")
        a = SqliteStore(tmp_path / "rt.db", keyring=keyring)
        names = [f"ctx:conv-{n}:staff-{n}" for n in range(5000)]
        first = [await a.hash_id(n) for n in names]
        assert len(a._hashed) <= 4096
        assert [await a.hash_id(n) for n in names[-10:]] == first[-10:]
        b = SqliteStore(tmp_path / "rt.db", keyring=keyring)
        assert [await b.hash_id(n) for n in names[:10]] == first[:10]
        assert all("conv-" not in h and h.startswith("ctx:h:") for h in first)
        await a.close()
        await b.close()

    asyncio.run(go())


def test_a_store_opening_while_another_process_creates_the_file_waits_for_it(tmp_path):
    """A new file's switch to WAL answers "locked" at once (SQLite calls no busy handler for
    it) while another connection writes the file, as the second worker of a first
    `dingskill run --processes 2` met the first one creating it: the store waits and
    starts instead of failing."""
    path = tmp_path / "rt.db"
    other = sqlite3.connect(path, isolation_level=None)  # another process, creating it
    other.execute("CREATE TABLE early (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO early VALUES (1)")

    async def go():
        store = SqliteStore(path)
        connecting = asyncio.ensure_future(store.connect())
        await asyncio.sleep(0.2)
        assert not connecting.done()  # waiting for the lock, not failed
        other.execute("COMMIT")
        from tests.runtime.harness import timeout_scale

        await asyncio.wait_for(connecting, 30 * timeout_scale())
        await store.set_context("c1", {"n": 1})
        assert await store.get_context("c1") == {"n": 1}
        await store.close()

    try:
        asyncio.run(go())
    finally:
        other.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
