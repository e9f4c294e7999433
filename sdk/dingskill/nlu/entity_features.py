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
        # first token -> the lengths of the entries that start with it, longest first
        self._lengths: dict[str, tuple[int, ...]] = {}
        for etype, value in entries:
            self.add(etype, value)

    def add(self, etype: str, text: str) -> None:
        key = tuple(_norm(text[s:e]) for s, e in tokenize(text))
        if 0 < len(key) <= MAX_GAZ_TOKENS:
            self._put(key, etype)

    def _put(self, key: tuple[str, ...], etype: str) -> None:
        if key not in self.table and 0 < len(key) <= MAX_GAZ_TOKENS:
            lengths = {*self._lengths.get(key[0], ()), len(key)}
            self._lengths[key[0]] = tuple(sorted(lengths, reverse=True))
        self.table.setdefault(key, set()).add(etype)

    def entries(self) -> list[list]:
        """``[[type, token, token, ...], ...]`` sorted: the JSON form of the table."""
        return sorted([t, *k] for k, types in self.table.items() for t in types)

    @classmethod
    def from_entries(cls, rows: list[list]) -> Gazetteer:
        g = cls()
        for t, *k in rows:
            g._put(tuple(k), t)
        return g

    def marks(self, norm: list[str]) -> list[list[str]]:
        """Per token the gazetteer features: ``g<B|I|E|S>:type`` for every match covering it
        (only the entry lengths known for the token a match would start with are tried)."""
        out: list[list[str]] = [[] for _ in norm]
        if not self.table:
            return out
        n = len(norm)
        table, lengths = self.table, self._lengths
        for i in range(n):
            for size in lengths.get(norm[i], ()):
                j = i + size
                if j > n:
                    continue
                types = table.get(tuple(norm[i:j]))
                if not types:
                    continue
                for t in types:
                    if size == 1:
                        out[i].append("gS:" + t)
                    else:
                        out[i].append("gB:" + t)
                        for k in range(i + 1, j - 1):
                            out[k].append("gI:" + t)
                        out[j - 1].append("gE:" + t)
        return out


@lru_cache(maxsize=65536)
def _own_features(tok: str) -> tuple[str, ...]:
    """The features of a token that do not depend on its neighbours: for a non-CJK token
    its 2-3 letter prefix / suffix and case (empty for a CJK character)."""
    if _CJK_RE.match(tok):
        return ()
    low = _norm(tok)
    f = ["p2=" + low[:2], "p3=" + low[:3], "s2=" + low[-2:], "s3=" + low[-3:]]
    if tok.isupper():
        f.append("upper")
    if tok[:1].isupper():
        f.append("title")
    if tok.isdigit():
        f.append("digit")
    return tuple(f)


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
    w = ["<s3>", "<s2>", "<s1>", *norm, "</s1>", "</s2>", "</s3>"]
    # bi[k]: w[k]|w[k+1]; tri[k]: w[k]|w[k+1]|w[k+2] (each joined once, used by 2-3 tokens)
    bi = [a + "|" + b for a, b in zip(w, w[1:], strict=False)]
    feats: list[list[str]] = []
    for i in range(n):
        c = i + 3  # index in the padded list
        f = [
            "w=" + w[c],
            "w-1=" + w[c - 1],
            "w+1=" + w[c + 1],
            "w-2=" + w[c - 2],
            "w+2=" + w[c + 2],
            "b-1=" + bi[c - 1],
            "b+1=" + bi[c],
        ]
        f += _own_features(toks[i])
        if i == 0:
            f.append("BOS")
        if i == n - 1:
            f.append("EOS")
        feats.append(f)
    if rich:
        _rich_features(feats, toks, w, bi, gazetteer, intent)
    return feats


def _rich_features(
    feats: list[list[str]],
    toks: list[str],
    w: list[str],
    bi: list[str],
    gazetteer: Gazetteer | None,
    intent: str | None,
) -> None:
    """Add the ``rich`` features to each token's list (in place): the wider window, trigrams,
    shapes, gazetteer marks of the token and its neighbours, the intent."""
    n = len(toks)
    norm = w[3:-3]
    tri = [a + "|" + b for a, b in zip(bi, w[2:], strict=False)]
    gaz = gazetteer.marks(norm) if gazetteer is not None else None
    shapes = ["<s>", *(shape(t) for t in toks), "</s>"]  # shapes[i + 1]: token i's
    iw = "iw=" + intent + "|" if intent is not None else ""
    for i, f in enumerate(feats):
        c = i + 3
        f += [
            "w-3=" + w[c - 3],
            "w+3=" + w[c + 3],
            "b-2=" + bi[c - 2],
            "b+2=" + bi[c + 1],
            "b-+=" + w[c - 1] + "|" + w[c + 1],
            "t-1=" + tri[c - 2],
            "t0=" + tri[c - 1],
            "t+1=" + tri[c],
            "sh=" + shapes[i + 1],
            "sh-1=" + shapes[i],
            "sh+1=" + shapes[i + 2],
        ]
        if gaz is not None:
            f += gaz[i]
            if i and gaz[i - 1]:
                f += ["p" + g for g in gaz[i - 1]]
            if i + 1 < n and gaz[i + 1]:
                f += ["n" + g for g in gaz[i + 1]]
        if intent is not None:
            f += ["i=" + intent, iw + w[c]]
