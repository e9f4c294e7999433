"""Tokens and CRF features for the entity extractor.

Tokens: each CJK character on its own (Chinese needs no word segmenter), runs of letters, runs
of digits, and every other non-space character. Each token keeps its ``(start, end)`` offsets
into the text as typed; normalisation (NFKC, lower case) happens only in the feature strings,
so spans always map back to the original text.

Two feature sets:

``plain``
    the textbook linear-chain CRF: the token and its neighbours at distance 1 and 2, the two
    bigrams around it, and for Latin words their 2-3 letter prefix / suffix and case (the
    ``baseline_micro_f1`` of ``dingskill bench entities``).
``rich``
    ``plain`` plus a wider window (3 on each side) with its bigrams and trigrams, word shapes,
    gazetteer matches (known values of each type, from training annotations and lookup tables,
    marked B / I / E / S by position inside the match), and the utterance's intent alone and
    joined with the token.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["Gazetteer", "tokenize", "token_features", "shape"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+|[^\s]", re.UNICODE)
_CJK_RE = re.compile(rf"[{_CJK}]")
MAX_GAZ_TOKENS = 12  # longest gazetteer entry looked for, in tokens


def tokenize(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each token of ``text``."""
    return [m.span() for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=65536)
def _norm(tok: str) -> str:
    return unicodedata.normalize("NFKC", tok).lower()


@lru_cache(maxsize=65536)
def shape(tok: str) -> str:
    """``Xx`` / ``x`` / ``X`` / ``d`` / ``C`` (CJK) / punctuation as itself; runs collapsed."""
    out = []
    for ch in tok:
        if _CJK_RE.match(ch):
            c = "C"
        elif ch.isdigit():
            c = "d"
        elif ch.isalpha():
            c = "X" if ch.isupper() else "x"
        else:
            c = ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


class Gazetteer:
    """Known entity values by type, matched over token sequences (normalised forms)."""

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        self.table: dict[tuple[str, ...], set[str]] = {}
        for etype, value in entries:
            self.add(etype, value)

    def add(self, etype: str, text: str) -> None:
        key = tuple(_norm(text[s:e]) for s, e in tokenize(text))
        if 0 < len(key) <= MAX_GAZ_TOKENS:
            self.table.setdefault(key, set()).add(etype)

    def entries(self) -> list[list]:
        """``[[type, token, token, ...], ...]`` sorted: the JSON form of the table."""
        return sorted([t, *k] for k, types in self.table.items() for t in types)

    @classmethod
    def from_entries(cls, rows: list[list]) -> Gazetteer:
        g = cls()
        for t, *k in rows:
            g.table.setdefault(tuple(k), set()).add(t)
        return g

    def marks(self, norm: list[str]) -> list[list[str]]:
        """Per token the gazetteer features: ``g<B|I|E|S>:type`` for every match covering it."""
        out: list[list[str]] = [[] for _ in norm]
        if not self.table:
            return out
        n = len(norm)
        for i in range(n):
            for j in range(min(n, i + MAX_GAZ_TOKENS), i, -1):
                types = self.table.get(tuple(norm[i:j]))
                if not types:
                    continue
                for t in types:
                    if j - i == 1:
                        out[i].append("gS:" + t)
                    else:
                        out[i].append("gB:" + t)
                        for k in range(i + 1, j - 1):
                            out[k].append("gI:" + t)
                        out[j - 1].append("gE:" + t)
        return out


def token_features(
    text: str,
    spans: list[tuple[int, int]],
    rich: bool = True,
    gazetteer: Gazetteer | None = None,
    intent: str | None = None,
) -> list[list[str]]:
    """The CRF attributes of each token (a list of strings per token)."""
    toks = [text[s:e] for s, e in spans]
    norm = [_norm(t) for t in toks]
    n = len(toks)
    pad = ["<s3>", "<s2>", "<s1>"]
    w = pad + norm + ["</s1>", "</s2>", "</s3>"]
    gaz = gazetteer.marks(norm) if (rich and gazetteer is not None) else None
    shapes = [shape(t) for t in toks] if rich else []
    feats: list[list[str]] = []
    for i in range(n):
        c = i + 3  # index in the padded list
        tok = toks[i]
        f = [
            "w=" + w[c],
            "w-1=" + w[c - 1],
            "w+1=" + w[c + 1],
            "w-2=" + w[c - 2],
            "w+2=" + w[c + 2],
            "b-1=" + w[c - 1] + "|" + w[c],
            "b+1=" + w[c] + "|" + w[c + 1],
        ]
        if not _CJK_RE.match(tok):
            low = norm[i]
            f += ["p2=" + low[:2], "p3=" + low[:3], "s2=" + low[-2:], "s3=" + low[-3:]]
            if tok.isupper():
                f.append("upper")
            if tok[:1].isupper():
                f.append("title")
            if tok.isdigit():
                f.append("digit")
        if i == 0:
            f.append("BOS")
        if i == n - 1:
            f.append("EOS")
        if rich:
            f += [
                "w-3=" + w[c - 3],
                "w+3=" + w[c + 3],
                "b-2=" + w[c - 2] + "|" + w[c - 1],
                "b+2=" + w[c + 1] + "|" + w[c + 2],
                "b-+=" + w[c - 1] + "|" + w[c + 1],
                "t-1=" + w[c - 2] + "|" + w[c - 1] + "|" + w[c],
                "t0=" + w[c - 1] + "|" + w[c] + "|" + w[c + 1],
                "t+1=" + w[c] + "|" + w[c + 1] + "|" + w[c + 2],
                "sh=" + shapes[i],
                "sh-1=" + (shapes[i - 1] if i else "<s>"),
                "sh+1=" + (shapes[i + 1] if i + 1 < n else "</s>"),
            ]
            if gaz is not None:
                f += gaz[i]
                if i:
                    f += ["p" + g for g in gaz[i - 1]]
                if i + 1 < n:
                    f += ["n" + g for g in gaz[i + 1]]
            if intent is not None:
                f += ["i=" + intent, "iw=" + intent + "|" + w[c]]
        feats.append(f)
    return feats
