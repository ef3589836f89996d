"""LLM_MODEL=cascade (backend/llm/cascade.py) with two tiny models: the second answers exactly the texts below the
threshold measured on the pool, the version names both and the share, a re-score publishes the first model's
answers and then the cascade's, and a trained model reads the first model's hidden states."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import CONFIG
from support.loop import FakeProject, make_service

from backend import corpus
from backend.dev import tiny_model
from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as ls_tasks
from backend.llm import student
from backend.llm import weights as models
from backend.llm.cascade import UNSURE_BELOW, Cascade, margins
from backend.llm.predictor import PoolCalibration, pool_sample
from backend.llm.student import Student
from backend.loop.features import TextFeatures
from backend.serving.service import load_predictor
from backend.settings import Settings, SettingsError

SHARE = 0.3
TEXTS = list(corpus.load()["text"][:40])
PARSED = schemas.parse_config(CONFIG)
NAME = PARSED.primary.from_name


@pytest.fixture(scope="module")
def cascade():
    return Cascade(tiny_model.predictor(), tiny_model.predictor(seed=1), SHARE)


@pytest.fixture(scope="module")
def pool(cascade):
    return cascade.measure_pool(PARSED, TEXTS)


def test_the_second_model_answers_exactly_the_texts_the_first_answers_doubt(cascade, pool):
    first = cascade.deciding(PARSED, TEXTS, cascade.first_answers(PARSED, TEXTS, pool), pool)
    unsure = margins(PARSED, first) < pool.unsure_below
    assert 0.1 <= unsure.mean() <= 0.4  # the share, set on answers out of fold (see below)
    second = cascade.second.answers(PARSED, TEXTS, pool.second)
    served = cascade.answers(PARSED, TEXTS, pool)[NAME]
    np.testing.assert_allclose(served[unsure], second[NAME][unsure], atol=1e-5)
    np.testing.assert_array_equal(served[~unsure], first[NAME][~unsure])
    assert not np.allclose(first[NAME][unsure], second[NAME][unsure], atol=1e-3)  # two different models
    # A text's answer does not depend on the request it comes in.
    alone = np.vstack([cascade.probabilities(PARSED.primary, [t], pool) for t in TEXTS[:10]])
    np.testing.assert_allclose(alone, served[:10], atol=1e-4)


def test_the_deciding_answers_are_the_students_reading_of_the_first_models_state(cascade, pool):
    """The student is fitted to the second model's answers on the sample (no label read); the threshold is the
    share's quantile of its margins out of fold, as on texts it never saw."""
    plain, sample = tiny_model.predictor(), pool_sample(TEXTS)  # every text, in the sample's order
    _, states = plain.answers_and_states(PARSED, sample, cascade.layer, pool)
    taught = cascade.second.answers(PARSED, sample, pool.second)[NAME]
    assert pool.student == Student.fit(states, taught, cascade.layer)
    deciding = cascade.deciding(PARSED, sample, {}, pool)[NAME]  # the states computed
    np.testing.assert_allclose(deciding, pool.student.apply(states), atol=1e-5)
    # The first answers stay the first model's own, as it serves them alone: what trained models read.
    own = plain.answers(PARSED, sample, pool)[NAME]
    np.testing.assert_allclose(cascade.first_answers(PARSED, sample, pool)[NAME], own, atol=1e-5)
    held_out = student.out_of_fold(states, taught, cascade.layer)
    assert pool.unsure_below == pytest.approx(np.quantile(margins(PARSED, {NAME: held_out}), SHARE), abs=1e-6)
    # It reads the second model's answers better than the first model's own answers do.
    agrees = lambda probs: (probs.argmax(1) == taught.argmax(1)).mean()  # noqa: E731
    assert agrees(pool.student.apply(states)) > agrees(own)
    stored = Student.from_dict(json.loads(json.dumps(pool.student.as_dict())))
    np.testing.assert_allclose(stored.apply(states), pool.student.apply(states))


def test_without_a_measured_pool_the_fixed_threshold_serves(cascade):
    first = cascade.first_answers(PARSED, TEXTS[:12])[NAME]
    served = cascade.answers(PARSED, TEXTS[:12])[NAME]
    sure = margins(PARSED, {NAME: first}) >= UNSURE_BELOW
    np.testing.assert_array_equal(served[sure], first[sure])
    assert cascade.wants_pool(PARSED, None)


