"""Interactive cards: a skill's card response with buttons naming intents, sent through the
card OpenAPI (as the SDK's ``CardReplier`` does), and its clicks.

A click arrives on the card callback topic with the card's id (``outTrackId``) and the
clicked button's ``actionIds`` in ``content.cardPrivateData``; the runtime runs that
button's intent of the skill that sent the card and answers the callback with the new card
data (``cardData.cardParamMap`` + ``cardUpdateOptions``): the platform updates the card from
the callback's ACK response, no extra call."""

from __future__ import annotations

import json

from ..skills.conversation import Message

__all__ = ["send_interactive", "handle_card_click", "card_params"]

ROUTE_TTL_S = 30 * 86400


def card_params(reply, buttons: list[dict]) -> dict:
    """The card's public data (strings, as the platform's cardParamMap wants them)."""
    card = reply.card or {}
    return {
        "title": str(card.get("title") or reply.title or ""),
        "text": str(card.get("text") or reply.text or ""),
        "buttons": json.dumps(
            [{"text": b["title"], "actionId": b["id"]} for b in buttons], ensure_ascii=False
        ),
        "status": "",
    }


async def send_interactive(delivery, message, reply, template: str) -> str:
    """Create + deliver the card; remember which intent each button runs."""
    buttons = []
    for i, b in enumerate(reply.card.get("buttons", [])):
        if b.get("intent"):
            buttons.append({"id": f"b{i}", "title": b.get("title", ""), "intent": b["intent"]})
    track = await delivery.cards.create_and_deliver(message, template, card_params(reply, buttons))
    route = {
        "skill": reply.skill_id,
        "conversation_id": message.conversation_id,
        "conversation_type": message.conversation_type,
        "buttons": {b["id"]: b["intent"] for b in buttons},
    }
    await delivery.store.set_raw(
        f"card:{track}", json.dumps(route, ensure_ascii=False).encode(), ROUTE_TTL_S
    )
    return track


def _click(data) -> tuple[str, str, list[str], dict]:
    if isinstance(data, str):
        data = json.loads(data)
    content = data.get("content") or {}
    if isinstance(content, str):
        content = json.loads(content) if content else {}
    private = content.get("cardPrivateData") or {}
    return (
        str(data.get("outTrackId") or ""),
        str(data.get("userId") or ""),
        [str(a) for a in private.get("actionIds") or []],
        dict(private.get("params") or {}),
    )


async def handle_card_click(channel, data) -> dict | None:
    """The callback's response: the clicked intent's answer as the card's new data."""
    track, user, actions, params = _click(data)
    blob = await channel.pipeline.store.get_raw(f"card:{track}") if track else None
    if blob is None or not actions:
        return None
    route = json.loads(blob)
    intent = route["buttons"].get(actions[0])
    engine = channel.pipeline.engine_provider()
    skill = next((s for s in engine.skills if s.manifest.id == route["skill"]), None)
    if intent is None or skill is None or intent not in skill.manifest.intents:
        return None
    message = Message(
        text=str(params.get("text") or ""),
        sender_id=user,
        conversation_id=route["conversation_id"],
        conversation_type=route["conversation_type"],
        channel="card",
        msgtype="card_click",
    )
    context: dict = {}
    reply = await engine._execute(
        skill, intent, skill.manifest.intents[intent], dict(params), message, context, 1.0
    )
    if channel.audit is not None:
        channel.audit.record(
            user or "unknown",
            route["skill"],
            "card.click",
            "error" if reply.error else "ok",
            intent=intent,
            card=track,
            error=reply.error,
        )
    return {
        "cardData": {"cardParamMap": {"status": reply.text, "text": reply.text, "buttons": "[]"}},
        "cardUpdateOptions": {"updateCardDataByKey": True},
    }
