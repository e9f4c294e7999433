"""Behaviour of IntentClassifier: predictions, probabilities, oos, decide, explain, validation."""

from __future__ import annotations

import numpy as np
import pytest
from dingskill import OUT_OF_SCOPE, IntentClassifier
from dingskill.nlu.classifier import Decision, InputError


@pytest.mark.parametrize("fixture", ["zh_data", "en_data", "mixed_data"])
def test_fits_and_predicts_held_out_paraphrases(fixture, request):
    texts, labels = request.getfixturevalue(fixture)
    clf = IntentClassifier(oos_threshold=None).fit(texts, labels)
    assert list(clf.classes_) == sorted(set(labels))
    held_out = {
        "zh": [
            ("下周一我想请假", "ask_leave"),
            ("预订一个会议室", "book_room"),
            ("这张发票能报销吗", "expense"),
        ],
        "en": [
            ("i would like to take leave on monday", "ask_leave"),
            ("please book a meeting room", "book_room"),
            ("reimburse my hotel expenses", "expense"),
        ],
    }
    langs = {"zh_data": ["zh"], "en_data": ["en"], "mixed_data": ["zh", "en"]}[fixture]
    for lang in langs:
        got = clf.predict([t for t, _ in held_out[lang]])
        assert list(got) == [lab for _, lab in held_out[lang]]


def test_predict_proba_is_a_distribution_in_class_order(zh_data):
    texts, labels = zh_data
    clf = IntentClassifier().fit(texts, labels)
    p = clf.predict_proba(["我要请假", "订会议室"])
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert clf.classes_[p[0].argmax()] == "ask_leave"
    assert clf.classes_[p[1].argmax()] == "book_room"
    assert 0 < clf.temperature_


def test_single_and_batch_paths_agree(mixed_data):
    texts, labels = mixed_data
    clf = IntentClassifier().fit(texts, labels)
    queries = ["我想请假 tomorrow", "book 会议室", "ＲＥＩＭＢＵＲＳＥ my taxi", "完全无关"]
    batch = clf.predict_proba(queries)
    for q, row in zip(queries, batch, strict=True):
        top = clf.top_k(q, k=len(clf.classes_))
        np.testing.assert_allclose([p for _, p in top], np.sort(row)[::-1], rtol=1e-4, atol=1e-7)


def test_fixed_threshold_sends_low_confidence_to_oos(en_data):
    texts, labels = en_data
    queries = ["book a meeting room please", "zzz qqq", "what is the weather", "file my expenses"]
    none = IntentClassifier(oos_threshold=None).fit(texts, labels)
    assert none.threshold_ is None
    assert OUT_OF_SCOPE not in set(none.predict(queries))
    conf = none.predict_proba(queries).max(axis=1)
    t = float(np.median(conf))
    clf = IntentClassifier(oos_threshold=t).fit(texts, labels)
    assert clf.threshold_ == t
    pred = clf.predict(queries)
    expected = np.where(conf < t, OUT_OF_SCOPE, none.predict(queries))
    assert list(pred) == list(expected)
    assert 0 < np.sum(pred == OUT_OF_SCOPE) < len(queries)


def test_auto_threshold_without_oos_rows_keeps_most_in_scope(en_data):
    texts, labels = en_data
    clf = IntentClassifier().fit(texts, labels)
    assert 0.0 <= clf.threshold_ < 1.0
    assert OUT_OF_SCOPE not in clf.classes_
    assert np.mean(clf.predict(texts) != OUT_OF_SCOPE) >= 0.9


def test_oos_rows_become_a_class_and_raise_the_threshold(zh_data, oos_texts):
    texts, labels = zh_data
    texts = texts + oos_texts["zh"]
    labels = labels + [OUT_OF_SCOPE] * len(oos_texts["zh"])
    clf = IntentClassifier(cv=3).fit(texts, labels)
    assert OUT_OF_SCOPE in clf.classes_
    assert clf.predict(["今天天气怎么样"])[0] == OUT_OF_SCOPE
    assert clf.predict(["我想请假"])[0] == "ask_leave"


def test_tune_threshold_on_validation(en_data, oos_texts):
    texts, labels = en_data
    clf = IntentClassifier(oos_threshold=None).fit(texts, labels)
    val = ["take a day off friday", "book the big room", "file my expenses"] + oos_texts["en"]
    val_y = ["ask_leave", "book_room", "expense"] + [OUT_OF_SCOPE] * len(oos_texts["en"])
    thr = clf.tune_threshold(val, val_y)
    assert clf.threshold_ == thr
    pred = clf.predict(val)
    acc_in = np.mean(pred[:3] == np.array(val_y[:3]))
    rec = np.mean(pred[3:] == OUT_OF_SCOPE)
    assert (acc_in + rec) / 2 >= 0.75


def test_decide_reports_model_and_alternatives(zh_data):
    texts, labels = zh_data
    clf = IntentClassifier().fit(texts, labels)
    d = clf.decide("我想请两天假")
    assert isinstance(d, Decision)
    assert (d.intent, d.source, d.rule) == ("ask_leave", "model", None)
    assert len(d.alternatives) == 3
    assert d.alternatives[0][0] == "ask_leave" and d.confidence == d.alternatives[0][1]
    assert [p for _, p in d.alternatives] == sorted((p for _, p in d.alternatives), reverse=True)


