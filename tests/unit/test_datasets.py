"""Labeled sets for benchmarks (backend/bench/datasets.py), the public corpora from packages and the VADER baseline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from backend import guidelines
from backend.bench import datasets, lexicon
from backend.bench.datasets import DataError
from backend.labelstudio import schema
from backend.llm import prompt

LABELS = ["Positive", "Negative", "Neutral"]
TEAM_ROWS = [
    ("I loved it", "positive"),
    ("  Dull and slow  ", "NEGATIVE"),
    ("It opens on Friday", " Neutral "),
    ("Great cast", "Positive"),
]


def write_csv(path: Path, rows: list[tuple[str, str]], sep: str = ",") -> Path:
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, sep=sep, index=False)
    return path


def test_csv_tsv_and_jsonl_read_alike_with_config_spelling(tmp_path):
    jsonl = tmp_path / "team.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"text": t, "label": label, "id": i}) + "\n" for i, (t, label) in enumerate(TEAM_ROWS))
    )
    frames = [
        datasets.load_labeled(write_csv(tmp_path / "team.csv", TEAM_ROWS), LABELS),
        datasets.load_labeled(write_csv(tmp_path / "team.tsv", TEAM_ROWS, sep="\t"), LABELS),
        datasets.load_labeled(jsonl, LABELS),
    ]
    for df in frames:
        assert list(df.columns) == ["text", "label"]
        assert df["text"].tolist() == ["I loved it", "Dull and slow", "It opens on Friday", "Great cast"]
        assert df["label"].tolist() == ["Positive", "Negative", "Neutral", "Positive"]
        assert df.attrs["dropped"] == {"empty": 0, "duplicate": 0, "conflicting": 0}


def test_label_studio_export_gives_each_tasks_majority_label(tmp_path):
    def annotation(annotator, label):
        return {
            "completed_by": annotator,
            "was_cancelled": False,
            "result": [
                {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}
            ],
        }

    tasks = [
        {
            "id": 1,
            "data": {"text": " Superb "},
            "annotations": [annotation(1, "Positive"), annotation(2, "positive"), annotation(3, "Negative")],
        },
        {"id": 2, "data": {"text": "Awful"}, "annotations": [annotation(1, "Negative")]},
        {"id": 3, "data": {"text": "A tie"}, "annotations": [annotation(1, "Negative"), annotation(2, "Positive")]},
        {"id": 4, "data": {"text": "Not labeled"}, "annotations": []},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    df = datasets.load_labeled(path, LABELS)
    assert df.to_dict("records") == [{"text": "Superb", "label": "Positive"}, {"text": "Awful", "label": "Negative"}]
    assert df.attrs["dropped"]["conflicting"] == 1  # the tie


def test_the_repositorys_export_fixture_reads(tmp_path):
    df = datasets.load_labeled(Path(__file__).parents[1] / "data" / "agreement" / "export.json", LABELS)
    assert set(df["label"]) <= set(LABELS) and len(df) >= 5


def test_unknown_labels_are_named_with_the_allowed_ones(tmp_path):
    rows = TEAM_ROWS + [(f"odd {i}", f"weird{i}") for i in range(7)]
    with pytest.raises(DataError) as err:
        datasets.load_labeled(write_csv(tmp_path / "team.csv", rows), LABELS)
    message = str(err.value)
    assert "\n" not in message
    assert "'weird0'" in message and "'weird4'" in message and "'weird5'" not in message and "2 more" in message
    assert "allowed: Positive, Negative, Neutral" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", "", "empty"),
        ("blank.jsonl", "\n\n", "empty"),
        ("nolabel.csv", "text,category\nhi,Positive\n", "no 'label' column"),
        ("notext.jsonl", '{"review": "hi", "label": "Positive"}\n', "no 'text' column"),
        ("broken.jsonl", '{"text": "hi", "label": \n', "not a readable JSONL"),
        ("team.txt", "text,label\nhi,Positive\n", "unknown file type"),
        ("one_label.csv", "text,label\na,Positive\nb,positive\n", "at least 2 labels"),
        ("header_only.csv", "text,label\n", "at least 2 labels"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=expected) as err:
        datasets.load_labeled(path, LABELS)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        datasets.load_labeled(tmp_path / "missing.csv", LABELS)


def test_empty_texts_duplicates_and_conflicts_are_dropped_and_counted(tmp_path):
    rows = [
        ("good", "Positive"),
        (" good ", "positive"),
        ("good", "Positive"),  # one text, three copies that agree
        ("bad", "Negative"),
        ("bad", "Positive"),  # copies that disagree: both go
        ("   ", "Neutral"),
        ("", "Negative"),
        ("plain", "Neutral"),
        ("awful", "Negative"),
    ]
    df = datasets.load_labeled(write_csv(tmp_path / "team.csv", rows), LABELS)
    assert sorted(df["text"]) == ["awful", "good", "plain"]
    assert df.index.tolist() == [0, 1, 2]
    assert df.attrs["dropped"] == {"empty": 2, "duplicate": 2, "conflicting": 2}


def labeled_frame(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{label} text {i}", label) for label, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_split_is_stratified_disjoint_reproducible_and_nested():
    df = labeled_frame({"Positive": 600, "Negative": 300, "Neutral": 100})
    pool, test = datasets.split(df, 200, 100, seed=3)
    assert len(pool) == 200 and len(test) == 100
    assert pool["label"].value_counts().to_dict() == {"Positive": 120, "Negative": 60, "Neutral": 20}
    assert test["label"].value_counts().to_dict() == {"Positive": 60, "Negative": 30, "Neutral": 10}
    assert not set(pool["text"]) & set(test["text"])

    again_pool, again_test = datasets.split(df, 200, 100, seed=3)
    pd.testing.assert_frame_equal(pool, again_pool)
    pd.testing.assert_frame_equal(test, again_test)
    other_pool, _ = datasets.split(df, 200, 100, seed=4)
    assert set(other_pool["text"]) != set(pool["text"])

    bigger_pool, same_test = datasets.split(df, 400, 100, seed=3)
    assert set(pool["text"]) <= set(bigger_pool["text"])
    assert set(same_test["text"]) == set(test["text"])
    _, bigger_test = datasets.split(df, 200, 300, seed=3)
    assert set(test["text"]) <= set(bigger_test["text"])


def test_split_larger_than_the_file_says_how_many_rows_it_has():
    df = labeled_frame({"Positive": 30, "Negative": 20})
    with pytest.raises(DataError, match=r"has 50 rows.*smaller --pool or --test"):
        datasets.split(df, 40, 20)


# ---------------------------------------------------------------------------------------------------------------
# public corpora

EXPECTED = {  # corpus -> (label set, fewest and most rows plausible after cleaning)
    "posts": (set(LABELS), 34_000, 37_300),
    "r8": (set(datasets.R8_TOPICS.values()), 7_400, 7_674),
    "rotten_tomatoes": (set(LABELS), 13_000, 14_500),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_packaged_corpus_loads_with_its_configs_labels(name):
    try:
        df = datasets.corpus(name)
    except DataError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    labels, fewest, most = EXPECTED[name]
    assert list(df.columns) == ["text", "label"]
    assert set(df["label"]) == labels == set(datasets.corpus_labels(name))
    assert fewest <= len(df) <= most
    assert df["text"].is_unique and (df["text"].str.strip() == df["text"]).all() and (df["text"] != "").all()
    assert not df["text"].str.contains("\ufffd", regex=False).any()
    assert datasets.CORPORA[name].config.is_file() and datasets.CORPORA[name].guidelines.is_file()


def test_an_uninstalled_corpus_package_says_to_run_make_corpora(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"corpus posts needs `make corpora`"):
        datasets.corpus("posts")
    with pytest.raises(DataError, match="unknown corpus"):
        datasets.corpus("imdb")


def test_mojibake_rows_fall_back_to_windows_1252_and_undecodable_ones_are_marked():
    assert datasets._decode("café".encode("utf-8").decode("latin-1")) == "café"
    assert datasets._decode(b"don\x92t".decode("latin-1")) == "don\u2019t"
    assert "\ufffd" in datasets._decode(b"bad \x81 byte".decode("latin-1"))


def test_news_topics_config_and_guidelines_make_a_prompt():
    config = schema.parse_single(datasets.NEWS_CONFIG.read_text())
    assert config.data_key == "text" and not config.multiple
    assert config.labels == tuple(datasets.R8_TOPICS.values())
    g = guidelines.load(datasets.NEWS_GUIDELINES)
    assert {"Labels", "Rules", "Examples"} <= set(g.sections)
    assert {label for _, label in g.examples} == set(config.labels)
    assert all(text == text.lower() and "." not in text and "," not in text for text, _ in g.examples)

    from backend.dev import tiny_model  # the real Qwen tokenizer and chat template

    p = prompt.build(tiny_model.tokenizer(), config.labels, g)
    assert "Answer with exactly one label: " + ", ".join(config.labels) + "." in p.prefix
    for label in config.labels:
        assert f"<|im_start|>assistant\n{label}<|im_end|>" in p.prefix


# ---------------------------------------------------------------------------------------------------------------
# lexicon baseline


def test_lexicon_gets_obvious_sentences_right():
    texts = [
        "I love this wonderful, brilliant film.",
        "A terrible, boring and awful mess.",
        "The film runs 118 minutes.",
        "Not good at all.",
    ]
    assert lexicon.lexicon_labels(texts) == ["Positive", "Negative", "Neutral", "Negative"]
    assert lexicon.lexicon_macro_f1(texts, ["Positive", "Negative", "Neutral", "Negative"]) == 1.0
    assert lexicon.lexicon_macro_f1(texts, ["Negative", "Positive", "Positive", "Positive"]) == 0.0
