"""Turns of one conversation run one at a time across processes sharing a store (the turn
lease of runtime/stores.py, taken by the Pipeline with ``shared_turns``): real OS processes
on one SQLite file or one real redis-server add 1 to a counter in the same context."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dingskill.runtime.metrics import Metrics
from dingskill.runtime.pipeline import Pipeline
from dingskill.runtime.storage import DedupState, Stores
from dingskill.runtime.stores import MemoryStore, SqliteStore
from dingskill.skills.conversation import Message

from .harness import reap, scaled, spawn, tail, wait_until
from .turn_worker import NO_LIMITS, CountingEngine, open_store

WORKER = Path(__file__).with_name("turn_worker.py")
SDK = Path(__file__).resolve().parents[2] / "sdk"


@pytest.fixture(params=["sqlite", "redis"])
def spec(request, tmp_path) -> str:
    """Where the processes' shared store is: a SQLite file, or a fresh redis-server."""
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url
    return str(tmp_path / "shared.db")


def _worker(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"{name}.out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SDK), os.environ.get("PYTHONPATH", "")]),
    }
    proc = spawn(
        [sys.executable, str(WORKER), *args],
        env=env,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )
    return proc, out


def _run_counters(
    tmp_path: Path, spec: str, shared: bool, procs: int, turns: int
) -> list[list[int]]:
    """``procs`` processes start together and each runs ``turns`` turns of conversation c1;
    the counter values each saw."""
    go = tmp_path / "go"
    started = []
    try:
        for i in range(procs):
            ready = tmp_path / f"ready{i}"
            proc, out = _worker(
                tmp_path, f"count{i}", "count", spec, "1" if shared else "0", str(turns),
                str(ready), str(go), "c1",
            )  # fmt: skip
            started.append((proc, out, ready))
        for proc, out, ready in started:
            wait_until(
                lambda p=proc, r=ready: r.exists() or p.poll() is not None,
                60,
                what="worker ready",
                output=lambda o=out: tail(o),
            )
            assert proc.poll() is None, tail(out)
        go.write_text("go")
        seen = []
        for proc, out, _ in started:
            code = proc.wait(scaled(120))
            assert code == 0, tail(out)
            seen.append(json.loads(out.read_text().strip().splitlines()[-1]))
        return seen
    finally:
        for proc, _, _ in started:
            reap(proc, "kill", 10)


async def _counter(spec: str) -> int:
    store = open_store(spec)
    await store.connect()
    try:
        return (await store.get_context("c1")).get("n", 0)
    finally:
        await store.close()


def test_turns_of_one_conversation_run_one_at_a_time_across_processes(tmp_path, spec):
    procs, turns = 3, 60
    seen = _run_counters(tmp_path, spec, True, procs, turns)
    # every turn saw the one before it: the values are 1..N, each once, and none was lost
    assert sorted(v for s in seen for v in s) == list(range(1, procs * turns + 1))
    assert asyncio.run(_counter(spec)) == procs * turns


def test_without_the_lease_processes_overwrite_each_others_turns(tmp_path):
    """The control: the same turns with only the in-process lock lose updates."""
    spec = str(tmp_path / "shared.db")
    procs, turns = 3, 60
    seen = _run_counters(tmp_path, spec, False, procs, turns)
    assert asyncio.run(_counter(spec)) < procs * turns
    assert len({v for s in seen for v in s}) < procs * turns  # two turns saw the same value


def test_a_killed_holder_blocks_the_conversation_only_until_its_lease_expires(tmp_path, spec):
    ready = tmp_path / "held"
    proc, out = _worker(tmp_path, "hold", "hold", spec, "1.5", str(ready), "c1")
    try:
        wait_until(
            lambda: ready.exists() or proc.poll() is not None,
            60,
            what="lease held",
            output=lambda: tail(out),
        )
        assert proc.poll() is None, tail(out)
        proc.send_signal(signal.SIGKILL)  # dies holding it
        proc.wait(scaled(10))
    finally:
        reap(proc, "kill", 10)

    async def go():
        store = open_store(spec)
        await store.connect()
        metrics = Metrics()
        engine = CountingEngine()
        pipeline = Pipeline(lambda: engine, store, metrics, limits=NO_LIMITS, shared_turns=True)
        try:
            reply = await pipeline.process(
                Message(text="add one", conversation_id="c1", msg_id="m")
            )
            return reply, metrics.turn_waits._value.get(), await store.get_context("c1")
        finally:
            await store.close()

    reply, waits, context = asyncio.run(go())
    # it waited for the dead holder, then got the turn (not "busy") once the lease expired
    assert (reply.source, reply.text, waits, context) == ("skill", "1", 1, {"n": 1})


