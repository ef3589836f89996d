import numpy as np
import pytest
from sklearn.metrics import f1_score

from backend.llm import calibration as cal

LABELS = ("Positive", "Negative", "Neutral")


def skewed_logprobs(n: int = 600, seed: int = 0):
    """Separable classes whose Neutral scores sit 2.5 nats too low: the failure calibration must fix."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.5, 0.4, 0.1])
    logits = rng.normal(0, 1, (n, 3)) + 3.0 * np.eye(3)[y]
    logits[:, 2] -= 2.5
    return logits, y


def test_fitted_bias_restores_the_rare_class():
    x, y = skewed_logprobs()
    before = f1_score(y, x.argmax(1), average="macro")
    c = cal.fit(LABELS, LABELS, x, y)
    xt, yt = skewed_logprobs(seed=1)
    after = f1_score(yt, c.apply(xt).argmax(1), average="macro")
    assert c.bias[2] > c.bias[0] and c.bias[2] > c.bias[1]
    assert after > before + 0.05
    assert (c.apply(xt).argmax(1) == 2).sum() > (xt.argmax(1) == 2).sum()
    np.testing.assert_allclose(c.apply(xt).sum(1), 1.0)


def test_contextual_cancels_the_content_free_prior():
    prior = np.log(np.array([[0.7, 0.25, 0.05]]))
    c = cal.contextual(LABELS, prior)
    np.testing.assert_allclose(c.apply(prior), [[1 / 3, 1 / 3, 1 / 3]], atol=1e-9)


def test_round_trip_and_hash(tmp_path):
    x, y = skewed_logprobs()
    c = cal.fit(LABELS, LABELS, x, y)
    c.save(tmp_path / "c.json")
    back = cal.Calibration.load(tmp_path / "c.json")
    assert back == c and back.sha256 == c.sha256
    assert cal.identity(LABELS).sha256 != c.sha256
    # contextual versions depend on the method, not on float noise in the biases
    assert (
        cal.contextual(LABELS, np.log([[0.5, 0.3, 0.2]])).sha256
        == cal.contextual(LABELS, np.log([[0.5, 0.29, 0.21]])).sha256
    )


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(cal.CalibrationError, match="one row"):
        cal.fit(LABELS, LABELS, np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(cal.CalibrationError, match="no example of Neutral"):
        cal.fit(LABELS, LABELS, np.zeros((2, 3)), np.array([0, 1]))
    (tmp_path / "shape.json").write_text(
        '{"method": "fitted", "labels": ["a", "b"], "features": ["a"], "weights": [[1, 2]], "bias": [0, 0]}'
    )
    with pytest.raises(cal.CalibrationError, match="do not match"):
        cal.Calibration.load(tmp_path / "shape.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(cal.CalibrationError, match="cannot read"):
        cal.Calibration.load(tmp_path / "bad.json")


def test_verbalizer_features_and_two_labels():
    feats = cal.verbalizers(("Good", "Bad"))
    assert feats == ("Good", "good", "Goo", " Good", "Bad", "bad", "Bad", " Bad")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(0, 1, (200, len(feats))) + 2.0 * np.outer(y, [0, 0, 0, 0, 1, 1, 1, 1])
    c = cal.fit(("Good", "Bad"), feats, x, y)
    probs = c.apply(x)
    assert probs.shape == (200, 2) and (probs.argmax(1) == y).mean() > 0.9


def test_anchors_pull_the_fit_towards_the_guidelines_examples():
    x, y = skewed_logprobs()
    # Points the sample never shows: Neutral clearly first in the raw scores, labeled Neutral by the guidelines.
    anchor_x = np.array([[-3.0, -3.0, 0.0], [-2.5, -3.5, -0.2]]) * 4
    plain = cal.fit(LABELS, LABELS, x, y)
    anchored = cal.fit(LABELS, LABELS, x, y, anchors=(anchor_x, np.array([2, 2])), anchor_weight=50)
    assert (anchored.apply(anchor_x).argmax(1) == 2).all()
    assert anchored.fitted_on == plain.fitted_on == len(y)


# ---------------------------------------------------------------- CALIBRATION settings: one registered object each


def test_every_calibration_setting_is_declared_whole_and_documented():
    from backend.paths import ROOT

    documented = (ROOT / "docs" / "settings.md").read_text()
    for name, setting in cal.SETTINGS.items():
        assert setting.name == name and setting.doc
        assert setting.fitted in ("never", "prefer", "require") and setting.pool in ("", "domain", "pool")
        assert setting.fallback in ("contextual", "none")
        assert f"`{name}`" in documented, name
    assert cal.setting("guidelines/calibration/some.json") is None  # a file's path is not a setting


def test_a_setting_added_in_one_edit_is_accepted_and_serves_as_declared(monkeypatch, tmp_path):
    from backend.dev import tiny_model
    from backend.labelstudio import schema as schemas
    from backend.settings import Settings, SettingsError

    added = cal.Setting(
        "pool-or-none", "batch calibration of the pool, else the raw probabilities", pool="pool", fallback="none"
    )
    monkeypatch.setitem(cal.SETTINGS, added.name, added)
    monkeypatch.setenv("CALIBRATION", added.name)
    assert Settings.from_env().calibration == added.name
    predictor = tiny_model.predictor(calibration=added.name)
    config = schemas.parse_config(
        '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="Yes"/><Choice value="No"/>'
        "</Choices></View>"
    )
    assert predictor.methods(config) == {"none"}  # before the pool is read: the declared fallback
    assert predictor.wants_pool(config, None)
    measured = predictor.measure_pool(config, ["a first text", "a second one", "and a third"])
    assert predictor.methods(config, measured) == {"pool"}
    monkeypatch.setenv("CALIBRATION", "nonsense")
    with pytest.raises(SettingsError, match="pool-or-none"):  # the error lists every setting
        Settings.from_env()
