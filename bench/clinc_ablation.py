"""Where the default classifier's CLINC150 in-scope accuracy is lost, and what else was tried.

    python bench/clinc_ablation.py --data-home ../shared/datasets/clinc150 [--part closed|fusion|reject|all] [--json]

``--variant small`` (or another CLINC150 variant) and ``--repeats`` make quick runs.

Three parts, all on the benchmark's splits (train + oos_train to fit; val + oos_val to choose;
test + oos_test reported, never used to choose):

* ``closed``: the default features (n-grams and the use-m3 block) with one change each,
  fitted as the default's final model is (one-vs-rest ``LinearSVC``), scored closed set:
  every utterance gets its best intent, no threshold. Variants: the default, another
  ``char_ngram`` range, ``C``, hinge loss, Crammer-Singer, ``embedding_weight`` 1.5, and the
  encoder block plus random Fourier features of it (an RBF kernel on the sentence vectors,
  ``rff512`` / ``rff1024``: the only nonlinear semantic features that fit in memory).
* ``fusion``: the default's closed-set scores plus ``alpha`` times the scores of a second model
  on the sentence vectors alone, a nonlinear one (an MLP with 1,024 hidden units, or ridge
  regression on 4,096 random Fourier features); ``alpha`` is chosen on val.
* ``reject``: ``IntentClassifier()`` itself, with the score its threshold compares
  (the calibrated top probability) against two others: the raw top SVM score, and the top
  probability of a softmax that also holds a "none of these" logit fixed at 0 (the one-vs-rest
  SVM's own boundary). Each is judged by split-half on val (choose the threshold on a random
  half of val + oos_val, measure on the other half; 60 splits) and on test, with the shipped
  rule (1 point of in-scope accuracy, bounded at 95 % confidence) and with the earlier rule
  that spends the budget on the held-out rows themselves, at 1 and 0.75 points.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

CLOSED = {
    "default": {},
    "char_ngram=(3, 6)": {"char": (3, 6)},
    "char_ngram=(2, 5)": {"char": (2, 5)},
    "C=0.7": {"C": 0.7},
    "C=1.4": {"C": 1.4},
    "loss=hinge": {"loss": "hinge"},
    "crammer_singer": {"multi": "crammer_singer"},
    "embedding_weight=1.5": {"w": 1.5},
    "rff512": {"rff": 512},
    "rff1024": {"rff": 1024},
}


def _splits(data_home: str, variant: str = "full") -> dict:
    from dingskill.evaluation.benchmark import load_clinc150

    d = load_clinc150(data_home, variant)
    return {
        "train": d["train"] + d["oos_train"],
        **{k: d[k] for k in ("val", "oos_val", "test", "oos_test")},
    }


SPLITS = ("train", "val", "test")  # the splits the closed-set parts fit and score


def _encoded(data: dict) -> tuple[dict, dict]:
    """Normalised texts and unit use-m3 sentence vectors of ``SPLITS``."""
    from dingskill.nlu.embeddings import load_embeddings
    from dingskill.nlu.normalize import normalize_text

    texts = {k: [normalize_text(t) for t, _ in data[k]] for k in SPLITS}
    enc = load_embeddings("use-m3")
    return texts, {k: enc.transform(v, normalized=True) for k, v in texts.items()}


def _grams(texts: dict, char: tuple[int, int] = (3, 5)) -> dict:
    """The default's n-gram rows of ``SPLITS`` (vocabulary and idf from train)."""
    from dingskill.nlu.features import TextFeaturizer

    feat = TextFeaturizer(char, (1, 3), 2)
    grams = {"train": feat.fit_transform(texts["train"])}
    grams.update({k: feat.transform(texts[k], normalized=True) for k in SPLITS[1:]})
    return grams


def _fourier(dim: int, n: int):
    """``n`` random Fourier features of ``dim``-dimensional unit vectors (an RBF kernel of
    width 1); the same draw for the same ``n`` whatever else runs."""
    rng = np.random.default_rng(0)
    W = rng.normal(0.0, 1.0, (dim, n)).astype(np.float32)
    b = rng.uniform(0.0, 2 * np.pi, n).astype(np.float32)
    return lambda E: np.sqrt(2.0 / n) * np.cos(E @ W + b)


