"""``ChatWidget``: talk to skills inside a notebook through the runtime's own message path,
see why each answer was given, fix wrong turns in place, retrain, and save regression cases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from ..runtime.local import LocalPipeline
from .render import CSS, bubble_html

__all__ = ["ChatWidget"]


class ChatWidget(widgets.VBox):
    """A simulated DingTalk chat with one skill or several.

    >>> chat = ChatWidget([Skill.load("skills/hr-assistant")])   # doctest: +SKIP
    >>> chat                                                     # shows the widget
    >>> chat.send("我想请假")                                       # or type + Enter
    """

    def __init__(
        self,
        skills,
        sender_id: str = "notebook-user",
        sender_nick: str = "我",
        title: str = "dingskill chat",
        conversation_id: str | None = None,
    ) -> None:
        if not isinstance(skills, list | tuple):
            skills = [skills]
        self.backend = LocalPipeline(list(skills), channel="widget")
        self.conversation_id = conversation_id  # None: one per sender, one for the group
        self.skills = self.backend.skills
        self.transcript: list[dict] = []
        self.corrections = pd.DataFrame(
            columns=["text", "intent", "predicted", "confidence", "sender", "marked_at", "source"]
        )
        self._html = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._html.add_class("ds-transcript")
        self.input = widgets.Text(
            placeholder="输入消息，回车发送 / type a message, Enter to send",
            continuous_update=False,
            layout=widgets.Layout(flex="1"),
        )
        self.input.add_class("ds-input")
        self.input.observe(self._on_enter, names="value")
        self.send_button = widgets.Button(description="发送 Send", button_style="primary")
        self.send_button.on_click(lambda _: self._submit(self.input.value))
        self.sender = widgets.Text(
            value=sender_id, description="sender", layout=widgets.Layout(width="220px")
        )
        self.nick = widgets.Text(
            value=sender_nick, description="nick", layout=widgets.Layout(width="180px")
        )
        self.chat_type = widgets.ToggleButtons(
            options=[("单聊 single", "single"), ("群聊 group", "group")], value="single"
        )
        self.mention = widgets.Checkbox(value=True, description="@bot in group", indent=False)
        self.reset_button = widgets.Button(description="重置 Reset", icon="refresh")
        self.reset_button.on_click(lambda _: self.reset())
        self.turn_pick = widgets.Dropdown(
            description="turn", options=[], layout=widgets.Layout(width="260px")
        )
        self.intent_pick = widgets.Dropdown(
            description="should be",
            options=self.backend.intents(),
            layout=widgets.Layout(width="280px"),
        )
        self.mark_button = widgets.Button(description="标注 Mark", icon="check")
        self.mark_button.on_click(lambda _: self.mark(self.turn_pick.value, self.intent_pick.value))
        self.retrain_button = widgets.Button(
            description="重新训练 Retrain", icon="cogs", button_style="warning"
        )
        self.retrain_button.on_click(lambda _: self.retrain())
        self.case_path = widgets.Text(
            value="conversation_cases.jsonl",
            description="case file",
            layout=widgets.Layout(width="340px"),
        )
        self.save_button = widgets.Button(description="保存用例 Save case", icon="save")
        self.save_button.on_click(lambda _: self.save_case(self.case_path.value))
        self.status = widgets.HTML()
        super().__init__(
            [
                widgets.HTML(f"<b>{title}</b> — {', '.join(s.manifest.id for s in self.skills)}"),
                widgets.HBox(
                    [self.sender, self.nick, self.chat_type, self.mention, self.reset_button]
                ),
                self._html,
                widgets.HBox([self.input, self.send_button]),
                widgets.HBox(
                    [self.turn_pick, self.intent_pick, self.mark_button, self.retrain_button]
                ),
                widgets.HBox([self.case_path, self.save_button]),
                self.status,
            ]
        )
        self._render()

    # -- sending -----------------------------------------------------------------------------
    def _on_enter(self, change) -> None:
        if change["new"]:
            self._submit(change["new"])

    def _submit(self, text: str) -> None:
        text = (text or "").strip()
        if not text:
            return
        self.input.unobserve(self._on_enter, names="value")
        self.input.value = ""
        self.input.observe(self._on_enter, names="value")
        self.send(text)

    def _fields(self) -> dict:
        group = self.chat_type.value == "group"
        return {
            "sender_id": self.sender.value or "notebook-user",
            "sender_nick": self.nick.value,
            "conversation_type": self.chat_type.value,
            "conversation_id": self.conversation_id
            or ("notebook-group" if group else f"notebook-{self.sender.value}"),
        }

    def send(self, text: str) -> dict:
        """Send ``text`` as the current sender; returns the bot turn (also in ``transcript``)."""
        fields = self._fields()
        shown = (
            f"@办公助手 {text}"
            if fields["conversation_type"] == "group" and self.mention.value
            else text
        )
        self.transcript.append(
            {
                "role": "user",
                "text": shown,
                "sender": fields["sender_nick"] or fields["sender_id"],
                "sender_id": fields["sender_id"],
                "conversation_type": fields["conversation_type"],
                "index": len(self.transcript),
            }
        )
        reply = self.backend.send(shown, **fields)
        turn = {
            "role": "bot",
            "index": len(self.transcript),
            "text": reply.text,
            "format": reply.format,
            "card": reply.card,
            "intent": reply.intent,
            "confidence": float(reply.confidence),
            "alternatives": [(str(i), float(p)) for i, p in reply.alternatives],
            "source": reply.source,
            "rule": reply.rule,
            "slots": dict(reply.slots),
            "state": dict(reply.state),
            "commands": [dict(c) for c in getattr(reply, "commands", [])],
            "skill": reply.skill_id,
            "latency_ms": float(reply.latency_ms),
            "error": reply.error,
            "user_text": shown,
            "followups": [dict(f) for f in reply.followups],
            "entities": [dict(e) for e in getattr(reply, "entities", None) or []],
        }
        self.transcript[-1]["entities"] = _align_entities(shown, turn["entities"])
        self.transcript.append(turn)
        self._render()
        return turn

    def reset(self) -> None:
        """Forget the conversation (context and transcript); corrections are kept."""
        self.backend.reset()
        self.transcript = []
        self._render()

    # -- display --------------------------------------------------------------------------------
    def rendered_html(self) -> str:
        body = (
            "".join(bubble_html(t) for t in self.transcript)
            or "<div class='ds-meta'>还没有消息 / no messages yet</div>"
        )
        # column-reverse keeps the newest message in view; the inner block keeps reading order
        return f"{CSS}<div class='ds-chat'><div class='ds-chat-inner'>{body}</div></div>"

    def _render(self) -> None:
        self._html.value = self.rendered_html()
        bots = [t for t in self.transcript if t["role"] == "bot"]
        self.turn_pick.options = [
            (f"#{t['index']} {t['user_text'][:18]} → {t['intent']}", t["index"]) for t in bots
        ]
        if bots:
            self.turn_pick.value = bots[-1]["index"]

    # -- fix in place -------------------------------------------------------------------------------
    def mark(self, turn_index: int, intent: str) -> pd.DataFrame:
        """Record that bot turn ``turn_index`` should have been ``intent`` (an example for retraining)."""
        turn = next(
            (t for t in self.transcript if t["role"] == "bot" and t["index"] == turn_index), None
        )
        if turn is None:
            raise ValueError(f"no bot turn #{turn_index}")
        if intent not in self.backend.intents():
            raise ValueError(f"unknown intent {intent!r}")
        from ..runtime.preprocess import preprocess

        row = {
            "text": preprocess(turn["user_text"]),
            "intent": intent,
            "predicted": turn["intent"],
            "confidence": turn["confidence"],
            "sender": self.sender.value,
            "marked_at": dt.datetime.now().isoformat(timespec="seconds"),
            "source": "chat-widget",
        }
        self.corrections = pd.concat([self.corrections, pd.DataFrame([row])], ignore_index=True)
        turn["expected_intent"] = intent
        self.status.value = f"已标注 marked #{turn_index}: <code>{turn['intent']}</code> → <code>{intent}</code> ({len(self.corrections)} correction(s))"
        return self.corrections

    def retrain(self) -> list[dict]:
        """Retrain the skills with the corrections; returns the new decision of each corrected text."""
        if self.corrections.empty:
            self.status.value = "nothing to retrain: mark a turn first"
            return []
        for skill in self.skills:
            known = set(skill.manifest.intents) | {"oos"}
            mine = self.corrections[self.corrections["intent"].isin(known)]
            if not mine.empty and not skill.is_package:
                skill.train(extra=(mine["text"].tolist(), mine["intent"].tolist()))
        self.backend.rebuild()
        self.intent_pick.options = self.backend.intents()
        results = []
        for row in self.corrections.itertuples():
            _, decision = self.backend.classify(row.text)
            got = decision.intent if decision else "oos"
            results.append(
                {
                    "text": row.text,
                    "expected": row.intent,
                    "now": got,
                    "confidence": decision.confidence if decision else 0.0,
                }
            )
        rows = "".join(
            f"<li>{r['text']}: <code>{r['now']}</code> ({r['confidence']:.2f}) {'✓' if r['now'] == r['expected'] else '✗'}</li>"
            for r in results
        )
        self.status.value = (
            f"重新训练完成 retrained with {len(self.corrections)} correction(s):<ul>{rows}</ul>"
        )
        return results

    # -- regression cases -------------------------------------------------------------------------
    def save_case(self, path, name: str | None = None) -> Path:
        """Append this conversation as a regression case (JSON Lines, one line per turn)."""
        path = Path(path)
        case = name or f"case-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        lines = []
        for t in self.transcript:
            if t["role"] != "bot":
                continue
            user = self.transcript[t["index"] - 1]
            lines.append(
                {
                    "case": case,
                    "turn": t["index"] // 2,
                    "text": user["text"],
                    "sender_id": user["sender_id"],
                    "sender_nick": user["sender"],
                    "conversation_type": user["conversation_type"],
                    "expected_intent": t.get("expected_intent", t["intent"]),
                    "expected_reply": None if t.get("expected_intent") else t["text"],
                }
            )
        with path.open("a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.status.value = f"saved {len(lines)} turn(s) as <code>{case}</code> in {path}"
        return path


def _align_entities(shown: str, entities: list[dict]) -> list[dict]:
    """The reply's entities with offsets into the text as shown in the bubble (they point
    into the text after preprocessing, which drops an @mention; an entity that cannot be
    placed is left out of the highlighting)."""
    if not entities:
        return []
    from ..runtime.preprocess import PreprocessError, preprocess

    try:
        clean = preprocess(shown)
    except PreprocessError:
        return []
    off = shown.find(clean) if clean else -1
    out = []
    for e in entities:
        s, t = int(e["start"]), int(e["end"])
        piece = clean[s:t]
        if off >= 0 and piece and shown[off + s : off + t] == piece:
            out.append({**e, "start": off + s, "end": off + t})
        elif piece and (at := shown.find(piece)) >= 0:
            out.append({**e, "start": at, "end": at + len(piece)})
    return out
