"""``Engine``: routes a message across skills and executes the chosen response.

The one routing path every channel uses (notebook widget, terminal chat, Stream runtime):
a pending multi-turn flow first, then trigger rules of all skills, then each skill's intent
model (the most confident in-scope decision wins), else the fallback reply. A response that
fails (template error, API down, handler raising or hanging) becomes a fallback reply with
``error`` set; the engine never raises to its caller."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

from ..text import detect_language
from .conversation import Message, Reply
from .dialogue import DEFAULT_TIMEOUT_S, fill_slots, is_cancel, missing_slots, new_flow
from .http_action import HttpAction, HttpActionError
from .outbound import OutboundPolicy
from .templates import choose_variant, render

__all__ = ["Engine", "FALLBACK"]

FALLBACK = {
    "zh": "抱歉，我还不太明白您的意思。可以换个说法吗？",
    "en": "Sorry, I didn't get that. Could you say it another way?",
}
CANCELLED = {"zh": "好的，已取消。", "en": "OK, cancelled."}
EXPIRED = {
    "zh": "（上一个请求已超时，已为您取消。）",
    "en": "(Your previous request timed out and was cancelled.)",
}
HISTORY = 6
# handlers run here, not in the loop's default executor, so a hanging handler never blocks
# a caller's loop shutdown (asyncio.run waits for the default executor)
_HANDLERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dingskill-handler")


def _lang(text: str) -> str:
    return "en" if detect_language(text) == "en" else "zh"


class Engine:
    """Routes messages across ``skills`` and runs their responses."""

    def __init__(
        self,
        skills: list,
        fallback_text: str | dict | None = None,
        handler_timeout: float = 5.0,
        clock=time.time,
        today=None,
    ) -> None:
        self.skills = list(skills)
        self._by_id = {s.manifest.id: s for s in self.skills}
        if len(self._by_id) != len(self.skills):
            raise ValueError("two skills share an id")
        self.fallback_text = fallback_text
        self.handler_timeout = handler_timeout
        self.clock = clock
        self.today = today

    # -- helpers --------------------------------------------------------------------------
    def _fallback(self, text: str) -> str:
        if isinstance(self.fallback_text, str):
            return self.fallback_text
        if (
            self.fallback_text is None
            and len(self.skills) == 1
            and self.skills[0].manifest.fallback
        ):
            return self.skills[0].manifest.fallback
        table = {**FALLBACK, **(self.fallback_text or {})}
        return table[_lang(text)]

    def _today(self) -> dt.date:
        return self.today or dt.date.fromtimestamp(self.clock())

    @staticmethod
    def _variables(
        message: Message, slots: dict, context: dict, intent: str, confidence: float, api=None
    ) -> dict:
        return {
            "message": {
                "text": message.text,
                "sender_id": message.sender_id,
                "sender_nick": message.sender_nick,
                "conversation_type": message.conversation_type,
                "conversation_id": message.conversation_id,
            },
            "sender": message.sender_nick or message.sender_id,
            "slots": dict(slots),
            "context": {k: v for k, v in context.items() if k != "flow"},
            "intent": intent,
            "confidence": round(confidence, 3),
            "api": api or {},
        }

    def route(self, text: str):
        """(skill, Decision) of the winning skill, or (None, best Decision or None)."""
        best, best_skill = None, None
        lang = detect_language(text)
        for skill in self.skills:
            d = skill.decide(text)
            if d.source == "rule":
                return skill, d
            if lang != "mixed" and lang not in skill.manifest.languages and len(self.skills) > 1:
                continue  # a Chinese-only model does not judge English text, and vice versa
            if d.intent != "oos" and (
                best is None or best.intent == "oos" or d.confidence > best.confidence
            ):
                best, best_skill = d, skill
            elif best is None:
                best = d
        if best is not None and best.intent != "oos":
            return best_skill, best
        return None, best

    # -- the message path -------------------------------------------------------------------
    async def handle(self, message: Message, context: dict) -> Reply:
        """Answer one message; ``context`` (a JSON-able dict) is updated in place."""
        t0 = time.perf_counter()
        try:
            reply = await self._handle(message, context)
        except Exception as exc:  # noqa: BLE001 - the engine never raises to a channel
            reply = Reply(
                text=self._fallback(message.text),
                source="fallback",
                error=f"{type(exc).__name__}: {exc}",
            )
        reply.latency_ms = (time.perf_counter() - t0) * 1000
        hist = context.setdefault("history", [])
        hist.append({"user": message.text[:200], "bot": reply.text[:200], "intent": reply.intent})
        del hist[:-HISTORY]
        reply.state = dict(context.get("flow") or {})
        return reply

    async def _handle(self, message: Message, context: dict) -> Reply:
        text = message.text
        now_ms = int(self.clock() * 1000)
        note = ""
        flow = context.get("flow")
        if flow:
            skill = self._by_id.get(flow.get("skill"))
            spec = skill.manifest.intents.get(flow.get("intent"), {}).get("flow") if skill else None
            if spec is None:
                context.pop("flow", None)
            elif now_ms - flow["started_ms"] > spec.get("timeout_s", DEFAULT_TIMEOUT_S) * 1000:
                context.pop("flow", None)
                note = EXPIRED[_lang(text)]
            elif is_cancel(text, spec.get("cancel_words")):
                context.pop("flow", None)
                return Reply(
                    text=spec.get("cancelled") or CANCELLED[_lang(text)],
                    skill_id=skill.manifest.id,
                    intent=flow["intent"],
                    confidence=1.0,
                    source="dialogue",
                    slots=flow["slots"],
                )
            else:
                reply = await self._continue_flow(skill, spec, flow, message, context)
                if reply is not None:
                    return reply
        skill, decision = self.route(text)
        if skill is None:
            alts = decision.alternatives if decision else []
            conf = decision.confidence if decision else 0.0
            return Reply(
                text=(note + self._fallback(text)) if note else self._fallback(text),
                intent="oos",
                confidence=conf,
                alternatives=alts,
                source="fallback",
            )
        reply = await self._start(skill, decision, message, context)
        if note:
            reply.text = f"{note}\n{reply.text}"
        return reply

    async def _continue_flow(self, skill, spec, flow, message, context) -> Reply | None:
        declared = skill.manifest.slots
        wanted = [s["name"] for s in spec["slots"]]
        slots = flow["slots"]
        new = fill_slots(
            declared, wanted, message.text, slots, self._today(), answer_for=flow["pending"]
        )
        if flow["pending"] not in new:
            other, d = self.route(message.text)
            switched = (
                d is not None
                and d.intent not in ("oos", flow["intent"])
                and (d.source == "rule" or d.confidence >= 0.8)
            )
            if switched:
                context.pop("flow", None)
                return None  # the user moved on: route the message normally
            flow["asks"] = flow.get("asks", 1) + 1
            if flow["asks"] > 3:
                context.pop("flow", None)
                return Reply(
                    text=CANCELLED[_lang(message.text)],
                    skill_id=skill.manifest.id,
                    intent=flow["intent"],
                    source="dialogue",
                    slots=slots,
                )
        missing = missing_slots(spec, slots)
        if missing:
            flow["pending"] = missing[0]["name"]
            ask = choose_variant(missing[0]["ask"], _seed(message, context, flow["asks"]))
            declared_all = {name: None for name in declared}
            variables = self._variables(
                message, {**declared_all, **slots}, context, flow["intent"], 1.0
            )
            return Reply(
                text=render(ask, variables),
                skill_id=skill.manifest.id,
                intent=flow["intent"],
                confidence=1.0,
                source="dialogue",
                slots=dict(slots),
            )
        context.pop("flow", None)
        resp = skill.manifest.intents[flow["intent"]]
        reply = await self._execute(skill, flow["intent"], resp, slots, message, context, 1.0)
        reply.source = "dialogue"
        return reply

    async def _start(self, skill, decision, message, context) -> Reply:
        resp = skill.manifest.intents.get(decision.intent)
        if resp is None:  # the model knows an intent the manifest gives no response
            return Reply(
                text=self._fallback(message.text),
                intent=decision.intent,
                skill_id=skill.manifest.id,
                confidence=decision.confidence,
                alternatives=decision.alternatives,
                source="fallback",
                error=f"skill {skill.manifest.id} has no response for intent {decision.intent!r}",
            )
        slots: dict = {}
        fill_slots(
            skill.manifest.slots, list(skill.manifest.slots), message.text, slots, self._today()
        )
        spec = resp.get("flow")
        if spec:
            missing = missing_slots(spec, slots)
            if missing:
                now_ms = int(self.clock() * 1000)
                context["flow"] = new_flow(
                    skill.manifest.id, decision.intent, slots, missing[0]["name"], now_ms
                )
                variables = self._variables(
                    message, slots, context, decision.intent, decision.confidence
                )
                ask = render(choose_variant(missing[0]["ask"], _seed(message, context)), variables)
                return Reply(
                    text=ask,
                    skill_id=skill.manifest.id,
                    intent=decision.intent,
                    confidence=decision.confidence,
                    alternatives=decision.alternatives,
                    source=decision.source,
                    rule=decision.rule,
                    slots=dict(slots),
                )
        reply = await self._execute(
            skill, decision.intent, resp, slots, message, context, decision.confidence
        )
        reply.alternatives, reply.source, reply.rule = (
            decision.alternatives,
            decision.source,
            decision.rule,
        )
        return reply

    async def _execute(self, skill, intent, resp, slots, message, context, confidence) -> Reply:
        base = dict(
            skill_id=skill.manifest.id, intent=intent, confidence=confidence, slots=dict(slots)
        )
        api, error = None, None
        fallback = resp.get("fallback") or skill.manifest.fallback or self._fallback(message.text)
        declared = {name: None for name in skill.manifest.slots}
        variables = self._variables(message, {**declared, **slots}, context, intent, confidence)
        try:
            if "http" in resp:
                action = HttpAction.from_spec(resp["http"])
                policy = getattr(skill, "outbound", None) or OutboundPolicy.for_skill(
                    skill.manifest, getattr(skill, "approved_hosts", None)
                )
                api = await asyncio.wait_for(
                    action.call(variables, policy=policy),
                    timeout=self.handler_timeout + action.timeout * (action.retries + 1),
                )
                variables["api"] = api
            if "handler" in resp:
                fn = skill.handlers()[resp["handler"]]
                loop = asyncio.get_running_loop()
                out = await asyncio.wait_for(
                    loop.run_in_executor(
                        _HANDLERS, fn, variables["message"], dict(slots), variables["context"]
                    ),
                    timeout=self.handler_timeout,
                )
                if isinstance(out, str):
                    out = {"text": out}
                if not isinstance(out, dict) or not isinstance(out.get("text", ""), str):
                    raise TypeError(
                        f"handler {resp['handler']} returned {type(out).__name__}, expected str or dict"
                    )
                return Reply(
                    text=out.get("text", ""),
                    format=out.get("format", resp.get("format", "text")),
                    card=out.get("card"),
                    title=out.get("title", ""),
                    **base,
                )
            text = (
                render(choose_variant(resp["template"], _seed(message, context)), variables)
                if "template" in resp
                else ""
            )
            card = None
            if "card" in resp:
                card = _render_card(resp["card"], variables)
            return Reply(
                text=text,
                format=resp.get("format", "card" if card else "text"),
                card=card,
                title=render(resp.get("title", ""), variables),
                **base,
            )
        except HttpActionError as exc:
            error = f"http: {exc}"
        except asyncio.TimeoutError:
            error = f"timeout: response took longer than {self.handler_timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - a failing response falls back
            error = f"{type(exc).__name__}: {exc}"
        return Reply(
            text=render(fallback, variables) if "{" in fallback else fallback,
            error=error,
            **{**base, "confidence": confidence},
        )


def _seed(message: Message, context: dict, extra: object = "") -> str:
    """Variant choice: varied along a conversation, but the same for a replayed one."""
    return f"{message.conversation_id}|{len(context.get('history', []))}|{message.text}|{extra}"


def _render_card(card, variables):
    if isinstance(card, str):
        return render(card, variables)
    if isinstance(card, dict):
        return {k: _render_card(v, variables) for k, v in card.items()}
    if isinstance(card, list):
        return [_render_card(v, variables) for v in card]
    return card
