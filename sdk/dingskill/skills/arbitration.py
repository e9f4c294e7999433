"""Arbitration: which loaded skill (and which of its intents) a message goes to.

One decision across all loaded skills and languages, on one scale:

- a trigger rule of any skill wins outright;
- every skill's intent model judges the message, whatever its language (the default encoder
  is multilingual: an English request reaches a Chinese-only skill that can serve it). Each
  model's confidence is its temperature-calibrated probability (``nlu/calibration.py``,
  fitted on held-out folds of the skill's own data), so the skills' candidates are compared
  as they are. A candidate counts when its skill's own out-of-scope threshold and novelty
  gate let it through;
- a skill that declares the message's language is preferred: one that does not wins only
  when it is clearly more confident (``foreign_margin``);
- small-talk and closing intents of a model (greet, goodbye, thanks, ...) need real
  confidence (``small_talk_confidence``) and a skill of the message's language: a
  low-confidence "goodbye" is not an answer, nor an English "Bye" to a Chinese message;
- near-ties (the runner-up within ``clarify_margin`` of a winner under ``clarify_below``)
  are a clarifying question with quick replies rather than a guess;
- two skills each sure of its reading (both at ``clarify_below`` or more) is a conflict
  their confidences cannot settle: each is calibrated over its own intents, not on whether
  the message belongs to its domain at all (hr-assistant is 0.99 sure that 需要一个正版Visio
  is office supplies: it has never seen a software request). The skill whose own training
  examples lie nearest the message takes it: the novelty gate's similarity to its nearest
  example, above its own gate (``IntentClassifier.closeness_normalized``);
- a message of several sentences is decided on the sentence(s) that ask (a long message
  whose question comes last is served); at most a handful of extra decisions are made.

:func:`arbitrate` returns an :class:`Arbitration`; :func:`route` keeps the older
``(skill, Decision)`` shape."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ..nlu.normalize import normalize_text
from ..nlu.stack import ModelStack
from ..text import detect_language

__all__ = [
    "ArbitrationOptions",
    "Arbitration",
    "Candidate",
    "SMALL_TALK_INTENTS",
    "arbitrate",
    "route",
    "sentences",
    "asks",
]

# intent names that are small talk or closings when a model (not a rule) predicts them
SMALL_TALK_INTENTS = frozenset(
    {
        "greet",
        "greeting",
        "hello",
        "goodbye",
        "bye",
        "thanks",
        "thank_you",
        "bot_identity",
        "capabilities",
        "help",
        "chitchat",
        "small_talk",
        "affirm",
        "deny",
    }
)


@dataclass(frozen=True)
class ArbitrationOptions:
    """The arbitration's settings (the runtime's ``dialogue`` configuration section)."""

    small_talk_confidence: float = 0.8
    clarify_below: float = 0.8
    clarify_margin: float = 0.3
    foreign_margin: float = 0.2
    # messages longer than this many characters are handed to the skill as the sentence(s)
    # the decision was made on (a long story's dates do not fill the request's slots)
    long_message: int = 200
    max_sentences: int = 3  # sentences judged on their own, last first
    # the bot's own words (fallback, clarifying question, handover): "auto" (the user's
    # language), "zh" or "en"; a skill's responses are in the language its author wrote
    reply_language: str = "auto"
    # after this many out-of-scope replies in a row, offer a person (0: never)
    handover_after: int = 3
    handover_contact: str | None = None  # who to reach: a name, phone, DingTalk group name
    handover_group: str | None = None  # openConversationId told (follow-up) who needs help


@dataclass(frozen=True)
class Candidate:
    """One skill's in-scope reading of the message."""

    skill: object
    intent: str
    confidence: float
    native: bool  # the skill declares the message's language
    decision: object  # the skill's Decision (alternatives for suggestions)

    @property
    def key(self) -> tuple[str, str]:
        return (self.skill.manifest.id, self.intent)


@dataclass
class Arbitration:
    """The outcome for one message: a winner, or a near-tie to clarify, or nothing."""

    skill: object | None = None
    decision: object | None = None  # the winner's Decision, else the best one seen
    clarify: list[Candidate] = field(default_factory=list)  # >= 2 options on a near-tie
    text: str = ""  # what was decided on (the asking sentence(s) of a long message)

    @property
    def served(self) -> bool:
        return self.skill is not None


