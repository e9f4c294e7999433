"""System entities: the project's parser against maintained libraries, on the same cases.

Scores every system that imports on ``tests/nlu/system_entity_cases.jsonl`` (zh + en; each
case has the expected entities with type, span and canonical value) and prints a table, and
with ``--json`` one JSON object on its last line:
``{"cases": {set: n}, "systems": {name: {"installed", "load_seconds", set: {"case_accuracy",
"precision", "recall", "f1", "lenient_f1", "ms_per_case", "per_type_recall", ...}}}}``, for
two sets of cases: ``system_entity_cases`` (written with the project's parser, so its score
there is by construction) and ``system_entity_cases_heldout`` (written before any system was
run on it, and not used to tune the parser: the fair comparison).

* ``dingskill``: :func:`dingskill.nlu.system_entities.find_system_entities`.
* ``duckling``: Duckling through ``pyduckling-native-phihos`` (locales ZH / EN).
* ``recognizers``: Microsoft Recognizers-Text (``recognizers-text-suite``; Chinese / English).
* ``jionlp``: JioNLP's time and money extractors (Chinese only; English cases count as missed).
* ``cn2an``: cn2an's numeral conversion (numbers only, Chinese only; it has no extractor, so
  its spans are runs of numeral characters).

A library's results are mapped to the project's types and values (see ``_duckling`` etc.).
Scores: an entity is right when type, span and value all match (``precision``, ``recall``,
``f1``); a case is right when its entities are exactly the expected ones (``case_accuracy``);
``lenient_f1`` needs type and value with overlapping spans (a leading "from"/从 or a date
and part of day taken as one span are not held against it). Durations compare in seconds
(一天半 = 36 hours), money by amount and currency. A library that does not tell a clock time
from a date-time gets a date-time counted as the expected clock time when its hour and
minute match.

Command (from the project root; the libraries live in a scratch environment, not in the
project's dependencies)::

    python3 -m venv ../h-sysent-libs
    ../h-sysent-libs/bin/pip install pyduckling-native-phihos==0.3.0 \\
        recognizers-text-suite==1.0.2a2 "emoji==0.6.0" jionlp==1.5.31 cn2an==0.5.24
    PYTHONPATH=sdk ../h-sysent-libs/bin/python bench/system_entities.py --speed --json

Without the libraries (``PYTHONPATH=sdk python bench/system_entities.py``) only the
project's parser is scored and the others are named as not installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "nlu" / "system_entity_cases.jsonl"
HELD_OUT = ROOT / "tests" / "nlu" / "system_entity_cases_heldout.jsonl"
SYSTEMS = ("dingskill", "duckling", "recognizers", "jionlp", "cn2an")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
_SECONDS["year"] = 31536000

Finder = Callable[[str, str, dt.date], list[dict]]


def load_cases(path: Path = CASES) -> list[dict]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{lineno}: not JSON ({exc.msg})") from None
    return out


# ---------------------------------------------------------------- adapters


def _ours() -> Finder:
    from dingskill.nlu.system_entities import find_system_entities

    def find(text: str, lang: str, today: dt.date) -> list[dict]:
        return [
            {"start": e.start, "end": e.end, "entity": e.entity, "value": e.value}
            for e in find_system_entities(text, today)
        ]

    return find


def _pod(start_hour: float, end_hour: float) -> str:
    """A library's part-of-day interval as one of the project's five values (by its middle)."""
    if end_hour <= start_hour:
        end_hour += 24
    mid = (start_hour + end_hour) / 2
    for limit, name in ((5, "night"), (11.5, "morning"), (14, "noon"), (17.5, "afternoon")):
        if mid < limit:
            return name
    return "evening" if mid < 22 else "night"


def _day(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso[:10])


def _duckling() -> Finder:
    import duckling as dk

    tz = dk.load_time_zones("/usr/share/zoneinfo")
    dims = dk.parse_dimensions(["time", "duration", "number", "amount-of-money"])
    locales = {lang: dk.default_locale_lang(dk.parse_lang(lang.upper())) for lang in ("zh", "en")}
    currency = {"$": "USD", "USD": "USD", "CNY": "CNY", "¥": "CNY", "EUR": "EUR", "GBP": "GBP"}
    currency.update({"€": "EUR", "£": "GBP", "RMB": "CNY", "JPY": "JPY"})

    def unit_of(unit: str, lang: str) -> str:
        try:  # the binding hands back UTF-8 read as Latin-1 ("Â£")
            unit = unit.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        if unit == "$" and lang == "zh":
            return "CNY"  # Duckling's generic dollar: 元 / 块 in Chinese
        return currency.get(unit, unit)

    def find(text: str, lang: str, today: dt.date) -> list[dict]:
        noon = dt.datetime(today.year, today.month, today.day, 9, 0, tzinfo=dt.timezone.utc)
        ref = dk.parse_ref_time(tz, "UTC", int(noon.timestamp()))
        ctx = dk.Context(ref, locales[lang])
        out = []
        for r in dk.parse(text, ctx, dims, False):
            v = r["value"]
            e = {"start": r["start"], "end": r["end"]}
            if r["dim"] == "number":
                e.update(entity="number", value=v["value"])
            elif r["dim"] == "amount-of-money" and "value" in v:
                e.update(
                    entity="amount",
                    value={"amount": float(v["value"]), "currency": unit_of(v["unit"], lang)},
                )
            elif r["dim"] == "duration":
                e.update(
                    entity="duration",
                    value={"amount": float(v["normalized"]["value"]), "unit": "second"},
                )
            elif r["dim"] == "time" and v.get("type") == "value":
                if v["grain"] in ("day", "week", "month", "year"):
                    e.update(entity="date", value=v["value"][:10])
                else:
                    e.update(entity="datetime", value=v["value"][:16])
            elif r["dim"] == "time" and v.get("type") == "interval":
                lo, hi = v.get("from"), v.get("to")
                if not lo or not hi:
                    continue
                if lo["grain"] == "day":
                    end = _day(hi["value"]) - dt.timedelta(days=1)  # Duckling's end is exclusive
                    e.update(
                        entity="date_range",
                        value={"start": lo["value"][:10], "end": end.isoformat()},
                    )
                else:
                    hours = (int(lo["value"][11:13]), int(hi["value"][11:13]))
                    e.update(entity="part_of_day", value=_pod(*hours))
            else:
                continue
            out.append(e)
        return out

    return find


def _recognizers() -> Finder:
    from recognizers_date_time import DateTimeRecognizer
    from recognizers_number import NumberRecognizer
    from recognizers_number_with_unit import NumberWithUnitRecognizer
    from recognizers_text import Culture

    cultures = {"zh": Culture.Chinese, "en": Culture.English}
    models = {
        lang: (
            DateTimeRecognizer(c).get_datetime_model(),
            NumberRecognizer(c).get_number_model(),
            NumberWithUnitRecognizer(c).get_currency_model(),
        )
        for lang, c in cultures.items()
    }
    iso_currency = {"Dollar": "USD", "Chinese yuan": "CNY", "Euro": "EUR", "Pound": "GBP"}
    iso_currency["British pound"] = "GBP"
    pods = {"TMO": "morning", "TMI": "noon", "TAF": "afternoon", "TEV": "evening", "TNI": "night"}

    def pick(values: list[dict], today: dt.date, key: str = "value") -> dict:
        # past and future readings of an ambiguous date: the first not before today
        for v in values:
            if key in v and v[key][:10] >= today.isoformat():
                return v
        return values[-1]

    def find(text: str, lang: str, today: dt.date) -> list[dict]:
        dtm, num, cur = models[lang]
        ref = dt.datetime(today.year, today.month, today.day, 9, 0)
        out = []
        for r in dtm.parse(text, ref):
            e = {"start": r.start, "end": r.end + 1}  # Recognizers' end is inclusive
            values = (r.resolution or {}).get("values", [])
            if not values:
                continue
            kind = r.type_name.split(".")[-1]
            if kind == "date":
                v = pick(values, today)
                e.update(entity="date", value=v.get("value", "")[:10])
            elif kind == "datetime":
                v = pick(values, today)
                e.update(entity="datetime", value=v.get("value", "")[:16].replace(" ", "T"))
            elif kind == "time":
                e.update(entity="time", value=values[0].get("value", "")[:5])
            elif kind == "daterange" and "end" in values[0]:
                v = pick(values, today, "start")
                end = _day(v["end"])
                if not v.get("timex", "").startswith("("):
                    end -= dt.timedelta(days=1)  # a week / month / weekend: end is exclusive
                e.update(
                    entity="date_range", value={"start": v.get("start"), "end": end.isoformat()}
                )
            elif kind == "timerange" and values[0].get("timex") in pods:
                e.update(entity="part_of_day", value=pods[values[0]["timex"]])
            elif kind == "duration":
                e.update(
                    entity="duration",
                    value={"amount": float(values[0]["value"]), "unit": "second"},
                )
            else:
                continue
            out.append(e)
        for r in num.parse(text):
            try:
                value = float(r.resolution["value"])
            except (KeyError, ValueError, TypeError):
                continue
            out.append({"start": r.start, "end": r.end + 1, "entity": "number", "value": value})
        for r in cur.parse(text):
            res = r.resolution or {}
            try:
                value = float(res["value"])
            except (KeyError, ValueError, TypeError):
                continue
            code = res.get("isoCurrency") or iso_currency.get(res.get("unit", ""), res.get("unit"))
            out.append(
                {
                    "start": r.start,
                    "end": r.end + 1,
                    "entity": "amount",
                    "value": {"amount": value, "currency": code},
                }
            )
        return _no_overlap(out)

    return find


def _jionlp() -> Finder:
    import jionlp as jio

    def find(text: str, lang: str, today: dt.date) -> list[dict]:
        if lang != "zh":
            return []
        base = dt.datetime(today.year, today.month, today.day, 9, 0).timestamp()
        out = []
        for r in jio.ner.extract_time(text, time_base=base, with_parsing=True):
            s, t = r["offset"]
            d = r["detail"]
            e = {"start": s, "end": t}
            if d["type"] == "time_delta" and isinstance(d["time"], dict):
                secs = sum(
                    float(n) * _SECONDS.get(u, {"second": 1, "minute": 60}.get(u, 0))
                    for u, n in d["time"].items()
                )
                e.update(entity="duration", value={"amount": secs, "unit": "second"})
            elif d["type"] in ("time_point", "time_span") and isinstance(d["time"], list):
                lo, hi = d["time"]
                if hi == "inf" or lo == "inf":
                    e.update(entity="date", value=lo[:10] if lo != "inf" else hi[:10])
                elif lo[:10] != hi[:10]:
                    e.update(entity="date_range", value={"start": lo[:10], "end": hi[:10]})
                elif lo[11:] == "00:00:00" and hi[11:] == "23:59:59":
                    e.update(entity="date", value=lo[:10])
                elif d.get("definition") == "blur":
                    hours = (int(lo[11:13]), int(hi[11:13]) + 1)
                    e.update(entity="part_of_day", value=_pod(*hours))
                else:
                    e.update(entity="datetime", value=lo[:16].replace(" ", "T"))
            else:
                continue
            out.append(e)
        for r in jio.ner.extract_money(text, with_parsing=True):
            s, t = r["offset"]
            d = r["detail"]
            code = {"元": "CNY", "美元": "USD", "欧元": "EUR", "英镑": "GBP"}.get(d.get("case"))
            try:
                amount = float(d["num"])
            except (KeyError, ValueError, TypeError):
                continue
            out.append(
                {
                    "start": s,
                    "end": t,
                    "entity": "amount",
                    "value": {"amount": amount, "currency": code},
                }
            )
        return _no_overlap(out)

    return find


def _cn2an() -> Finder:
    import cn2an

    runs = re.compile("[零〇一二两三四五六七八九十百千万亿]+|\\d+(?:\\.\\d+)?")

    def find(text: str, lang: str, today: dt.date) -> list[dict]:
        if lang != "zh":
            return []
        out = []
        for m in runs.finditer(text):
            try:
                value = cn2an.cn2an(m[0], "smart")
            except (ValueError, KeyError, TypeError):
                continue
            out.append({"start": m.start(), "end": m.end(), "entity": "number", "value": value})
        return out

    return find


def _no_overlap(ents: list[dict]) -> list[dict]:
    """Libraries report a number inside a date too: keep the longest span (the project's rule)."""
    kept: list[dict] = []
    for e in sorted(ents, key=lambda e: (-(e["end"] - e["start"]), e["start"])):
        if all(e["end"] <= k["start"] or k["end"] <= e["start"] for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: e["start"])


ADAPTERS: dict[str, Callable[[], Finder]] = {
    "dingskill": _ours,
    "duckling": _duckling,
    "recognizers": _recognizers,
    "jionlp": _jionlp,
    "cn2an": _cn2an,
}
INSTALL = {
    "dingskill": "pip install -e . (or PYTHONPATH=sdk)",
    "duckling": "pip install pyduckling-native-phihos==0.3.0",
    "recognizers": 'pip install recognizers-text-suite==1.0.2a2 "emoji==0.6.0"',
    "jionlp": "pip install jionlp==1.5.31",
    "cn2an": "pip install cn2an==0.5.24",
}

# ---------------------------------------------------------------- scoring


def _canon(entity: str, value):
    if entity == "duration" and isinstance(value, dict):
        return round(float(value["amount"]) * _SECONDS.get(value["unit"], 1), 3)
    if entity == "amount" and isinstance(value, dict):
        return (round(float(value["amount"]), 6), value.get("currency"))
    if entity == "number":
        try:
            return round(float(value), 6)
        except (TypeError, ValueError):
            return value
    if entity == "date_range" and isinstance(value, dict):
        return (value.get("start"), value.get("end"))
    return value


def _same(p: dict, g: dict, datetime_for_time: bool) -> bool:
    """Type and value agree (spans are checked by the caller)."""
    if p["entity"] == g["entity"]:
        return _canon(p["entity"], p["value"]) == _canon(g["entity"], g["value"])
    if datetime_for_time and p["entity"] == "datetime" and g["entity"] == "time":
        return isinstance(p["value"], str) and p["value"][11:16] == g["value"]
    return False


def score(name: str, find: Finder, cases: list[dict], repeat: int = 1) -> dict:
    lenient_dt = name != "dingskill"
    tp = fp = fn = ltp = cases_right = 0
    per_type: Counter = Counter()
    per_type_total: Counter = Counter()
    per_lang: Counter = Counter()
    times: list[float] = []
    errors: list[dict] = []
    for case in cases:
        today = dt.date.fromisoformat(case["today"])
        started = time.perf_counter()
        for _ in range(repeat):
            try:
                pred = find(case["text"], case["lang"], today)
            except Exception as exc:  # a library that raises on a case misses it
                pred = []
                errors.append({"text": case["text"], "error": repr(exc)[:120]})
        times.append((time.perf_counter() - started) / repeat * 1000)
        gold = case["entities"]
        exact = [
            next(
                (
                    p
                    for p in pred
                    if (p["start"], p["end"]) == (g["start"], g["end"]) and _same(p, g, lenient_dt)
                ),
                None,
            )
            for g in gold
        ]
        hits = sum(1 for x in exact if x is not None)
        tp += hits
        fn += len(gold) - hits
        fp += len(pred) - hits
        for g, x in zip(gold, exact, strict=True):
            per_type_total[g["entity"]] += 1
            per_type[g["entity"]] += x is not None
        ltp += sum(
            1
            for g in gold
            if any(
                p["start"] < g["end"] and g["start"] < p["end"] and _same(p, g, lenient_dt)
                for p in pred
            )
        )
        right = hits == len(gold) == len(pred)
        cases_right += right
        per_lang[case["lang"]] += right
    n = len(cases)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    lprec = ltp / (ltp + fp) if ltp + fp else 0.0
    lrec = ltp / (tp + fn) if tp + fn else 0.0
    langs = Counter(c["lang"] for c in cases)
    return {
        "cases": n,
        "case_accuracy": round(100 * cases_right / n, 1),
        "case_accuracy_by_lang": {
            lang: round(100 * per_lang[lang] / langs[lang], 1) for lang in sorted(langs)
        },
        "precision": round(100 * prec, 1),
        "recall": round(100 * rec, 1),
        "f1": round(100 * (2 * prec * rec / (prec + rec) if prec + rec else 0.0), 1),
        "lenient_f1": round(100 * (2 * lprec * lrec / (lprec + lrec) if lprec + lrec else 0.0), 1),
        "ms_per_case": round(statistics.mean(times), 3),
        "ms_per_case_p99": round(sorted(times)[int(0.99 * (len(times) - 1))], 3),
        "per_type_recall": {
            t: round(100 * per_type[t] / per_type_total[t], 1) for t in sorted(per_type_total)
        },
        "errors": len(errors),
    }


LONG_UNITS = (
    "1", "一", "12月", "3点", "a ", "one ", "$1 ", "下周一到", "1,", "2 and a half hours ",
    "帮我订西湖厅，周五下午三点 tomorrow at 3pm 200元 ",
)  # fmt: skip


def speed(cases: list[dict], rounds: int = 200, length: int = 100_000) -> dict:
    """The project's parser alone: CPU and wall time per typical message (the case texts), and
    the slowest 100,000-character message built by repeating dense or tricky pieces."""
    from dingskill.nlu.system_entities import find_system_entities

    today = dt.date(2026, 12, 7)
    texts = [c["text"] for c in cases]
    for t in texts:
        find_system_entities(t, today)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for t in texts:
            find_system_entities(t, today)
    n = rounds * len(texts)
    per_cpu = (time.process_time() - cpu) / n * 1000
    per_wall = (time.perf_counter() - wall) / n * 1000
    long: dict[str, float] = {}
    for unit in LONG_UNITS:
        text = (unit * (length // len(unit) + 1))[:length]
        cpu = time.process_time()
        find_system_entities(text, today)
        long[unit.strip() or repr(unit)] = round(time.process_time() - cpu, 3)
    worst = max(long, key=long.get)
    return {
        "typical_cpu_ms": round(per_cpu, 4),
        "typical_wall_ms": round(per_wall, 4),
        "long_text_chars": length,
        "long_text_worst_cpu_s": long[worst],
        "long_text_worst": worst,
        "long_text_cpu_s": long,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cases", type=Path, nargs="+", default=[CASES, HELD_OUT], help="JSONL case files"
    )
    ap.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    ap.add_argument("--repeat", type=int, default=5, help="runs per case for the timing")
    ap.add_argument("--speed", action="store_true", help="also time the project's parser alone")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for path in args.cases:
        if not path.is_file():
            raise SystemExit(
                f"{path}: no such case file (the project's are tests/nlu/system_entity_cases*.jsonl)"
            )
    sets = {path.stem: load_cases(path) for path in args.cases}
    finders: dict[str, Finder] = {}
    results: dict[str, dict] = {name: {} for name in args.systems}
    for name in args.systems:
        started = time.perf_counter()
        try:
            finders[name] = ADAPTERS[name]()
            case = next(iter(sets.values()))[0]  # warm-up: loading is not per-case time
            finders[name](case["text"], case["lang"], dt.date.fromisoformat(case["today"]))
        except ImportError as exc:
            results[name] = {"installed": False, "reason": str(exc), "install": INSTALL[name]}
            print(f"{name}: not installed ({exc}); {INSTALL[name]}")
            continue
        results[name] = {"installed": True, "load_seconds": round(time.perf_counter() - started, 2)}
    cols = ("case_accuracy", "precision", "recall", "f1", "lenient_f1", "ms_per_case")
    for set_name, cases in sets.items():
        print(f"\n{set_name}: {len(cases)} cases ({dict(Counter(c['lang'] for c in cases))})")
        print(f"{'system':<12}" + "".join(f"{c:>14}" for c in cols))
        for name in args.systems:
            if name not in finders:
                print(f"{name:<12}  not installed: {INSTALL[name]}")
                continue
            r = score(name, finders[name], cases, args.repeat)
            results[name][set_name] = r
            print(f"{name:<12}" + "".join(f"{r[c]:>14}" for c in cols))
    out = {"cases": {k: len(v) for k, v in sets.items()}, "systems": results}
    if args.speed and "dingskill" in finders:
        out["speed"] = speed([c for cases in sets.values() for c in cases])
        sp = out["speed"]
        print(
            f"\ndingskill alone: {sp['typical_cpu_ms']} ms CPU per typical message; slowest "
            f"{sp['long_text_chars']:,}-character message {sp['long_text_worst_cpu_s']} s CPU "
            f"({sp['long_text_worst']!r} repeated)"
        )
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
