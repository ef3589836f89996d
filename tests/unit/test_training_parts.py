"""The loop's parts on their own: coalescing jobs, the model store, the vector cache and the classifier."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.learning import classifier, recipes
from backend.learning.vectors import VectorCache
from backend.loop.jobs import CoalescingJobs
from backend.loop.model_store import ModelStore


def test_requests_during_a_run_cause_exactly_one_more_run():
    gate = threading.Event()
    runs: list[str] = []
    running = []

    def run(key: str) -> None:
        running.append(key)
        assert running.count(key) == 1, "two runs of one key at once"
        runs.append(key)
        gate.wait(5)
        running.remove(key)

    jobs = CoalescingJobs(run)
    answers = [jobs.request("7")]
    time.sleep(0.05)
    threads = [threading.Thread(target=lambda: answers.append(jobs.request("7"))) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.set()
    assert jobs.wait("7", timeout=5)
    assert answers[0] == "started"
    assert answers.count("queued") == 1 and answers.count("coalesced") == 29
    assert runs == ["7", "7"]


def test_keys_run_independently_and_a_failing_run_does_not_stop_the_next():
    calls: list[str] = []

    def run(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("boom")

    jobs = CoalescingJobs(run)
    jobs.request("1")
    assert jobs.wait("1", timeout=5)
    jobs.request("1")
    jobs.request("2")
    assert jobs.wait("1", timeout=5) and jobs.wait("2", timeout=5)
    assert sorted(calls) == ["1", "1", "2"]
    assert not jobs.busy("1")


def test_model_store_survives_a_reopen_and_keeps_unpromoted_versions_out_of_service(tmp_path):
    store = ModelStore(tmp_path, "3")
    assert store.current() is None
    store.add("v-r1", {"w": 1}, {"cv_macro_f1": 0.8}, promote=True)
    store.add("v-r2", None, {"cv_macro_f1": 0.7}, promote=False)
    reopened = ModelStore(tmp_path, "3")
    version, model = reopened.current()
    assert (version, model) == ("v-r1", {"w": 1})
    assert [(v["version"], v["promoted"]) for v in reopened.versions()] == [("v-r1", True), ("v-r2", False)]
    assert not reopened.artifact("v-r2").exists()
    assert not list((tmp_path / "projects" / "3").rglob("*.tmp"))
    reopened.set_setting("strategy", "entropy")
    assert ModelStore(tmp_path, "3").setting("strategy") == "entropy"


def test_an_unreadable_registry_is_reported_not_replaced(tmp_path):
    store = ModelStore(tmp_path, "3")
    store.add("v-r1", {"w": 1}, {}, promote=True)
    store.registry_path.write_text("{not json")
    with pytest.raises(RuntimeError, match="unreadable"):
        store.current()
    assert store.registry_path.read_text() == "{not json"


def test_vector_cache_computes_each_text_once_and_reloads(tmp_path):
    calls: list[list[str]] = []

    def compute(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts])

    cache = VectorCache(tmp_path / "c.npz")
    a = cache.get(["ab", "abc", "ab"], compute)
    b = cache.get(["abc", "d"], compute)
    assert calls == [["ab", "abc"], ["d"]]
    assert a.tolist() == [[2, 1], [3, 1], [2, 1]] and b.tolist() == [[3, 1], [1, 1]]
    cache.save()
    again = VectorCache(tmp_path / "c.npz")
    assert again.get(["d", "ab"], compute).tolist() == [[1, 1], [2, 1]]
    assert len(calls) == 2
    (tmp_path / "c.npz").write_bytes(b"garbage")
    assert len(VectorCache(tmp_path / "c.npz")) == 0


def _toy(n: int, seed: int = 0):
    """Three separable clusters in 384-d and an LLM that is right 70% of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = rng.normal(size=(3, 384))
    emb = centers[y] + rng.normal(scale=2.0, size=(n, 384))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    llm_label = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    llm = np.full((n, 3), 0.15)
    llm[np.arange(n), llm_label] = 0.7
    return emb.astype(np.float32), llm, y


