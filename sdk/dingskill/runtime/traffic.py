"""Message texts for the runtime benchmarks: repeated, distinct, or a mix like real chat.

``repeat``
    the project's held-out test utterances (``office-zh`` and ``smalltalk-en``) cycled: after
    the first few hundred messages every decision is a cache hit (the benchmarks' old texts).
``distinct``
    no utterance is sent twice: CLINC150's English queries (``../shared/datasets/clinc150``)
    and Chinese sentences (CAIS, ``../shared/datasets/cais``, and the project's own datasets),
    interleaved so that both languages run all along. Without the shared data (a bare clone),
    or when more messages are asked for than the pool holds, varied sentences are generated
    from the project's ``datasets/`` (openings, closings and details around its utterances).
``mixed`` (the default)
    a Zipf-like draw as in real chat: each message is new with probability ``new_share``
    (0.85), else a repeat of an earlier one, popular ones more often (rank ``k`` with weight
    ``1 / k ** 1.2``). At least 80 % of the messages are never seen before.

:func:`draw` returns the texts; :func:`new_share` measures the share of first occurrences.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TRAFFIC", "distinct_pool", "draw", "new_share", "repeat_texts"]

TRAFFIC = ("repeat", "distinct", "mixed")
MIXED_NEW = 0.85  # share of new utterances in mixed traffic (>= 0.8 by construction)
ZIPF_S = 1.2

_ZH_OPEN = ("", "请问", "你好，", "麻烦问下，", "帮我看看，", "老师好，", "同事问：", "急：")
_ZH_CLOSE = ("", "，谢谢", "？", "，麻烦了", "，今天能办吗", "，在线等", "，多谢")
_ZH_DETAIL = ("", "明天", "下周一", "这个月", "上午十点", "3号楼", "北京办公室", "我们组")
_EN_OPEN = ("", "hi, ", "quick question: ", "hey bot, ", "sorry to bother, ", "please, ")
_EN_CLOSE = ("", " thanks", "?", " please", " asap", " when you can", " :)")
_EN_DETAIL = ("", " today", " tomorrow", " for my team", " next week", " in the morning")


def repeat_texts(root: Path) -> list[str]:
    """The project's held-out test utterances (the repeated traffic)."""
    out: list[str] = []
    for name in ("office-zh", "smalltalk-en"):
        with open(root / "datasets" / name / "test.csv", encoding="utf-8") as fh:
            out += [row["text"] for row in csv.DictReader(fh)]
    return out


def _project_texts(root: Path) -> tuple[list[str], list[str]]:
    """(zh, en) utterances of every CSV under the project's ``datasets/``."""
    from ..text import detect_language

    zh: list[str] = []
    en: list[str] = []
    for path in sorted((root / "datasets").glob("*/*.csv")):
        with open(path, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text = (row.get("text") or "").strip()
                if text:
                    (en if detect_language(text) == "en" else zh).append(text)
    return zh, en


def _clinc(home: Path) -> list[str]:
    path = home / "clinc150" / "data_full.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [row[0] for split in sorted(data) for row in data[split]]


def _cais(home: Path) -> list[str]:
    out: list[str] = []
    for split in ("train", "dev", "test"):
        path = home / "cais" / f"{split}.jsonl"
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                out += [json.loads(line)["text"] for line in fh if line.strip()]
    return out


def _generated(zh: list[str], en: list[str], seed: int) -> Iterator[str]:
    """Endless varied sentences around the project's utterances (zh and en in turn)."""
    rng = random.Random(seed)
    while True:
        base = rng.choice(zh)
        yield f"{rng.choice(_ZH_OPEN)}{rng.choice(_ZH_DETAIL)}{base}{rng.choice(_ZH_CLOSE)}"
        base = rng.choice(en)
        yield f"{rng.choice(_EN_OPEN)}{base}{rng.choice(_EN_DETAIL)}{rng.choice(_EN_CLOSE)}"


def _interleave(a: list[str], b: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append(a[i])
        if i < len(b):
            out.append(b[i])
    return out


def distinct_pool(root: Path, data_home: Path | None = None, seed: int = 0) -> list[str]:
    """Distinct public utterances (CLINC150 en, CAIS zh) and the project's zh sentences,
    shuffled, interleaved zh/en; empty without ``data_home``'s datasets."""
    home = (
        Path(data_home)
        if data_home is not None
        else Path(root).resolve().parent / "shared" / "datasets"
    )
    rng = random.Random(seed)
    en = _clinc(home)
    zh = _cais(home)
    if not en and not zh:
        return []
    pzh, _ = _project_texts(root)
    zh += pzh
    rng.shuffle(en)
    rng.shuffle(zh)
    seen: set[str] = set()
    out = []
    for t in _interleave(zh, en):
        t = t.strip()
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def _unique_stream(root: Path, data_home: Path | None, seed: int) -> Iterator[str]:
    """Never-repeating texts: the public pool first, then generated sentences."""
    seen: set[str] = set()
    for t in distinct_pool(root, data_home, seed):
        seen.add(t)
        yield t
    zh, en = _project_texts(root)
    misses = 0
    for t in _generated(zh, en, seed):
        if t in seen:
            misses += 1
            if misses > 10_000:  # the combinations are used up: number them
                t = f"{t} #{len(seen)}"
            else:
                continue
        seen.add(t)
        yield t


def draw(
    kind: str,
    n: int,
    root: Path,
    data_home: Path | None = None,
    seed: int = 0,
    new: float = MIXED_NEW,
) -> list[str]:
    """``n`` message texts of traffic ``kind`` (``repeat``, ``distinct`` or ``mixed``)."""
    if kind not in TRAFFIC:
        raise ValueError(f"traffic must be one of {', '.join(TRAFFIC)}, got {kind!r}")
    if kind == "repeat":
        texts = repeat_texts(root)
        return [texts[i % len(texts)] for i in range(n)]
    fresh = _unique_stream(root, data_home, seed)
    if kind == "distinct":
        return [next(fresh) for _ in range(n)]
    rng = random.Random(seed + 1)
    out: list[str] = []
    seen: list[str] = []
    for _ in range(n):
        if not seen or rng.random() < new:
            t = next(fresh)
            seen.append(t)
        else:  # a repeat: rank k (1 = the first utterance seen) with weight 1 / k ** s
            t = seen[_zipf_rank(rng, len(seen)) - 1]
        out.append(t)
    return out


def _zipf_rank(rng: random.Random, n: int) -> int:
    """A rank in 1..n with weight about ``1 / k ** ZIPF_S``: a Pareto draw (density
    ``x ** -ZIPF_S`` on [1, inf)) floored, ranks beyond ``n`` drawn again."""
    while True:
        k = int(rng.paretovariate(ZIPF_S - 1))
        if k <= n:
            return k


def new_share(texts: list[str]) -> float:
    """Share of ``texts`` that are first occurrences."""
    seen: set[str] = set()
    first = 0
    for t in texts:
        if t not in seen:
            seen.add(t)
            first += 1
    return first / len(texts) if texts else 0.0
