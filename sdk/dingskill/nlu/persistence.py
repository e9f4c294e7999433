"""Pickle-free, byte-reproducible model files.

Format: a zip (fixed member order and timestamps, deflate) holding

* ``dingskill-model.json`` — format name/version, estimator parameters, classes, feature
  strings, threshold, temperature, and the name, SHA-256 and width of the static embedding
  table the model was trained with (JSON only: strings, numbers, lists, dicts, null);
* ``coef.npy``, ``intercept.npy``, ``idf.npy`` — numeric arrays, read with
  ``allow_pickle=False`` and checked for dtype and shape.

The embedding table itself is not in the file: it is read from the installed package that
ships it (:mod:`dingskill.nlu.embeddings`), and a model whose recorded SHA-256 differs from the
installed table is refused. Version 1 files (no embeddings) still load.

Nothing in a file can name a Python object to import or call. Anything else — a pickle, a
skops file, extra members, object arrays — is refused with :class:`UnsafeModelError`.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

__all__ = ["FORMAT", "UnsafeModelError", "dumps", "loads"]

FORMAT = "dingskill.IntentClassifier"
VERSION = 3
_READABLE = (1, 2, 3)
_META = "dingskill-model.json"
_ARRAYS = {"coef.npy": "<f4", "intercept.npy": "<f8", "idf.npy": "<f8"}
_MEMBERS = {_META, *_ARRAYS}
_GATE = "prototypes.npy"  # version 3, only with a novelty gate: float16 unit vectors
MAX_MEMBER_BYTES = 64 * 2**20  # a model file comes from a package: inflation is bounded
MAX_RATIO = 200.0  # members larger than 1 MiB may not inflate more than this


def _read_member(zf: zipfile.ZipFile, name: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """A member's bytes, counted while inflating (headers are not trusted): refused over
    ``limit`` bytes or ``MAX_RATIO`` times its compressed size."""
    info = zf.getinfo(name)
    chunks, size = [], 0
    with zf.open(info) as fh:
        while chunk := fh.read(65536):
            size += len(chunk)
            if size > limit:
                raise UnsafeModelError(f"{name}: inflates to more than {limit} bytes (refused)")
            if size > 2**20 and size / max(info.compress_size, 1) > MAX_RATIO:
                raise UnsafeModelError(
                    f"{name}: compression ratio above {MAX_RATIO:g} (a zip bomb?), refused"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def _load_npy(name: str, raw: bytes):
    """``np.load`` after checking that the header's shape fits the bytes present (a header
    claiming 10^12 elements is refused before anything is allocated)."""
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as exc:
        raise UnsafeModelError(f"{name}: refused ({exc})") from None
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if need > len(raw) - f.tell():
        raise UnsafeModelError(
            f"{name}: header claims {need} bytes of data, the member holds {len(raw) - f.tell()}"
        )
    return np.load(io.BytesIO(raw), allow_pickle=False)


_DATE = (1980, 1, 1, 0, 0, 0)
_PARAMS = {
    "oos_threshold",
    "rules",
    "embeddings",
    "embedding_weight",
    "C",
    "char_ngram",
    "cjk_ngram",
    "min_df",
    "cv",
    "random_state",
    "n_jobs",
}


class UnsafeModelError(ValueError):
    """The data is not a dingskill model, or names types/objects that are not allowed."""


def _entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3
    zf.writestr(info, data, compresslevel=6)


def _npy(arr: np.ndarray, dtype: str) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=dtype), allow_pickle=False)
    return buf.getvalue()


def dumps(clf) -> bytes:
    """Serialise a fitted :class:`IntentClassifier`."""
    clf._check_fitted()
    params = clf.get_params(deep=False)
    params["char_ngram"] = list(params["char_ngram"])
    params["cjk_ngram"] = list(params["cjk_ngram"])
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "classes": [str(c) for c in clf.classes_],
        "threshold": clf.threshold_,
        "temperature": clf.temperature_,
        "features": clf.featurizer_.feature_names,
        "embeddings": None if clf.embedder_ is None else clf.embedder_.describe(),
        "gate": getattr(clf, "gate_", None),
    }
    body = json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _entry(zf, _META, body.encode("utf-8"))
        _entry(zf, "coef.npy", _npy(clf.coef_, "<f4"))
        _entry(zf, "idf.npy", _npy(clf.featurizer_.idf_, "<f8"))
        _entry(zf, "intercept.npy", _npy(clf.intercept_, "<f8"))
        if meta["gate"] is not None:
            _entry(zf, _GATE, _npy(clf.prototypes_, "<f2"))
    return buf.getvalue()


def _skops_types(zf: zipfile.ZipFile) -> list[str]:
    """Types a skops ``schema.json`` refers to (for the error message); never imports them."""
    try:
        schema = json.loads(_read_member(zf, "schema.json", 2**20))
    except Exception:  # noqa: BLE001 - any failure: just report no types
        return []
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            mod, cls = node.get("__module__"), node.get("__class__")
            if isinstance(mod, str) and isinstance(cls, str):
                found.append(f"{mod}.{cls}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return found


def loads(data: bytes):
    """Rebuild an :class:`IntentClassifier` from :func:`dumps` output, refusing anything else."""

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafeModelError(f"model data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"cc"):
        raise UnsafeModelError("refusing pickle data: models are never unpickled")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsafeModelError("not a dingskill model file (not a zip archive)") from None
    try:
        with zf:
            return _read(zf)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UnsafeModelError(f"corrupt model archive: {exc}") from None


def _embedder(recorded, name):
    """The installed embedding table a model file names, checked against its SHA-256."""
    from .embeddings import EmbeddingsError, load_embeddings

    if name is None:
        if recorded is not None:
            raise UnsafeModelError(f"{_META}: 'embeddings' given but the parameter is None")
        return None
    if not (
        isinstance(recorded, dict)
        and recorded.get("name") == name
        and isinstance(recorded.get("sha256"), str)
        and isinstance(recorded.get("dim"), int)
    ):
        raise UnsafeModelError(f"{_META}: 'embeddings' must name {name!r} with sha256 and dim")
    try:
        emb = load_embeddings(name)
    except EmbeddingsError as exc:
        raise EmbeddingsError(f"cannot load this model: {exc}") from None
    if emb.digest != recorded["sha256"] or emb.dim != recorded["dim"]:
        now = emb.describe()
        files = recorded.get("files") if isinstance(recorded.get("files"), dict) else {}
        changed = sorted(
            f for f, h in now.get("files", {}).items() if files.get(f) not in (None, h)
        )
        was = f" {recorded['version']}" if isinstance(recorded.get("version"), str) else ""
        raise EmbeddingsError(
            f"cannot load this model: it was trained with embeddings {name!r}{was} "
            f"sha256 {recorded['sha256'][:12]}… (dim {recorded['dim']}), but the installed "
            f"weights are {now.get('version', '')} sha256 {emb.digest[:12]}… (dim {emb.dim})"
            + (f"; changed file(s): {', '.join(changed)}" if changed else "")
            + "; install the package version it was trained with, or retrain the model"
        )
    return emb


def _read(zf: zipfile.ZipFile):
    from .classifier import IntentClassifier
    from .features import TextFeaturizer
    from .rules import RuleSet

    if True:
        names = zf.namelist()
        if "schema.json" in names and _META not in names:
            types = _skops_types(zf)
            bad = [t for t in types if not t.startswith(("builtins.", "numpy."))]
            shown = ", ".join(sorted(set(bad or types))[:5]) or "unknown"
            raise UnsafeModelError(f"refusing a skops file with untrusted type(s): {shown}")
        extra = sorted(set(names) - _MEMBERS - {_GATE})
        missing = sorted(_MEMBERS - set(names))
        if extra or missing or len(names) != len(set(names)):
            raise UnsafeModelError(f"unexpected model members: extra={extra} missing={missing}")
        try:
            meta = json.loads(_read_member(zf, _META, 16 * 2**20).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnsafeModelError(f"{_META}: invalid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UnsafeModelError(f"{_META}: format is not {FORMAT!r}")
        if meta.get("version") not in _READABLE:
            raise UnsafeModelError(f"{_META}: unsupported version {meta.get('version')!r}")
        arrays = {}
        for name, dtype in _ARRAYS.items():
            try:
                arr = _load_npy(name, _read_member(zf, name))
            except ValueError as exc:
                raise UnsafeModelError(f"{name}: refused ({exc})") from None
            if arr.dtype != np.dtype(dtype):
                raise UnsafeModelError(
                    f"{name}: dtype {arr.dtype} is not allowed (expected {dtype})"
                )
            arrays[name] = arr
        gate = meta.get("gate")
        if (gate is not None) != (_GATE in names) or not (
            gate is None or (isinstance(gate, (int, float)) and -1.0 <= gate <= 1.0)
        ):
            raise UnsafeModelError(
                f"{_META}: 'gate' must be null or a number in [-1, 1] that comes with {_GATE}"
            )
        if gate is not None:
            try:
                protos = _load_npy(_GATE, _read_member(zf, _GATE))
            except ValueError as exc:
                raise UnsafeModelError(f"{_GATE}: refused ({exc})") from None
            if protos.dtype != np.dtype("<f2") or protos.ndim != 2:
                raise UnsafeModelError(f"{_GATE}: must be a 2-D <f2 array, got {protos.dtype}")
    params = meta.get("params")
    if not isinstance(params, dict) or set(params) - _PARAMS:
        raise UnsafeModelError(f"{_META}: unknown parameters {sorted(set(params or {}) - _PARAMS)}")
    classes, feats = meta.get("classes"), meta.get("features")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UnsafeModelError(f"{_META}: 'classes' must be a list of strings")
    if not (isinstance(feats, list) and all(isinstance(f, str) for f in feats)):
        raise UnsafeModelError(f"{_META}: 'features' must be a list of strings")
    params = dict(params)
    params.setdefault("embeddings", None)  # version 1: n-grams only
    params.setdefault("embedding_weight", 1.0)
    embedder = _embedder(meta.get("embeddings"), params["embeddings"])
    n_dense = 0 if embedder is None else embedder.dim
    coef, icpt, idf = arrays["coef.npy"], arrays["intercept.npy"], arrays["idf.npy"]
    if (
        coef.shape != (len(feats) + n_dense, len(classes))
        or icpt.shape != (len(classes),)
        or idf.shape != (len(feats),)
    ):
        raise UnsafeModelError("array shapes do not match the classes and features")
    params["char_ngram"] = tuple(params["char_ngram"])
    params["cjk_ngram"] = tuple(params["cjk_ngram"])
    clf = IntentClassifier(**params)
    clf._validate_params()
    clf.classes_ = np.array(classes, dtype=str)
    clf.n_features_in_ = 1
    clf._ruleset = RuleSet(clf.rules)
    oos = [i for i, c in enumerate(classes) if c == "oos"]
    clf._oos_index = oos[0] if oos else -1
    clf.featurizer_ = TextFeaturizer(params["char_ngram"], params["cjk_ngram"], params["min_df"])
    clf.featurizer_.set_state(feats, idf)
    clf.embedder_ = embedder
    clf.coef_ = coef
    clf.intercept_ = icpt
    clf.temperature_ = float(meta["temperature"])
    clf.gate_ = None if gate is None else float(gate)
    clf.prototypes_ = protos.astype(np.float32) if gate is not None else None
    if gate is not None and (embedder is None or protos.shape[1] != embedder.dim):
        raise UnsafeModelError(f"{_GATE}: shape {protos.shape} does not fit the embeddings")
    thr = meta.get("threshold")
    clf.threshold_ = None if thr is None else float(thr)
    return clf
