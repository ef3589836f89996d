"""Label issues (backend/quality/label_issues.py) and their benchmark on planted noise (backend/bench/noise.py), on small
synthetic arrays; the script against exports with the tiny and the real model is in test_label_issues_script.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.shapes import mismatches
from support.simulation import synthetic_inputs

from backend.bench import noise as noise_bench
from backend.bench.results import NoiseResults
from backend.labelstudio.export import Dataset, Item
from backend.learning import classifier
from backend.quality import label_issues
from backend.quality.gold import GoldItem, GoldSet

LABELS = ["Positive", "Negative", "Neutral"]


def test_given_label_is_the_majority_and_a_tie_goes_to_the_config_order():
    assert label_issues.given_label({"a": "Negative", "b": "Negative", "c": "Positive"}, LABELS) == "Negative"
    assert label_issues.given_label({"a": "Neutral", "b": "Negative"}, LABELS) == "Negative"
    assert label_issues.given_label({"a": "Neutral"}, LABELS) == "Neutral"


def test_flag_finds_planted_flips_under_good_probabilities():
    rng = np.random.default_rng(0)
    truth = rng.choice(3, size=400, p=[0.5, 0.35, 0.15])
    probs = np.full((400, 3), 0.05)
    probs[np.arange(400), truth] = 0.9
    y = truth.copy()
    flipped = rng.choice(400, size=40, replace=False)
    y[flipped] = (truth[flipped] + 1) % 3
    issues, quality = label_issues.flag(y, probs)
    assert set(np.flatnonzero(issues)) == set(flipped)
    assert quality == pytest.approx(probs[np.arange(400), y] / probs.sum(1))


def test_flag_with_one_class_given_flags_nothing_and_a_missing_class_is_fine():
    probs = np.random.default_rng(1).dirichlet([1, 1, 1], 50)
    issues, quality = label_issues.flag(np.zeros(50, int), probs)
    assert not issues.any() and len(quality) == 50
    y = np.where(np.arange(50) % 2 == 0, 0, 1)  # Neutral never given
    issues, _ = label_issues.flag(y, probs)
    assert issues.shape == (50,)


def _dataset(items: list[Item]) -> Dataset:
    annotators = sorted({a for item in items for a in item.labels})
    return Dataset(items, annotators, LABELS, {}, {}, [], "json", "sentiment")


def _scorer(truth: dict[str, int], dim: int = 8, seed: int = 0):
    """Vectors that separate the true classes, and an LLM right about 85% of the time (a stand-in for the model's
    features; the script's tests use the tiny and the real model)."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((3, dim))

    def score(texts):
        y = np.array([truth[t] for t in texts])
        vectors = (centres[y] + rng.standard_normal((len(texts), dim))).astype(np.float32)
        guess = np.where(rng.random(len(texts)) < 0.85, y, (y + 1) % 3)
        llm = np.full((len(texts), 3), 0.1)
        llm[np.arange(len(texts)), guess] = 0.8
        return vectors, llm, {"features": "llm-layer-1", "llm_version": "test-llm"}

    return score


def test_judge_flags_wrong_labels_gold_and_remembers_confirmations():
    rng = np.random.default_rng(3)
    n = 240
    truth_y = rng.choice(3, size=n, p=[0.45, 0.4, 0.15])
    texts = [f"review {i}" for i in range(n)]
    wrong = set(rng.choice(n, size=20, replace=False).tolist())
    items = []
    for i, (text, t) in enumerate(zip(texts, truth_y)):
        label = LABELS[(t + 1) % 3] if i in wrong else LABELS[t]
        items.append(Item(100 + i, text, {"ann@x": label}))
    items[0].labels["second@x"] = items[0].labels["ann@x"]  # two annotators agreeing
    gold = GoldSet([GoldItem("a gold review", "Positive", "", 1)])
    items.append(Item(999, "a gold review", {"ann@x": "Negative", "second@x": "Positive"}))
    truth = {**dict(zip(texts, truth_y.tolist())), "a gold review": 0}
    rows = label_issues.tasks_of(_dataset(items), gold)
    assert [r.answer for r in rows].count("Positive") == 1

    report = label_issues.judge(rows, LABELS, _scorer(truth), lambda features: "state_blend")
    flagged = {i["task"] for i in report["issues"] if i["reason"] == "model"}
    planted = {100 + i for i in wrong}
    assert len(flagged & planted) >= 15 and len(flagged - planted) <= 15, (flagged, planted)
    gold_issue = [i for i in report["issues"] if i["reason"] == "gold"]
    assert gold_issue == [
        {**gold_issue[0], "task": 999, "given": "Negative", "suggested": "Positive", "annotators": ["ann@x"]}
    ]
    qualities = [i["quality"] for i in report["issues"]]
    assert qualities == sorted(qualities)
    for issue in report["issues"]:
        if issue["reason"] == "model":
            assert issue["quality"] == pytest.approx(issue["probabilities"][issue["given"]], abs=1e-3)
            assert issue["suggested"] == max(issue["probabilities"], key=issue["probabilities"].get)
    c = report["counts"]
    assert c["tasks"] == n + 1 and c["gold"] == 1 and c["judged_by_model"] == n
    assert c["flagged"] == len(report["issues"]) == c["flagged_by_model"] + c["flagged_gold"]
    assert report["model"]["kind"] == "state_blend" and report["model"]["trained_on"] == n
    rates = {r["annotator"]: r for r in report["annotators"]}
    assert rates["ann@x"]["labels"] == n + 1 and rates["ann@x"]["flagged"] == len(report["issues"])
    assert rates["second@x"]["labels"] == 2

    # A reviewer confirmed two flagged labels: they are not flagged again while they stay the same.
    some = [i for i in report["issues"] if i["reason"] == "model"][:2]
    confirmed = {some[0]["task"]: some[0]["given"], some[1]["task"]: "not the label it has"}
    again = label_issues.judge(rows, LABELS, _scorer(truth), lambda features: "state_blend", confirmed)
    again_tasks = {i["task"] for i in again["issues"]}
    assert some[0]["task"] not in again_tasks and some[1]["task"] in again_tasks
    assert again["counts"]["confirmed_not_flagged"] == 1


def test_judge_with_too_few_labels_uses_the_llm_alone():
    items = [Item(1, "a", {"x": "Positive"}), Item(2, "b", {"x": "Negative"})]
    rows = label_issues.tasks_of(_dataset(items))
    report = label_issues.judge(rows, LABELS, _scorer({"a": 0, "b": 1}), lambda f: "state_blend")
    assert report["model"]["kind"] == "llm" and "the LLM alone" in report["model"]["fallback"]


def test_judge_of_nothing():
    report = label_issues.judge([], LABELS, _scorer({}), lambda f: "state_blend")
    assert report["issues"] == [] and report["counts"]["tasks"] == 0


# ---------------------------------------------------------------------------------------------- planted noise


@pytest.mark.parametrize("mode", noise_bench.MODES)
def test_plant_flips_exactly_the_rate(mode):
    y = np.random.default_rng(0).choice(3, size=1000, p=[0.45, 0.45, 0.1])
    noisy, flipped = noise_bench.plant(y, 0.1, mode, LABELS, np.random.default_rng(1))
    assert flipped.sum() == 100 and (noisy != y).sum() == 100 and (noisy[flipped] != y[flipped]).all()
    to_neutral = (noisy[flipped] == 2) & (y[flipped] != 2)
    polar = (y[flipped] != 2).sum()
    if mode == "to_neutral":
        assert to_neutral.sum() / polar > 0.65  # TO_NEUTRAL = 0.8
    else:
        assert to_neutral.sum() / polar < 0.65  # one of two wrong labels
    with pytest.raises(noise_bench.NoiseBenchError, match="unknown noise"):
        noise_bench.plant(y, 0.1, "gaussian", LABELS, np.random.default_rng(1))


def test_bench_on_separable_data_flags_well_and_ranks_the_careless_last():
    inputs = synthetic_inputs(n_pool=600, n_test=200)
    inputs.info.update(labels=list(inputs.labels), data="synthetic")  # where the inputs came from, as loaded
    results = noise_bench.bench(inputs, "llm_state", n=500, rate=0.1, seeds=[0, 1])
    assert mismatches(json.loads(json.dumps(results)), NoiseResults) == []
    assert results["config"]["labels"] == 500 and results["config"]["data"] == "synthetic"  # the bench's own count
    for mode in noise_bench.MODES:
        s = results["noise"][mode]
        assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1
        assert s["f1"] > 0.4, (mode, s)
        assert [r["flipped"] for r in s["seeds"]] == [50, 50]
        assert s["macro_f1_clean"] > s["macro_f1_noisy"] - 0.02
    team = results["team"]
    assert team["careless_ranked_last"] == 2
    assert team["annotator_quality"]["careless"] < min(
        team["annotator_quality"]["careful_1"], team["annotator_quality"]["careful_2"]
    )
    assert 0.5 < team["consensus_accuracy"]["majority"] <= 1
    text = noise_bench.table(results)
    assert "uniform" in text and "to_neutral" in text and "careless ranked last in 2/2" in text
    with pytest.raises(noise_bench.NoiseBenchError, match="strictly between"):
        noise_bench.bench(inputs, "llm_state", n=500, rate=1.5)
    with pytest.raises(noise_bench.NoiseBenchError, match="unknown model kind"):
        noise_bench.bench(inputs, "forest", n=500)


def test_judging_probabilities_are_the_mean_with_the_llm():
    oof = np.array([[0.9, 0.05, 0.05]])
    llm = np.array([[0.1, 0.8, 0.1]])
    assert label_issues.judging(oof, llm) == pytest.approx(np.array([[0.5, 0.425, 0.075]]))
    # the served learners read the LLM's probabilities, which judging reuses
    assert any(learner.blend for learner in classifier.LEARNERS.values())


def test_consensus_with_several_annotators_weighs_the_careless_one_least():
    rng = np.random.default_rng(4)
    n = 150
    truth_y = rng.choice(3, size=n, p=[0.45, 0.4, 0.15])
    texts = [f"review {i}" for i in range(n)]
    items = []
    for i, t in enumerate(truth_y):
        votes = {"careful": LABELS[t], "steady": LABELS[t] if rng.random() < 0.9 else LABELS[(t + 1) % 3]}
        if i % 2 == 0:
            votes["careless"] = LABELS[t] if rng.random() < 0.4 else LABELS[(t + 2) % 3]
        items.append(Item(i, texts[i], votes))
    rows = label_issues.tasks_of(_dataset(items))
    report = label_issues.judge(rows, LABELS, _scorer(dict(zip(texts, truth_y.tolist()))), lambda f: "state_blend")
    crowd = report["consensus"]
    q = crowd["annotator_quality"]
    assert crowd["method"] == "crowdlab" and q["careless"] < min(q["careful"], q["steady"])
    assert len(crowd["tasks"]) == n and all(t["consensus"] in LABELS and 0 <= t["quality"] <= 1 for t in crowd["tasks"])
    consensus_right = np.mean([LABELS.index(t["consensus"]) == truth_y[t["task"]] for t in crowd["tasks"]])
    majority_right = np.mean([LABELS.index(t["majority"]) == truth_y[t["task"]] for t in crowd["tasks"]])
    assert consensus_right >= majority_right  # the careless votes no longer break ties against the truth
    assert {r["annotator"]: r["crowdlab_quality"] for r in report["annotators"]} == q
    # One annotator per task: no consensus to compute.
    single = label_issues.tasks_of(_dataset([Item(i, texts[i], {"x": LABELS[t]}) for i, t in enumerate(truth_y)]))
    assert (
        label_issues.judge(single, LABELS, _scorer(dict(zip(texts, truth_y.tolist()))), lambda f: "state_blend")[
            "consensus"
        ]
        is None
    )


def test_crowdlab_labels_overrule_a_careless_annotators_ties_and_keep_ground_truth():
    rng = np.random.default_rng(6)
    n = 200
    truth = rng.choice(3, size=n, p=[0.45, 0.4, 0.15])
    texts = [f"review {i}" for i in range(n)]
    vectors, llm, _ = _scorer(dict(zip(texts, truth.tolist())))(texts)
    votes, majority = [], []
    for i, t in enumerate(truth):
        careless = LABELS[t] if rng.random() < 0.3 else LABELS[(t + 1) % 3]
        if i < 10:  # ground truth decided these: no votes
            votes.append(())
            majority.append(int(t))
        elif i % 2:  # a tie the careless annotator's recency won
            votes.append((("user:1", LABELS[t]), ("user:9", careless)))
            majority.append(LABELS.index(careless))
        else:
            votes.append((("user:1", LABELS[t]), ("user:2", LABELS[t]), ("user:9", careless)))
            majority.append(int(t))
    y, record = label_issues.crowdlab_labels(votes, np.array(majority), LABELS, "state_blend", vectors, llm)
    assert record["tasks"] == n - 10 and record["annotator_quality"]["user:9"] < record["annotator_quality"]["user:1"]
    assert (y == truth).mean() > (np.array(majority) == truth).mean() + 0.1
    assert (y[:10] == truth[:10]).all() and record["changed"] == int((y != np.array(majority)).sum())
    same, nothing = label_issues.crowdlab_labels(
        [(("user:1", "Positive"),)] * 3, np.zeros(3, int), LABELS, "state_blend", vectors[:3], llm[:3]
    )
    assert nothing == {"method": "crowdlab", "tasks": 0, "changed": 0} and same.tolist() == [0, 0, 0]
