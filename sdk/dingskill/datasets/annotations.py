"""Inline entity markup in utterances: parse it away, keep the spans, write it back.

Accepted forms (Rasa's, also in a CSV text column):

- ``[西湖厅](room)`` — the type; the value is the marked text (or its synonym's canonical value);
- ``[west lake](room:西湖厅)`` — type and value (Rasa 1 shorthand);
- ``[west lake]{"entity": "room", "value": "西湖厅"}`` — a JSON object with ``entity`` and
  optionally ``value`` (other keys such as ``role`` / ``group`` are ignored).

Offsets are into the text with the markup removed, ``end`` exclusive.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["AnnotationIssue", "parse_inline", "to_inline", "ENTITY_TYPE"]

# an entity type name: letters (any script), digits, _ - . ; must not start with a digit or '-'
ENTITY_TYPE = re.compile(r"^[^\W\d][\w.\-]*$", re.UNICODE)

_MARK = re.compile(
    r"\[(?P<text>[^\[\]\n]+)\]"
    r"(?:\((?P<paren>[^()\n]*)\)|(?P<brace>\{[^{}\n]*\}))"
)
# text that still looks like markup once the valid forms are gone
_LEFTOVER = re.compile(r"\[[^\[\]\n]*\]\s*[({]|\[[^\]\n]*\]\(")


@dataclass(frozen=True)
class AnnotationIssue:
    """A piece of markup that could not be read; ``field`` names where (``entities[i]``)."""

    field: str
    message: str


def parse_inline(marked: str) -> tuple[str, list[dict], list[AnnotationIssue]]:
    """Plain text, entities ``{start, end, entity, value}`` (``value`` None when the markup
    gives none: the caller resolves synonyms) and the problems found."""
    out: list[str] = []
    entities: list[dict] = []
    issues: list[AnnotationIssue] = []
    pos = 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos : m.start()]
        out.append(before)
        length += len(before)
        span_text = m.group("text")
        field = f"entities[{len(entities)}]"
        etype, value, problem = _read_tail(m)
        if problem:
            issues.append(AnnotationIssue(field, f"{problem} in {m.group(0)!r}"))
            out.append(m.group(0))  # keep the unreadable markup as text: the row stays visible
            length += len(m.group(0))
            pos = m.end()
            continue
        entities.append(
            {"start": length, "end": length + len(span_text), "entity": etype, "value": value}
        )
        out.append(span_text)
        length += len(span_text)
        pos = m.end()
    out.append(marked[pos:])
    text = "".join(out)
    if not issues and _LEFTOVER.search(text):
        issues.append(
            AnnotationIssue(
                "text",
                f"looks like entity markup but is not [text](type) or "
                f'[text]{{"entity": "type"}}: {_LEFTOVER.search(text).group(0)!r}',
            )
        )
    return text, entities, issues


def _read_tail(m: re.Match) -> tuple[str, object, str | None]:
    paren, brace = m.group("paren"), m.group("brace")
    if paren is not None:
        etype, sep, value = paren.partition(":")
        etype = etype.strip()
        if not ENTITY_TYPE.match(etype):
            return "", None, f"bad entity type {etype!r} (letters, digits, _ . -)"
        return etype, (value.strip() if sep else None), None
    try:
        obj = json.loads(brace)
    except json.JSONDecodeError as exc:
        return "", None, f"invalid JSON ({exc.msg})"
    if not isinstance(obj, dict) or not isinstance(obj.get("entity"), str):
        return "", None, 'expected {"entity": "type", "value": ...}'
    etype = obj["entity"].strip()
    if not ENTITY_TYPE.match(etype):
        return "", None, f"bad entity type {etype!r} (letters, digits, _ . -)"
    return etype, obj.get("value"), None


def to_inline(text: str, entities: list[dict]) -> str:
    """Write ``entities`` back into ``text`` as markup (``[t](type)`` when the value is the
    text itself, else the JSON form). Overlapping entities: the later ones are dropped."""
    out, pos = [], 0
    for e in sorted(entities, key=lambda e: (int(e["start"]), int(e["end"]))):
        s, t = int(e["start"]), int(e["end"])
        if s < pos:
            continue
        piece = text[s:t]
        out.append(text[pos:s])
        value = e.get("value")
        if value is None or value == piece:
            out.append(f"[{piece}]({e['entity']})")
        else:
            tail = json.dumps({"entity": e["entity"], "value": value}, ensure_ascii=False)
            out.append(f"[{piece}]{tail}")
        pos = t
    out.append(text[pos:])
    return "".join(out)
