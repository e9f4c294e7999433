"""The conversation test report: task success (a conversation counts when every one of its
turns holds its expectations) and turn accuracy, per language, over one or more case files
(``dingskill test-conversations``, notebook 04).

A conversation's language is its first turn's ``lang`` field, else the language of that
turn's text (``zh`` for Chinese or mixed text, ``en`` otherwise)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..text import detect_language
from .regression import Mismatch, check_turn, replay

__all__ = ["LanguageScore", "ConversationReport", "run_conversations"]


@dataclass
class LanguageScore:
    """The figures of one language (or ``all``)."""

    language: str
    conversations: int = 0
    succeeded: int = 0
    turns: int = 0
    turns_ok: int = 0

    @property
    def task_success(self) -> float:
        return self.succeeded / self.conversations if self.conversations else 0.0

    @property
    def turn_accuracy(self) -> float:
        return self.turns_ok / self.turns if self.turns else 0.0

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "task_success": round(self.task_success, 4),
            "turn_accuracy": round(self.turn_accuracy, 4),
        }


@dataclass
class ConversationReport:
    """Per-language scores, and every turn that missed (with its file)."""

    scores: dict[str, LanguageScore] = field(default_factory=dict)
    failures: list[tuple[str, Mismatch]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> LanguageScore:
        out = LanguageScore("all")
        for s in self.scores.values():
            out.conversations += s.conversations
            out.succeeded += s.succeeded
            out.turns += s.turns
            out.turns_ok += s.turns_ok
        return out

    @property
    def ok(self) -> bool:
        return not self.failures

    def rows(self) -> list[dict]:
        """One dict per language, then ``all``."""
        return [s.to_dict() for s in (*(self.scores[k] for k in sorted(self.scores)), self.total)]

    def table(self) -> str:
        """The plain-text table ``dingskill test-conversations`` prints."""
        head = f"{'language':<9}{'conversations':>14}{'task success':>14}{'turns':>7}{'turn accuracy':>15}"
        lines = [head, "-" * len(head)]
        for r in self.rows():
            lines.append(
                f"{r['language']:<9}{r['conversations']:>14}"
                f"{r['task_success'] * 100:>13.1f}%{r['turns']:>7}{r['turn_accuracy'] * 100:>14.1f}%"
            )
        return "\n".join(lines)

    def failing_turns(self) -> list[dict]:
        """The turns that missed: file, line, case, text, what was expected and what came."""
        return [
            {
                "file": f,
                "line": m.line,
                "case": m.case,
                "text": m.text,
                "field": m.field,
                "expected": m.expected,
                "got": m.got,
            }
            for f, m in self.failures
        ]

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "languages": {r["language"]: r for r in self.rows()},
            "failing_turns": self.failing_turns(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    def frame(self):
        """The table as a pandas DataFrame (for a notebook)."""
        import pandas as pd

        return pd.DataFrame(self.rows()).set_index("language")


def _language(row: dict) -> str:
    if row.get("lang"):
        return row["lang"]
    return "en" if detect_language(row["text"]) == "en" else "zh"


def run_conversations(skills, paths, today=None) -> ConversationReport:
    """Replay every case of every file in ``paths`` (files, or folders of ``*.jsonl``) with
    ``skills`` loaded together, through the runtime's one Pipeline; ``today`` fixes the date."""
    files: list[Path] = []
    for p in [paths] if isinstance(paths, str | Path) else paths:
        p = Path(p)
        files += sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    report = ConversationReport(files=[str(f) for f in files])
    for f in files:
        cases: dict[str, dict] = {}
        for n, row, reply in replay(skills, f, today=today):
            case = cases.setdefault(row["case"], {"lang": _language(row), "ok": True})
            score = report.scores.setdefault(case["lang"], LanguageScore(case["lang"]))
            miss = check_turn(n, row, reply)
            score.turns += 1
            if miss is None:
                score.turns_ok += 1
            else:
                case["ok"] = False
                report.failures.append((str(f), miss))
        for case in cases.values():
            score = report.scores[case["lang"]]
            score.conversations += 1
            score.succeeded += case["ok"]
    return report
