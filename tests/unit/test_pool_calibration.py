"""Calibration measured on a project's own pool (domain-context by default, batch calibration on request): without
labels, kept per project, part of the version."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CONFIG, tiny_predictor
from test_loop import FakeProject

from backend.labelstudio import schema as schemas
from backend.llm import calibration as cal
from backend.llm.predictor import PoolCalibration, pool_sample
from backend.serving.service import Service
from backend.settings import Settings, SettingsError

SCHEMA = schemas.parse(CONFIG)
CONFIG_ = schemas.parse_config(CONFIG)
TEXTS = [
    f"review number {i}: {'great' if i % 3 == 0 else 'dull' if i % 3 == 1 else 'it opens friday'}" for i in range(40)
]


def test_the_pool_bias_divides_out_the_mean_answer():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) + np.array([3.0, 0.0, -2.0])  # a model that prefers the first label
    c = cal.pool(cal.identity(("A", "B", "C")), logits)
    before = np.exp(cal.normalize(logits)).mean(axis=0)
    after = c.apply(logits).mean(axis=0)
    assert c.method == "pool"
    assert np.allclose(c.bias, -np.log(before))
    assert np.abs(after - 1 / 3).max() < np.abs(before - 1 / 3).max() / 3
    assert np.bincount(c.apply(logits).argmax(1), minlength=3).min() > 20  # every label is chosen again
    with pytest.raises(cal.CalibrationError):
        cal.pool(cal.identity(("A", "B")), np.zeros((0, 2)))
    # On top of a fitted calibration: its weights kept, its bias moved by the pool's mean answer under it.
    fitted = cal.Calibration(
        "fitted", ("A", "B", "C"), ("A", "B", "C"), ((2.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)), (0.5, 0.0, -0.5)
    )
    on_top = cal.pool(fitted, logits)
    assert on_top.method == "fitted+pool" and on_top.weights == fitted.weights
    assert np.allclose(np.asarray(on_top.bias) - fitted.bias, -np.log(fitted.apply(logits).mean(axis=0)))


def test_domain_texts_are_the_pools_words_at_its_mean_length():
    texts = ["the plot is thin", "a superb cast", "opens on friday in cinemas nationwide"]
    made = cal.domain_texts(texts, 5)
    words = {w for t in texts for w in t.split()}
    assert len(made) == 5 and all(len(t.split()) == 4 and set(t.split()) <= words for t in made)
    assert made == cal.domain_texts(texts, 5)  # seeded: the same version after a restart
    c = cal.domain(("A", "B"), np.log(np.array([[0.9, 0.1], [0.7, 0.3]])))
    assert c.method == "domain" and c.bias[0] < c.bias[1]


def test_the_sample_is_the_same_whatever_the_order():
    assert pool_sample(TEXTS, 10) == pool_sample(list(reversed(TEXTS)), 10)
    assert len(pool_sample(TEXTS + TEXTS + ["", "  "], 100)) == len(TEXTS)


def test_a_pool_calibration_serves_under_its_own_version_and_round_trips():
    predictor = tiny_predictor(calibration="auto")
    plain = predictor.version(CONFIG_)
    assert predictor.wants_pool(CONFIG_, None)
    pool = predictor.measure_pool(CONFIG_, TEXTS)
    assert pool.size == len(TEXTS) and pool.get("sentiment").method == "domain"
    version = predictor.version(CONFIG_, pool)
    assert version != plain and "-domain-" in version and "-contextual-" in plain
    assert not predictor.wants_pool(CONFIG_, pool)
    again = PoolCalibration.from_dict(pool.as_dict())
    assert again == pool and predictor.version(CONFIG_, again) == version
    probs = predictor.answers(CONFIG_, TEXTS, pool)["sentiment"]
    assert np.allclose(
        probs, pool.get("sentiment").apply(predictor.scorer.label_logprobs(predictor.setup(SCHEMA).prompt, TEXTS))
    )
    with pytest.raises(cal.CalibrationError):
        PoolCalibration.from_dict({"size": 3})


def test_a_pool_measured_under_another_prompt_is_not_used():
    predictor = tiny_predictor(calibration="auto")
    pool = predictor.measure_pool(CONFIG_, TEXTS)
    stale = PoolCalibration("another prompt", pool.questions, pool.size)
    assert predictor.wants_pool(CONFIG_, stale)
    assert predictor.version(CONFIG_, stale) == predictor.version(CONFIG_)


@pytest.mark.parametrize("method", ["none", "contextual"])
def test_other_settings_never_ask_for_a_pool(method):
    assert not tiny_predictor(calibration=method).wants_pool(CONFIG_, None)


def test_calibration_pool_is_a_setting(monkeypatch):
    monkeypatch.setenv("CALIBRATION", "pool")
    assert Settings.from_env().calibration == "pool"
    monkeypatch.setenv("CALIBRATION", "batch")
    with pytest.raises(SettingsError, match="pool"):
        Settings.from_env()


def test_several_questions_get_one_pool_calibration_each():
    predictor = tiny_predictor(calibration="auto")
    config = schemas.parse_config("""<View><Text name="t" value="$text"/>
      <Choices name="a" toName="t"><Choice value="Yes"/><Choice value="No"/></Choices>
      <Choices name="b" toName="t" choice="multiple"><Choice value="Plot"/><Choice value="Cast"/></Choices></View>""")
    pool = predictor.measure_pool(config, TEXTS)
    assert [q for q, _ in pool.questions] == ["a", "b"]
    assert pool.get("b").thresholds == (1 / 3, 1 / 3) and pool.get("a").method == "domain"
    assert "-domain-" in predictor.version(config, pool)
    batch = tiny_predictor(calibration="pool").measure_pool(config, TEXTS)
    assert batch.get("a").method == "pool" and batch.get("a").bias != pool.get("a").bias


def test_the_first_rescore_measures_the_pool_and_a_restart_keeps_it(tmp_path, monkeypatch):
    project = FakeProject(n_tasks=60, n_labeled=0)
    project.install(monkeypatch)
    predictor = tiny_predictor(calibration="auto")

    def service() -> Service:
        settings = Settings(
            data_dir=tmp_path,
            label_studio_url="http://ls.invalid",
            label_studio_api_key="k",
            ls_retries=0,
            calibration="auto",
        )
        s = Service(settings, loader=lambda _: predictor)
        s.loop.client_factory = lambda: project.client
        s.start()
        s.predictor(wait=60)
        return s

    loop = service().loop
    before = loop.serving("5", CONFIG_)[1]
    loop.connected("5", CONFIG_)  # what /setup does: a re-score is asked for, which measures the pool first
    loop.connected("5", CONFIG_)  # Label Studio calls /setup several times at connect: still one re-score
    loop.rescoring.wait("5", timeout=120)
    after = loop.serving("5", CONFIG_)[1]
    assert "-domain-" in after and after != before
    assert list(project.versions) == [after] and project.deleted == []  # one set published, none after it
    assert project.model_version == after  # the pool's predictions carry the new version
    assert loop.pool("5").size == 60
    restarted = service().loop
    assert restarted.serving("5", CONFIG_)[1] == after
    assert not restarted.ensure_pool("5", CONFIG_, [t for _, t in project.tasks])  # measured once
