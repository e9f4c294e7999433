"""The dynamic batcher and the batched understanding step (real threads, real encoder)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from dingskill.runtime.batching import BatcherClosed, DynamicBatcher


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_calls_share_one_batch_with_results_in_order():
    calls: list[list[int]] = []

    def square(items):
        calls.append(list(items))
        return [i * i for i in items]

    async def main():
        b = DynamicBatcher(square, max_batch=64, window_s=0.05, workers=1)
        out = await asyncio.gather(*(b.submit(i) for i in range(20)))
        await b.close()
        return out, b.stats

    out, stats = _run(main())
    assert out == [i * i for i in range(20)]  # each waiter its own result
    assert calls == [list(range(20))]  # one call for the twenty
    assert stats.batches == 1 and stats.largest == 20


def test_max_batch_splits_and_batches_run_in_worker_threads():
    threads: set[str] = set()

    def ident(items):
        threads.add(threading.current_thread().name)
        return list(items)

    async def main():
        b = DynamicBatcher(ident, max_batch=8, window_s=0.05, workers=2, name="t")
        out = await asyncio.gather(*(b.submit(i) for i in range(30)))
        await b.close()
        return out, b.stats

    out, stats = _run(main())
    assert out == list(range(30))
    assert stats.largest <= 8 and stats.batches >= 4
    assert threads and all(t.startswith("dingskill-t") for t in threads)  # never the loop


def test_an_exception_reaches_every_waiter_of_the_batch():
    def broken(items):
        raise ValueError("encoder exploded")

    async def main():
        b = DynamicBatcher(broken, max_batch=16, window_s=0.02)
        results = await asyncio.gather(*(b.submit(i) for i in range(5)), return_exceptions=True)
        await b.close()
        return results

    results = _run(main())
    assert len(results) == 5
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in results)


def test_the_loop_keeps_running_while_a_batch_computes():
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return list(items)

    async def main():
        b = DynamicBatcher(slow, max_batch=4, window_s=0.0)
        task = asyncio.create_task(b.submit(1))
        ticks = 0
        for _ in range(5):  # the loop ticks while the worker thread is blocked
            await asyncio.sleep(0.001)
            ticks += 1
        assert b.depth == 1 and not task.done()
        gate.set()
        assert await task == 1
        await b.close()
        return ticks

    assert _run(main()) == 5


def test_shutdown_finishes_running_batches_and_refuses_waiting_ones():
    started = threading.Event()
    gate = threading.Event()

    def slow(items):
        started.set()
        gate.wait(5)
        return list(items)

    async def main():
        b = DynamicBatcher(slow, max_batch=1, window_s=0.0, workers=1)
        running = asyncio.create_task(b.submit("a"))
        waiting = asyncio.create_task(b.submit("b"))
        await asyncio.to_thread(started.wait, 5)
        closing = asyncio.create_task(b.close())
        await asyncio.sleep(0)
        gate.set()
        await closing
        with pytest.raises(BatcherClosed):
            await waiting
        assert await running == "a"
        with pytest.raises(BatcherClosed):
            await b.submit("c")

    _run(main())


def test_bad_settings_are_refused_with_the_values():
    with pytest.raises(ValueError, match="max_batch=0"):
        DynamicBatcher(list, max_batch=0)


def test_batched_encodings_equal_one_at_a_time_and_fill_the_cache():
    from dingskill.nlu.normalize import normalize_text
    from dingskill.nlu.use_m3 import load_use_m3
    from dingskill.runtime.understanding import Understanding, UnderstandingConfig

    enc = load_use_m3()
    texts = [f"帮我订明天下午{i}点的会议室" for i in range(6)] + [
        f"how many vacation days do I have left in {y}" for y in range(2030, 2036)
    ]
    texts = [normalize_text(t) for t in texts]  # the cache's keys
    enc.clear_cache()
    one = np.stack([enc.transform_one(t, normalized=True) for t in texts])
    enc.clear_cache()

    class Engine:  # what Understanding looks at: the skills' trained models
        skills = [type("S", (), {"_model": type("M", (), {"embedder_": enc})()})()]

    async def main():
        u = Understanding(UnderstandingConfig(workers=2, window_ms=20))
        await asyncio.gather(*(u.prepare(Engine, t) for t in texts))
        stats = u.stats
        await u.close()
        return stats

    stats = _run(main())
    assert stats.requests == len(texts) and stats.batches < len(texts)
    assert all(enc.cached(t) for t in texts)
    batched = np.stack([enc.transform_one(t, normalized=True) for t in texts])
    np.testing.assert_allclose(batched, one, atol=1e-5)
    assert [int(np.argmax(v)) for v in batched] == [int(np.argmax(v)) for v in one]


def test_pipeline_answers_as_before_with_every_forward_pass_off_the_loop():
    """The engine is unchanged: with the understanding step, its decisions are the same and
    it finds every encoding and decision view ready (none computed on the loop's thread)."""
    from pathlib import Path

    from dingskill.runtime.local import LocalPipeline
    from dingskill.runtime.understanding import Understanding, UnderstandingConfig
    from dingskill.skills import Skill
    from dingskill.skills.conversation import Message

    root = Path(__file__).resolve().parents[2]
    skills = [Skill.load(root / "skills" / n) for n in ("hr-assistant", "faq-en")]
    texts = [f"我想请{i}天年假，从下周一开始" for i in range(2, 9)] + [
        f"what is the wifi password on floor {i}" for i in range(2, 9)
    ]

    async def answer(batched: bool) -> tuple[list, set]:
        local = LocalPipeline(skills)
        enc = skills[0].model.embedder_
        enc.clear_cache()
        for s in skills:
            s.model.clear_cache()
        threads: set[str] = set()

        def spy(real):
            def wrapped(*a):
                threads.add(threading.current_thread().name)
                return real(*a)

            return wrapped

        # the forward pass and every model's decision view (scores, gate, rules)
        enc._encode = spy(enc._encode)
        for s in skills:
            s.model._view_fresh = spy(s.model._view_fresh)
        try:
            if batched:
                local.pipeline.understanding = Understanding(UnderstandingConfig(workers=2))
            replies = await asyncio.gather(
                *(
                    local.pipeline.process(Message(text=t, sender_id=f"u{i}", msg_id=f"m{i}"))
                    for i, t in enumerate(texts)
                )
            )
            if batched:
                await local.pipeline.understanding.close()
        finally:
            del enc._encode
            for s in skills:
                del s.model._view_fresh
                s.model.clear_cache()
        return [(r.intent, round(r.confidence, 4)) for r in replies], threads

    plain, plain_threads = _run(answer(False))
    batched, batched_threads = _run(answer(True))
    assert batched == plain
    assert plain_threads == {threading.current_thread().name}  # before: on the loop
    assert batched_threads and all(t.startswith("dingskill-classify") for t in batched_threads)


def test_a_message_that_waited_too_long_for_the_loop_is_shed_politely():
    from pathlib import Path

    from dingskill.runtime.local import LocalPipeline
    from dingskill.runtime.understanding import BUSY, Understanding, UnderstandingConfig
    from dingskill.skills import Skill
    from dingskill.skills.conversation import Message

    root = Path(__file__).resolve().parents[2]
    local = LocalPipeline([Skill.load(root / "skills" / "faq-en")])

    async def main(max_wait_ms: float):
        u = Understanding(UnderstandingConfig(workers=1, max_wait_ms=max_wait_ms))
        local.pipeline.understanding = u
        msgs = [Message(text=f"what time does the office open on day {i}") for i in range(3)]
        replies = await asyncio.gather(*(local.aprocess(m) for m in msgs))
        await u.close()
        return replies

    shed = _run(main(1e-6))  # every message has waited longer than that
    assert all(r.source == "busy" and r.text == BUSY["en"] for r in shed)
    kept = _run(main(60_000))
    assert all(r.source != "busy" for r in kept)
