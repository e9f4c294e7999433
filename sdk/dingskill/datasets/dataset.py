"""``Dataset``: a thin object around a DataFrame of labelled utterances."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from .errors import DatasetError
from .language import detect_language

__all__ = ["Dataset"]

REQUIRED = ("text", "intent")


class Dataset:
    """Labelled utterances: columns ``text``, ``intent`` and optionally ``split``, ``lang``,
    ``source`` (file) and ``line`` (1-based line in that file)."""

    def __init__(self, df: pd.DataFrame, name: str = "") -> None:
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise DatasetError(f"missing column(s) {missing}; columns: {list(df.columns)}")
        self.df = df.reset_index(drop=True)
        self.name = name
        self.skipped: list[tuple] = []  # (file, line, reason) of rows a loader could not use
        if "lang" not in self.df.columns:
            self.df["lang"] = [detect_language(t) for t in self.df["text"]]

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, text_col: str = "text", intent_col: str = "intent", name: str = ""
    ) -> Dataset:
        """Wrap a DataFrame whose text / intent columns may have other names."""
        for col in (text_col, intent_col):
            if col not in df.columns:
                raise DatasetError(
                    f"missing column {col!r}; columns: {list(df.columns)}", field=col
                )
        out = df.rename(columns={text_col: "text", intent_col: "intent"}).copy()
        out["text"] = out["text"].astype(str)
        out["intent"] = out["intent"].astype(str)
        return cls(out, name=name)

    @property
    def texts(self) -> list[str]:
        return self.df["text"].tolist()

    @property
    def intents(self) -> list[str]:
        return self.df["intent"].tolist()

    @property
    def labels(self) -> list[str]:
        """The distinct intents, sorted."""
        return sorted(self.df["intent"].unique())

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {len(self)} utterances, {self.df['intent'].nunique()} intents)"
        )

    def summary(self) -> dict[str, pd.DataFrame]:
        """Counts per intent, text lengths per language, and language counts."""
        df = self.df.assign(length=self.df["text"].str.len())
        intents = (
            df.groupby("intent")
            .agg(count=("text", "size"), mean_length=("length", "mean"))
            .sort_values("count", ascending=False)
        )
        intents["share"] = intents["count"] / max(len(df), 1)
        lengths = df.groupby("lang")["length"].describe()
        languages = df["lang"].value_counts().rename_axis("lang").to_frame("count")
        return {"intents": intents, "lengths": lengths, "languages": languages}

    def _repr_html_(self) -> str:
        s = self.summary()
        head = f"<b>{html.escape(repr(self))}</b>"
        return head + s["languages"].T.to_html() + s["intents"].head(20).to_html()

    def validate(self, **limits):
        """Findings about this dataset (see :func:`dingskill.datasets.validate.validate`)."""
        from .validate import validate_frame

        return validate_frame(self.df, skipped=self.skipped, **limits)

    def split(self, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0) -> Dataset:
        from .split import stratified_split

        return stratified_split(self, test_size=test_size, val_size=val_size, seed=seed)

    def subset(self, split: str) -> Dataset:
        if "split" not in self.df.columns:
            raise DatasetError("dataset has no 'split' column; call .split() first", field="split")
        part = self.df[self.df["split"] == split]
        if part.empty:
            raise DatasetError(
                f"no rows in split {split!r}; splits: {sorted(self.df['split'].unique())}"
            )
        return Dataset(part.copy(), name=f"{self.name}[{split}]")

    def __add__(self, other: Dataset) -> Dataset:
        return Dataset(pd.concat([self.df, other.df], ignore_index=True), name=self.name)

    def to_csv(self, path) -> Path:
        path = Path(path)
        cols = [c for c in ("text", "intent", "split") if c in self.df.columns]
        self.df[cols].to_csv(path, index=False)
        return path

    def to_jsonl(self, path) -> Path:
        path = Path(path)
        cols = [c for c in ("text", "intent", "split", "lang") if c in self.df.columns]
        self.df[cols].to_json(path, orient="records", lines=True, force_ascii=False)
        return path
