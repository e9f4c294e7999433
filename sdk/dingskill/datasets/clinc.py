"""CLINC150 from a local data home (checksums verified), downloaded only when allowed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .dataset import Dataset
from .errors import DatasetError
from .loaders import load

__all__ = ["fetch_clinc150", "CLINC150_SHA256", "CLINC150_URL"]

CLINC150_URL = "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_{variant}.json"
CLINC150_SHA256 = {
    "full": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
    "small": "050e17476e6b4fa88f8518edaf09921c8f5e3a86dc8b63615361102a20b2ac01",
    "imbalanced": "4886730b20c51eece26aa392ecae2717bfe9908680419e96255351c6148eb4cc",
    "oos_plus": "bfcca9ae515623541dc1983c94c4ed7cae9d26b42ae47d74b972e51bb6f7a21f",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_data_home(data_home=None) -> Path:
    """The data home: the argument, else ``$DINGSKILL_DATA``, else ``~/.dingskill/data``."""
    return Path(
        data_home or os.environ.get("DINGSKILL_DATA") or Path.home() / ".dingskill" / "data"
    )


def fetch_clinc150(
    variant: str = "full", data_home=None, download: bool = False
) -> dict[str, Dataset]:
    """CLINC150 splits (train, val, test, oos_train, oos_val, oos_test) as Datasets.

    Reads ``data_<variant>.json`` from ``data_home`` (or ``$DINGSKILL_DATA``, else
    ``~/.dingskill/data``), checks its SHA-256, and downloads it from the public source only
    when it is absent and ``download=True``."""
    if variant not in CLINC150_SHA256:
        raise DatasetError(
            f"unknown CLINC150 variant {variant!r}; one of {sorted(CLINC150_SHA256)}"
        )
    home = resolve_data_home(data_home)
    path = home / f"data_{variant}.json"
    if not path.exists():
        if not download:
            raise DatasetError(
                f"CLINC150 not found; pass data_home= a folder holding data_{variant}.json, set "
                f"DINGSKILL_DATA, or call fetch_clinc150(download=True) to fetch it from {CLINC150_URL.format(variant=variant)}",
                str(path),
            )
        from .. import http_sync

        home.mkdir(parents=True, exist_ok=True)
        url = CLINC150_URL.format(variant=variant)
        try:
            resp = http_sync.get(url, timeout=60)
        except http_sync.HttpError as exc:
            raise DatasetError(f"download failed: {exc}", str(path)) from None
        if resp.status != 200:
            raise DatasetError(f"download failed: {url} answered HTTP {resp.status}", str(path))
        tmp = path.with_suffix(".part")
        tmp.write_bytes(resp.content)
        if _sha256(tmp) != CLINC150_SHA256[variant]:
            tmp.unlink()
            raise DatasetError("downloaded file does not match its SHA-256; not kept", str(path))
        tmp.replace(path)
    digest = _sha256(path)
    if digest != CLINC150_SHA256[variant]:
        raise DatasetError(
            f"SHA-256 mismatch: got {digest}, expected {CLINC150_SHA256[variant]}", str(path)
        )
    ds = load(path, format="clinc")
    out = {}
    raw_splits = {"train": "train", "val": "val", "test": "test"}
    df = ds.df
    import json

    keys = json.loads(path.read_text(encoding="utf-8")).keys()
    for key in keys:
        target = raw_splits.get(key, key.replace("oos_", ""))
        is_oos = key.startswith("oos_")
        part = df[(df["split"] == target) & ((df["intent"] == "oos") == is_oos)]
        out[key] = Dataset(part.drop(columns=["split"]).copy(), name=f"clinc150-{variant}/{key}")
    return out
