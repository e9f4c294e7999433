"""Replaying saved conversations (regression cases) against skills: from a notebook, from
pytest (``assert_conversations``) and from ``dingskill test-conversations``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..runtime.local import LocalPipeline
from ..schema_check import SchemaValidator
from ..skills import Engine
from ..skills.conversation import Reply

__all__ = [
    "Mismatch",
    "load_cases",
    "replay",
    "replay_cases",
    "assert_conversations",
    "CaseError",
    "cases_schema",
    "check_turn",
]


@lru_cache(maxsize=1)
def cases_schema() -> dict:
    """The JSON Schema of one line of a case file (``dingskill schema conversations``)."""
    return json.loads(
        resources.files("dingskill.notebook")
        .joinpath("conversations.schema.json")
        .read_text("utf-8")
    )


class CaseError(ValueError):
    """A case file that cannot be read; names the file, the line and the field."""


@dataclass
class Mismatch:
    case: str
    line: int
    text: str
    field: str
    expected: object
    got: object

    def __str__(self) -> str:
        return f"line {self.line} ({self.case}): {self.text!r}: {self.field} expected {self.expected!r}, got {self.got!r}"


def load_cases(path) -> list[tuple[int, dict]]:
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaseError(f"{path}:{n}: invalid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise CaseError(f"{path}:{n}: a case line is a JSON object, got {type(row).__name__}")
        for err in SchemaValidator(cases_schema()).iter_errors(row):
            where = ".".join(str(p) for p in err.absolute_path)
            msg = err.message
            if err.validator == "required":
                where = err.message.split("'")[1]
                msg = "is missing (required: case, text, expected_intent)"
            elif err.validator == "additionalProperties":
                where = sorted(set(row) - set(cases_schema()["properties"]))[0]
                msg = "is not a field of a case; see `dingskill schema conversations`"
            raise CaseError(f"{path}:{n}: field '{where}': {msg}")
        out.append((n, row))
    return out


def replay(skills, path, today=None) -> list[tuple[int, dict, Reply]]:
    """Send every turn of the cases file through the runtime's one Pipeline (in memory, as
    the widget and ``dingskill chat`` do); the turns of one case share a conversation.
    ``today`` (a date) fixes what 明天 / "next Monday" mean. Returns ``(line, row, reply)``
    per turn."""
    skills = list(skills) if isinstance(skills, list | tuple) else [skills]
    engine = Engine(skills, today=today) if today is not None else None
    local = LocalPipeline(skills, channel="replay", engine=engine)
    out = []
    for n, row in load_cases(path):
        reply = local.send(
            row["text"],
            sender_id=row.get("sender_id", "case-user"),
            sender_nick=row.get("sender_nick", ""),
            conversation_type=row.get("conversation_type", "single"),
            at_users=list(row.get("at_users", [])),
            conversation_id=f"case-{row['case']}",
        )
        out.append((n, row, reply))
    return out


def _state_matches(want: dict, got: dict) -> bool:
    """``{}`` wants no pending flow; else every given key of the flow state must match."""
    if not want:
        return not got
    return all(got.get(k) == v for k, v in want.items())


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def check_turn(n: int, row: dict, reply: Reply) -> Mismatch | None:
    """The first expectation of ``row`` that ``reply`` misses, or None when it holds them
    all (``expected_intent``, and when given ``expected_reply``, ``expected_reply_contains``,
    ``expected_reply_excludes``, ``expected_source``, ``expected_slots``,
    ``expected_state``, ``expected_confidence`` to 3 decimals)."""
    checks = [("intent", row["expected_intent"], reply.intent, None)]
    if row.get("expected_reply") is not None:
        checks.append(("reply", row["expected_reply"], reply.text, None))
    for part in _as_list(row.get("expected_reply_contains")):
        checks.append(("reply contains", part, reply.text, part in reply.text))
    for part in _as_list(row.get("expected_reply_excludes")):
        checks.append(("reply excludes", part, reply.text, part not in reply.text))
    if row.get("expected_source") is not None:
        checks.append(("source", row["expected_source"], reply.source, None))
    if row.get("expected_slots") is not None:
        checks.append(("slots", row["expected_slots"], reply.slots, None))
    if row.get("expected_state") is not None:
        want = row["expected_state"]
        got = {k: reply.state.get(k) for k in want} if want else reply.state
        checks.append(("state", want, got, _state_matches(want, reply.state)))
    if row.get("expected_confidence") is not None:
        checks.append(
            ("confidence", round(row["expected_confidence"], 3), round(reply.confidence, 3), None)
        )
    for name, want, got, ok in checks:
        if (want == got) if ok is None else ok:
            continue
        return Mismatch(row["case"], n, row["text"], name, want, got)
    return None


def replay_cases(skills, path, today=None) -> list[Mismatch]:
    """Replay every case and list the turns that miss an expectation (:func:`check_turn`)."""
    problems = []
    for n, row, reply in replay(skills, path, today=today):
        miss = check_turn(n, row, reply)
        if miss is not None:
            problems.append(miss)
    return problems


def assert_conversations(skills, path, today=None) -> None:
    """pytest helper: fail with every mismatch listed."""
    problems = replay_cases(skills, path, today=today)
    if problems:
        raise AssertionError(
            f"{len(problems)} conversation mismatch(es) in {path}:\n"
            + "\n".join(map(str, problems))
        )