_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s+")
_ASK_ZH = re.compile(
    r"[吗呢？?]|怎么|如何|什么|哪|几|多少|能不能|能否|可以|可不可以|请|帮我|帮忙|我想|我要|"
    r"我需要|麻烦|是否|有没有|给我|查一?下"
)
_ASK_EN = re.compile(
    r"\?|^\s*(how|what|where|when|why|who|which|can|could|would|will|is|are|do|does|"
    r"please|help)\b|\b(i want|i need|i'd like|i would like|please|help me)\b",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    """``text`` cut after sentence-ending punctuation and line breaks (non-blank pieces)."""
    return [s.strip() for s in _SPLIT.split(text) if s and s.strip()]


def asks(sentence: str) -> bool:
    """Whether ``sentence`` reads as a question or a request."""
    return bool(_ASK_ZH.search(sentence) or _ASK_EN.search(sentence))


def _threshold(skill) -> float:
    t = getattr(skill.model, "threshold_", None)
    return 0.0 if t is None else float(t)


_STACKS: dict[tuple, tuple] = {}  # (model, coef) ids -> (the models and coefs, ModelStack)
_STACKS_MAX = 8


def _stack(skills: list):
    """The :class:`~dingskill.nlu.stack.ModelStack` of the skills' models (built once per set
    of fitted models, kept for the last few sets), or None when they do not stack."""
    models = [s.model for s in skills]
    key = tuple((id(m), id(getattr(m, "coef_", None))) for m in models)
    hit = _STACKS.get(key)
    if hit is not None:
        return hit[1]
    if not ModelStack.fits(models):
        return None
    stack = ModelStack(models)
    if len(_STACKS) >= _STACKS_MAX:
        _STACKS.pop(next(iter(_STACKS)))
    _STACKS[key] = ([(m, m.coef_) for m in models], stack)  # the ids stay those objects'
    return stack


def clear_caches() -> None:
    """Forget the stacked models' cached readings (to time cold decisions)."""
    for _, stack in list(_STACKS.values()):
        stack.clear_cache()


def _decisions(skills: list, text: str, norm: str) -> dict:
    """Each skill's own Decision (None: its novelty gate turned the message away, on the
    path that does not stack) for a message no rule of any skill matched: the stacked
    models' one reading when they stack, else each skill's ``decide`` behind its gate."""
    stack = _stack(skills)
    if stack is not None:
        # the stack's reading is each skill's Decision (tests/skills/test_arbitration.py
        # holds it to decide's); it is also kept as the model's own view of the text, so
        # that a later decide (the entity step, the runtime's loop after the classification
        # threads routed ahead) returns this very Decision
        out = {}
        for s, d in zip(skills, stack.decisions(norm), strict=True):
            s.model.remember_reading(norm, d)
            out[s.manifest.id] = d
        return out
    return {s.manifest.id: None if s.beyond_gate(text) else s.decide(text) for s in skills}


def _rule(skill, text: str, norm: str):
    if hasattr(skill.model, "decide_normalized"):  # takes the normalised text as well
        return skill.model.match_rule(norm, normalized=True)
    return skill.match_rule(text)


def _owner(skill, intent: str, by_id: dict):
    """(skill, intent) that owns ``intent``'s requests when loaded (the intent's
    ``defer_to: SKILL_ID/INTENT``), else None."""
    spec = skill.manifest.intents.get(intent)
    target = spec.get("defer_to") if isinstance(spec, dict) else None
    if not target:
        return None
    sid, _, t_intent = target.partition("/")
    other = by_id.get(sid)
    if other is None or other is skill or t_intent not in other.manifest.intents:
        return None
    return other, t_intent


def _candidates(skills: list, text: str, options: ArbitrationOptions):
    """(rule winner or None, in-scope candidates best first, best Decision seen).

    The best Decision seen is the most confident in-scope one (the first on a tie), else
    the most confident out-of-scope one: what the out-of-scope reply reports."""
    lang = detect_language(text)
    norm = normalize_text(text)  # once, for every skill
    found: list[Candidate] = []
    for skill in skills:  # a rule of any skill wins outright (no model runs)
        d = _rule(skill, text, norm)
        if d is not None:
            return (skill, d), [], d
    best = best_oos = None
    by_id = {s.manifest.id: s for s in skills}
    decisions = _decisions(skills, text, norm)
    for skill in skills:
        d = decisions[skill.manifest.id]
        if d is None:
            continue
        if d.intent == "oos":
            if best_oos is None or d.confidence > best_oos.confidence:
                best_oos = d
            continue  # neither its top intent nor its runner-up is a candidate
        if best is None or d.confidence > best.confidence:
            best = d
        native = lang == "mixed" or lang in skill.manifest.languages
        floor = _threshold(skill)
        for rank, (intent, p) in enumerate(d.alternatives[:2]):
            if intent == "oos" or (rank == 1 and p < floor):
                continue
            if intent in SMALL_TALK_INTENTS and (not native or p < options.small_talk_confidence):
                continue  # small talk is confident and in the user's language, or none
            owner = _owner(skill, intent, by_id)
            if owner is not None:  # another loaded skill owns this request: its candidate
                target, t_intent = owner
                own = decisions[target.manifest.id]
                if own is not None and own.intent != "oos":  # it knows which of its intents
                    t_intent, p = own.intent, max(p, own.confidence)
                t_native = lang == "mixed" or lang in target.manifest.languages
                moved = dataclasses.replace(d, intent=t_intent, alternatives=[(t_intent, p)])
                found.append(Candidate(target, t_intent, float(p), t_native, moved))
                continue
            found.append(Candidate(skill, intent, float(p), native, d))
    found.sort(key=lambda c: -c.confidence)
    return None, found, best if best is not None else best_oos


def _nearest_domain(
    winner: Candidate, pool: list, text: str, options: ArbitrationOptions
) -> Candidate:
    """Among the candidates of ``pool`` sure of their reading (``clarify_below`` or more),
    from two skills or more: the one whose skill's training examples lie nearest ``text``
    (its closeness above its own novelty gate; the more confident on a tie). ``winner``
    when only one skill is sure, or when a sure skill's model has no gate to measure it."""
    sure = [c for c in pool if c.confidence >= options.clarify_below]
    if len({c.skill.manifest.id for c in sure}) < 2:
        return winner
    norm = normalize_text(text)
    scored = []
    for c in sure:
        measure = getattr(c.skill.model, "closeness_normalized", None)
        closeness = measure(norm) if measure is not None else None
        if closeness is None:
            return winner
        scored.append((closeness, c))
    return max(scored, key=lambda pair: pair[0])[1]  # the first (more confident) on a tie


def _decide(skills: list, text: str, options: ArbitrationOptions) -> Arbitration:
    rule, found, best = _candidates(skills, text, options)
    if rule is not None:
        return Arbitration(rule[0], rule[1], text=text)
    if not found:
        return Arbitration(None, best, text=text)
    natives = [c for c in found if c.native]
    foreign = [c for c in found if not c.native]
    winner = natives[0] if natives else foreign[0]
    if (
        natives
        and foreign
        and foreign[0].confidence > natives[0].confidence + options.foreign_margin
    ):
        winner = foreign[0]
    if winner.intent in SMALL_TALK_INTENTS:
        # small talk is what is left when nothing asks: a request another skill reads at the
        # small-talk bar takes the message ("my computer won't start" is no call for help)
        task = next(
            (
                c
                for c in found
                if c.intent not in SMALL_TALK_INTENTS
                and c.confidence >= options.small_talk_confidence
            ),
            None,
        )
        if task is not None:
            winner = task
    pool = natives if winner.native else found
    if winner.confidence >= options.clarify_below:
        winner = _nearest_domain(winner, pool, text, options)
    runner = next((c for c in pool if c.key != winner.key), None)
    if (
        runner is not None
        and winner.confidence < options.clarify_below
        and runner.confidence >= winner.confidence - options.clarify_margin
    ):
        return Arbitration(None, winner.decision, clarify=[winner, runner], text=text)
    decision = winner.decision
    if decision.intent != winner.intent:  # the runner-up of a skill is never a winner alone
        return Arbitration(None, decision, text=text)
    return Arbitration(winner.skill, decision, text=text)


def arbitrate(skills: list, text: str, options: ArbitrationOptions | None = None) -> Arbitration:
    """The decision for ``text`` across ``skills`` (see the module's docstring)."""
    options = options or ArbitrationOptions()
    parts = sentences(text)
    if len(parts) <= 1:
        return _decide(skills, text, options)
    tried: set[str] = set()
    asking = [p for p in parts if asks(p)]
    # the sentence(s) that ask, last first; then the whole message (when short); when no
    # sentence asks, the last sentences: the first in-scope decision (or near-tie) wins
    order = asking[::-1][: options.max_sentences]
    if len(text) <= options.long_message:
        order.append(text)
    if not asking:  # nothing reads as a question: the last sentences, last first
        order += parts[::-1][: options.max_sentences]
    first = None
    for piece in order:
        if piece in tried:
            continue
        tried.add(piece)
        out = _decide(skills, piece, options)
        if first is None:
            first = out
        if out.served or out.clarify:
            if piece != text and len(text) <= options.long_message:
                out.text = text  # short: the whole message goes to the skill (its slots)
            return out
    # nothing in scope: out of scope, with what the asking sentence came closest to
    return first if first is not None else _decide(skills, text, options)


def route(skills: list, text: str, options: ArbitrationOptions | None = None):
    """(skill, Decision) of the winning skill, or (None, best Decision or None). A near-tie
    counts as no winner here (the flow engine's digression checks use this)."""
    out = _decide(skills, text, options or ArbitrationOptions())
    return (out.skill, out.decision) if out.served else (None, out.decision)
