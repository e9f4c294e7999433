"""Entities and routing decisions found ahead, in the classification threads: the engine on
the loop only looks them up, and what it looks up is exactly what it would have found
itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from dingskill.nlu.system_entities import find_system_entities, reads_clock
from dingskill.skills import Skill
from dingskill.skills.entities import EntityCache, find_entities

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 7)
# one leave request through its form, answers after it ended (stale), a correction, a new
# request in one message, a from-now phrase (reads the clock: never cached), English
TURNS = [
    "我想请假",
    "事假",
    "2026年12月3日",
    "3天",
    "明天",
    "不对，改成下周一",
    "我想请3天年假，从下周一开始",
    "两小时后提醒我开会",
    "what is the wifi password",
    "三天",
    "book a room for tomorrow at 3pm",
]


@pytest.fixture(scope="module")
def skills():
    return [Skill.load(ROOT / "skills" / n) for n in ("hr-assistant", "faq-en")]


def test_reads_clock_marks_exactly_the_from_now_phrases():
    assert reads_clock("两小时后提醒我") and reads_clock("remind me in 2 hours")
    assert reads_clock("半小时后开会") and reads_clock("in an hour")
    assert not reads_clock("明天下午3点") and not reads_clock("2026年12月3日请3天假")
    # the entities of a text that does not read the clock are the same at any time of day
    for text in ("明天下午3点", "下周一开始请三天", "next friday at 10am", "3天"):
        at = [dt.datetime.combine(TODAY, dt.time(h, m, s)) for h, m, s in ((0, 0, 0), (13, 37, 29))]
        assert find_system_entities(text, TODAY, at[0]) == find_system_entities(text, TODAY, at[1])


def test_the_cache_gives_what_find_entities_gives_and_skips_clock_texts(skills):
    cache = EntityCache(size=64)
    now = dt.datetime.combine(TODAY, dt.time(9, 30))
    for text in TURNS:
        cache.fill(skills, text, TODAY, now)
    for text in TURNS:
        for skill in skills:
            got = cache.get(skill, text, TODAY)
            if reads_clock(text):
                assert got is None  # the engine finds them itself, with its own now
                continue
            assert got == find_entities(skill, text, TODAY, now)
            assert cache.get(skill, text, TODAY + dt.timedelta(days=1)) is None  # another day
    other = Skill.load(ROOT / "skills" / "faq-en")  # same id, another object: not its entry
    assert cache.get(other, TURNS[-1], TODAY) is None


def test_the_cache_is_bounded_oldest_out(skills):
    cache = EntityCache(size=3)
    now = dt.datetime.combine(TODAY, dt.time(9, 30))
    texts = ["明天", "后天", "下周一", "3天"]
    for text in texts:
        cache.fill(skills[:1], text, TODAY, now)
    assert cache.get(skills[0], texts[0], TODAY) is None
    assert all(cache.has(skills[0], t, TODAY) for t in texts[1:])
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        EntityCache(size=0)


def test_a_conversation_answers_alike_with_entities_found_off_the_loop(skills):
    """Replies (texts, slots, entities, commands) are identical with and without the
    understanding step; with it, the trained entity extractor runs in the classification
    threads only, never on the loop (but for the from-now phrase, found on the loop)."""
    from dingskill.runtime.local import LocalPipeline
    from dingskill.runtime.understanding import Understanding, UnderstandingConfig
    from dingskill.skills.conversation import Message

    hr = skills[0]
    clock = dt.datetime.combine(TODAY, dt.time(9, 30)).timestamp()

    async def converse(batched: bool) -> tuple[list, list[tuple[str, str]]]:
        local = LocalPipeline(skills)
        engine = local.pipeline.engine_provider()
        engine.clock = lambda: clock
        calls: list[tuple[str, str]] = []
        real = hr.find_entities

        def spy(text, *a, **k):
            calls.append((threading.current_thread().name, text))
            return real(text, *a, **k)

        hr.find_entities = spy
        import dingskill.skills.engine as engine_module

        real_arbitrate = engine_module.arbitrate

        def arbitrate_spy(skills_, text, options):
            calls.append((threading.current_thread().name, "arbitrate:" + text))
            return real_arbitrate(skills_, text, options)

        engine_module.arbitrate = arbitrate_spy
        try:
            if batched:
                local.pipeline.understanding = Understanding(UnderstandingConfig(workers=2))
            replies = []
            for i, text in enumerate(TURNS):
                r = await local.pipeline.process(
                    Message(text=text, sender_id="u1", conversation_id="c1", msg_id=f"m{i}")
                )
                replies.append(
                    json.dumps(
                        [r.text, r.intent, r.source, r.slots, r.entities, r.commands],
                        ensure_ascii=False,
                        sort_keys=True,
                        default=str,
                    )
                )
            if batched:
                await local.pipeline.understanding.close()
        finally:
            del hr.find_entities
            engine_module.arbitrate = real_arbitrate
        return replies, calls

    plain, _ = asyncio.run(converse(False))
    batched, calls = asyncio.run(converse(True))
    assert batched == plain
    loop = threading.current_thread().name
    on_loop = {text for name, text in calls if name == loop}
    assert on_loop == {t for t in TURNS if reads_clock(t)}, on_loop  # no arbitration either
    assert any(name.startswith("dingskill-classify") for name, _ in calls)


def test_the_decision_cache_gives_what_route_and_arbitrate_give(skills):
    from dingskill.skills.ahead import DecisionCache
    from dingskill.skills.arbitration import ArbitrationOptions, arbitrate, route

    options = ArbitrationOptions()
    cache = DecisionCache(size=64)
    story = "上周我去杭州出差，住的酒店离公司不远。另外问一下，我还有几天年假？"
    texts = [*TURNS, story, "早上那次打卡成功了吗", "你好", "thanks!", "帮我订明天下午3点的会议室"]
    texts += [f"我想请{n}天年假" for n in range(1, 4)] + ["how do I reset my password"]
    for text in texts:  # one sentence: the route is read off the arbitration
        assert cache.fill(skills, text, options, arbitration=True) == route(skills, text, options)
    assert DecisionCache().fill(skills, story, options, arbitration=False) == route(
        skills, story, options
    )
    for text in texts:
        assert cache.route(text, options) == route(skills, text, options)
        assert cache.arbitration(text, options) == arbitrate(skills, text, options)
        assert cache.route(text, ArbitrationOptions()) is None  # other options: not these
    copy = cache.arbitration(story, options)
    copy.text = "changed"
    assert cache.arbitration(story, options).text != "changed"
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        DecisionCache(size=0)
