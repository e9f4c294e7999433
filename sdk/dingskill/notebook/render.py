"""Safe HTML for chat bubbles: escaped text, a small markdown subset, cards."""

from __future__ import annotations

import html
import re

__all__ = ["markdown_to_html", "bubble_html", "highlight_entities", "CSS"]

CSS = """
<style>
.ds-chat{font-family:system-ui,-apple-system,'PingFang SC','Noto Sans CJK SC',sans-serif;font-size:14px;
 max-height:420px;overflow-y:auto;padding:8px;background:#f3f5f7;border-radius:8px;display:flex;flex-direction:column-reverse}
.ds-chat-inner{display:flex;flex-direction:column}
.ds-row{display:flex;margin:4px 0}
.ds-row.user{justify-content:flex-end}
.ds-bubble{max-width:75%;padding:8px 12px;border-radius:12px;line-height:1.45;white-space:normal}
.ds-row.user .ds-bubble{background:#2f7cf6;color:#fff;border-bottom-right-radius:4px}
.ds-row.bot .ds-bubble{background:#fff;color:#1f2329;border:1px solid #e1e4e8;border-bottom-left-radius:4px}
.ds-meta{font-size:11px;color:#646a73;margin-top:4px}
.ds-meta code{background:#eef0f2;padding:0 3px;border-radius:3px}
.ds-card{border:1px solid #d0d7de;border-radius:8px;padding:8px;background:#fafbfc}
.ds-card .ds-btn{display:inline-block;margin:4px 4px 0 0;padding:2px 10px;border:1px solid #2f7cf6;border-radius:12px;color:#2f7cf6}
.ds-who{font-size:11px;color:#8f959e;margin:0 6px}
.ds-error{color:#b42318}
.ds-ent{background:#fff3bf;color:#1f2329;border-radius:3px;padding:0 2px}
.ds-ent::after{content:attr(data-entity);font-size:9px;color:#8a6d00;margin-left:2px;vertical-align:sub}
</style>
"""


def markdown_to_html(text: str) -> str:
    """A safe subset: headings, bold, italics, inline code, links (http/https), lists."""
    out, in_list = [], False
    for line in html.escape(text).splitlines():
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        item = re.match(r"^\s*[-*]\s+(.*)$", line)
        if item and not in_list:
            out.append("<ul>")
            in_list = True
        if not item and in_list:
            out.append("</ul>")
            in_list = False
        if m:
            level = min(len(m.group(1)) + 2, 6)
            line = f"<h{level} style='margin:2px 0'>{m.group(2)}</h{level}>"
        elif item:
            line = f"<li>{item.group(1)}</li>"
        else:
            line = line + "<br>"
        line = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", line)
        line = re.sub(r"(?<!\*)\*(?!\*)(.+?)\*", r"<i>\1</i>", line)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(
            r"\[([^\]]+)\]\((https?://[^)\s]+)\)",
            r"<a href='\2' target='_blank' rel='noopener'>\1</a>",
            line,
        )
        out.append(line)
    if in_list:
        out.append("</ul>")
    return "".join(out)


def _card_html(card: dict) -> str:
    title = html.escape(str(card.get("title", "")))
    body = markdown_to_html(str(card.get("text", "")))
    buttons = "".join(
        f"<span class='ds-btn'>{html.escape(str(b.get('title', '')))}</span>"
        for b in card.get("buttons", [])
    )
    return f"<div class='ds-card'><b>{title}</b><div>{body}</div><div>{buttons}</div></div>"


def flow_state_text(state: dict) -> str:
    """The pending form in a few words: the slot asked for, or what 是 / 否 would answer."""
    if not state:
        return ""
    awaiting = state.get("awaiting", "slot")
    if awaiting == "confirm":
        what = "是/否 to the summary (confirm)"
    elif awaiting == "suggestion":
        s = state.get("suggestion") or {}
        what = f"是/否 to {s.get('slot')}={s.get('value')}? (typo)"
    elif awaiting == "offer":
        what = "是/否 to leaving the form for the new request"
    else:
        what = str(state.get("pending", ""))
    filled = ", ".join(f"{k}={v}" for k, v in (state.get("slots") or {}).items())
    return f"{what} [{state.get('intent', '')}: {filled or 'nothing filled'}]"