def test_rules_win_before_the_model(zh_data):
    texts, labels = zh_data
    rules = [
        {"intent": "expense", "words": ["发票"]},
        {"intent": "book_room", "patterns": [r"^订.*室$"]},
    ]
    clf = IntentClassifier(rules=rules).fit(texts, labels)
    d = clf.decide("我想请假，顺便问下发票")
    assert (d.intent, d.source, d.rule) == ("expense", "rule", "word:发票")
    d = clf.decide("订个小房间好不好室")
    assert (d.intent, d.source, d.rule) == ("book_room", "rule", "regex:^订.*室$")
    assert list(clf.predict(["问下发票"])) == ["expense"]


def test_bad_rule_regex_names_rule_and_pattern(zh_data):
    texts, labels = zh_data
    clf = IntentClassifier(
        rules=[{"intent": "x", "words": ["a"]}, {"intent": "y", "patterns": ["(ab"]}]
    )
    with pytest.raises(ValueError, match=r"rule 1 \(y\).*'\(ab'"):
        clf.fit(texts, labels)


def test_explain_lists_ngrams_that_pushed_the_intent(mixed_data):
    texts, labels = mixed_data
    clf = IntentClassifier().fit(texts, labels)
    df = clf.explain("帮我报销打车费", k=5)
    assert list(df.columns) == ["feature", "intent", "value", "coef", "weight"]
    assert len(df) == 5 and set(df["intent"]) == {"expense"}
    assert df["feature"].str.match(r"^(z:|semantic:use-m3$)").all()
    assert (df["weight"].abs().diff().dropna() <= 1e-12).all()
    assert any("报销" in f for f in df["feature"])
    en = clf.explain("reimburse my taxi", k=3)
    assert en["feature"].str.match(r"^([wbc]:|semantic:)").all()


@pytest.mark.parametrize("embeddings", [None, "wordllama-l2-64"])
def test_explain_weights_add_up_to_the_decision_score(mixed_data, embeddings):
    texts, labels = mixed_data
    clf = IntentClassifier(embeddings=embeddings).fit(texts, labels)
    for text in ["帮我报销打车费", "reimburse my taxi"]:
        df = clf.explain(text, k=10_000)
        j = list(clf.classes_).index(df["intent"].iloc[0])
        score = clf.decision_function([text])[0]
        assert j == int(np.argmax(score))
        assert df["weight"].sum() + clf.intercept_[j] == pytest.approx(score[j], abs=1e-4)
        assert any(f.startswith("semantic:") for f in df["feature"]) == (embeddings is not None)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        ("我想请假", ["a"], "single str"),
        (["a", None, "b"], ["x", "y", "x"], r"X\[1\] must be str, got NoneType"),
        (["a", "b", "c"], ["x", "y"], "3 texts, 2 labels"),
        (["a", "b"], ["x", "x"], "only one intent .'x'.*at least two intents"),
        (["a", "  \u200b "], ["x", "y"], r"X\[1\] is empty"),
        (["a", "b"], ["x", 3], r"y\[1\] must be str"),
    ],
)
def test_input_validation_messages(X, y, message):
    with pytest.raises(InputError, match=message):
        IntentClassifier().fit(X, y)


def test_predict_validation(en_data):
    clf = IntentClassifier().fit(*en_data)
    with pytest.raises(InputError, match="single str"):
        clf.predict("book a room")
    with pytest.raises(InputError, match=r"X\[0\] must be str, got int"):
        clf.predict([5])
    with pytest.raises(InputError, match="oos_threshold"):
        IntentClassifier(oos_threshold=2.0).fit(*en_data)


def test_deterministic_given_random_state(mixed_data):
    texts, labels = mixed_data
    a = IntentClassifier(random_state=3).fit(texts, labels)
    b = IntentClassifier(random_state=3).fit(list(texts), list(labels))
    assert a.to_bytes() == b.to_bytes()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_office_datasets_accuracy_floor(office, lang):
    train, test = office[lang]
    clf = IntentClassifier().fit(train["text"], train["intent"])
    pred = clf.predict(test["text"])
    ins = (test["intent"] != OUT_OF_SCOPE).to_numpy()
    in_acc = np.mean(pred[ins] == test["intent"].to_numpy()[ins])
    oos_rec = np.mean(pred[~ins] == OUT_OF_SCOPE) if (~ins).any() else 1.0
    assert in_acc >= 0.80, in_acc
    assert oos_rec >= 0.60, oos_rec


def test_worker_processes_do_not_change_the_model(mixed_data, monkeypatch):
    from dingskill.nlu import classifier

    texts, labels = mixed_data
    labels = [f"{lab}_{i % 5}" for i, lab in enumerate(labels)]  # 15 classes: 2 groups per fit
    a = IntentClassifier(n_jobs=1).fit(texts, labels)
    monkeypatch.setattr(classifier, "_PARALLEL_MIN_NNZ", 0)
    b = IntentClassifier(n_jobs=2).fit(texts, labels)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.threshold_ == b.threshold_ and a.temperature_ == b.temperature_


def test_empty_text_is_out_of_scope(en_data):
    clf = IntentClassifier(oos_threshold=None).fit(*en_data)
    d = clf.decide(" \u200b ")
    assert (d.intent, d.confidence, d.alternatives) == (OUT_OF_SCOPE, 0.0, [])
    assert list(clf.predict(["", "book a meeting room"])) == [OUT_OF_SCOPE, "book_room"]
