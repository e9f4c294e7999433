"""``Engine``: routes a message across skills and executes the chosen response.

The one routing path every channel uses (notebook widget, terminal chat, Stream runtime):
a pending multi-turn flow first, then trigger rules of all skills, then each skill's intent
model (the most confident in-scope decision wins), else the fallback reply. A response that
fails (template error, API down, handler raising or hanging) becomes a fallback reply with
``error`` set; the engine never raises to its caller."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

from ..nlu.classifier import Decision
from ..text import detect_language
from .ahead import DecisionCache
from .arbitration import ArbitrationOptions, arbitrate, route
from .clarify import clarify_reply, resolve_pick
from .conversation import Message, Reply
from .dialogue import (
    Awaiting,
    FlowEnd,
    end_flow,
    flow_expired,
    flow_spec,
    missing_slots,
    new_flow,
)
from .entities import EntityCache, find_entities
from .fallback import (
    FALLBACK,
    ack_reply,
    count_miss,
    fallback_reply,
    fallback_text,
    handover_reply,
    is_acknowledgement,
    is_bare_cancel,
    is_handover_request,
    nothing_to_cancel_reply,
    reply_language,
    skill_with_intent,
    suggest,
)
from .flow import continue_flow, first_values, localized, stale_answer
from .http_action import HttpAction, HttpActionError
from .notify import normalize_all, render_notify
from .outbound import OutboundPolicy
from .refusal import Refusal, refusal_reply
from .smalltalk import SmallTalk, match_small_talk, small_talk_reply
from .templates import arender, arender_tree, choose_variant

__all__ = ["Engine", "FALLBACK"]

EXPIRED = {
    "zh": "（上一个请求已超时，已为您取消。）",
    "en": "(Your previous request timed out and was cancelled.)",
}
GONE = {
    "zh": "（您之前办理的事项所属的技能已更新或移除，已结束。）",
    "en": "(The skill of your previous request was updated or removed; it has ended.)",
}
# a message in a flow that another intent claims at least this confidently is a digression
DIGRESSION_CONFIDENCE = 0.8
# a slot answer longer than this many characters is checked for being a question instead
SHORT_ANSWER = 6
SHORT_ANSWER_WORDS = 3  # the same for space-separated text ("next wednesday" is an answer)


def _long_answer(text: str) -> bool:
    """Longer than a bare answer: characters for Chinese, words for space-separated text."""
    if text.isascii():
        return len(text.split()) > SHORT_ANSWER_WORDS
    return len(text) > SHORT_ANSWER


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
        options: ArbitrationOptions | None = None,
    ) -> None:
        self.skills = list(skills)
        self._by_id = {s.manifest.id: s for s in self.skills}
        if len(self._by_id) != len(self.skills):
            raise ValueError("two skills share an id")
        self.fallback_text = fallback_text
        self.handler_timeout = handler_timeout
        self.clock = clock
        self.today = today
        # arbitration, reply language and human handover (the runtime's ``dialogue`` section)
        self.options = options or ArbitrationOptions()
        # entities and decisions found ahead in the runtime's classification threads
        # (read-only here)
        self.entity_cache = EntityCache()
        self.decision_cache = DecisionCache()

    # -- helpers --------------------------------------------------------------------------
    def _fallback(self, text: str) -> str:
        return fallback_text(self.skills, self.fallback_text, text)

    def _today(self) -> dt.date:
        return self.today or dt.date.fromtimestamp(self.clock())

    def _now(self) -> dt.datetime:
        now = dt.datetime.fromtimestamp(self.clock())
        return dt.datetime.combine(self._today(), now.time()) if self.today else now

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def entities(self, skill, text: str) -> list:
        """The entities of ``text`` for ``skill`` (rule + system + model, overlaps resolved),
        dates resolved against the engine's today."""
        if not text.strip():
            return []
        today = self._today()
        cached = self.entity_cache.get(skill, text, today)
        return cached if cached is not None else find_entities(skill, text, today, self._now())

    @staticmethod
    def _long_answer(text: str) -> bool:
        return _long_answer(text)

    @staticmethod
    def _seed(message: Message, context: dict, extra: object = "") -> str:
        return _seed(message, context, extra)

    def _flow_variables(self, skill, state, message: Message, context: dict) -> dict:
        declared_all = {name: None for name in skill.manifest.slots}
        return self._variables(
            message,
            {**declared_all, **state.slots},
            context,
            state.intent,
            1.0,
            entities=state.entities,
        )

    @staticmethod
    def _variables(
        message: Message,
        slots: dict,
        context: dict,
        intent: str,
        confidence: float,
        api=None,
        entities: dict | None = None,
    ) -> dict:
        return {
            "message": {
                "text": message.text,
                "sender_id": message.sender_id,
                "sender_nick": message.sender_nick,
                "conversation_type": message.conversation_type,
                "conversation_id": message.conversation_id,
                "msgtype": message.msgtype,
                "attachments": [dict(a) for a in message.attachments],
            },
            "sender": message.sender_nick or message.sender_id,
            "slots": dict(slots),
            # per slot, the entity its value came from: {text, value, entity, start, end, ...};
            # None for a slot no entity gave (a suggestion confirmed, an alias), as in slots
            "entities": {**{name: None for name in slots}, **(entities or {})},
            "context": {k: v for k, v in context.items() if k != "flow"},
            "intent": intent,
            "confidence": round(confidence, 3),
            "api": api or {},
        }

    def route(self, text: str):
        """(skill, Decision) of the winning skill, or (None, best Decision or None)."""
        hit = self.decision_cache.route(text, self.options)
        return hit if hit is not None else route(self.skills, text, self.options)

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
        self._after(reply, message, context)
        reply.latency_ms = (time.perf_counter() - t0) * 1000
        hist = context.setdefault("history", [])
        hist.append({"user": message.text[:200], "bot": reply.text[:200], "intent": reply.intent})
        del hist[:-HISTORY]
        reply.state = dict(context.get("flow") or {})
        return reply

    async def refuse(
        self, message: Message, context: dict, reason: Refusal, limit: int = 0
    ) -> Reply:
        """The reply to a message the pipeline refuses before understanding it (empty once
        cleaned, over ``limit`` characters), in the conversation's language; a pending form
        stays as it was and its question is asked again. ``context`` is not changed."""
        return await refusal_reply(self, message, context, reason, limit)

    def _after(self, reply: Reply, message: Message, context: dict) -> None:
        """Count misunderstandings in a row; at ``handover_after`` offer a person."""
        misses = count_miss(context, reply)
        after = self.options.handover_after
        if (
            after
            and misses >= after
            and (self.options.handover_contact or self.options.handover_group)
        ):
            lang = self._lang_of(message.text, context)
            offer = self._handover(message, context, lang, asked=False)
            reply.text = f"{reply.text}\n{offer.text}"
            if isinstance(reply.card, dict):
                reply.card = {**reply.card, "text": reply.text}
            reply.followups = [*reply.followups, *offer.followups]
            context.pop("misses", None)

    def _handover(self, message: Message, context: dict, lang: str, asked: bool) -> Reply:
        return handover_reply(
            lang,
            self.options.handover_contact,
            self.options.handover_group,
            message.sender_nick or message.sender_id,
            [*context.get("history", []), {"user": message.text[:200]}],
            asked,
        )

    def _lang_of(self, text: str, context: dict) -> str:
        """Language of the bot's own words: the operator's ``reply_language``, else the
        message's, or for text without words (a command, emoji, digits) the conversation's
        so far, else the loaded skills' (Chinese first)."""
        langs = {lang for s in self.skills for lang in s.manifest.languages}
        default = "zh" if "zh" in langs or not langs else "en"
        return reply_language(
            text, context.get("history", []), self.options.reply_language, default
        )

    def _skill_with_intent(self, name: str):
        return skill_with_intent(self.skills, name)

    async def _small_talk(self, kind: SmallTalk, message: Message, context: dict) -> Reply:
        """A skill's own intent of that name overrides the built-in answer (a skill of the
        reply's language: an English "help" card does not answer 你能做什么)."""
        lang = self._lang_of(message.text, context)
        skill = self._skill_with_intent(kind.value)
        if skill is not None and lang not in skill.manifest.languages:
            skill = None
        if skill is not None:
            decision = Decision(
                kind.value, 1.0, [(kind.value, 1.0)], "rule", f"smalltalk:{kind.value}"
            )
            return await self._start(skill, decision, message, context)
        return Reply(
            text=small_talk_reply(kind, lang, self.skills),
            intent=kind.value,
            confidence=1.0,
            source="smalltalk",
        )

    def _suggest(self, reply: Reply, lang: str) -> Reply:
        return suggest(reply, lang, self.skills)

    def _fallback_reply(self, text: str, decision, context: dict, note: str = "") -> Reply:
        lang = self._lang_of(text, context)
        return fallback_reply(
            text,
            decision,
            lang,
            fallback_text(self.skills, self.fallback_text, text, lang),
            note,
            self.skills,
        )

    async def _handle(self, message: Message, context: dict) -> Reply:
        text = message.text
        now_ms = int(self.clock() * 1000)
        note = ""
        flow = context.get("flow")
        if flow:
            skill, spec = flow_spec(self._by_id, flow)
            if spec is None:
                end_flow(context, FlowEnd.SKILL_GONE, now_ms)
                note = GONE[_lang(text)]
            elif flow_expired(flow, spec, now_ms):
                end_flow(context, FlowEnd.TIMEOUT, now_ms)
                note = EXPIRED[_lang(text)]
            else:
                reply = await continue_flow(self, skill, spec, message, context)
                if reply is not None:
                    return reply
        elif (stale := stale_answer(self, message, context)) is not None:
            return stale
        reply = await self._decide_and_start(message, context)
        if note:
            reply.text = f"{note}\n{reply.text}"
        return reply

    async def _decide_and_start(self, message: Message, context: dict) -> Reply:
        """A new request: the pick of a pending clarifying question, a request for a person,
        else the arbitration across skills (a near-tie asks which was meant), then the
        winner's response, small talk, an acknowledgement or the out-of-scope reply."""
        text = message.text
        pending = context.pop("clarify", None)
        picked = resolve_pick(pending, text, self.skills, self.options) if pending else None
        if picked is not None:  # the original request, as the option picked reads it
            skill, decision, original = picked
            return await self._start(
                skill, decision, dataclasses.replace(message, text=original), context
            )
        if is_handover_request(text):
            return self._handover(message, context, self._lang_of(text, context), asked=True)
        arb = self.decision_cache.arbitration(text, self.options) or arbitrate(
            self.skills, text, self.options
        )
        if is_bare_cancel(text) and (arb.skill is None or arb.decision.source != "rule"):
            # a model's "cancel my room" is not what a bare 算了 / cancel means (a skill's
            # own rule for the word still wins)
            return nothing_to_cancel_reply(self._lang_of(text, context))
        if arb.clarify:
            return clarify_reply(arb.clarify, arb.text, self._lang_of(text, context), context)
        if arb.skill is not None:  # a skill that claims the message overrides small talk
            if arb.text != text:  # a long message: the skill gets its asking sentence(s)
                message = dataclasses.replace(message, text=arb.text)
            return await self._start(arb.skill, arb.decision, message, context)
        if (kind := match_small_talk(text)) is not None:
            return await self._small_talk(kind, message, context)
        if is_acknowledgement(text):
            return ack_reply(self._lang_of(text, context))
        return self._fallback_reply(text, arb.decision, context)

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
        entities = self.entities(skill, message.text)
        slots, found = first_values(
            message.text, entities, skill.manifest.slots, list(skill.manifest.slots)
        )
        spec = resp.get("flow")
        state = None
        if spec:
            missing = missing_slots(spec, slots)
            if missing or spec.get("confirm"):
                state = new_flow(
                    skill.manifest.id,
                    decision.intent,
                    slots,
                    missing[0]["name"] if missing else "",
                    self._now_ms(),
                    entities=found,
                    lang=self._lang_of(message.text, context),
                )
                if not missing:
                    state["awaiting"] = Awaiting.CONFIRM.value
        if state is not None:
            from .dialogue import FlowState
            from .flow import _ask

            context["flow"] = state
            ask = await _ask(
                self, skill, spec, FlowState.from_dict(state), message, context, seed=""
            )
            reply = Reply(
                text=ask,
                skill_id=skill.manifest.id,
                intent=decision.intent,
                confidence=decision.confidence,
                alternatives=decision.alternatives,
                source=decision.source,
                rule=decision.rule,
                slots=dict(slots),
            )
        else:
            if spec:  # a form every slot of which the first message gave: done at once
                context["flow"] = new_flow(
                    skill.manifest.id, decision.intent, slots, "", self._now_ms()
                )
                end_flow(context, FlowEnd.COMPLETED, self._now_ms())
            reply = await self._execute(
                skill,
                decision.intent,
                resp,
                slots,
                message,
                context,
                decision.confidence,
                entities=found,
            )
            reply.alternatives, reply.source, reply.rule = (
                decision.alternatives,
                decision.source,
                decision.rule,
            )
        reply.entities = [{**e.to_dict(), "text": e.text_in(message.text)} for e in entities]
        return reply

    async def _execute(
        self, skill, intent, resp, slots, message, context, confidence, entities=None
    ) -> Reply:
        base = dict(
            skill_id=skill.manifest.id, intent=intent, confidence=confidence, slots=dict(slots)
        )
        api, error = None, None
        lang = self._lang_of(message.text, context)
        fallback = (
            choose_variant(localized(resp.get("fallback"), lang) or "", _seed(message, context))
            or skill.manifest.fallback
            or self._fallback(message.text)
        )
        declared = {name: None for name in skill.manifest.slots}
        variables = self._variables(
            message, {**declared, **slots}, context, intent, confidence, entities=entities
        )
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
                    followups=normalize_all(
                        out.get("notify"), f"{skill.manifest.id} handler {resp['handler']}"
                    ),
                    **base,
                )
            text = (
                await arender(
                    choose_variant(
                        localized(resp["template"], lang),
                        _seed(message, context),
                    ),
                    variables,
                )
                if "template" in resp
                else ""
            )
            card = None
            if "card" in resp:
                card = await arender_tree(resp["card"], variables)
            reply = Reply(
                text=text,
                format=resp.get("format", "card" if card else "text"),
                card=card,
                title=await arender(
                    choose_variant(localized(resp.get("title", ""), lang), "") or "", variables
                ),
                **base,
            )
            if resp.get("notify"):  # after the reply rendered: a follow-up never costs it
                where = f"{skill.manifest.id} intents.{intent}"
                reply.followups = await render_notify(resp["notify"], variables, where)
            return reply
        except HttpActionError as exc:
            error = f"http: {exc}"
        except asyncio.TimeoutError:
            error = f"timeout: response took longer than {self.handler_timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - a failing response falls back
            error = f"{type(exc).__name__}: {exc}"
        return Reply(
            text=await arender(fallback, variables) if "{" in fallback else fallback,
            error=error,
            **{**base, "confidence": confidence},
        )


def _seed(message: Message, context: dict, extra: object = "") -> str:
    """Variant choice: varied along a conversation, but the same for a replayed one."""
    return f"{message.conversation_id}|{len(context.get('history', []))}|{message.text}|{extra}"
