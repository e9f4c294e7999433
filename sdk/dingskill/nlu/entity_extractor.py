"""``EntityExtractor``: a trained entity finder (linear-chain CRF over characters / words).

Chinese is labelled per character (no word segmenter), other scripts per word; labels are BIO
(``B-room``, ``I-room``, ``O``) and the CRF is CRFsuite's (python-crfsuite), trained with
L-BFGS and elastic-net regularisation. Features: see :mod:`dingskill.nlu.entity_features`.

Example::

    from dingskill.nlu import EntityExtractor
    ext = EntityExtractor().fit(texts, entities, intents)   # entities: per text a list of
    ext.predict(["帮我订西湖厅"])                              # Entity or {start, end, entity, value}
    # -> [[Entity(start=3, end=6, entity='room', value='西湖厅', confidence=0.98, source=model)]]

A fitted extractor saves to one file (:meth:`save` / :meth:`load`): a zip with CRFsuite's own
model bytes and a JSON document (parameters, labels, gazetteer, canonical values). No pickle;
a file of another format version is refused with what to do.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions

from .entity import Entity, EntitySource
from .entity_features import Gazetteer, _norm, token_features, tokenize

__all__ = ["EntityExtractor", "EntityModelError", "FORMAT", "VERSION"]

FORMAT = "dingskill.EntityExtractor"
VERSION = 1
_META = "dingskill-entities.json"
_CRF = "crfsuite.bin"
_DATE = (1980, 1, 1, 0, 0, 0)
MAX_MODEL_BYTES = 256 * 2**20


class EntityModelError(ValueError):
    """A model file that cannot be used (another format version, damaged, not ours)."""


def _as_dicts(row) -> list[dict]:
    out = []
    for e in row or []:
        if isinstance(e, Entity):
            out.append({"start": e.start, "end": e.end, "entity": e.entity, "value": e.value})
        else:
            out.append(dict(e))
    return out


def _bio(spans: list[tuple[int, int]], ents: list[dict]) -> list[str]:
    """BIO labels of the tokens ``spans`` for the entities ``ents`` (a token belongs to the
    entity it overlaps)."""
    labels = ["O"] * len(spans)
    for e in sorted(ents, key=lambda e: e["start"]):
        first = True
        for i, (s, t) in enumerate(spans):
            if s < e["end"] and e["start"] < t and labels[i] == "O":
                labels[i] = ("B-" if first else "I-") + e["entity"]
                first = False
    return labels


class EntityExtractor(BaseEstimator):
    """Entity extractor for short utterances in Chinese, English or both.

    Parameters
    ----------
    features : "rich" or "plain"
        "plain": the textbook CRF features (token, neighbours, bigrams, affixes); "rich" adds a
        wider window with trigrams, word shapes, gazetteer matches and the intent.
    algorithm : "lbfgs" (L-BFGS, L1 + L2) or "l2sgd" (stochastic gradient descent, L2 only:
        ``c1`` is not used; fewer passes over the data).
    c1, c2 : L1 and L2 regularisation of the CRF.
    max_iterations : L-BFGS iterations, or SGD epochs.
    gazetteer_folds : the training rows are split in this many folds and each fold's gazetteer
        features come from the values of the *other* folds (plus the lookup tables), so the
        model learns how far a gazetteer match can be trusted for values it has not seen.
    use_intent : with intents given to ``fit``, the intent (alone and joined with each token)
        is a feature; ``predict`` then takes the intents decided for the texts (without them
        it still works, a little less well: on SNIPS 95.1 instead of 96.5 micro F1).
    lookups : ``{type: [value, ...]}`` known values (Rasa lookup tables), gazetteer entries.
    synonyms : ``{written form: canonical value}``; a found span written so gets that value.
    min_confidence : entities whose confidence (lowest CRF marginal of their tokens) is below
        this are dropped.
    random_state : seed of the gazetteer folds.
    """

    _parameter_constraints: dict = {
        "features": [StrOptions({"rich", "plain"})],
        "algorithm": [StrOptions({"lbfgs", "l2sgd"})],
        "c1": [Interval(Real, 0, None, closed="left")],
        "c2": [Interval(Real, 0, None, closed="left")],
        "max_iterations": [Interval(Integral, 1, None, closed="left")],
        "gazetteer_folds": [Interval(Integral, 2, None, closed="left")],
        "use_intent": ["boolean"],
        "lookups": [dict, None],
        "synonyms": [dict, None],
        "min_confidence": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        features: str = "rich",
        algorithm: str = "lbfgs",
        c1: float = 0.05,
        c2: float = 0.01,
        max_iterations: int = 50,
        gazetteer_folds: int = 2,
        use_intent: bool = True,
        lookups: dict | None = None,
        synonyms: dict | None = None,
        min_confidence: float = 0.0,
        random_state=0,
    ) -> None:
        self.features = features
        self.algorithm = algorithm
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.gazetteer_folds = gazetteer_folds
        self.use_intent = use_intent
        self.lookups = lookups
        self.synonyms = synonyms
        self.min_confidence = min_confidence
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, texts: Sequence[str], entities: Sequence, intents: Sequence[str] | None = None):
        """Train on ``texts`` with, per text, its entities (``Entity`` objects or dicts with
        ``start``, ``end``, ``entity`` and optionally ``value``) and optionally its intent."""
        import pycrfsuite

        self._validate_params()
        texts = [str(t) for t in texts]
        rows = [_as_dicts(r) for r in entities]
        if len(rows) != len(texts) or (intents is not None and len(intents) != len(texts)):
            raise ValueError(
                f"{len(texts)} texts, {len(rows)} entity lists"
                + ("" if intents is None else f", {len(intents)} intents")
                + ": give one per text"
            )
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            for j, e in enumerate(row):
                if not (0 <= e["start"] < e["end"] <= len(text)):
                    raise ValueError(
                        f"row {i} entities[{j}]: span [{e['start']}, {e['end']}) is outside "
                        f"the text {text!r} (length {len(text)}); check the offsets"
                    )
        rich = self.features == "rich"
        with_intent = rich and self.use_intent and intents is not None
        lookups = {str(k): [str(v) for v in vs] for k, vs in (self.lookups or {}).items()}
        self.values_ = self._canonical_values(texts, rows)
        full = self._gazetteer(texts, rows, lookups, range(len(texts)))
        fold_gaz: list[Gazetteer | None] = [full] * len(texts)
        if rich:
            rng = np.random.RandomState(
                self.random_state if isinstance(self.random_state, int) else None
            )
            fold = rng.randint(0, self.gazetteer_folds, size=len(texts))
            for k in range(self.gazetteer_folds):
                others = np.flatnonzero(fold != k)
                g = self._gazetteer(texts, rows, lookups, others)
                for i in np.flatnonzero(fold == k):
                    fold_gaz[i] = g
        trainer = pycrfsuite.Trainer(algorithm=self.algorithm, verbose=False)
        params = {
            "c2": float(self.c2),
            "max_iterations": int(self.max_iterations),
            "feature.possible_transitions": True,
        }
        if self.algorithm == "lbfgs":
            params["c1"] = float(self.c1)
        trainer.set_params(params)
        for i, text in enumerate(texts):
            spans = tokenize(text)
            if not spans:
                continue
            feats = token_features(
                text,
                spans,
                rich=rich,
                gazetteer=fold_gaz[i],
                intent=str(intents[i]) if with_intent else None,
            )
            trainer.append(pycrfsuite.ItemSequence(feats), _bio(spans, rows[i]))
        with tempfile.TemporaryDirectory(prefix="dingskill-crf-") as tmp:
            path = Path(tmp) / "model.crfsuite"
            trainer.train(str(path))
            self._set_model(path.read_bytes())
        self.gazetteer_ = full if rich else Gazetteer()
        self.intent_feature_ = with_intent
        self.entity_types_ = sorted({e["entity"] for r in rows for e in r})
        return self

    @staticmethod
    def _gazetteer(texts, rows, lookups: dict, idx) -> Gazetteer:
        g = Gazetteer()
        for t, values in lookups.items():
            for v in values:
                g.add(t, v)
        for i in idx:
            for e in rows[i]:
                g.add(e["entity"], texts[i][e["start"] : e["end"]])
        return g

    @staticmethod
    def _canonical_values(texts, rows) -> dict[str, dict[str, object]]:
        """``{type: {normalised surface: canonical value}}`` where the data's value differs
        from the surface form (its most common value)."""
        seen: dict[tuple[str, str], Counter] = {}
        for text, row in zip(texts, rows, strict=True):
            for e in row:
                surface = text[e["start"] : e["end"]]
                value = e.get("value")
                if value is None or value == surface:
                    continue
                key = (e["entity"], _norm(surface))
                seen.setdefault(key, Counter())[json.dumps(value, ensure_ascii=False)] += 1
        out: dict[str, dict[str, object]] = {}
        for (t, s), c in sorted(seen.items()):
            out.setdefault(t, {})[s] = json.loads(c.most_common(1)[0][0])
        return out

    def _set_model(self, raw: bytes) -> None:
        import pycrfsuite

        tagger = pycrfsuite.Tagger()
        tagger.open_inmemory(raw)
        self.model_bytes_ = raw
        self._tagger = tagger
        self._lock = threading.Lock()
        self._known: frozenset[str] | None | bool = False  # not read yet (see _attributes)
        self.labels_ = sorted(tagger.labels())

    def _attributes(self) -> frozenset[str] | None:
        """The attribute names the CRF model knows, read once from its dump (under the
        lock), or None when the dump does not list them all. The tagger gives every other
        attribute no weight (it drops it when the sequence is set), so leaving those out
        of a sequence changes no label and no marginal; it only spares CRFsuite the copy
        and the lookup of each (on new texts most n-grams are unknown)."""
        if self._known is False:
            with self._lock:
                if self._known is False:
                    self._known = self._read_attributes()
        return self._known  # type: ignore[return-value]

    def _read_attributes(self) -> frozenset[str] | None:
        try:
            info = self._tagger.info()
            if len(info.attributes) == int(info.header["num_attrs"]):
                return frozenset(info.attributes)
        except Exception:  # noqa: BLE001 - an unreadable dump: tag with every feature
            pass
        return None

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_bytes_"):
            raise NotFittedError("this EntityExtractor is not fitted yet: call fit() or load()")

    def predict(
        self, texts: Sequence[str], intents: Sequence[str] | None = None
    ) -> list[list[Entity]]:
        """Per text the entities found, ordered by position (``source`` = model)."""
        self._check_fitted()
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts; for one text: predict([text])[0]")
        if intents is not None and len(intents) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(intents)} intents")
        return [
            self._one(str(t), None if intents is None else intents[i]) for i, t in enumerate(texts)
        ]

    def _one(self, text: str, intent) -> list[Entity]:
        import pycrfsuite

        spans = tokenize(text)
        if not spans:
            return []
        rich = self.features == "rich"
        feats = token_features(
            text,
            spans,
            rich=rich,
            gazetteer=self.gazetteer_ if rich else None,
            intent=str(intent) if (self.intent_feature_ and intent is not None) else None,
        )
        known = self._attributes()
        if known is not None:
            feats = [list(filter(known.__contains__, f)) for f in feats]
        with self._lock:
            self._tagger.set(pycrfsuite.ItemSequence(feats))
            labels = self._tagger.tag()
            marg = [self._tagger.marginal(y, i) for i, y in enumerate(labels)]
        out: list[Entity] = []
        cur = None  # [type, first token, last token, lowest marginal]
        for i, y in enumerate(labels + ["O"]):
            kind, _, etype = y.partition("-")
            if cur is not None and (kind != "I" or etype != cur[0]):
                out.append(self._entity(text, spans, *cur))
                cur = None
            if kind == "B" or (kind == "I" and cur is None):
                cur = [etype, i, i, marg[i]]
            elif kind == "I":
                cur[2], cur[3] = i, min(cur[3], marg[i])
        return [e for e in out if e.confidence >= self.min_confidence]

    def _entity(self, text, spans, etype: str, first: int, last: int, conf: float) -> Entity:
        start, end = spans[first][0], spans[last][1]
        surface = text[start:end]
        value: object = surface
        syn = self.synonyms or {}
        if surface in syn:
            value = syn[surface]
        else:
            value = self.values_.get(etype, {}).get(_norm(surface), surface)
        return Entity(start, end, etype, value, round(float(conf), 4), EntitySource.MODEL)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The model file's bytes (a zip: JSON document + CRFsuite model; no pickle)."""
        self._check_fitted()
        from .._version import __version__

        meta = {
            "format": FORMAT,
            "version": VERSION,
            "dingskill": __version__,
            "params": self.get_params(),
            "labels": self.labels_,
            "entity_types": self.entity_types_,
            "intent_feature": self.intent_feature_,
            "gazetteer": self.gazetteer_.entries(),
            "values": self.values_,
        }
        if not isinstance(meta["params"]["random_state"], (int, type(None))):
            meta["params"]["random_state"] = None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in (
                (_META, json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()),
                (_CRF, self.model_bytes_),
            ):
                info = zipfile.ZipInfo(name, date_time=_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        return buf.getvalue()

    def save(self, path) -> Path:
        """Write the model file (atomically: a reader never sees half a file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = "<bytes>") -> EntityExtractor:
        """Read a model file's bytes; another format or version is refused."""
        from .persistence import UnsafeModelError, _read_member

        try:
            zf = zipfile.ZipFile(io.BytesIO(raw))
            names = set(zf.namelist())
        except zipfile.BadZipFile:
            raise EntityModelError(f"{where}: not an entity model file (not a zip)") from None
        if names != {_META, _CRF}:
            raise EntityModelError(
                f"{where}: not an entity model file (members {sorted(names)}; expected "
                f"{[_META, _CRF]})"
            )
        try:
            meta = json.loads(_read_member(zf, _META))
            crf = _read_member(zf, _CRF, MAX_MODEL_BYTES)
        except (UnsafeModelError, ValueError) as exc:
            raise EntityModelError(f"{where}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EntityModelError(
                f"{where}: not an entity model file (format {meta.get('format')!r}, expected "
                f"{FORMAT!r})"
            )
        if meta.get("version") != VERSION:
            raise EntityModelError(
                f"{where}: entity model format version {meta.get('version')!r} (written by "
                f"dingskill {meta.get('dingskill', '?')}); this dingskill reads version "
                f"{VERSION}: retrain the model with this version (dingskill train, or "
                "Skill.train) and save it again"
            )
        params = dict(meta["params"])
        est = cls(**{k: v for k, v in params.items() if k in cls._parameter_constraints})
        try:
            est._set_model(crf)
        except Exception as exc:  # crfsuite's own check of its bytes
            raise EntityModelError(f"{where}: damaged CRF model ({exc})") from None
        est.labels_ = list(meta["labels"])
        est.entity_types_ = list(meta["entity_types"])
        est.intent_feature_ = bool(meta["intent_feature"])
        est.gazetteer_ = Gazetteer.from_entries(meta["gazetteer"])
        est.values_ = {str(t): dict(v) for t, v in meta["values"].items()}
        return est

    @classmethod
    def load(cls, path) -> EntityExtractor:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        return cls.from_bytes(path.read_bytes(), str(path))

    def __getstate__(self):  # no pickle of the CRFsuite handle (sklearn.clone does not need it)
        state = self.__dict__.copy()
        state.pop("_tagger", None)
        state.pop("_lock", None)
        state.pop("_known", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "model_bytes_" in state:
            self._set_model(state["model_bytes_"])
