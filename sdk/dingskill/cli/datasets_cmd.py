"""``dingskill datasets``: validate, summarise, split and convert labelled utterances."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..datasets.errors import DatasetError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="validate, summarise, split and convert datasets")
    s = p.add_subparsers(dest="datasets", metavar="ACTION", required=True)

    def common(q):
        q.add_argument("path", help="csv / tsv / jsonl / CLINC json / Rasa yaml")
        q.add_argument(
            "--format", default=None, help="csv, tsv, jsonl, clinc, rasa (default: by extension)"
        )
        q.add_argument(
            "--text-col", default="text", help="column holding the utterance (default text)"
        )
        q.add_argument(
            "--intent-col", default="intent", help="column holding the label (default intent)"
        )

    v = s.add_parser("validate", help="report problems with file and line (exit 1 on errors)")
    common(v)
    v.add_argument(
        "--min-examples", type=int, default=10, help="warn below N utterances per intent"
    )
    v.add_argument(
        "--max-length", type=int, default=512, help="flag utterances longer than N characters"
    )
    v.add_argument(
        "--entity-types",
        default=None,
        help="comma-separated entity types the skill knows; other annotated types are errors",
    )
    v.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    v.set_defaults(func=_validate)
    m = s.add_parser("summary", help="counts per intent, lengths and languages")
    common(m)
    m.set_defaults(func=_summary)
    sp = s.add_parser("split", help="write a copy with a stratified 'split' column")
    common(sp)
    sp.add_argument("-o", "--output", required=True, help="file to write (.csv or .jsonl)")
    sp.add_argument("--test-size", type=float, default=0.2, help="share for test (default 0.2)")
    sp.add_argument("--val-size", type=float, default=0.0, help="share for validation (default 0)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.set_defaults(func=_split)
    c = s.add_parser("convert", help="convert between formats (by the output's extension)")
    common(c)
    c.add_argument("output", help="file to write; its extension picks the format")
    c.set_defaults(func=_convert)


def _load(args):
    from ..datasets.loaders import load  # pandas: imported by the command, not by --help

    return load(args.path, format=args.format, text_col=args.text_col, intent_col=args.intent_col)


def _validate(args) -> int:
    try:
        ds = _load(args)
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    types = None
    if args.entity_types is not None:
        types = [t.strip() for t in args.entity_types.split(",") if t.strip()]
    report = ds.validate(
        min_examples=args.min_examples, max_length=args.max_length, entity_types=types
    )
    if args.json:
        print(report.findings.to_json(orient="records", force_ascii=False))
    else:
        for line in report.lines():
            print(line)
        print(
            f"{args.path}: {len(ds)} utterances, {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        )
    return 0 if report.ok else 1


def _summary(args) -> int:
    try:
        ds = _load(args)
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    s = ds.summary()
    print(repr(ds))
    for name, frame in s.items():
        print(f"\n# {name}\n{frame.to_string()}")
    return 0


def _split(args) -> int:
    try:
        ds = _load(args).split(args.test_size, args.val_size, args.seed)
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    _write(ds, Path(args.output))
    print(json.dumps(ds.df["split"].value_counts().to_dict()))
    return 0


def _write(ds, out: Path) -> None:
    if out.suffix.lower() in (".jsonl", ".ndjson"):
        ds.to_jsonl(out)
    else:
        ds.to_csv(out)


def _convert(args) -> int:
    try:
        ds = _load(args)
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    _write(ds, Path(args.output))
    print(f"wrote {len(ds)} utterances to {args.output}")
    return 0