def test_blend_beats_the_llm_it_starts_from_and_returns_every_label_column():
    emb, llm, y = _toy(600)
    model = classifier.fit("blend", emb[:400], llm[:400], y[:400], n_labels=4)
    probs = model.predict_proba(emb[400:], llm[400:])
    assert probs.shape == (200, 4) and np.allclose(probs.sum(1), 1) and np.all(probs[:, 3] == 0)
    assert (probs.argmax(1) == y[400:]).mean() > (llm[400:].argmax(1) == y[400:]).mean() + 0.05


def test_out_of_fold_never_predicts_a_row_with_a_model_that_saw_it():
    emb, llm, y = _toy(60)
    y_noise = y.copy()
    oof = classifier.out_of_fold("classifier", emb, None, y_noise, 3)
    fitted = classifier.fit("classifier", emb, None, y_noise, 3).predict_proba(emb)
    assert oof.shape == (60, 3)
    # A model scores its own training rows better than held-out ones.
    assert (fitted.argmax(1) == y).mean() >= (oof.argmax(1) == y).mean()


def test_too_few_labels_is_a_training_error():
    emb, llm, y = _toy(10)
    with pytest.raises(classifier.TrainingError, match="two classes"):
        classifier.fit("blend", emb[:3], llm[:3], [0, 0, 0], 3)
    with pytest.raises(ValueError, match="unknown learner 'svm'"):
        classifier.design("svm", emb, llm)


def test_a_blend_keeps_the_llm_for_a_label_too_rare_to_learn():
    emb, llm, y = _toy(300)
    y = np.where(y == 2, 0, y)
    y[0] = 2  # one Neutral: too few to learn
    model = classifier.fit("blend", emb, llm, y, n_labels=3)
    probs = model.predict_proba(emb, llm)
    assert np.allclose(probs[:, 2], llm[:, 2]) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == 2).sum() > 0  # the LLM can still answer it
    assert model.learned.tolist() == [0, 1]  # what the ranking reads to ask for the label it could not learn
    only = classifier.fit("classifier", emb, None, y, n_labels=3).predict_proba(emb)
    assert np.all(only[:, 2] == 0)
    mixed = recipes.RECIPES["mixed"].fit(recipes.Labeled({"states": emb, "minilm": emb}, llm, y, 3))
    assert mixed.learned.tolist() == [0, 1]
    yes = np.zeros((300, 3), dtype=int)
    yes[:150, 0] = yes[::2, 1] = 1
    yes[0, 2] = 1  # one yes: too few to learn the third label
    assert classifier.fit("blend", emb, llm, yes, n_labels=3).learned.tolist() == [0, 1]


def _macro_f1(y, probs):
    from sklearn.metrics import f1_score

    return f1_score(y, probs.argmax(1), average="macro")


