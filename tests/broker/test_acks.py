"""The worker's acks (runtime/broker/worker.py ``_Acks``) against a real rabbitmq-server:
finished messages at the front go as one ``multiple`` ack, finished ones behind a message
still running are acked alone, and the running one is never covered: when the channel
closes, exactly the unfinished messages come back."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from dingskill.runtime.broker.worker import _Acks

from .harness import scale

pytestmark = [pytest.mark.broker]


def test_a_multiple_ack_never_covers_a_running_message(rabbit):
    async def go():
        import aio_pika

        name = f"acks-{uuid.uuid4().hex[:8]}"
        conn = await aio_pika.connect(rabbit.url)
        try:
            setup = await conn.channel()
            q = await setup.declare_queue(name, durable=False)
            for i in range(6):
                await setup.default_exchange.publish(aio_pika.Message(str(i).encode()), name)
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=10)
            got: list = []
            cq = await ch.get_queue(name)

            async def take(message) -> None:
                got.append(message)

            await cq.consume(take)
            for _ in range(int(200 * scale())):
                if len(got) == 6:
                    break
                await asyncio.sleep(0.05)
            assert [m.body for m in got] == [str(i).encode() for i in range(6)]
            acks = _Acks()
            for m in got:
                acks.delivered(m)
                acks.start(m)
            for i in (1, 0, 2, 4):  # 3 is still running, 5 not finished either
                acks.finish(got[i])
            await asyncio.sleep(0)  # the flush runs at the next turn of the loop
            await acks.drain()
            assert acks.pending.keys() == {got[3].delivery_tag, got[5].delivery_tag}
            await ch.close()  # the unacked ones go back to the queue
            for _ in range(int(200 * scale())):
                declared = await setup.declare_queue(name, passive=True)
                if declared.declaration_result.message_count == 2:
                    break
                await asyncio.sleep(0.05)
            back = [await q.get(no_ack=True) for _ in range(2)]
            assert sorted(m.body for m in back) == [b"3", b"5"]
            assert await q.get(fail=False) is None
            # delivery tags starting again (a new channel) forget what the old one started
            acks.delivered(back[0])
            assert not acks.pending
        finally:
            await conn.close()

    asyncio.run(go())


def test_acks_in_shuffled_order_keep_the_channel_open(rabbit):
    """Hundreds of messages finishing in a shuffled order, a few per loop turn: single and
    ``multiple`` acks interleave, and none may reach the broker after a ``multiple`` ack that
    covered it (the client's write queue is short: acks sent side by side can overtake each
    other, and an ack of a tag already covered closes the channel, "unknown delivery tag")."""

    async def go():
        import random

        import aio_pika

        name = f"acks-{uuid.uuid4().hex[:8]}"
        conn = await aio_pika.connect(rabbit.url)
        n = 400
        try:
            setup = await conn.channel()
            await setup.declare_queue(name, durable=False)
            for i in range(n):
                await setup.default_exchange.publish(aio_pika.Message(str(i).encode()), name)
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=n)
            got: list = []

            async def take(message) -> None:
                got.append(message)

            await (await ch.get_queue(name)).consume(take)
            for _ in range(int(400 * scale())):
                if len(got) == n:
                    break
                await asyncio.sleep(0.05)
            assert len(got) == n
            acks = _Acks()
            for m in got:
                acks.delivered(m)
                acks.start(m)
            order = list(got)
            random.Random(3).shuffle(order)
            while order:
                for m in order[:7]:
                    acks.finish(m)
                del order[:7]
                await asyncio.sleep(0)
            await acks.drain()
            assert not acks.pending
            await asyncio.sleep(0.3 * scale())  # a channel error would arrive by now
            assert not ch.is_closed, "the broker closed the channel (an ack it did not know)"
            await ch.close()
            declared = await setup.declare_queue(name, passive=True)
            assert declared.declaration_result.message_count == 0  # every message acked
        finally:
            await conn.close()

    asyncio.run(go())
