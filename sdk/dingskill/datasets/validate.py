"""Dataset validation: findings with file and line, errors fail, warnings do not."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pandas as pd

from ..text import find_control, fold
from .annotations import ENTITY_TYPE

__all__ = ["ValidationReport", "validate_frame"]

_NEAR = re.compile(r"[\W_]+", re.UNICODE)

COLUMNS = ["severity", "code", "file", "line", "intent", "text", "message", "field"]


@dataclass
class ValidationReport:
    """``findings``: one row per finding; ``ok`` is False when any is an error."""

    findings: pd.DataFrame

    @property
    def errors(self) -> pd.DataFrame:
        return self.findings[self.findings["severity"] == "error"]

    @property
    def warnings(self) -> pd.DataFrame:
        return self.findings[self.findings["severity"] == "warning"]

    @property
    def ok(self) -> bool:
        return self.errors.empty

    def lines(self) -> list[str]:
        """``file:line: severity code: message`` for each finding."""
        out = []
        for r in self.findings.itertuples():
            where = r.file if isinstance(r.file, str) and r.file else "<data>"
            if r.line is not None and not pd.isna(r.line):
                where += f":{int(r.line)}"
            field = f"{r.field}: " if isinstance(r.field, str) and r.field else ""
            out.append(f"{where}: {r.severity} {r.code}: {field}{r.message}")
        return out

    def __str__(self) -> str:
        head = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        return "\n".join([head, *self.lines()])

    def _repr_html_(self) -> str:
        head = f"<b>{len(self.errors)} error(s), {len(self.warnings)} warning(s)</b>"
        return head + (self.findings.to_html() if len(self.findings) else "<p>clean</p>")


def _near_key(text: str) -> str:
    return _NEAR.sub("", fold(text))


def validate_frame(
    df: pd.DataFrame,
    min_examples: int = 10,
    max_length: int = 512,
    imbalance_ratio: float = 10.0,
    skipped: list | None = None,
    entity_issues: list | None = None,
    entity_types: list[str] | None = None,
) -> ValidationReport:
    """Check a dataset frame (``text``, ``intent``; ``source`` / ``line`` when loaded; the
    ``entities`` spans when annotated). ``entity_types``: the types a skill knows; an
    annotation of any other type is an error."""
    rows: list[dict] = []

    def add(sev, code, r, message, intent=None, text=None, field=None):
        rows.append(
            {
                "field": field,
                "severity": sev,
                "code": code,
                "file": None if r is None else r.get("source"),
                "line": None if r is None else r.get("line"),
                "intent": intent
                if intent is not None
                else (None if r is None else r.get("intent")),
                "text": text if text is not None else (None if r is None else r.get("text")),
                "message": message,
            }
        )

    for col in ("text", "intent"):
        if col not in df.columns:
            add("error", "missing-column", None, f"missing column {col!r}")
    if rows:
        return _report(rows)
    for file, line, reason in skipped or []:
        rows.append(
            {
                "severity": "error",
                "code": "skipped-row",
                "file": file,
                "line": line,
                "intent": None,
                "text": None,
                "message": f"row not loaded: {reason}",
                "field": None,
            }
        )
    for file, line, field, message in entity_issues or []:
        rows.append(
            {
                "severity": "error",
                "code": "bad-annotation",
                "file": file,
                "line": line,
                "intent": None,
                "text": None,
                "message": message,
                "field": field,
            }
        )
    if "entities" in df.columns:
        known = None if entity_types is None else set(entity_types)
        for r in df.to_dict("records"):
            if isinstance(r["entities"], list) and r["entities"]:
                _check_entities(r, known, add)
    records = df.to_dict("records")
    labelled: dict[str, dict] = {}  # text -> first row that carries a label
    for r in records:
        if _has_label(r["intent"]):
            labelled.setdefault(str(r["text"]).strip(), r)
    seen: dict[str, dict] = {}
    near: dict[str, dict] = {}
    for r in records:
        text, intent = str(r["text"]), str(r["intent"])
        if not text.strip():
            add("error", "empty-text", r, "empty or whitespace-only text")
            continue
        if not _has_label(r["intent"]):
            # one finding per unlabelled row: it is not an intent '' (no conflict, no count)
            other = labelled.get(text.strip())
            hint = (
                f" (line {other.get('line')} labels the same text {other['intent']!r})"
                if other is not None
                else ""
            )
            add("error", "empty-intent", r, "missing intent label" + hint, intent="")
            continue
        if (ch := find_control(text)) is not None:
            add("error", "control-char", r, f"control or invalid character U+{ord(ch):04X}")
        if len(text) > max_length:
            add("error", "too-long", r, f"text has {len(text)} characters, limit {max_length}")
        key = text.strip()
        if key in seen:
            first = seen[key]
            where = f"{first.get('source') or ''}:{first.get('line')}"
            if first["intent"] == intent:
                add(
                    "warning",
                    "duplicate",
                    r,
                    f"exact duplicate of line {first.get('line')} ({where})",
                )
            else:
                add(
                    "error",
                    "conflict",
                    r,
                    f"same text labelled {first['intent']!r} at line {first.get('line')} and {intent!r} here",
                )
            continue
        seen[key] = r
        nk = _near_key(text)
        if nk and nk in near:
            first = near[nk]
            if first["intent"] == intent:
                add(
                    "warning",
                    "near-duplicate",
                    r,
                    f"differs from line {first.get('line')} only in case, width, spaces or punctuation",
                )
            else:
                add(
                    "error",
                    "conflict",
                    r,
                    f"near-identical text labelled {first['intent']!r} at line {first.get('line')} and {intent!r} here",
                )
        else:
            near[nk] = r
    counts = df["intent"][df["intent"].map(_has_label)].astype(str).value_counts()
    in_scope = counts.drop(labels=["oos"], errors="ignore")
    for intent, n in in_scope.items():
        if n < min_examples:
            add(
                "warning",
                "few-examples",
                None,
                f"intent {intent!r} has {n} example(s), fewer than {min_examples}",
                intent=intent,
            )
    if (
        len(in_scope) >= 2
        and in_scope.min() > 0
        and in_scope.max() / in_scope.min() > imbalance_ratio
    ):
        add(
            "warning",
            "imbalance",
            None,
            f"largest intent {in_scope.idxmax()!r} ({in_scope.max()}) has more than {imbalance_ratio:g}x the smallest {in_scope.idxmin()!r} ({in_scope.min()})",
        )
    # dataset-level findings name the file (not a line) when the data came from one file
    sources = df["source"].dropna().unique() if "source" in df.columns else []
    for row in rows:
        if row["file"] is None and len(sources) == 1:
            row["file"] = str(sources[0])
    return _report(rows)


def _check_entities(r: dict, known: set | None, add) -> None:
    """Span, overlap and type findings for one annotated row."""
    text = str(r["text"])
    prev = None
    order = sorted(enumerate(r["entities"]), key=lambda p: (p[1]["start"], p[1]["end"]))
    for i, e in order:
        field = f"entities[{i}]"
        s, t, etype = e["start"], e["end"], e["entity"]
        if not (0 <= s < t <= len(text)):
            add(
                "error",
                "span-out-of-range",
                r,
                f"span [{s}, {t}) is empty or outside the text (length {len(text)}); "
                "offsets count characters from 0, end exclusive",
                field=field,
            )
            continue
        piece = text[s:t]
        value = e.get("value")
        if isinstance(e.get("text"), str) and e["text"] != piece:
            add(
                "error",
                "span-mismatch",
                r,
                f"text[{s}:{t}] is {piece!r}, the entity says {e['text']!r}: fix start/end",
                field=field,
            )
        elif piece != piece.strip():
            add(
                "error",
                "span-mismatch",
                r,
                f"text[{s}:{t}] is {piece!r}: the span takes in spaces; fix start/end",
                field=field,
            )
        elif isinstance(value, str) and value != piece and value in text:
            at = text.find(value)
            add(
                "error",
                "span-mismatch",
                r,
                f"text[{s}:{t}] is {piece!r} but the value {value!r} is at [{at}, "
                f"{at + len(value)}): fix start/end",
                field=field,
            )
        if not ENTITY_TYPE.match(etype):
            add(
                "error",
                "bad-entity-type",
                r,
                f"entity type {etype!r}: use letters, digits, _ . - (not starting with a digit)",
                field=f"{field}.entity",
            )
        elif known is not None and etype not in known:
            add(
                "error",
                "unknown-entity-type",
                r,
                f"unknown entity type {etype!r}; known: {sorted(known)}",
                field=f"{field}.entity",
            )
        if prev is not None and s < prev[1]["end"]:
            add(
                "error",
                "overlapping-entities",
                r,
                f"span [{s}, {t}) overlaps entities[{prev[0]}] [{prev[1]['start']}, "
                f"{prev[1]['end']}); entities must not overlap",
                field=field,
            )
        if prev is None or t > prev[1]["end"]:
            prev = (i, e)


def _has_label(value) -> bool:
    """A label that names an intent: not empty, not whitespace, not a missing value."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    return bool(str(value).strip())


def _report(rows: list[dict]) -> ValidationReport:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["line"] = frame["line"].astype("Int64")  # integers in JSON; <NA> for dataset-level
    return ValidationReport(frame)


def render_html(report: ValidationReport) -> str:  # pragma: no cover - convenience
    return html.escape(str(report))
