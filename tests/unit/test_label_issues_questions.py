"""Label issues per question (backend/quality/label_issues.py, backend/cli/label_issues.py): a multi-label question
through cleanlab's multi-label issue finder, the report over several questions, and the review tab's state per
question; small synthetic arrays and fakes."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from backend.cli import label_issues as cli
from backend.labelstudio import review, tabs
from backend.labelstudio.export import Dataset, Item
from backend.labelstudio.schema import SET_SEPARATOR, Schema
from backend.quality import label_issues
from backend.quality.gold import GoldItem, GoldSet

ASPECTS = ["Acting", "Story", "Visuals", "Music"]
SENTIMENT = ["Positive", "Negative", "Neutral"]


def key(*labels: str) -> str:
    return SET_SEPARATOR.join(label for label in ASPECTS if label in labels)


def planted(n: int = 300, flips: int = 30, seed: int = 0):
    """True sets, the given sets with one label flipped on `flips` tasks, and good per-label probabilities."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 4)) < [0.5, 0.4, 0.3, 0.2]).astype(int)
    probs = np.clip(truth * 0.85 + (1 - truth) * 0.1 + rng.normal(0, 0.04, truth.shape), 0.01, 0.99)
    y = truth.copy()
    flipped = rng.choice(n, size=flips, replace=False)
    y[flipped, rng.integers(0, 4, flips)] ^= 1
    return truth, y, probs, set(flipped.tolist())


def test_cleanlabs_multi_label_finder_flags_the_planted_flips():
    _, y, probs, flipped = planted()
    issues, quality = label_issues.flag_multilabel(y, probs)
    found = set(np.flatnonzero(issues).tolist())
    # cleanlab flags as many as its confident joint counts (19 of the 30 here), the least likely first: all planted.
    assert found <= flipped and len(found) >= 15, (found, flipped)
    assert set(np.argsort(quality)[:30].tolist()) == flipped  # the quality ranks every flip below every clean set
    # A label everybody chose or nobody chose is no noise to estimate; all of them so: nothing flagged.
    y[:, 0], y[:, 3] = 1, 0
    assert label_issues.flag_multilabel(y, probs)[0].shape == (300,)
    everything = np.ones((20, 4), int)
    assert not label_issues.flag_multilabel(everything, probs[:20])[0].any()
    nothing = np.zeros((20, 4), int)  # every annotator said none applies: quality still scored
    issues, quality = label_issues.flag_multilabel(nothing, probs[:20])
    assert not issues.any() and quality.shape == (20,) and (quality > 0).all()
    assert label_issues.flag_multilabel(np.zeros((0, 4), int), np.zeros((0, 4)))[0].shape == (0,)


def test_a_multi_label_given_label_is_the_most_chosen_set_and_a_tie_goes_to_the_config_order():
    votes = {"a": key("Story", "Acting"), "b": key("Music"), "c": key("Acting", "Story")}
    assert label_issues.given_label(votes, ASPECTS) == key("Acting", "Story")
    assert label_issues.given_label({"a": key("Music"), "b": key("Acting", "Music")}, ASPECTS) == key("Acting", "Music")
    assert label_issues.given_label({"a": key("Music"), "b": key()}, ASPECTS) == ""  # the empty set comes first
    assert Schema.of_labels(ASPECTS, multiple=True).targets([key("Story", "Music"), ""]).tolist() == [
        [0, 1, 0, 1],
        [0, 0, 0, 0],
    ]
    assert label_issues.set_key("Acting + Story", ASPECTS) == key("Acting", "Story")
    assert label_issues.set_key("(none)", ASPECTS) == ""


def multi_dataset(y: np.ndarray, extra: list[Item] = ()) -> Dataset:
    items = [Item(100 + i, f"review {i}", {"ann@x": key(*np.array(ASPECTS)[row == 1])}) for i, row in enumerate(y)]
    items += list(extra)
    annotators = sorted({a for item in items for a in item.labels})
    return Dataset(items, annotators, ASPECTS, {}, {}, [], "json", "aspects", multiple=True)