def closed_set(data: dict, names: list[str]) -> list[dict]:
    """Closed-set val / test accuracy of each variant in ``names`` (see ``CLOSED``)."""
    from sklearn.svm import LinearSVC

    texts, unit = _encoded(data)
    labels = {k: np.array([lab for _, lab in data[k]]) for k in SPLITS}
    rows = []
    for name in names:
        spec = CLOSED[name]
        t0 = time.perf_counter()
        grams = _grams(texts, spec.get("char", (3, 5)))
        extra = None
        if spec.get("rff"):
            rff = _fourier(unit["train"].shape[1], spec["rff"])
            extra = {k: rff(v) for k, v in unit.items()}

        def design(k: str, spec=spec, grams=grams, extra=extra) -> sp.csr_matrix:
            blocks = [grams[k], sp.csr_matrix(unit[k] * spec.get("w", 1.0))]
            if extra is not None:
                blocks.append(sp.csr_matrix(extra[k]))
            return sp.hstack(blocks, format="csr")

        model = LinearSVC(
            C=spec.get("C", 1.0),
            loss=spec.get("loss", "squared_hinge"),
            multi_class=spec.get("multi", "ovr"),
            tol=1e-3,
            max_iter=2000,
            random_state=0,
        ).fit(design("train"), labels["train"])
        row = {"variant": name}
        for k in ("val", "test"):
            row[f"{k}_closed"] = round(
                100 * float(np.mean(model.predict(design(k)) == labels[k])), 2
            )
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def fusion(data: dict) -> list[dict]:
    """Closed-set accuracy of the default's scores fused with a nonlinear sentence-vector model."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC
    from threadpoolctl import threadpool_limits

    texts, unit = _encoded(data)
    grams = _grams(texts)
    svm = LinearSVC(C=1.0, tol=1e-3, max_iter=2000, random_state=0)
    svm.fit(
        sp.hstack([grams["train"], sp.csr_matrix(unit["train"])], format="csr"),
        [lab for _, lab in data["train"]],
    )
    classes = list(svm.classes_)
    y = {k: np.array([classes.index(lab) for _, lab in data[k]]) for k in texts}
    base = {
        k: svm.decision_function(sp.hstack([grams[k], sp.csr_matrix(unit[k])], format="csr"))
        for k in ("val", "test")
    }
    second = {}
    with threadpool_limits(limits=1):
        t0 = time.perf_counter()
        mlp = MLPClassifier(hidden_layer_sizes=(1024,), alpha=1e-3, max_iter=60, random_state=0)
        with warnings.catch_warnings():  # 60 epochs on purpose: the fit time is a figure
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(unit["train"], y["train"])
        second["MLP on the sentence vectors"] = (
            {k: np.log(mlp.predict_proba(unit[k]) + 1e-9) for k in base},
            time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        rff = _fourier(unit["train"].shape[1], 4096)
        Z = rff(unit["train"])
        onehot = np.eye(len(classes), dtype=np.float32)[y["train"]]
        B = np.linalg.solve(Z.T @ Z + 0.3 * np.eye(4096, dtype=np.float32), Z.T @ onehot)
        second["ridge on random Fourier features"] = (
            {k: rff(unit[k]) @ B for k in base},
            time.perf_counter() - t0,
        )
    rows = []
    for name, (scores, seconds) in second.items():
        acc = {
            a: {k: 100 * float(np.mean((base[k] + a * scores[k]).argmax(1) == y[k])) for k in base}
            for a in (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
        }
        best = max(acc, key=lambda a: (acc[a]["val"], -a))
        row = {
            "second model": name,
            "alone_val": round(100 * float(np.mean(scores["val"].argmax(1) == y["val"])), 2),
            "alpha (val)": best,
            "val_closed": round(acc[best]["val"], 2),
            "test_closed": round(acc[best]["test"], 2),
            "default_test_closed": round(acc[0.0]["test"], 2),
            "fit_seconds": round(seconds, 1),
        }
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _none_softmax_top(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = np.hstack([scores, np.zeros((len(scores), 1))]) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e[:, :-1] / e.sum(axis=1, keepdims=True)).max(axis=1)


def rejection(data: dict, repeats: int = 60) -> list[dict]:
    """The three rejection scores of ``IntentClassifier()`` by split-half on val and on test."""
    from dingskill import IntentClassifier
    from dingskill.nlu.calibration import softmax
    from dingskill.nlu.threshold import select_threshold

    train = data["train"]
    clf = IntentClassifier().fit([t for t, _ in train], [lab for _, lab in train])
    classes = list(clf.classes_)
    oos = classes.index("oos")
    T = clf.temperature_
    parts = {}
    for k in ("val", "oos_val", "test", "oos_test"):
        s = clf.decision_function([t for t, _ in data[k]])
        y = np.array([classes.index(lab) for _, lab in data[k]])
        parts[k] = (s, s.argmax(axis=1), y)
    kinds = {
        "calibrated top probability (shipped)": lambda s: softmax(s, T).max(axis=1),
        "raw top SVM score": lambda s: s.max(axis=1),
        "softmax with a none logit at 0": lambda s: _none_softmax_top(s, T),
    }

    def choose(ins, out, budget: float, level: float | None) -> float:
        conf = np.r_[ins[0], out[0]]
        top, y = np.r_[ins[1], out[1]], np.r_[ins[2], out[2]]
        is_oos = np.r_[np.zeros(len(ins[1]), bool), np.ones(len(out[1]), bool)]
        low = conf.min() - 1.0  # the rule takes any ordering; shift raw scores above 0
        return low + select_threshold(
            conf - low, top == y, is_oos, top == oos, max_inscope_loss=budget, level=level
        )

    def measure(t: float, ins, out) -> tuple[float, float, float]:
        right = ins[1] == ins[2]
        closed = 100 * float(np.mean(right))
        acc = 100 * float(np.mean(right & (ins[0] >= t)))
        rec = 100 * float(np.mean((out[1] == oos) | (out[0] < t)))
        return closed - acc, acc, rec

    rows = []
    for kind, score in kinds.items():
        view = {k: (score(s), top, y) for k, (s, top, y) in parts.items()}
        # the shipped rule (1 point, bounded at 95 %) and the rule spending the budget on the
        # held-out rows themselves (the default until 2026-11-25), at 1 and 0.75 points
        for budget, level in ((0.01, 0.95), (0.01, None), (0.0075, None)):
            rng = np.random.default_rng(1)
            held = []
            n_in, n_out = len(view["val"][2]), len(view["oos_val"][2])
            for _ in range(repeats):
                pi, po = rng.permutation(n_in), rng.permutation(n_out)
                a = [
                    tuple(x[pi[: n_in // 2]] for x in view["val"]),
                    tuple(x[po[: n_out // 2]] for x in view["oos_val"]),
                ]
                b = [
                    tuple(x[pi[n_in // 2 :]] for x in view["val"]),
                    tuple(x[po[n_out // 2 :]] for x in view["oos_val"]),
                ]
                loss, _, rec = measure(choose(*a, budget, level), *b)
                held.append((loss, rec))
            held = np.array(held)
            t = choose(view["val"], view["oos_val"], budget, level)
            _, acc, rec = measure(t, view["test"], view["oos_test"])
            row = {
                "score": kind,
                "budget_points": round(100 * budget, 2),
                "bound": "none" if level is None else f"{100 * level:g}%",
                "val_halves_inscope_loss": round(float(held[:, 0].mean()), 2),
                "val_halves_oos_recall": round(float(held[:, 1].mean()), 1),
                "test_inscope": round(acc, 2),
                "test_oos_recall": round(rec, 1),
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-home", default="../shared/datasets/clinc150")
    ap.add_argument("--variant", default="full", help="CLINC150 variant (data_<variant>.json)")
    ap.add_argument("--repeats", type=int, default=60, help="split-halves of val (reject part)")
    ap.add_argument("--part", choices=("closed", "fusion", "reject", "all"), default="all")
    ap.add_argument("--variants", nargs="*", default=list(CLOSED), choices=list(CLOSED))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    data = _splits(args.data_home, args.variant)
    out = {}
    if args.part in ("closed", "all"):
        out["closed"] = closed_set(data, args.variants)
    if args.part in ("fusion", "all"):
        out["fusion"] = fusion(data)
    if args.part in ("reject", "all"):
        out["reject"] = rejection(data, args.repeats)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        import pandas as pd

        for part, rows in out.items():
            print(f"\n{part}\n" + pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