def commands_text(commands: list[dict]) -> str:
    """The commands a message became within a form: set_slot(days=3), digression(oos)..."""
    out = []
    for c in commands:
        arg = ""
        if c.get("slot") is not None:
            arg = c["slot"] + (f"={c['value']}" if c.get("value") is not None else "")
        elif c.get("digression"):
            arg = c["digression"] + (f" {c['intent']}" if c.get("intent") else "")
        out.append(f"{c.get('act')}({arg})")
    return ", ".join(out)


def highlight_entities(text: str, entities: list[dict]) -> str:
    """``text`` escaped, each entity's span marked with its type (the value, confidence and
    source in the tooltip). The type label is drawn by CSS from ``data-entity``, so the
    bubble's text stays exactly what the user typed (copy, search, screen readers). Spans
    outside the text or overlapping an earlier one are skipped."""
    out, pos = [], 0
    for e in sorted(entities or [], key=lambda e: (int(e["start"]), -int(e["end"]))):
        s, t = int(e["start"]), int(e["end"])
        if not (pos <= s < t <= len(text)):
            continue
        etype = html.escape(str(e.get("entity", "")))
        tip = f"{e.get('entity')} = {e.get('value')!s}"
        if e.get("confidence") is not None:
            tip += f" ({float(e['confidence']):.2f}, {e.get('source', '')})"
        out.append(html.escape(text[pos:s]))
        out.append(
            f"<mark class='ds-ent' data-entity='{etype}' title='{html.escape(tip, quote=True)}'>"
            f"{html.escape(text[s:t])}</mark>"
        )
        pos = t
    out.append(html.escape(text[pos:]))
    return "".join(out)


def bubble_html(turn: dict) -> str:
    if turn["role"] == "user":
        who = html.escape(turn.get("sender", ""))
        chat = " · 群聊" if turn.get("conversation_type") == "group" else ""
        return (
            f"<div class='ds-row user'><span class='ds-who'>{who}{chat}</span>"
            f"<div class='ds-bubble'>{highlight_entities(turn['text'], turn.get('entities'))}"
            "</div></div>"
        )
    if turn.get("format") == "card" and turn.get("card"):
        content = _card_html(turn["card"])
    elif turn.get("format") == "markdown":
        content = markdown_to_html(turn["text"])
    else:
        content = html.escape(turn["text"]).replace("\n", "<br>")
    alts = ", ".join(f"{html.escape(str(i))} {p:.2f}" for i, p in turn.get("alternatives", []))
    rule = f" · rule <code>{html.escape(turn['rule'])}</code>" if turn.get("rule") else ""
    slots = html.escape(", ".join(f"{k}={v}" for k, v in (turn.get("slots") or {}).items())) or "–"
    state = html.escape(flow_state_text(turn.get("state") or {})) or "–"
    cmds = html.escape(commands_text(turn.get("commands") or []))
    cmds = f" · commands: <code class='ds-commands'>{cmds}</code>" if cmds else ""
    ents = ", ".join(
        f"{html.escape(str(e.get('value')))}/{html.escape(str(e.get('entity')))}"
        for e in turn.get("entities") or []
    )
    ents = f" · entities: {ents}" if ents else ""
    err = (
        f"<div class='ds-error'>error: {html.escape(turn['error'])}</div>"
        if turn.get("error")
        else ""
    )
    for f in turn.get("followups") or []:  # what the runtime would send after the reply
        to = f"user {f['user']}" if f.get("user") else f"group {f.get('group', '')}"
        err += (
            f"<div class='ds-followup'>→ follow-up to {html.escape(to)} (sent by the runtime): "
            f"{html.escape(str(f.get('text', '')))}</div>"
        )
    meta = (
        f"<div class='ds-meta' data-intent='{html.escape(turn['intent'])}'>#{turn['index']} intent "
        f"<code class='ds-intent'>{html.escape(turn['intent'])}</code> {turn['confidence']:.2f} · via "
        f"{html.escape(turn['source'])}{rule} · top 3: {alts or '–'}{ents} · slots: {slots} · waiting for: {state}{cmds}"
        f" · {turn['latency_ms']:.1f} ms{err}</div>"
    )
    return f"<div class='ds-row bot'><div class='ds-bubble'>{content}{meta}</div></div>"