def test_a_turn_held_past_the_lease_gets_a_polite_busy_answer(tmp_path):
    async def go():
        store = SqliteStore(tmp_path / "shared.db")
        metrics = Metrics()
        engine = CountingEngine()
        limits = {**NO_LIMITS, "handler_timeout_s": 0.2, "turn_lease_margin_s": 0.1}
        pipeline = Pipeline(lambda: engine, store, metrics, limits=limits, shared_turns=True)
        try:
            assert await store.acquire_turn("c1", "someone-else", 60)
            replies = [  # a turn of the engine, and a refusal (empty text) that reads the context
                await pipeline.process(Message(text=text, conversation_id="c1", msg_id=text))
                for text in ("add one", "  ")
            ]
            shed = metrics.messages.labels("local", "shed")._value.get()
            return [r.source for r in replies], shed, await store.get_context("c1")
        finally:
            await store.close()

    sources, shed, context = asyncio.run(go())
    assert (sources, shed, context) == (["busy", "busy"], 2, {})  # answered, context untouched


def test_a_lease_is_released_only_by_its_owner_and_taken_over_once_expired(tmp_path, spec):
    async def go():
        store = open_store(spec)
        await store.connect()
        try:
            assert await store.acquire_turn("k", "a", 0.3)
            assert not await store.acquire_turn("k", "b", 10)
            await store.release_turn("k", "b")  # not b's: stays a's
            assert not await store.acquire_turn("k", "b", 10)
            await asyncio.sleep(0.4)
            assert await store.acquire_turn("k", "b", 10)  # a's expired
            await store.release_turn("k", "a")  # a late release of the expired one: a no-op
            assert not await store.acquire_turn("k", "a", 10)
            await store.release_turn("k", "b")
            assert await store.acquire_turn("k", "a", 10)
            assert await store.acquire_turn("other", "b", 10)  # one lease per conversation
        finally:
            await store.close()

    asyncio.run(go())


def test_single_process_pipelines_never_touch_the_lease():
    class NoLeases(MemoryStore):
        async def acquire_turn(self, key, owner, ttl_s):
            raise AssertionError("lease taken with shared_turns off")

        async def begin_turn(self, key, owner, ttl_s):
            raise AssertionError("lease taken with shared_turns off")

        async def end_turn(self, key, owner, context, replying=None):
            raise AssertionError("lease given back with shared_turns off")

    async def go():
        engine = CountingEngine()
        pipeline = Pipeline(lambda: engine, NoLeases(), limits=NO_LIMITS)
        msgs = [Message(text="x", conversation_id="c1", msg_id=f"m{i}") for i in range(5)]
        return [r.text for r in await asyncio.gather(*(pipeline.process(m) for m in msgs))]

    assert sorted(asyncio.run(go())) == ["1", "2", "3", "4", "5"]


def test_the_runtime_takes_leases_when_its_config_says_the_store_is_shared(tmp_path):
    from dingskill.runtime.app import Runtime
    from dingskill.runtime.config import load_config

    def runtime(**storage) -> Runtime:
        cfg = load_config(
            None,
            environ={"DINGSKILL_APP_KEY": "k", "DINGSKILL_APP_SECRET": "s"},
            overrides={
                "storage": {"type": "memory", **storage},
                "channels": {"enterprise_chat": {"enabled": False}},
                "skills": {"home": str(tmp_path / "home")},
                "audit": {"path": str(tmp_path / "audit.jsonl")},
                "security": {"encrypt": False},
                "limits": {"handler_timeout_s": 3, "turn_lease_margin_s": 4},
            },
        )
        return Runtime(cfg)

    assert runtime().pipeline.shared_turns is False
    pipeline = runtime(shared_turns=True).pipeline
    assert (pipeline.shared_turns, pipeline.turn_lease_s) == (True, 7.0)


@pytest.mark.parametrize("sealed", [False, True])
def test_begin_and_end_turn_take_the_lease_with_the_context_in_one_step(tmp_path, spec, sealed):
    """``begin_turn``: the lease and the context (None, nothing taken, while another owner
    holds it); ``end_turn``: the context saved and the lease given back (only its owner's)."""
    from dingskill.runtime.stores import RedisStore
    from dingskill.security.crypto import Keyring

    async def go():
        keyring = Keyring({"k1": os.urandom(32)}, "k1") if sealed else None
        cls = RedisStore if spec.startswith("redis://") else SqliteStore
        store = cls(spec, keyring=keyring)
        await store.connect()
        try:
            assert await store.begin_turn("c1", "a", 10) == {}  # nothing stored yet
            assert await store.begin_turn("c1", "b", 10) is None  # a holds it
            assert not await store.acquire_turn("c1", "b", 10)
            await store.end_turn("c1", "b", {"n": 99})  # not b's lease ...
            assert await store.begin_turn("c1", "b", 10) is None  # ... still a's
            await store.end_turn("c1", "a", {"n": 1})
            assert await store.get_context("c1") == {"n": 1}
            assert await store.begin_turn("c1", "b", 0.3) == {"n": 1}  # released: b's now
            assert await store.begin_turn("c1", "a", 10) is None
            await asyncio.sleep(0.4)
            assert await store.begin_turn("c1", "a", 10) == {"n": 1}  # b's expired
            await store.end_turn("c1", "a", {"n": 2})
            assert await store.acquire_turn("c1", "b", 10)
            await store.release_turn("c1", "b")
            assert await store.get_context("c1") == {"n": 2}
            # with a message's "replying" mark in the same step, with the lease or without
            assert await store.begin_turn("c1", "a", 10) == {"n": 2}
            await store.end_turn("c1", "a", {"n": 3}, replying=("m1", 60))
            await store.set_context("c2", {"n": 4}, replying=("m2", 60))
            assert [await store.claim(m, 60) for m in ("m1", "m2")] == [DedupState.REPLYING] * 2
            assert await store.get_context("c1") == {"n": 3}
            assert await store.get_context("c2") == {"n": 4}
            assert await store.acquire_turn("c1", "b", 10)  # given back with the mark
            await store.release_turn("c1", "b")
            # the base class's two-call defaults agree
            base = MemoryStore()
            assert await base.begin_turn("c1", "a", 10) == {}
            await base.end_turn("c1", "a", {"n": 3})
            assert await base.get_context("c1") == {"n": 3}
            await base.end_turn("c1", "a", {"n": 4}, replying=("m3", 60))
            await base.set_context("c2", {"n": 5}, replying=("m4", 60))
            assert [await base.claim(m, 60) for m in ("m3", "m4")] == [DedupState.REPLYING] * 2
        finally:
            await store.close()

    asyncio.run(go())


