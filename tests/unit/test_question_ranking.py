"""Ranking a config with several questions (backend/ranking/questions.py) and its setting, RANK_QUESTIONS."""

from __future__ import annotations

import numpy as np
import pytest

from backend.ranking import questions, strategies
from backend.settings import Settings, SettingsError


def _two(p: list[float]) -> np.ndarray:
    p = np.asarray(p)
    return np.stack([p, 1 - p], axis=1)


# Task 0 is sure on both questions, 1 unsure on the first only, 2 unsure on the second only, 3 unsure on both.
INPUTS = {
    "a": (_two([0.99, 0.5, 0.98, 0.52]), None),
    "b": (_two([0.97, 0.96, 0.51, 0.55]), None),
}


def test_weights_parse_and_check():
    assert questions.parse_weights("") == {} == questions.parse_weights(" mean ")
    assert questions.parse_weights("a=2, b=0.5") == {"a": 2.0, "b": 0.5}
    assert questions.parse_weights("sentiment") == {"sentiment": 1.0}
    for bad, says in [("=2", "name is missing"), ("a=x", "not a number"), ("a=-1", ">= 0"), ("a=0", "positive")]:
        with pytest.raises(ValueError, match=says):
            questions.parse_weights(bad)
    assert questions.weights_for({}, ["a", "b"]) == {"a": 1.0, "b": 1.0}
    assert questions.weights_for({"b": 3.0, "z": 1.0}, ["a", "b"]) == {"b": 3.0}
    assert questions.weights_for({"z": 1.0}, ["a", "b"]) == {"a": 1.0, "b": 1.0}  # made for another config


def test_the_setting_reads_rank_questions(monkeypatch):
    monkeypatch.setenv("RANK_QUESTIONS", "b=2,a=1")
    assert Settings.from_env().question_weights(["a", "b", "c"]) == {"a": 1.0, "b": 2.0}
    monkeypatch.setenv("RANK_QUESTIONS", "a=lots")
    with pytest.raises(SettingsError, match="RANK_QUESTIONS: .*not a number"):
        Settings.from_env()


def test_the_mean_over_questions_asks_first_what_is_unsure_everywhere():
    u = questions.rank("margin", INPUTS, {"a": 1.0, "b": 1.0})
    assert int(np.argmax(u)) == 3 and int(np.argmin(u)) == 0
    # One question alone is exactly that question's ranking.
    alone = questions.rank("margin", INPUTS, {"a": 1.0})
    assert np.array_equal(alone, strategies.rank("margin", INPUTS["a"][0]))
    assert questions.rank("margin", INPUTS, {"b": 1.0}).argmax() == 2
    # A weight tips the order between the two half-sure tasks.
    assert (
        questions.rank("margin", INPUTS, {"a": 3.0, "b": 1.0})[1]
        > questions.rank("margin", INPUTS, {"a": 3.0, "b": 1.0})[2]
    )
    assert (
        questions.rank("margin", INPUTS, {"a": 1.0, "b": 3.0})[2]
        > questions.rank("margin", INPUTS, {"a": 1.0, "b": 3.0})[1]
    )


def test_labeled_tasks_come_last_and_order_free_strategies_rank_once():
    u = questions.rank("margin", INPUTS, {"a": 1.0, "b": 1.0}, labeled_idx=[3])
    assert u[3] == -np.inf and int(np.argmax(u)) in (1, 2)
    rand = questions.rank("random", INPUTS, {"a": 1.0, "b": 1.0}, seed=4)
    assert np.array_equal(rand, strategies.rank("random", INPUTS["a"][0], seed=4))
    emb = np.eye(4, dtype=np.float32)
    div = questions.rank("diversity", INPUTS, {"a": 1.0, "b": 1.0}, labeled_idx=[0], embeddings=emb)
    assert np.array_equal(div, strategies.rank("diversity", INPUTS["a"][0], emb, labeled_idx=[0]))


def test_pointwise_priority_is_the_weighted_mean_of_each_questions():
    both = questions.pointwise_priority("margin", INPUTS, {"a": 1.0, "b": 1.0})
    a = strategies.pointwise_priority("margin", *INPUTS["a"])
    b = strategies.pointwise_priority("margin", *INPUTS["b"])
    assert both == pytest.approx((a + b) / 2)
    assert questions.pointwise_priority("margin", INPUTS, {"a": 3.0, "b": 1.0}) == pytest.approx(0.75 * a + 0.25 * b)
    assert int(np.argmin(both)) == 3  # lower = asked sooner