def test_the_version_names_both_models_the_share_and_the_threshold(cascade, pool):
    version = cascade.version(PARSED, pool)
    assert version.startswith("tiny-qwen2+tiny-qwen2-s1-cascade30-"), version
    first = cascade.first_version(PARSED, pool)
    assert first == tiny_model.predictor().version(PARSED, pool) and {first, version} <= set(cascade.versions())
    assert cascade.version(PARSED, replace(pool, student=None)) != version  # the student is named
    assert cascade.version(PARSED, replace(pool, unsure_below=pool.unsure_below / 2)) != version
    # Kept in the project's registry and read back: the same version, nothing to measure again.
    again = PoolCalibration.from_dict(json.loads(json.dumps(pool.as_dict())))
    assert again.unsure_below == pool.unsure_below and cascade.version(PARSED, again) == version
    assert not cascade.wants_pool(PARSED, again)
    assert cascade.wants_pool(PARSED, replace(pool, second=None, unsure_below=None))
    assert cascade.shifts(PARSED, pool) == {}


def test_a_trained_model_reads_the_first_models_states_and_own_answers(tmp_path, cascade, pool):
    text = TextFeatures(Settings(data_dir=tmp_path), lambda: cascade)
    features = text.features()
    layer = int(features.rsplit("-", 1)[1])
    vectors = text.vectors(PARSED, TEXTS[:8], features, pool)
    _, states = tiny_model.predictor().answers_and_states(PARSED, TEXTS[:8], layer, pool)
    np.testing.assert_allclose(vectors, states, atol=1e-5)
    served, version = text.llm_answers(PARSED, TEXTS[:8], pool)
    assert version == cascade.version(PARSED, pool)
    np.testing.assert_allclose(served[NAME], cascade.answers(PARSED, TEXTS[:8], pool)[NAME], atol=1e-5)
    first, first_version = text.first_answers(PARSED, TEXTS[:8], pool)
    assert first_version == cascade.first_version(PARSED, pool) != version
    own = tiny_model.predictor().answers(PARSED, TEXTS[:8], pool)[NAME]
    np.testing.assert_allclose(first[NAME], own, atol=1e-5)
    assert not np.allclose(first[NAME], served[NAME], atol=1e-3)


def test_a_rescore_publishes_the_first_models_answers_then_the_cascades(tmp_path, monkeypatch):
    project = FakeProject(n_tasks=30, n_labeled=0)
    project.install(monkeypatch)
    pushed: list[set[str]] = []
    fake_push = ls_tasks.push_predictions

    def noting(client, project_id, predictions, *args, **kwargs):
        pushed.append({p["model_version"] for p in predictions})
        return fake_push(client, project_id, predictions, *args, **kwargs)

    monkeypatch.setattr(ls_tasks, "push_predictions", noting)
    cascade = Cascade(tiny_model.predictor(), tiny_model.predictor(seed=1), SHARE)
    service = make_service(tmp_path, cascade, project)
    service.loop.rescore("5")
    (first,), (served,) = pushed
    assert "-cascade30-" in served and first == cascade.first_version(PARSED, service.loop.pool("5"))
    assert project.model_version == served and project.deleted == [first]
    assert project.versions == {served: 30}
    measured = service.loop.pool("5")
    assert measured is not None and measured.second is not None
    assert served == cascade.version(PARSED, measured)


def test_cascade_settings_are_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_CASCADE_MODELS", "embedded-0.5b,embedded-1.5b,embedded")
    with pytest.raises(SettingsError, match="LLM_CASCADE_MODELS"):
        Settings.from_env()
    monkeypatch.setenv("LLM_CASCADE_MODELS", "a, b")
    monkeypatch.setenv("LLM_CASCADE_SHARE", "1")
    with pytest.raises(SettingsError, match="LLM_CASCADE_SHARE"):
        Settings.from_env()
    monkeypatch.setenv("LLM_CASCADE_SHARE", "0.1")
    settings = Settings.from_env()
    assert settings.cascade_models == ("a", "b") and settings.cascade_share == 0.1
    with pytest.raises(models.ModelSourceError, match="cannot be cascades"):
        load_predictor(Settings(llm_model="cascade", cascade_models=("embedded", "cascade"), data_dir=tmp_path))
    with pytest.raises(models.ModelSourceError, match="LLM_ENGINE=transformers"):
        load_predictor(Settings(llm_model="cascade", llm_engine="openai", data_dir=tmp_path))


def test_llm_model_cascade_loads_the_two_models(tmp_path):
    dirs = [tiny_model.save(tmp_path / f"tiny{seed}", seed=seed) for seed in (0, 1)]
    loaded = load_predictor(
        Settings(
            llm_model="cascade",
            cascade_models=(str(dirs[0]), str(dirs[1])),
            cascade_share=0.25,
            calibration="none",
            data_dir=tmp_path,
        )
    )
    assert isinstance(loaded, Cascade) and loaded.share == 0.25
    assert (loaded.source.name, loaded.second.source.name) == ("tiny0", "tiny1")
    assert "-cascade25-" in loaded.version(PARSED)


