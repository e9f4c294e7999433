"""The Redis store's auto-pipelining (runtime/redis_batch.py) against a real redis-server:
concurrent commands share round trips, each caller gets its own answer or its own error, and
scripts survive a server that forgot them."""

from __future__ import annotations

import asyncio

import pytest
from dingskill.runtime.redis_batch import CommandBatcher
from dingskill.runtime.storage import DedupState
from dingskill.runtime.stores import RedisStore
from redis.exceptions import ResponseError


def test_concurrent_commands_share_pipelines_and_keep_their_own_answers(redis_server):
    async def go():
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_server.url)
        batcher = CommandBatcher(client)
        try:
            await asyncio.gather(*(batcher.execute("SET", f"k{i}", i) for i in range(200)))
            assert batcher.batches < 20  # 200 commands, a few round trips
            got = await asyncio.gather(*(batcher.execute("GET", f"k{i}") for i in range(200)))
            assert got == [str(i).encode() for i in range(200)]
            # a command the server refuses fails alone; its neighbours succeed
            await client.set("text", "not a number")
            ok, bad, ok2 = await asyncio.gather(
                batcher.execute("INCR", "counter"),
                batcher.execute("INCR", "text"),
                batcher.execute("INCR", "counter"),
                return_exceptions=True,
            )
            assert (ok, ok2) == (1, 2) and isinstance(bad, ResponseError)
        finally:
            await client.aclose()

    asyncio.run(go())


def test_store_claims_stay_atomic_and_scripts_survive_a_flush(redis_server):
    async def go():
        store = RedisStore(redis_server.url)
        await store.connect()
        try:
            states = await asyncio.gather(*(store.claim("m1", 10) for _ in range(50)))
            assert states.count(DedupState.NEW) == 1
            assert store._cmd.batches < 10
            await store._r.script_flush()  # a restarted server has no scripts
            assert await store.claim("m2", 10) is DedupState.NEW
            assert await store.claim("m2", 10) is DedupState.PROCESSING
            assert [await store.take("b", 0.001, 2) for _ in range(3)] == [True, True, False]
        finally:
            await store.close()

    asyncio.run(go())


def test_a_lost_connection_fails_the_waiting_commands(redis_server):
    async def go():
        store = RedisStore(redis_server.url)
        await store.connect()
        try:
            await store.set_raw("k", b"v", 60)
            redis_server.stop()
            with pytest.raises(Exception):  # noqa: B017, PT011 - any connection error
                await asyncio.wait_for(store.get_raw("k"), 30)
        finally:
            await store.close()

    asyncio.run(go())