def test_learning_weighs_each_question_by_what_it_still_has_to_learn(tmp_path, monkeypatch):
    from backend.loop import rescoring
    from backend.loop.projects import Projects

    assert questions.parse_weights("learning") == {}
    assert questions.learning_weights({"a": 0.6, "b": 0.99}) == pytest.approx({"a": 0.4, "b": questions.FLOOR})
    assert questions.learning_weights({"a": 0.6, "b": None}) == {"a": 1.0, "b": 1.0}  # b not measured yet
    # The weights tip the order towards the question the model knows least.
    tipped = questions.rank("margin", INPUTS, questions.learning_weights({"a": 0.5, "b": 0.95}))
    assert tipped[1] > tipped[2]

    monkeypatch.setenv("RANK_QUESTIONS", "learning")
    settings = Settings.from_env()
    projects = Projects(settings)
    names = ("a", "b")
    assert rescoring.question_weights(settings, projects, "4", names) == {"a": 1.0, "b": 1.0}  # no run yet
    store = projects.store("4")
    run = {
        "a": {"result": "promoted", "cv_macro_f1": 0.7, "incumbent_macro_f1": 0.5},
        "b": {"result": "kept", "cv_macro_f1": 0.8, "incumbent_macro_f1": 0.9},
    }
    store.add("v-r1", None, {"questions": run}, promote=False)
    assert projects.question_scores("4", names) == {"a": 0.7, "b": 0.9}  # what serves each now
    assert rescoring.question_weights(settings, projects, "4", names) == pytest.approx({"a": 0.3, "b": 0.1})
    for mean in ("mean", ""):  # the default weighs the questions alike, whatever the scores
        monkeypatch.setenv("RANK_QUESTIONS", mean)
        assert rescoring.question_weights(Settings.from_env(), projects, "4", names) == {"a": 1.0, "b": 1.0}
    assert rescoring.question_weights(Settings(data_dir=tmp_path), projects, "4", names) == {"a": 1.0, "b": 1.0}
    store.add("v-r2", None, {"questions": {**run, "b": {"result": "skipped", "reason": "too few"}}}, promote=False)
    assert rescoring.question_weights(settings, projects, "4", names) == {"a": 1.0, "b": 1.0}


def test_a_task_an_unlearned_label_decides_reads_as_undecided():
    from backend.labelstudio.schema import Schema
    from backend.loop.answers import ranked_probs

    single = Schema("topic", "text", "text", ("A", "B", "C"), ("A", "B", "C"))
    # Task 0 sure of A, 1 torn between A and B, 2 sure of C: a label the model never learned (the LLM's guess).
    probs = np.array([[0.97, 0.02, 0.01], [0.5, 0.45, 0.05], [0.02, 0.03, 0.95]])
    as_served, _ = ranked_probs(single, probs, None)
    assert strategies.rank("margin", as_served).argmax() == 1  # without knowing, the guess looks settled
    read, _ = ranked_probs(single, probs, None, learned=np.array([0, 1]))
    np.testing.assert_allclose(read[2], [1 / 3] * 3)
    np.testing.assert_allclose(read[:2], probs[:2])
    assert strategies.rank("margin", read).argmax() == 2
    np.testing.assert_allclose(ranked_probs(single, probs, None, learned=np.array([0, 1, 2]))[0], probs)

    multi = Schema("aspects", "text", "text", ("X", "Y"), ("X", "Y"), multiple=True)
    # Y unlearned: where the LLM says it applies (task 1), the task reads as unsure of Y; where it says no, not.
    yes = np.array([[0.9, 0.1], [0.95, 0.9], [0.6, 0.2]])
    served, _ = ranked_probs(multi, yes, None)
    assert strategies.rank("margin", served).argmax() == 2
    read, _ = ranked_probs(multi, yes, None, learned=np.array([0]))
    assert strategies.rank("margin", read).argmax() == 1 and read[1].tolist() == [0.5, 0.5]