def test_judge_flags_wrong_sets_with_lists_and_a_multi_label_gold_answer():
    truth, y, _, flipped = planted(n=240, flips=24, seed=1)
    rng = np.random.default_rng(2)
    centres = 3 * rng.standard_normal((4, 16))
    by_text = {f"review {i}": row for i, row in enumerate(truth)} | {"a gold review": np.array([1, 1, 0, 0])}

    def score(texts):
        t = np.array([by_text[x] for x in texts])
        vectors = (t @ centres + rng.standard_normal((len(texts), 16))).astype(np.float32)
        llm = np.clip(t * 0.7 + 0.15, 0, 1)  # the LLM leans to the truth
        return vectors, llm, {"features": "llm-layer-1", "llm_version": "test-llm"}

    gold = GoldSet([GoldItem("a gold review", "Acting + Story", "", 1)])
    extra = [Item(999, "a gold review", {"ann@x": key("Acting"), "second@x": key("Acting", "Story")})]
    rows = label_issues.tasks_of(multi_dataset(y, extra), gold)
    assert rows[-1].answer == key("Acting", "Story") and rows[-1].given == key("Acting")

    report = label_issues.judge(rows, ASPECTS, score, lambda f: "state_blend", multiple=True)
    model_issues = [i for i in report["issues"] if i["reason"] == "model"]
    found = {i["task"] - 100 for i in model_issues}
    assert len(found & flipped) >= 15 and len(found - flipped) <= 15, (found, flipped)
    for issue in model_issues:
        assert isinstance(issue["given"], list) and isinstance(issue["suggested"], list)
        assert issue["suggested"] == [label for label, p in issue["probabilities"].items() if p >= 0.5]
        assert set(issue["given"]) <= set(ASPECTS) and issue["annotators"] == ["ann@x"]
    (gold_issue,) = [i for i in report["issues"] if i["reason"] == "gold"]
    assert (gold_issue["given"], gold_issue["suggested"], gold_issue["annotators"]) == (
        ["Acting"],
        ["Acting", "Story"],
        ["ann@x"],
    )
    assert [i["quality"] for i in report["issues"]] == sorted(i["quality"] for i in report["issues"])
    assert report["consensus"] is None and report["model"]["trained_on"] == 240  # no CROWDLAB for sets
    # A reviewer confirmed one flagged set: not flagged again while it stays.
    first = model_issues[0]
    again = label_issues.judge(
        rows, ASPECTS, score, lambda f: "state_blend", {first["task"]: key(*first["given"])}, multiple=True
    )
    assert first["task"] not in {i["task"] for i in again["issues"]}
    assert again["counts"]["confirmed_not_flagged"] == 1
    # Gold that answers another question: its tasks are left out.
    assert len(label_issues.tasks_of(multi_dataset(y, extra), gold, gold_answers=False)) == 240


def report_of(issues, annotators, flagged, tasks, model="state_blend"):
    return {
        "issues": issues,
        "annotators": annotators,
        "consensus": None,
        "counts": {
            "tasks": tasks,
            "judged_by_model": tasks,
            "gold": 0,
            "flagged": flagged,
            "flagged_by_model": flagged,
            "flagged_gold": 0,
            "confirmed_not_flagged": 0,
        },
        "model": {"kind": model, "trained_on": tasks, "fallback": None},
        "method": {"filter_by": label_issues.FILTER_BY},
    }


def issue(task, quality, given, suggested):
    return {
        "task": task,
        "text": f"text {task}",
        "given": given,
        "suggested": suggested,
        "quality": quality,
        "annotators": ["a"],
        "reason": "model",
        "probabilities": {},
    }


