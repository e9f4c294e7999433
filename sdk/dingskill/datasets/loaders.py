"""Read labelled utterances from CSV / TSV, JSON Lines, CLINC150 JSON, Rasa NLU YAML or a
DataFrame. Every row keeps its ``source`` file and 1-based ``line``; rows a loader cannot use
are kept in ``Dataset.skipped`` (file, line, reason) and reported by ``validate()``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import yaml

from ..csvsafe import restore
from .annotations import parse_inline
from .dataset import Dataset
from .errors import DatasetError

__all__ = ["load", "FORMATS"]

FORMATS = ("csv", "tsv", "jsonl", "clinc", "rasa")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; save the file as UTF-8",
            str(path),
            line,
        ) from exc


def _guess(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "clinc"
    if suffix in (".yml", ".yaml"):
        return "rasa"
    raise DatasetError(
        f"cannot tell the format from the extension {suffix!r}; pass format= one of {FORMATS}",
        str(path),
    )


def _frame(
    rows: list[dict],
    skipped: list,
    name: str,
    issues: list | None = None,
    synonyms: dict | None = None,
    lookups: dict | None = None,
) -> Dataset:
    annotated = any(r.get("entities") for r in rows)
    columns = ["text", "intent", "source", "line"]
    columns += ["split"] if any("split" in r for r in rows) else []
    columns += ["entities"] if annotated else []
    if annotated:
        synonyms = dict(synonyms or {})
        for r in rows:  # an explicit value on a span is a synonym too (as in Rasa)
            for e in r.get("entities") or []:
                piece = r["text"][e["start"] : e["end"]]
                if e.get("value") is not None and e["value"] != piece:
                    synonyms.setdefault(piece, e["value"])
        folded = {k.casefold(): v for k, v in synonyms.items()}
        for r in rows:
            r.setdefault("entities", [])
            for e in r["entities"]:
                if e.get("value") is None:
                    piece = r["text"][e["start"] : e["end"]]
                    e["value"] = synonyms.get(piece, folded.get(piece.casefold(), piece))
    df = pd.DataFrame(rows, columns=columns)
    ds = Dataset(df, name=name)
    ds.skipped = skipped
    ds.entity_issues = issues or []
    ds.synonyms = synonyms or {}
    ds.lookups = lookups or {}
    return ds


def _inline(row: dict, marked: str, issues: list) -> None:
    """Set ``row['text']`` and ``row['entities']`` from inline-annotated text."""
    text, entities, problems = parse_inline(marked)
    row["text"] = text
    if entities:
        row["entities"] = entities
    for p in problems:
        issues.append((row["source"], row["line"], p.field, p.message))


def _json_entities(obj, path: Path, line_no: int, issues: list) -> list[dict]:
    """The ``entities`` list of a JSONL row; malformed items go to ``issues``."""
    if obj is None:
        return []
    if not isinstance(obj, list):
        issues.append((str(path), line_no, "entities", "must be a list of {start, end, entity}"))
        return []
    out = []
    for i, e in enumerate(obj):
        field = f"entities[{i}]"
        if not isinstance(e, dict):
            issues.append((str(path), line_no, field, "must be an object {start, end, entity}"))
            continue
        bad = [k for k in ("start", "end") if not isinstance(e.get(k), int) or e[k] is True]
        if bad:
            issues.append(
                (str(path), line_no, f"{field}.{bad[0]}", "missing or not an integer offset")
            )
            continue
        if not isinstance(e.get("entity"), str) or not e["entity"].strip():
            issues.append((str(path), line_no, f"{field}.entity", "missing or empty entity type"))
            continue
        item = {"start": e["start"], "end": e["end"], "entity": e["entity"].strip()}
        item["value"] = e.get("value")
        if isinstance(e.get("text"), str):
            item["text"] = e["text"]
        out.append(item)
    return out


def _load_delimited(path: Path, text: str, delim: str, text_col: str, intent_col: str) -> Dataset:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError("file is empty (no header line)", str(path), 1) from None
    header = [h.strip() for h in header]
    for col in (text_col, intent_col):
        if col not in header:
            option = "--text-col" if col == text_col else "--intent-col"
            raise DatasetError(
                f"missing column {col!r} in the header {header}: name the column that holds "
                f"the {'utterance' if col == text_col else 'label'} with {option} "
                f"({option.strip('-').replace('-', '_')}= in Python)",
                str(path),
                1,
                col,
            )
    ti, ii = header.index(text_col), header.index(intent_col)
    si = header.index("split") if "split" in header else None
    rows, skipped, issues = [], [], []
    start = reader.line_num + 1
    for fields in reader:
        line = start
        start = reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(header):
            skipped.append((str(path), line, f"{len(fields)} fields, header has {len(header)}"))
            continue
        text = restore(fields[ti])  # a CSV we wrote: the quote before a formula start
        row = {"text": text, "intent": fields[ii].strip(), "source": str(path), "line": line}
        _inline(row, text, issues)
        if si is not None:
            row["split"] = fields[si].strip()
        rows.append(row)
    return _frame(rows, skipped, path.stem, issues)


def _load_jsonl(path: Path, text: str, text_col: str, intent_col: str) -> Dataset:
    rows, skipped, issues = [], [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"invalid JSON: {exc.msg} (column {exc.colno})", str(path), line_no
            ) from exc
        if not isinstance(obj, dict):
            raise DatasetError("each line must be a JSON object", str(path), line_no)
        missing = [c for c in (text_col, intent_col) if not isinstance(obj.get(c), str)]
        if missing:
            raise DatasetError("missing or non-string field", str(path), line_no, missing[0])
        row = {
            "text": obj[text_col],
            "intent": obj[intent_col].strip(),
            "source": str(path),
            "line": line_no,
        }
        if "split" in obj:
            row["split"] = str(obj["split"])
        entities = _json_entities(obj.get("entities"), path, line_no, issues)
        if entities:
            row["entities"] = entities
        rows.append(row)
    return _frame(rows, skipped, path.stem, issues)


def _load_clinc(path: Path, text: str) -> Dataset:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"invalid JSON: {exc.msg}", str(path), exc.lineno) from exc
    if not isinstance(data, dict) or "train" not in data:
        raise DatasetError(
            "not the CLINC150 layout: expected an object with 'train', 'val', 'test', 'oos_*' lists",
            str(path),
            1,
            "train",
        )
    rows, skipped = [], []
    for split, items in data.items():
        if not isinstance(items, list):
            raise DatasetError(
                f"'{split}' must be a list of [utterance, intent] pairs", str(path), None, split
            )
        target = split.replace("oos_", "")
        for i, item in enumerate(items):
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
            ):
                skipped.append((str(path), None, f"{split}[{i}]: expected [utterance, intent]"))
                continue
            rows.append(
                {
                    "text": item[0],
                    "intent": item[1],
                    "source": str(path),
                    "line": None,
                    "split": target,
                    "item": f"{split}[{i}]",
                }
            )
    ds = _frame(rows, skipped, path.stem)
    return ds


def _load_rasa(path: Path, text: str) -> Dataset:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DatasetError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            str(path),
            mark.line + 1 if mark else None,
        ) from exc
    if not isinstance(root, yaml.MappingNode):
        raise DatasetError("expected a mapping with an 'nlu' list", str(path), 1, "nlu")
    nlu = next((v for k, v in root.value if k.value == "nlu"), None)
    if not isinstance(nlu, yaml.SequenceNode):
        raise DatasetError("expected an 'nlu:' list", str(path), 1, "nlu")
    rows, skipped, issues = [], [], []
    synonyms: dict[str, str] = {}
    lookups: dict[str, list[str]] = {}
    for item in nlu.value:
        if not isinstance(item, yaml.MappingNode):
            raise DatasetError(
                "each nlu item must be a mapping", str(path), item.start_mark.line + 1
            )
        fields = {k.value: v for k, v in item.value}
        kind = next((k for k in ("synonym", "lookup") if k in fields), None)
        if kind and "intent" not in fields:
            name = fields[kind].value
            if not isinstance(name, str) or not name.strip():
                raise DatasetError(
                    f"'{kind}' needs a name", str(path), item.start_mark.line + 1, kind
                )
            values = [v for _, v in _example_lines(path, fields, f"{kind} {name!r}", item, skipped)]
            if kind == "synonym":
                for v in values:
                    synonyms[v] = name.strip()
            else:
                lookups.setdefault(name.strip(), []).extend(values)
            continue
        if "intent" not in fields:
            kind = next(iter(fields), "?")
            skipped.append(
                (str(path), item.start_mark.line + 1, f"'{kind}' item (only intents are read)")
            )
            continue
        intent = fields["intent"].value
        for line_no, utter in _example_lines(path, fields, f"intent {intent!r}", item, skipped):
            row = {"text": utter, "intent": intent, "source": str(path), "line": line_no}
            _inline(row, utter, issues)
            rows.append(row)
    return _frame(rows, skipped, path.stem, issues, synonyms, lookups)


def _example_lines(path: Path, fields: dict, what: str, item, skipped: list):
    """``(line, text)`` for each ``- example`` of an item's ``examples: |`` block."""
    ex = fields.get("examples")
    if ex is None or not isinstance(ex.value, str):
        raise DatasetError(
            f"{what} has no 'examples: |' block",
            str(path),
            item.start_mark.line + 1,
            "examples",
        )
    first = ex.start_mark.line + (2 if ex.style == "|" else 1)
    out = []
    for offset, line in enumerate(ex.value.splitlines()):
        stripped = line.strip()
        if not stripped:
            continue
        line_no = first + offset
        if not stripped.startswith("- "):
            skipped.append((str(path), line_no, "example line does not start with '- '"))
            continue
        out.append((line_no, stripped[2:].strip()))
    return out


def load(
    path, format: str | None = None, text_col: str = "text", intent_col: str = "intent"
) -> Dataset:
    """Load a dataset file (or wrap a DataFrame). ``format``: csv, tsv, jsonl, clinc, rasa;
    guessed from the extension when omitted."""
    if isinstance(path, pd.DataFrame):
        return Dataset.from_frame(path, text_col, intent_col)
    if isinstance(path, Dataset):
        return path
    path = Path(path)
    if not path.exists():
        raise DatasetError("file not found", str(path))
    fmt = format or _guess(path)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; one of {FORMATS}", str(path))
    text = _decode(path)
    if fmt == "csv":
        ds = _load_delimited(path, text, ",", text_col, intent_col)
    elif fmt == "tsv":
        ds = _load_delimited(path, text, "\t", text_col, intent_col)
    elif fmt == "jsonl":
        ds = _load_jsonl(path, text, text_col, intent_col)
    elif fmt == "clinc":
        ds = _load_clinc(path, text)
    else:
        ds = _load_rasa(path, text)
    if path.parent.name and not ds.name.startswith(path.parent.name):
        ds.name = f"{path.parent.name}/{path.stem}"
    return ds
