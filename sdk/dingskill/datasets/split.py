"""Stratified train / validation / test split with a seed."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from .dataset import Dataset
from .errors import DatasetError

__all__ = ["stratified_split"]


def stratified_split(
    ds: Dataset, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0
) -> Dataset:
    """A copy of ``ds`` with a ``split`` column (train / val / test), stratified by intent.
    Intents with too few rows to stratify go to train (and are counted in the error if none
    can)."""
    if not 0 < test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
        raise DatasetError(
            f"split sizes must be in (0, 1) and sum below 1: test={test_size}, val={val_size}"
        )
    df = ds.df.copy()
    idx = np.arange(len(df))
    y = df["intent"].to_numpy()
    counts = df["intent"].value_counts()
    strat_ok = y if counts.min() >= 2 else None
    n_test = int(np.ceil(test_size * len(df)))
    if strat_ok is not None and n_test < len(counts):
        raise DatasetError(
            f"the test split would hold {n_test} utterance(s) ({test_size:g} of {len(df)}) but "
            f"there are {len(counts)} intents: a stratified split needs at least one test "
            f"utterance per intent. Use a larger test size (at least "
            f"{len(counts) / len(df):.2f}), add examples, or give a separate test file "
            "(dingskill train DATA --test TEST.csv)."
        )
    if strat_ok is not None and len(df) - n_test < len(counts):
        raise DatasetError(
            f"the training split would hold {len(df) - n_test} utterance(s) but there are "
            f"{len(counts)} intents: use a smaller test size or add examples."
        )
    train_idx, test_idx = train_test_split(
        idx, test_size=test_size, random_state=seed, stratify=strat_ok
    )
    split = np.array(["train"] * len(df), dtype=object)
    split[test_idx] = "test"
    if val_size:
        rel = val_size / (1 - test_size)
        sub_y = y[train_idx]
        ok = sub_y if min(np.unique(sub_y, return_counts=True)[1]) >= 2 else None
        tr, va = train_test_split(train_idx, test_size=rel, random_state=seed, stratify=ok)
        split[va] = "val"
    df["split"] = split
    return ds._derive(df, name=ds.name)
