"""scikit-learn estimator contract.

Run: clone, get/set_params, NotFittedError, GridSearchCV, cross_val_score and these checks
from ``sklearn.utils.estimator_checks``: check_no_attributes_set_in_init,
check_parameters_default_constructible, check_get_params_invariance, check_set_params,
check_dont_overwrite_parameters-like behaviour (tested here directly: fit does not change
params). Skipped: the checks that feed 2-D numeric arrays (check_estimator's fit/predict
checks, dtype, NaN, sample-weight and sparse-input checks) — this estimator takes a 1-D
list of texts, which those checks cannot generate.
"""

from __future__ import annotations

import numpy as np
import pytest
from dingskill import IntentClassifier
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)


@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_get_params_invariance,
        check_set_params,
    ],
)
def test_sklearn_checks(check):
    check("IntentClassifier", IntentClassifier(rules=[{"intent": "a", "words": ["x"]}]))


def test_clone_and_params_unchanged_by_fit(zh_data):
    clf = IntentClassifier(
        C=0.5, rules=[{"intent": "expense", "words": ["发票"]}], oos_threshold=0.2
    )
    before = clf.get_params()
    clf.fit(*zh_data)
    assert clf.get_params() == before
    c = clone(clf)
    assert c.get_params() == before and not hasattr(c, "classes_")
    c.set_params(C=2.0)
    assert c.C == 2.0 and clf.C == 0.5


def test_not_fitted_errors():
    clf = IntentClassifier()
    for call in (
        lambda: clf.predict(["a"]),
        lambda: clf.predict_proba(["a"]),
        lambda: clf.decide("a"),
        lambda: clf.top_k("a"),
        lambda: clf.explain("a"),
        lambda: clf.to_bytes(),
    ):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


def test_grid_search_and_cross_val_score(mixed_data):
    texts, labels = mixed_data
    texts, labels = np.array(texts, dtype=object), np.array(labels)
    scores = cross_val_score(IntentClassifier(oos_threshold=None), texts, labels, cv=3)
    assert scores.shape == (3,) and scores.mean() >= 0.8
    gs = GridSearchCV(IntentClassifier(oos_threshold=None), {"C": [0.1, 1.0]}, cv=3).fit(
        texts, labels
    )
    assert gs.best_params_["C"] in (0.1, 1.0)
    assert gs.predict(["帮我订会议室"])[0] == "book_room"
    assert gs.score(texts, labels) >= 0.9
