"""Calibration measured on a project's own pool (domain-context by default, batch calibration on request): without
labels, kept per project, part of the version."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import CONFIG, tiny_predictor
from support.loop import FakeProject

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


def _fitted_file(predictor, directory, centroid: tuple[float, ...]) -> cal.Calibration:
    """A fitted calibration matching the tiny predictor's prompt (each label read from its own string, a lean to the
    first), saved in `directory` with the centroid of the texts it was "fitted on"."""
    prompt = tiny_predictor(calibration="none").setup(SCHEMA).prompt  # not `predictor`'s: it would cache its setup
    features = cal.verbalizers(prompt.labels)
    weights = tuple(tuple(float(f == label) for f in features) for label in prompt.labels)
    fitted = cal.Calibration(
        "fitted",
        prompt.labels,
        features,
        weights,
        (0.5, 0.0, -0.5),
        prompt_sha256=prompt.sha256,
        model_identity=predictor.source.identity,
        fitted_on=10,
        centroid=centroid,
    )
    directory.mkdir(parents=True, exist_ok=True)
    fitted.save(directory / "sentiment.tiny.json")
    return fitted


def _unit(i: int) -> tuple[float, ...]:
    return tuple(float(j == i) for j in range(384))


def _placed_at(centroid: tuple[float, ...]):
    """An embedder that puts every text at `centroid`."""
    return lambda texts: np.tile(centroid, (len(texts), 1))


@pytest.mark.parametrize(
    "near, file_centroid, serves",
    [
        (_unit(0), _unit(0), "fitted"),  # the pool lies where the file's texts lie
        (_unit(1), _unit(0), "domain"),  # elsewhere: the pool's own calibration
        (_unit(1), (), "fitted"),  # a file that keeps no centroid cannot tell: it serves, as before
    ],
)
def test_a_fitted_file_serves_only_a_pool_that_resembles_its_texts(tmp_path, near, file_centroid, serves):
    predictor = tiny_predictor(calibration="auto")
    predictor.calibration_dir = tmp_path
    _fitted_file(predictor, tmp_path, file_centroid)
    assert predictor.methods(CONFIG_) == {"fitted"}  # before the pool is read nothing says otherwise
    assert predictor.wants_pool(CONFIG_, None)  # the pool decides, so it is measured even with a matching file
    assert predictor.fitted_centroid(CONFIG_) == file_centroid
    pool = predictor.measure_pool(CONFIG_, TEXTS, _placed_at(near))
    assert predictor.methods(CONFIG_, pool) == {serves}
    assert f"-{serves}-" in predictor.version(CONFIG_, pool)
    assert pool.resemblance == (None if not file_centroid else float(np.dot(near, file_centroid)))
    reason = pool.reason(serves == "fitted")
    if not file_centroid:
        assert "keeps no centroid" in reason
    elif serves == "fitted":
        assert "cosine 1.000 >= 0.72" in reason and "the fitted file serves" in reason
    else:
        assert "cosine 0.000 < 0.72" in reason and "instead of the fitted file" in reason
    assert PoolCalibration.from_dict(pool.as_dict()) == pool
    assert not predictor.wants_pool(CONFIG_, pool)
    # CALIBRATION=fitted asks for the file whatever the pool.
    forced = tiny_predictor(calibration="fitted")
    forced.calibration_dir = tmp_path
    assert forced.methods(CONFIG_, pool) == {"fitted"}


def test_every_label_free_calibration_of_the_pool_is_a_shift_of_the_served_answers(tmp_path):
    predictor = tiny_predictor(calibration="auto")
    pool = predictor.measure_pool(CONFIG_, TEXTS)
    assert [m for m, _ in pool.alternatives] == ["none", "domain", "pool"]
    assert dict(pool.alternatives)["domain"] == pool.get("sentiment")  # the one auto serves
    shifts = predictor.shifts(CONFIG_, pool)
    assert list(shifts) == ["domain", "none", "pool"]  # the served one first: a tie keeps it
    raw = predictor.scorer.label_logprobs(predictor.setup(SCHEMA).prompt, TEXTS)
    served = predictor.answers(CONFIG_, TEXTS, pool)["sentiment"]
    for method, c in pool.alternatives:
        from backend.learning.classifier import Recalibrated

        np.testing.assert_allclose(Recalibrated(shifts[method], 3).predict_proba(None, served), c.apply(raw), atol=1e-9)
    assert predictor.shifts(CONFIG_, None) == {}
    assert predictor.shifts(CONFIG_, PoolCalibration("another prompt", pool.questions, pool.size)) == {}
    # A fitted file the pool resembles serves; batch calibration on top of it is its one shift.
    predictor = tiny_predictor(calibration="auto")
    predictor.calibration_dir = tmp_path
    fitted = _fitted_file(predictor, tmp_path, _unit(0))
    near = predictor.measure_pool(CONFIG_, TEXTS, _placed_at(_unit(0)))
    assert [m for m, _ in near.alternatives] == ["none", "domain", "pool", "fitted+pool"]
    shifts = predictor.shifts(CONFIG_, near)
    assert list(shifts) == ["fitted", "fitted+pool"]
    features = predictor.scorer.label_logprobs(predictor.setup(SCHEMA).prompt, TEXTS, fitted.features)
    on_top = dict(near.alternatives)["fitted+pool"]
    served = predictor.answers(CONFIG_, TEXTS, near)["sentiment"]
    np.testing.assert_allclose(served, fitted.apply(features), atol=1e-9)
    np.testing.assert_allclose(
        Recalibrated(shifts["fitted+pool"], 3).predict_proba(None, served), on_top.apply(features), atol=1e-9
    )


def test_a_calibration_shift_is_only_offered_between_calibrations_that_share_their_weights():
    labels = ("A", "B")
    served = cal.domain(labels, np.log(np.array([[0.8, 0.2]])))
    other = cal.Calibration("fitted", labels, labels, ((2.0, 0.0), (0.0, 1.0)), (0.0, 0.0))
    assert set(cal.shifts(served, {"none": cal.identity(labels), "fitted": other})) == {"none"}
    assert cal.shifts(served, {"none": cal.identity(labels)})["none"] == tuple(-b for b in served.bias)
    assert cal.resemblance(other.centroid, _unit(0)) is None  # no centroid kept
    assert cal.resemblance(_unit(0), None) is None and cal.resemblance(_unit(0), (1.0, 0.0)) is None
    assert cal.resemblance(_unit(2), _unit(2)) == 1.0
    assert cal.centroid(np.array([[3.0, 4.0], [3.0, 4.0]])) == pytest.approx((0.6, 0.8))


def test_before_any_trained_model_the_labels_switch_the_llm_to_the_likeliest_calibration(tmp_path, monkeypatch):
    from backend.learning import classifier, recipes
    from backend.loop.features import TextFeatures

    project = FakeProject(n_tasks=60, n_labeled=30)
    project.install(monkeypatch)
    predictor = tiny_predictor(calibration="auto")
    settings = Settings(data_dir=tmp_path, label_studio_url="http://ls.invalid", label_studio_api_key="k", ls_retries=0)
    service = Service(settings, loader=lambda _: predictor)
    service.loop.client_factory = lambda: project.client
    service.start()
    service.predictor(wait=60)
    loop = service.loop
    loop.connected("5", CONFIG_)
    loop.rescoring.wait("5", timeout=120)
    pool = loop.pool("5")
    assert [m for m, _ in pool.alternatives] == ["none", "domain", "pool"]
    # The labels find batch calibration likeliest (made so here: the tiny model's answers are noise), and nothing
    # trained competes: the LLM under it is promoted though it beats the served LLM on nothing.
    monkeypatch.setattr(recipes, "log_likelihoods", lambda shifts, llm, y: {"domain": -1.1, "none": -1.3, "pool": -1.0})
    monkeypatch.setattr(TextFeatures, "candidates", staticmethod(lambda kind: ()))
    record = loop.train("5")
    assert record["calibration_loglik"] == {"domain": -1.1, "none": -1.3, "pool": -1.0}
    assert list(record["recipe_scores"]) == ["llm:pool"] and record["recipe"] == "llm:pool"
    assert record["result"] == "promoted", record
    served = loop.projects.model("5").models["sentiment"]
    assert isinstance(served.model, classifier.Recalibrated) and served.features == ""
    texts = [t for _, t in project.tasks[:8]]
    raw = predictor.scorer.label_logprobs(predictor.setup(SCHEMA).prompt, texts)
    answers = loop.answers(CONFIG_, texts, loop.projects.model("5"), pool)["sentiment"]
    np.testing.assert_allclose(answers, dict(pool.alternatives)["pool"].apply(raw), atol=1e-9)
    # Now a model serves: the gate compares with it, and the same likeliest calibration does not beat itself.
    again = loop.train("5")
    assert again["result"] == "kept" and again["incumbent"] == record["version"], again
    calibration = loop.calibration_record("5", CONFIG_)
    assert (
        calibration["methods"] == ["domain"] and calibration["pool_size"] == 60 and calibration["resemblance"] is None
    )


def test_a_malformed_centroid_or_alternative_is_a_clear_error(tmp_path):
    fitted = cal.identity(("A", "B")).as_dict()
    (tmp_path / "bad.json").write_text(json.dumps({**fitted, "centroid": ["not a number"]}))
    with pytest.raises(cal.CalibrationError, match="cannot read calibration"):
        cal.Calibration.load(tmp_path / "bad.json")
    pool = PoolCalibration("p", (("q", cal.identity(("A", "B"))),), 3).as_dict()
    with pytest.raises(cal.CalibrationError, match="unreadable pool calibration"):
        PoolCalibration.from_dict({**pool, "alternatives": {"none": {"method": "none"}}})
    with pytest.raises(cal.CalibrationError, match="unreadable pool calibration"):
        PoolCalibration.from_dict({**pool, "resemblance": "near"})