def test_the_report_over_questions_tags_each_issue_and_sums_the_rates_and_counts():
    sentiment = report_of(
        [issue(1, 0.2, "Positive", "Negative")], [{"annotator": "a", "labels": 10, "flagged": 1, "rate": 0.1}], 1, 10
    )
    aspects = report_of(
        [issue(2, 0.1, ["Acting"], []), issue(1, 0.3, [], ["Music"])],
        [{"annotator": "a", "labels": 10, "flagged": 2, "rate": 0.2}],
        2,
        10,
        model="blend",
    )
    both = label_issues.combine(
        {"sentiment": sentiment, "aspects": aspects},
        {"sentiment": False, "aspects": True},
        {"sentiment": SENTIMENT, "aspects": ASPECTS},
    )
    assert [(i["task"], i["question"]) for i in both["issues"]] == [(2, "aspects"), (1, "sentiment"), (1, "aspects")]
    assert both["annotators"] == [{"annotator": "a", "labels": 20, "flagged": 3, "rate": 0.15}]
    assert both["counts"]["flagged"] == 3 and both["counts"]["tasks"] == 20
    assert both["model"]["kind"] == "state_blend" and both["questions"]["aspects"]["model"]["kind"] == "blend"
    assert both["questions"]["aspects"]["multiple"] and both["questions"]["sentiment"]["labels"] == SENTIMENT
    assert "multi_label" in both["method"]
    # One question: the report it always was, its issues naming the question.
    one = label_issues.combine({"sentiment": sentiment}, {"sentiment": False}, {"sentiment": SENTIMENT})
    assert {k: one[k] for k in sentiment if k != "issues"} == {k: sentiment[k] for k in sentiment if k != "issues"}
    assert one["issues"] == [{**sentiment["issues"][0], "question": "sentiment"}] and "multi_label" not in one["method"]

    # The table and the CSV show each issue's question and a set as its labels; one question's table is unchanged.
    table = cli.render(both, "table")
    assert (
        "aspects, multi-label: 2 of 10 labeled tasks" in table
        and "(none)" in table
        and "model (aspects): blend" in table
    )
    rows = list(csv.DictReader(io.StringIO(cli.render(both, "csv"))))
    assert [r["question"] for r in rows] == ["aspects", "sentiment", "aspects"]
    assert (rows[0]["given"], rows[0]["suggested"], rows[2]["given"]) == ("Acting", "(none)", "(none)")
    single = cli.render(one, "table")
    assert single.startswith("1 likely wrong labels among 10 labeled tasks") and "question" not in single
    assert "question" not in next(csv.reader(io.StringIO(cli.render(one, "csv"))))


def test_the_review_tab_keeps_each_questions_flags_and_reads_a_tab_of_one_question():
    seen = {1: "s1", 2: "s2", 3: "s3"}
    data = review.tab_data(
        {"sentiment": [(1, "Positive")], "aspects": [(2, key("Acting")), (1, "")]},
        seen,
        {"sentiment": {3: "Negative"}, "aspects": {}, "spoiler": {2: "No"}},
        "sentiment",
    )
    assert tabs.held(data) == [1, 2]
    state = data[review.STATE_KEY]
    assert state["flagged"] == {"1": {"label": "Positive", "seen": "s1"}} and state["confirmed"] == {"3": "Negative"}
    assert state["questions"]["aspects"]["flagged"] == {
        "2": {"label": key("Acting"), "seen": "s2"},
        "1": {"label": "", "seen": "s1"},
    }
    assert review.question_state(state, "spoiler", "sentiment")["confirmed"] == {"2": "No"}
    # A reviewer saved task 2 again with the same set: confirmed on that question only.
    aspects = review.question_state(state, "aspects", "sentiment")
    assert review.confirmed_labels(aspects, {**seen, 2: "new"}, {2: key("Acting"), 1: "Music"}) == {2: key("Acting")}
    # A tab written for one question (no "questions"): its state is the first question's.
    old = {"flagged": {"1": {"label": "Positive", "seen": "s1"}}, "confirmed": {}, "questions": {}}
    assert review.question_state(old, "sentiment", "sentiment")["flagged"] == old["flagged"]
    assert review.question_state(old, "aspects", "sentiment") == {"flagged": {}, "confirmed": {}}


@pytest.mark.parametrize("name, picked", [(None, ["sentiment", "aspects", "spoiler"]), ("aspects", ["aspects"])])
def test_every_question_is_judged_unless_one_is_picked(name, picked):
    from helpers import ROOT

    config = cli.read_config(ROOT / "label_config" / "review_facets.xml")
    assert [q.from_name for q in cli.judged(config, name)] == picked
    with pytest.raises(cli.UsageError, match="no question named 'topic'"):
        cli.judged(config, "topic")
