"""The entity step's precomputed paths give exactly what the plain code gives: the CRF
features (with the gazetteer's index by first token), the word-list spans (with their
table made once per list), the from-now check (with its word gate). The plain versions
here are the code before the fast paths."""

from __future__ import annotations

import unicodedata

import pytest
from dingskill.nlu.entity_features import (
    _CJK_RE,
    MAX_GAZ_TOKENS,
    Gazetteer,
    shape,
    token_features,
    tokenize,
)
from dingskill.nlu.system_entities import (
    _RE_AFTER_EN,
    _RE_AFTER_ZH,
    _RE_HALF_HOUR_AFTER,
    _RE_IN_A,
    _fold,
    reads_clock,
)
from dingskill.skills.slots import word_spans

TEXTS = [
    "",
    "帮我订明天下午的西湖厅",
    "Book the West Lake room for Friday 3pm",
    "请 annual leave 三天，从 12月21日 开始",
    "ＡＢＣ  全角 Ｔｅｓｔ 123abc INC-1234",
    "lake room lake room river-room!!",
    "great wall great wall room 长城厅长城",
    "Hello, WORLD. It's 9:30 a.m.?",
    "a b c d e f g h i j k l m n o p q r s t",
    "西湖 west lake room, 黄山厅 and HuangShan",
]
ENTRIES = [
    ("room", "西湖厅"),
    ("room", "west lake room"),
    ("room", "lake room"),
    ("room", "lake"),
    ("room", "长城"),
    ("room", "great wall room"),
    ("date", "明天"),
    ("date", "friday"),
    ("leave", "annual leave"),
    ("leave", "a b c d e f g h i j k l m"),  # 13 tokens: too long to be kept
    ("x", "b c"),
]


def _norm(tok: str) -> str:
    return unicodedata.normalize("NFKC", tok).lower()


def _plain_marks(table: dict, norm: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in norm]
    if not table:
        return out
    n = len(norm)
    for i in range(n):
        for j in range(min(n, i + MAX_GAZ_TOKENS), i, -1):
            types = table.get(tuple(norm[i:j]))
            if not types:
                continue
            for t in sorted(types):
                if j - i == 1:
                    out[i].append("gS:" + t)
                else:
                    out[i].append("gB:" + t)
                    for k in range(i + 1, j - 1):
                        out[k].append("gI:" + t)
                    out[j - 1].append("gE:" + t)
    return out


def _plain_features(text, spans, rich, table, intent) -> list[list[str]]:
    toks = [text[s:e] for s, e in spans]
    norm = [_norm(t) for t in toks]
    n = len(toks)
    w = ["<s3>", "<s2>", "<s1>", *norm, "</s1>", "</s2>", "</s3>"]
    gaz = _plain_marks(table, norm) if (rich and table is not None) else None
    shapes = [shape(t) for t in toks] if rich else []
    feats = []
    for i in range(n):
        c = i + 3
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


def _sorted_marks(feats: list[list[str]]) -> list[list[str]]:
    """The features with each token's run of gazetteer marks in one order (a type set's
    iteration order is the same for both, but the plain marks sort it)."""
    return [sorted(f) for f in feats]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("rich", [True, False])
@pytest.mark.parametrize("intent", [None, "book_room"])
@pytest.mark.parametrize("loaded", [False, True])
def test_token_features_equal_the_plain_ones(text, rich, intent, loaded):
    g = Gazetteer(ENTRIES)
    if loaded:  # the index is rebuilt from a saved model's entries
        g = Gazetteer.from_entries(g.entries())
    spans = tokenize(text)
    fast = token_features(text, spans, rich=rich, gazetteer=g, intent=intent)
    plain = _plain_features(text, spans, rich, g.table, intent)
    if any(len(types) > 1 for types in g.table.values()):
        fast, plain = _sorted_marks(fast), _sorted_marks(plain)
    assert fast == plain


def test_gazetteer_entries_survive_the_index():
    g = Gazetteer(ENTRIES)
    again = Gazetteer.from_entries(g.entries())
    assert again.entries() == g.entries()
    assert again.marks(["lake", "room"]) == g.marks(["lake", "room"])
    assert g.marks(["b", "c"]) == [["gB:x"], ["gE:x"]]
    assert not any(len(k) > MAX_GAZ_TOKENS for k in g.table)
    assert Gazetteer().marks(["a"]) == [[]]


def _plain_word_spans(spec, text):
    pairs = sorted(
        {(syn.lower(), canon) for canon, syns in spec.items() for syn in [canon, *syns] if syn},
        key=lambda p: (-len(p[0]), p[0]),
    )
    low = text.lower()
    taken = []
    for syn, canon in pairs:
        start = low.find(syn)
        while start >= 0:
            end = start + len(syn)
            ascii_word = syn.isascii() and syn[:1].isalnum()
            bounded = not ascii_word or (
                (start == 0 or not low[start - 1].isalnum())
                and (end == len(low) or not low[end].isalnum())
            )
            if bounded and not any(s < end and start < e for s, e, _ in taken):
                taken.append((start, end, canon))
            start = low.find(syn, start + 1)
    return sorted(taken)


WORDS = {
    "长城厅": ["长城", "great wall", "great wall room"],
    "西湖厅": ["西湖", "west lake", "west lake room"],
    "年假": ["年休假", "annual leave", "annual", "", "Vacation"],
}


@pytest.mark.parametrize("text", TEXTS + ["VACATION vacations annual-leave", "greatwall"])
def test_word_spans_equal_the_plain_ones(text):
    assert word_spans(WORDS, text) == _plain_word_spans(WORDS, text)


def test_word_spans_follow_an_edited_list():
    spec = {"年假": ["annual"]}
    assert word_spans(spec, "annual leave") == [(0, 6, "年假")]
    spec["年假"].append("annual leave")  # edited in place (a notebook does)
    assert word_spans(spec, "annual leave") == [(0, 12, "年假")]
    odd = {"年假": [["annual"]]}  # unhashable: no cache, the plain reading (and its error)
    with pytest.raises(AttributeError):
        word_spans(odd, "annual")


CLOCK_TEXTS = [
    "两小时后提醒我",
    "3天后",
    "半小时之后开会",
    "in 2 hours",
    "in a day",
    "3 days later",
    "2 wee\u212a later",  # Kelvin sign: re.I reads it as k
    "\u0131n half an hour",  # dotless i
    "明天下午三点",
    "next Monday",
    "后来呢",
    "",
]


@pytest.mark.parametrize("text", CLOCK_TEXTS + TEXTS)
def test_reads_clock_gate_equals_the_plain_reading(text):
    t = _fold(text)
    plain = any(
        rx.search(t) is not None
        for rx in (_RE_AFTER_ZH, _RE_AFTER_EN, _RE_IN_A, _RE_HALF_HOUR_AFTER)
    )
    assert reads_clock(text) is plain