@pytest.mark.parametrize("shared", [False, True])
def test_the_replying_mark_is_stored_with_the_turn(tmp_path, spec, shared):
    """A message answered through a reply sink: its "replying" mark goes to the store in
    the operation that saves its turn's context (one store operation fewer, and a turn's
    effects are never stored while its message still looks unanswered: a crash between the
    two would have had a resend handled, and the turn applied, twice)."""
    from dingskill.runtime.stores import RedisStore

    class Counting(RedisStore if spec.startswith("redis://") else SqliteStore):
        separate_marks = 0

        async def replying(self, msg_id, ttl_s):
            self.separate_marks += 1
            await super().replying(msg_id, ttl_s)

    async def go():
        store = Counting(spec)
        await store.connect()
        engine = CountingEngine()
        pipeline = Pipeline(lambda: engine, store, limits=NO_LIMITS, shared_turns=shared)
        seen = []

        async def sink(reply) -> bool:  # when the reply goes out: context and mark stored
            seen.append((await store.get_context("c1"), await store.claim("m1", 60)))
            return True

        try:
            reply = await pipeline.process(
                Message(text="add one", conversation_id="c1", msg_id="m1"), sink
            )
            assert reply.text == "1"
            assert seen == [({"n": 1}, DedupState.REPLYING)]
            assert store.separate_marks == 0
            assert await store.claim("m1", 60) is DedupState.DONE  # answered
            if shared:
                assert await store.acquire_turn("c1", "other", 10)  # given back
            # a context store that is not the dedup store: the mark on its own, as before
            other = MemoryStore()
            split = Pipeline(
                lambda: engine,
                Stores(context=other, dedup=store, limits=store, audit=None),
                limits=NO_LIMITS,
            )
            await split.process(Message(text="add one", conversation_id="c9", msg_id="m2"), sink)
            assert store.separate_marks == 1 and await other.get_context("c9") == {"n": 1}
        finally:
            await store.close()

    asyncio.run(go())


def test_a_failing_combined_turn_call_falls_back_to_the_separate_calls(tmp_path):
    """``end_turn`` failing: the context is saved and the lease given back one call at a
    time; ``begin_turn`` failing: the lease is given back and the message is not handled."""

    class Flaky(SqliteStore):
        fail_begin = fail_end = 0

        async def begin_turn(self, key, owner, ttl_s):
            if self.fail_begin:
                self.fail_begin -= 1
                await self.acquire_turn(key, owner, ttl_s)  # taken, then the read fails
                raise OSError("read failed")
            return await super().begin_turn(key, owner, ttl_s)

        async def end_turn(self, key, owner, context, replying=None):
            if self.fail_end:
                self.fail_end -= 1
                raise OSError("write failed")
            return await super().end_turn(key, owner, context, replying)

    async def go():
        store = Flaky(tmp_path / "shared.db")
        engine = CountingEngine()
        pipeline = Pipeline(lambda: engine, store, limits=NO_LIMITS, shared_turns=True)
        try:
            store.fail_end = 1
            reply = await pipeline.process(
                Message(text="add one", conversation_id="c1", msg_id="m1")
            )
            assert reply.text == "1" and await store.get_context("c1") == {"n": 1}
            assert await store.acquire_turn("c1", "other", 10)  # given back
            await store.release_turn("c1", "other")

            store.fail_begin = 1
            with pytest.raises(RuntimeError, match="read failed"):
                await pipeline.process(Message(text="add one", conversation_id="c1", msg_id="m2"))
            assert await store.acquire_turn("c1", "other", 10)  # given back
            await store.release_turn("c1", "other")
            reply = await pipeline.process(
                Message(text="add one", conversation_id="c1", msg_id="m2")
            )
            assert reply.text == "2" and await store.get_context("c1") == {"n": 2}
        finally:
            await store.close()

    asyncio.run(go())