def test_the_projects_labels_choose_the_recipe():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    noise = rng.normal(size=(120, 64))
    signal = noise.copy()
    signal[:, :3] += 4 * np.eye(3)[y]
    flat_llm = rng.dirichlet([1, 1, 1], 120)  # the LLM knows nothing
    candidates = recipes.candidates(recipes.STATES)
    # Only the hidden state carries the labels: the state blend wins, MiniLM's blend alone scores near chance.
    by_state = recipes.choose(
        candidates, recipes.Labeled({"states": signal, "minilm": noise[:, :16]}, flat_llm, y, 3), _macro_f1
    )
    assert by_state.recipe.name == "state_blend" and by_state.scores["blend"] < 0.6
    assert set(by_state.scores) == {r.name for r in candidates}
    assert by_state.scores[by_state.recipe.name] == max(by_state.scores.values())
    assert by_state.oof.shape == (120, 3) and _macro_f1(y, by_state.oof) > 0.9
    # Only MiniLM's does: its blend wins.
    by_minilm = recipes.choose(
        candidates, recipes.Labeled({"states": noise, "minilm": signal[:, :16]}, flat_llm, y, 3), _macro_f1
    )
    assert by_minilm.recipe.name == "blend"
    # The mixed model's out-of-fold probabilities are its parts' mean, and it serves their mean.
    sets = {"states": signal, "minilm": noise[:, :16]}
    mixed = recipes.RECIPES["mixed"]
    parts = [
        classifier.out_of_fold(k, sets[v], flat_llm, y, 3) for k, v in (("state_blend", "states"), ("blend", "minilm"))
    ]
    data = recipes.Labeled(sets, flat_llm, y, 3)
    np.testing.assert_allclose(mixed.out_of_fold(data), (parts[0] + parts[1]) / 2)
    model = mixed.fit(data)
    alone = [
        classifier.fit("state_blend", signal, flat_llm, y, 3),
        classifier.fit("blend", noise[:, :16], flat_llm, y, 3),
    ]
    np.testing.assert_allclose(
        model.predict_proba(recipes.recipe_vectors(mixed, sets), flat_llm),
        (alone[0].predict_proba(signal, flat_llm) + alone[1].predict_proba(noise[:, :16], flat_llm)) / 2,
    )
    # The refit reads only the LLM's probabilities: vectors of any width give the same model.
    sure_llm = np.clip(np.eye(3)[y] * 0.9 + 0.05, 0, 1)
    refit = classifier.fit("llm_refit", noise, sure_llm, y, 3)
    assert np.allclose(refit.predict_proba(noise, sure_llm), refit.predict_proba(noise[:, :2], sure_llm))


def _llm(calibration: str, shift: tuple[float, ...]) -> recipes.Recipe:
    return recipes.Recalibration(calibration, shift)


