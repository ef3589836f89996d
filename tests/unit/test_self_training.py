"""Self-training below 50 labels (backend/learning/self_training.py), on made-up vectors and in a training run."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import CONFIG
from support.loop import FakeProject, make_service, predictor  # noqa: F401 (fixture)

from backend.labelstudio import schema as schemas
from backend.learning import classifier, recipes, self_training
from backend.learning.self_training import Unlabeled
from backend.loop import rescoring, training


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Three labels, each a cluster in 32 dimensions: what a recipe fitted on a few labels already sorts well.
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 32))
    x[:, :3] += 2.5 * np.eye(3)[y]
    return x, y


def _flat(n: int) -> np.ndarray:
    return np.full((n, 3), 1 / 3)  # an LLM that knows nothing


def test_the_rule_self_trains_a_trained_recipe_below_fifty_single_choice_labels():
    x, y = _clusters(60, 0)
    state = recipes.RECIPES["state_blend"]
    few = recipes.Labeled({recipes.STATES: x[:21]}, _flat(21), y[:21], 3)
    assert self_training.applies(state, few)
    assert not self_training.applies(state, recipes.Labeled({recipes.STATES: x[:50]}, _flat(50), y[:50], 3))
    assert not self_training.applies(recipes.Recalibration("batch", (0.0, 0.0, 0.0)), few)  # fitted to nothing
    multi = recipes.Labeled({recipes.STATES: x[:21]}, _flat(21), np.eye(3, dtype=int)[y[:21]], 3)
    assert not self_training.applies(state, multi)


def test_one_round_joins_the_most_confident_answers_per_label_and_fits_again():
    x, y = _clusters(420, 1)
    labeled, pool = np.arange(21), np.arange(21, 420)
    recipe = recipes.RECIPES["mixed"]
    sets = {recipes.STATES: x, recipes.MINILM: x[:, ::2]}
    data = recipes.Labeled({k: v[labeled] for k, v in sets.items()}, _flat(21), y[labeled], 3)
    model = recipe.fit(data)
    unlabeled = Unlabeled({k: v[pool] for k, v in sets.items()}, _flat(len(pool)))
    trained = self_training.self_train(recipe, data, model, unlabeled)
    assert trained.pseudo_labels == 21 and trained.per_label == {0: 7, 1: 7, 2: 7}
    # The same as fitting the recipe on the labels and, per label, the 7 rows the first model is surest of.
    probs = model.predict_proba(recipes.recipe_vectors(recipe, unlabeled.vectors), unlabeled.llm)
    guess = probs.argmax(1)
    extra = np.concatenate([np.flatnonzero(guess == c)[np.argsort(-probs[guess == c].max(1))][:7] for c in range(3)])
    assert (guess[extra] == y[pool][extra]).mean() > 0.9  # clusters this clear: the sure answers are right
    joined = recipes.Labeled(
        {k: np.vstack([v[labeled], v[pool][extra]]) for k, v in sets.items()},
        np.vstack([data.llm, unlabeled.llm[extra]]),
        np.concatenate([y[labeled], guess[extra]]),
        3,
    )
    expected = recipe.fit(joined).predict_proba(recipes.recipe_vectors(recipe, sets), _flat(420))
    got = trained.model.predict_proba(recipes.recipe_vectors(recipe, sets), _flat(420))
    np.testing.assert_allclose(got, expected)
    assert not np.allclose(got, model.predict_proba(recipes.recipe_vectors(recipe, sets), _flat(420)))


def test_a_label_the_model_never_answers_gets_no_pseudo_labels():
    x, y = _clusters(200, 2)
    recipe = recipes.RECIPES["state_blend"]
    data = recipes.Labeled({recipes.STATES: x[:30]}, _flat(30), y[:30], 3)
    model = recipe.fit(data)
    pool = x[30:][y[30:] != 2]  # nothing the model would call the third label, most likely
    trained = self_training.self_train(recipe, data, model, Unlabeled({recipes.STATES: pool}, _flat(len(pool))))
    assert set(trained.per_label) <= {0, 1, 2} and sum(trained.per_label.values()) == trained.pseudo_labels
    assert all(n <= 10 for n in trained.per_label.values())


def test_the_sample_is_every_unlabeled_text_up_to_its_size_then_a_fixed_random_one():
    assert self_training.sample(5).tolist() == [0, 1, 2, 3, 4]
    big = self_training.sample(5000)
    assert len(big) == self_training.SAMPLE == len(set(big.tolist())) and big.max() < 5000
    assert np.array_equal(big, self_training.sample(5000)) and np.all(np.diff(big) > 0)


def test_a_run_below_fifty_labels_self_trains_on_the_unlabeled_pool(tmp_path, predictor, monkeypatch):  # noqa: F811
    project = FakeProject(n_tasks=160, n_labeled=30)
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    fits: list[int] = []
    fit = classifier.fit

    def counted(learner, x, *args, **kwargs):
        fits.append(len(x))
        return fit(learner, x, *args, **kwargs)

    monkeypatch.setattr(classifier, "fit", counted)
    # The re-score that ranks the pool while the LLM serves keeps every task's hidden state from the same pass, so
    # the run reads its unlabeled sample's states from the cache and asks the LLM for nothing.
    rescoring.run(service.loop.gateway(), "5")

    def no_pass(*args, **kwargs):
        raise AssertionError("an LLM pass the re-score had made already")

    monkeypatch.setattr(predictor, "answers_and_states", no_pass)
    monkeypatch.setattr(predictor, "first_answers", no_pass)
    ranked = len(project.pool_reads)
    # The tiny random LLM answers 30 labels about as well as a model of them: an incumbent always wrong is beaten.
    monkeypatch.setattr(training, "_incumbent_guess", lambda gate, incumbent, ids, y, *a: (np.asarray(y) + 1) % 3)
    record = service.loop.train("5")
    assert record["result"] == "promoted"
    trained = record["self_training"]
    here = threading.current_thread().name  # the run's own reads, not the re-score's that follows a promotion
    # The sample comes from the pool as the re-score read it: the run does not list the tasks again.
    assert trained["unlabeled"] == 130 and project.pool_reads[ranked:].count(here) == 0  # less the 30 labeled
    assert trained["pseudo_labels"] == sum(trained["per_label"].values()) and 0 < trained["pseudo_labels"] <= 30
    assert set(trained["per_label"]) <= {"Positive", "Negative", "Neutral"}
    assert record["questions"]["sentiment"]["self_training"] == trained
    assert 30 + trained["pseudo_labels"] in fits  # the served model was fitted on the labels and the pseudo-labels

    # A process that has not re-scored the project (a restart, another replica) reads the pool itself, once.
    service.loop.rescoring.wait("5", timeout=120)
    service.loop.projects.tasks.clear()
    training.note_change(service.loop.projects, "5", None)
    again = service.loop.train("5")
    assert again["self_training"]["unlabeled"] == 130 and project.pool_reads[ranked:].count(here) == 1

    # With 50 labels or more the pool is not read and the model is fitted on the labels alone.
    project.labels = FakeProject(n_tasks=160, n_labeled=60).labels
    training.note_change(service.loop.projects, "5", None)  # every label read again
    fits.clear()
    service.loop.rescoring.wait("5", timeout=120)
    service.loop.projects.tasks.clear()
    record = service.loop.train("5")
    assert record["labels"] == 60 and "self_training" not in record and project.pool_reads[ranked:].count(here) == 1
    assert all(n <= 60 for n in fits)
    # A promotion's re-score runs in the background: done before the next test patches Label Studio's calls anew.
    service.loop.rescoring.wait("5", timeout=120)


def test_self_train_below_sets_the_line_and_zero_turns_it_off(tmp_path, predictor, monkeypatch):  # noqa: F811
    from backend.settings import Settings, SettingsError

    monkeypatch.setenv("SELF_TRAIN_BELOW", "20")
    assert Settings.from_env().self_train_below == 20
    monkeypatch.delenv("SELF_TRAIN_BELOW")
    assert Settings.from_env().self_train_below == self_training.BELOW == 50
    for bad, message in (("-1", "must be at least 0"), ("many", "is not an integer")):
        monkeypatch.setenv("SELF_TRAIN_BELOW", bad)
        with pytest.raises(SettingsError, match=f"SELF_TRAIN_BELOW=.*{message}"):
            Settings.from_env()
    monkeypatch.delenv("SELF_TRAIN_BELOW")

    state = recipes.RECIPES["state_blend"]
    x, y = _clusters(30, 3)
    data = recipes.Labeled({recipes.STATES: x}, _flat(30), y, 3)
    assert self_training.applies(state, data) and not self_training.applies(state, data, below=0)
    assert not self_training.applies(state, data, below=30) and self_training.applies(state, data, below=31)

    project = FakeProject(n_tasks=160, n_labeled=30)
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project, self_train_below=0)
    monkeypatch.setattr(training, "_incumbent_guess", lambda gate, incumbent, ids, y, *a: (np.asarray(y) + 1) % 3)
    here = threading.current_thread().name
    record = service.loop.train("5")
    assert record["result"] == "promoted" and "self_training" not in record
    assert project.pool_reads.count(here) == 0  # nothing self-trained: the pool is not needed


def test_teaching_fits_the_recipe_on_the_llms_surest_answers_split_by_their_shares():
    x, y = _clusters(400, 4)
    rng = np.random.default_rng(4)
    # An LLM that answers the first label 240 times, the second 120, the third 40, with varied confidence.
    answers = np.repeat([0, 1, 2], [240, 120, 40])
    llm = np.full((400, 3), 0.1)
    llm[np.arange(400), answers] = rng.uniform(0.4, 0.9, 400)
    llm /= llm.sum(1, keepdims=True)
    recipe = recipes.RECIPES["state_blend"]
    unlabeled = Unlabeled({recipes.STATES: x}, llm)
    taught = self_training.teach(recipe, unlabeled, share=0.1)
    assert taught.per_label == {0: 24, 1: 12, 2: 4} and taught.pseudo_labels == 40 and taught.unlabeled == 400
    rows = np.concatenate(
        [np.flatnonzero(answers == c)[np.argsort(-llm[answers == c, c])][:n] for c, n in enumerate((24, 12, 4))]
    )
    expected = recipe.fit(recipes.Labeled({recipes.STATES: x[rows]}, llm[rows], answers[rows], 3))
    np.testing.assert_allclose(taught.model.predict_proba(x, llm), expected.predict_proba(x, llm))
    # A label the LLM gives once still teaches (at most TEACH_MIN of each); one it never gives, nothing.
    answers[:1], answers[-40:] = 2, 0
    llm = np.eye(3)[answers] * 0.5 + 0.5 / 3
    assert self_training.teach(recipe, Unlabeled({recipes.STATES: x}, llm), share=0.1).per_label == {0: 28, 1: 12, 2: 1}
    with pytest.raises(classifier.TrainingError):  # the LLM gives one label only: nothing to tell apart
        self_training.teach(recipe, Unlabeled({recipes.STATES: x}, np.tile([0.8, 0.1, 0.1], (400, 1))))


def test_the_first_rescore_teaches_a_model_before_the_first_label_and_publishes_its_answers(
    tmp_path,
    predictor,
    monkeypatch,  # noqa: F811
):
    project = FakeProject(n_tasks=160, n_labeled=0)
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project, self_teach=True, self_train_below=0)  # independent settings
    rescoring.run(service.loop.gateway(), "5")
    llm_version = service.loop.text.llm_version(schemas.parse_config(CONFIG), service.loop.pool("5"))
    (record,) = service.loop.projects.store("5").versions()
    assert record["result"] == "promoted" and record["labels"] == 0 and record["version"] == f"{llm_version}-r1"
    assert record["recipe"] == self_training.TEACH_RECIPE and record["incumbent"] == llm_version
    taught = record["self_training"]
    assert taught["unlabeled"] == 160 and taught["pseudo_labels"] == sum(taught["per_label"].values()) >= 4
    # The pool is published once, under the taught model's version, with its answers.
    assert project.model_version == record["version"] and {p["model_version"] for p in project.pushed} == {
        record["version"]
    }
    model = service.loop.projects.model("5")
    assert model.version == record["version"] and model.models["sentiment"].heldout == {}
    # A re-score later (a change of strategy) does not teach again; the first labels judge it as any incumbent.
    rescoring.run(service.loop.gateway(), "5")
    assert len(service.loop.projects.store("5").versions()) == 1
    project.labels = FakeProject(n_tasks=160, n_labeled=30).labels
    training.note_change(service.loop.projects, "5", None)
    run = service.loop.train("5")
    assert run["labels"] == 30 and run["incumbent"] == record["version"]
    service.loop.rescoring.wait("5", timeout=120)  # a promotion's background re-score, before the next test


def test_no_model_is_taught_unless_asked_for(tmp_path, predictor, monkeypatch):  # noqa: F811
    from backend.settings import Settings, SettingsError

    assert Settings.from_env().self_teach is False
    for raw, value in (("1", True), ("on", True), ("false", False), ("0", False)):
        monkeypatch.setenv("SELF_TEACH", raw)
        assert Settings.from_env().self_teach is value
    monkeypatch.setenv("SELF_TEACH", "maybe")
    with pytest.raises(SettingsError, match="SELF_TEACH='maybe' is not one of"):
        Settings.from_env()
    monkeypatch.delenv("SELF_TEACH")

    project = FakeProject(n_tasks=160, n_labeled=0)
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    rescoring.run(service.loop.gateway(), "5")
    assert service.loop.projects.store("5").versions() == [] and service.loop.projects.model("5") is None
    assert project.model_version == service.loop.text.llm_version(schemas.parse_config(CONFIG), service.loop.pool("5"))
