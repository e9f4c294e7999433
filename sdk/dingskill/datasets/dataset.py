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
    ``source`` (file), ``line`` (1-based line in that file) and ``entities`` (per row a list of
    ``{start, end, entity, value}`` dicts: character offsets into ``text``, end exclusive,
    ``value`` the canonical value with synonyms resolved).

    ``synonyms`` maps a written form to its canonical value and ``lookups`` maps an entity
    type to known values (Rasa ``synonym:`` / ``lookup:`` items); ``entity_issues`` holds the
    markup a loader could not read as ``(file, line, field, message)``."""

    def __init__(self, df: pd.DataFrame, name: str = "") -> None:
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise DatasetError(f"missing column(s) {missing}; columns: {list(df.columns)}")
        self.df = df.reset_index(drop=True)
        self.name = name
        self.skipped: list[tuple] = []  # (file, line, reason) of rows a loader could not use
        self.synonyms: dict[str, str] = {}
        self.lookups: dict[str, list[str]] = {}
        self.entity_issues: list[tuple] = []
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
    def entities(self) -> list[list[dict]]:
        """Per row the annotated entities (empty lists when the data has none)."""
        if "entities" not in self.df.columns:
            return [[] for _ in range(len(self.df))]
        return [list(e) if isinstance(e, list) else [] for e in self.df["entities"]]

    @property
    def has_entities(self) -> bool:
        """True when any row carries an annotated entity."""
        return any(self.entities)

    @property
    def entity_types(self) -> list[str]:
        """The distinct annotated entity types, sorted."""
        return sorted({e["entity"] for row in self.entities for e in row})

    def _derive(self, df: pd.DataFrame, name: str) -> Dataset:
        """A dataset over ``df`` that keeps this one's synonyms and lookup tables."""
        out = Dataset(df, name=name)
        out.synonyms = dict(self.synonyms)
        out.lookups = {k: list(v) for k, v in self.lookups.items()}
        return out

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

        return validate_frame(
            self.df, skipped=self.skipped, entity_issues=self.entity_issues, **limits
        )

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
        return self._derive(part.copy(), name=f"{self.name}[{split}]")

    def __add__(self, other: Dataset) -> Dataset:
        frames = [self.df, other.df]
        if "entities" in self.df.columns or "entities" in other.df.columns:
            frames = [
                f if "entities" in f.columns else f.assign(entities=[[] for _ in range(len(f))])
                for f in frames
            ]
        out = self._derive(pd.concat(frames, ignore_index=True), name=self.name)
        out.synonyms.update(other.synonyms)
        for k, v in other.lookups.items():
            out.lookups.setdefault(k, []).extend(x for x in v if x not in out.lookups[k])
        out.skipped = [*self.skipped, *other.skipped]
        out.entity_issues = [*self.entity_issues, *other.entity_issues]
        return out

    def to_csv(self, path) -> Path:
        """Write CSV; entities go back into the text as inline markup. Cells a spreadsheet
        would run as formulas are neutralised (:mod:`dingskill.csvsafe`; the loaders undo it)."""
        import csv

        from ..csvsafe import neutralise
        from .annotations import to_inline

        path = Path(path)
        cols = [c for c in ("text", "intent", "split") if c in self.df.columns]
        out = self.df[cols].copy()
        if self.has_entities:
            out["text"] = [to_inline(t, e) for t, e in zip(self.texts, self.entities, strict=True)]
        out = out.map(neutralise)
        out.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
        return path

    def to_jsonl(self, path) -> Path:
        """Write JSON Lines; entities as ``{start, end, entity, value}`` spans."""
        path = Path(path)
        cols = [c for c in ("text", "intent", "split", "lang") if c in self.df.columns]
        out = self.df[cols].copy()
        if self.has_entities:
            out["entities"] = [
                [{k: e[k] for k in ("start", "end", "entity", "value")} for e in row]
                for row in self.entities
            ]
        out.to_json(path, orient="records", lines=True, force_ascii=False)
        return path
