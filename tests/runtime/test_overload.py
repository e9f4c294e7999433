"""Overload through the real runtime and emulator: a full classification queue sheds
politely ("busy, please retry"), counts it, and loses nothing."""

from __future__ import annotations

from .harness import wait_until


def _text(body: dict) -> str:
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text") or ""


def test_full_queue_gets_busy_replies_counted_and_nothing_lost(home, emulator, start_runtime):
    rt = start_runtime(
        home,
        extra={
            "limits": {"user_per_minute": 0, "conversation_per_minute": 0},
            # one thread, one utterance a pass, room for one waiting: a burst overflows
            "understanding": {"workers": 1, "max_batch": 1, "window_ms": 0, "max_queue": 1},
        },
    )
    emulator.wait_connections(1)
    batch = [
        {"text": f"帮我查一下{i}号会议室明天下午有没有空", "sender_id": f"user-{i}"}
        if i % 2
        else {"text": f"how many days of leave do I have left in {2000 + i}", "sender_id": f"u{i}"}
        for i in range(60)
    ]
    ids = emulator.send_many(batch)
    wait_until(
        lambda: all(emulator.messages[m].replies for m in ids),
        60,
        what="a reply to every message",
        output=lambda: rt.log.read_text()[-3000:],
    )
    replies = [emulator.messages[m].replies for m in ids]
    assert all(len(r) == 1 for r in replies)  # nothing lost, nothing twice
    texts = [_text(r[0]["body"]) for r in replies]
    busy = [t for t in texts if "稍等片刻再发" in t or "send yours again" in t]
    assert busy, texts[:5]  # some were shed ...
    assert len(busy) < len(texts)  # ... and the others understood
    assert any("send yours again" in t for t in busy) or any("稍等" in t for t in busy)
    shed = rt.metric("dingskill_messages_shed_total", 'channel="stream"')
    assert shed == len(busy)
    assert rt.metric("dingskill_messages_total", 'channel="stream",outcome="shed"') == len(busy)