def test_the_labels_may_choose_the_llm_under_another_calibration():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    # An LLM that knows the answer but leans to the first label so much that it nearly always says it.
    logits = 3 * np.eye(3)[y] + np.array([4.0, 0.0, 0.0]) + rng.normal(scale=0.5, size=(90, 3))
    llm = np.exp(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    shifts = {"served": (0.0, 0.0, 0.0), "fair": (-4.0, 0.0, 0.0)}
    noise = {"states": rng.normal(size=(90, 16)), "minilm": rng.normal(size=(90, 8))}
    candidates = tuple(_llm(name, shift) for name, shift in shifts.items()) + recipes.candidates(recipes.STATES)
    assert [r.name for r in candidates[:2]] == ["llm:served", "llm:fair"]
    choice = recipes.choose(candidates, recipes.Labeled(noise, llm, y, 3), _macro_f1)
    assert choice.recipe.name == "llm:fair" and choice.scores["llm:fair"] > choice.scores["llm:served"] + 0.2
    # The labels find the fair calibration likelier too: it is the one that competes with the trained recipes.
    loglik = recipes.log_likelihoods(shifts, llm, y)
    assert list(loglik) == ["served", "fair"] and loglik["fair"] > loglik["served"]
    assert recipes.likeliest(shifts, llm, y) == candidates[1]
    assert recipes.likeliest(shifts, llm, np.eye(3, dtype=int)[y]) is None  # multi-label: none
    assert recipes.likeliest({}, llm, y) is None
    model = choice.recipe.fit(recipes.Labeled(noise, llm, y, 3))
    assert isinstance(model, classifier.Recalibrated) and model.learned.tolist() == [0, 1, 2]
    expected = np.exp(logits - [4.0, 0, 0] - np.logaddexp.reduce(logits - [4.0, 0, 0], axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(recipes.recipe_vectors(choice.recipe, noise), llm), expected)
    np.testing.assert_allclose(choice.oof, expected)  # nothing fitted: out of fold is the same answer
    assert recipes.recipe_vectors(choice.recipe, noise).shape == (90, 0)
    # A tie keeps the first listed: the served LLM, so nothing changes for nothing.
    even = recipes.choose(
        (_llm("served", (0.0,) * 3), _llm("same", (1.0,) * 3)), recipes.Labeled(noise, llm, y, 3), _macro_f1
    )
    assert even.recipe.name == "llm:served"


def test_each_question_runs_the_questions_side_by_side_with_blas_on_one_thread(monkeypatch):
    from threadpoolctl import threadpool_info

    from backend.labelstudio.schema import parse_config
    from backend.loop import training

    config = parse_config(
        '<View><Text name="t" value="$text"/>'
        + "".join(f'<Choices name="q{i}" toName="t"><Choice value="A"/><Choice value="B"/></Choices>' for i in range(3))
        + "</View>"
    )
    monkeypatch.setattr(training.os, "cpu_count", lambda: 2)
    both_in = threading.Barrier(2, timeout=5)  # returns only when two questions are being worked on at once
    seen = []

    def work(q):
        if q.from_name != "q2":
            both_in.wait()
        blas = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}  # OpenMP's is per thread
        seen.append((threading.current_thread().name, blas))
        return q.from_name.upper()

    assert training.each_question(work, config.questions) == ["Q0", "Q1", "Q2"]
    assert all(name.startswith("question") and threads == {1} for name, threads in seen), seen

    monkeypatch.setattr(training.os, "cpu_count", lambda: 1)
    assert (
        training.each_question(lambda q: threading.current_thread().name, config.questions[:2])
        == [threading.current_thread().name] * 2
    )


def test_a_recipe_is_one_registered_object(monkeypatch):
    """A recipe registered and listed among the candidates is scored, chosen and served like the packaged ones."""
    strong = recipes.Regression("state_blend", recipes.STATES, C=10.0)
    monkeypatch.setitem(recipes.RECIPES, strong.name, strong)
    monkeypatch.setitem(recipes.CANDIDATES, recipes.STATES, ("state_blend", strong.name))
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 90)
    states = rng.normal(size=(90, 32))
    states[:, :3] += 1.5 * np.eye(3)[y]
    sets, llm = {"states": states, "minilm": rng.normal(size=(90, 8))}, rng.dirichlet([1, 1, 1], 90)
    candidates = recipes.candidates(recipes.STATES)
    assert [r.name for r in candidates] == ["state_blend", "state_blend(C=10)"]
    choice = recipes.choose(candidates, recipes.Labeled(sets, llm, y, 3), _macro_f1)
    assert set(choice.scores) == {"state_blend", "state_blend(C=10)"}
    assert choice.scores[choice.recipe.name] == max(choice.scores.values())
    assert choice.scores["state_blend(C=10)"] != choice.scores["state_blend"]  # its own C, not the learner's
    model = strong.fit(recipes.Labeled(sets, llm, y, 3))
    assert model.estimator.C == 10.0 and model.predict_proba(recipes.recipe_vectors(strong, sets), llm).shape == (90, 3)


def test_a_learner_is_one_registered_object(monkeypatch):
    monkeypatch.setitem(classifier.LEARNERS, "half_blend", classifier.Learner("half_blend", C=0.1, llm_weight=0.5))
    rng = np.random.default_rng(0)
    x, llm, y = rng.normal(size=(60, 4)), rng.dirichlet([1, 1, 1], 60), np.array([0, 1, 2] * 20)
    assert classifier.design("half_blend", x, llm).shape == (60, 7)  # the vectors, then the LLM's three columns
    model = classifier.fit("half_blend", x, llm, y, 3)
    assert classifier.is_blend("half_blend") and model.estimator.C == 0.1
    assert model.predict_proba(x, llm).shape == (60, 3) and classifier.out_of_fold(
        "half_blend", x, llm, y, 3
    ).shape == (60, 3)
    with pytest.raises(ValueError, match="unknown learner"):
        classifier.design("no_such_learner", x, llm)
