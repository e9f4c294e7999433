"""Replaying saved conversations (regression cases) against skills: from a notebook, from
pytest (``assert_conversations``) and from ``dingskill test-conversations``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mismatch", "load_cases", "replay_cases", "assert_conversations", "CaseError"]


class CaseError(ValueError):
    """A case file that cannot be read; names the file, the line and the field."""


@dataclass
class Mismatch:
    case: str
    line: int
    text: str
    field: str
    expected: str
    got: str

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
        for field in ("case", "text", "expected_intent"):
            if not isinstance(row.get(field), str):
                raise CaseError(f"{path}:{n}: field '{field}' is missing or not a string")
        out.append((n, row))
    return out


def replay_cases(skills, path) -> list[Mismatch]:
    """Replay every case (a fresh conversation per case) and list what differs."""
    from .backend import LocalBackend

    if not isinstance(skills, list | tuple):
        skills = [skills]
    backend = LocalBackend(list(skills))  # the runtime's pipeline, as the widget uses it
    problems = []
    for n, row in load_cases(path):
        reply = backend.send(
            row["text"],
            sender_id=row.get("sender_id", "case-user"),
            sender_nick=row.get("sender_nick", ""),
            conversation_type=row.get("conversation_type", "single"),
            conversation_id=f"case-{row['case']}",
        )
        if reply.intent != row["expected_intent"]:
            problems.append(
                Mismatch(
                    row["case"], n, row["text"], "intent", row["expected_intent"], reply.intent
                )
            )
        elif row.get("expected_reply") is not None and reply.text != row["expected_reply"]:
            problems.append(
                Mismatch(row["case"], n, row["text"], "reply", row["expected_reply"], reply.text)
            )
    return problems


def assert_conversations(skills, path) -> None:
    """pytest helper: fail with every mismatch listed."""
    problems = replay_cases(skills, path)
    if problems:
        raise AssertionError(
            f"{len(problems)} conversation mismatch(es) in {path}:\n"
            + "\n".join(map(str, problems))
        )