def test_a_benchmark_reads_the_cascade_as_it_serves_a_project_of_its_texts(cascade):
    from backend.bench import cascade as bench_cascade
    from backend.bench.simulation import Inputs

    pool_texts, test_texts = TEXTS[:30], TEXTS[30:]
    plain = tiny_model.predictor()  # as load_inputs reads the first model: its answers and states
    pool_llm, pool_h = plain.answers_and_states(PARSED, pool_texts, cascade.layer)
    test_llm, test_h = plain.answers_and_states(PARSED, test_texts, cascade.layer)
    empty = np.zeros((0, 2))
    inputs = Inputs(
        labels=PARSED.primary.labels,
        pool_x=empty,
        pool_llm=pool_llm[NAME],
        pool_y=np.zeros(30, dtype=int),
        test_x=empty,
        test_llm=test_llm[NAME],
        test_y=np.zeros(10, dtype=int),
        pool_h=pool_h,
        test_h=test_h,
        shifts={"contextual": (0.0, 0.0, 0.0)},
        info={"llm_state_layer": cascade.layer},
    )
    served, info = bench_cascade.served_inputs(
        cascade, inputs, PARSED, pool_texts=pool_texts, test_texts=test_texts, embed=lambda t: None
    )
    measured = cascade.measure_pool(PARSED, pool_texts)
    assert info["unsure_below"] == measured.unsure_below and info["model_version"] == cascade.version(PARSED, measured)
    assert info["student"] and 0 < info["refined_test"] < 1 and served.shifts == {}
    np.testing.assert_allclose(served.test_llm, cascade.answers(PARSED, test_texts, measured)[NAME], atol=1e-4)
    np.testing.assert_allclose(served.pool_llm, cascade.answers(PARSED, pool_texts, measured)[NAME], atol=1e-4)
    assert served.read()[1] is inputs.test_llm  # trained models read the first model's own answers


@pytest.mark.parametrize("calibration", ["auto", "pool", "contextual"])
def test_reading_a_pool_gives_the_first_answers_and_states_of_its_measuring_pass(calibration):
    plain = tiny_model.predictor(calibration=calibration)
    reading = plain.read_pool(PARSED, TEXTS, layer=1)
    assert reading.sample == pool_sample(TEXTS) and reading.calibration == plain.measure_pool(PARSED, TEXTS)
    answers, states = plain.answers_and_states(PARSED, reading.sample, 1, reading.calibration)
    np.testing.assert_allclose(reading.answers[NAME], answers[NAME], atol=1e-5)
    np.testing.assert_allclose(reading.states, states, atol=1e-5)


def test_trained_models_read_the_first_models_own_answers_at_training_and_at_serving(tmp_path, monkeypatch):
    """Not the cascade's mix of two models: stacked on it, the loop fell below the first model's after labels."""
    from backend.loop import training
    from backend.loop.projects import ModelSet, TrainedModel

    project = FakeProject(n_tasks=40, n_labeled=30)
    project.install(monkeypatch)
    read: list[np.ndarray] = []
    real_choose = training.choose

    def noting(question, candidates, data):
        read.append(data.llm)
        return real_choose(question, candidates, data)

    monkeypatch.setattr(training, "choose", noting)
    cascade = Cascade(tiny_model.predictor(), tiny_model.predictor(seed=1), SHARE)
    service = make_service(tmp_path, cascade, project)
    service.loop.rescore("5")
    pool = service.loop.pool("5")
    record = service.loop.train("5")
    assert record["labels"] == 30 and len(read) == 1
    labeled = [text for task, text in project.tasks if task in project.labels]
    own = tiny_model.predictor().answers(PARSED, labeled, pool)[NAME]
    np.testing.assert_allclose(read[0], own, atol=1e-5)
    assert not np.allclose(read[0], cascade.answers(PARSED, labeled, pool)[NAME], atol=1e-3)

    class Echo:  # a trained model that serves the LLM answers it is given
        def predict_proba(self, vectors, llm):
            return llm

    trained = TrainedModel("r1", PARSED.primary.labels, cascade.version(PARSED, pool), Echo(), features="")
    served = service.loop.answers(PARSED, TEXTS[:8], ModelSet("r1", {NAME: trained}), pool)[NAME]
    np.testing.assert_allclose(served, tiny_model.predictor().answers(PARSED, TEXTS[:8], pool)[NAME], atol=1e-5)
