"""The n-gram featurizer: what it extracts for Chinese, English and mixed text, and that its
batch, single-utterance and fit-time paths give the same numbers."""

from __future__ import annotations

import numpy as np
from dingskill.nlu.features import TextFeaturizer, analyze

TEXTS = [
    "我想请三天年假",
    "Book the big meeting room",
    "帮我 book 一个会议室 tomorrow",
    "ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ",
    "我想请三天年假",
    "reimburse my taxi fare",
]


def test_features_by_script():
    zh = analyze("请假", char_ngram=(3, 5), cjk_ngram=(1, 2))
    assert set(zh) == {"z:请", "z:假", "z:<请", "z:请假", "z:假>"}
    en = analyze("Book rooms", char_ngram=(3, 3), cjk_ngram=(1, 2))
    assert {"w:book", "w:rooms", "b:book rooms", "c: bo", "c:ok ", "c:k r", "c:ms "} <= set(en)
    mixed = analyze("订 room", char_ngram=(3, 3), cjk_ngram=(1, 1))
    assert {"z:订", "w:room"} <= set(mixed)
    assert analyze("ＦＵＬＬ") == analyze("full")  # NFKC + lower case first


def test_fit_transform_transform_and_transform_one_agree():
    a = TextFeaturizer((3, 5), (1, 3), min_df=1)
    X = a.fit_transform(TEXTS)
    b = TextFeaturizer((3, 5), (1, 3), min_df=1).fit(TEXTS)
    assert a.vocabulary_ == b.vocabulary_
    np.testing.assert_array_equal(a.idf_, b.idf_)
    Y = b.transform(TEXTS)
    assert abs(X - Y).max() == 0
    np.testing.assert_allclose(np.linalg.norm(Y.toarray(), axis=1), 1.0)
    for i, text in enumerate(TEXTS):
        idx, vals = b.transform_one(text)
        row = Y[i].toarray().ravel()
        np.testing.assert_allclose(row[idx], vals)
        assert np.count_nonzero(row) == len(idx)


def test_unknown_features_and_empty_texts_give_empty_rows():
    f = TextFeaturizer((3, 5), (1, 3), min_df=1).fit(TEXTS)
    X = f.transform(["", "   ", "ζζζ"])
    assert X.shape == (3, len(f.vocabulary_)) and X.nnz == 0
    idx, vals = f.transform_one("")
    assert len(idx) == 0 and len(vals) == 0
