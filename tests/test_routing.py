"""Routing: the confidence threshold whose out-of-fold accuracy has a lower bound at or above the target."""

from __future__ import annotations

import numpy as np
import pytest

from backend.loop import routing


def test_the_bound_is_clopper_pearson_one_sided():
    # 95 of 100 right: the one-sided 95% bound is the 5th percentile of Beta(95, 6).
    from scipy.stats import beta

    assert routing.lower_bound(95, 100) == pytest.approx(beta.ppf(0.05, 95, 6))
    assert routing.lower_bound(0, 0) == 0.0


def test_the_lowest_threshold_whose_bound_reaches_the_target_wins():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.34, 1.0, 4000)
    correct = rng.random(4000) < confidence  # calibrated: P(right) = confidence
    chosen = routing.choose_threshold(confidence, correct, target=0.95)
    above = confidence >= chosen.threshold
    assert chosen.support == above.sum() and chosen.accuracy == pytest.approx(correct[above].mean())
    assert chosen.lower_bound >= 0.95 and chosen.lower_bound < chosen.accuracy
    # One step lower (the next task down) would not pass.
    below = np.sort(confidence[~above])[-1]
    wider = confidence >= below
    assert routing.lower_bound(int(correct[wider].sum()), int(wider.sum())) < 0.95
    # The bound is a promise about fresh tasks: the true accuracy above the threshold on new draws holds it.
    fresh = rng.uniform(0.34, 1.0, 20000)
    assert (rng.random(20000) < fresh)[fresh >= chosen.threshold].mean() >= 0.95


def test_no_threshold_when_the_model_never_reaches_the_target_or_labels_are_few():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.34, 1.0, 500)
    assert routing.choose_threshold(confidence, rng.random(500) < 0.8).threshold is None
    assert routing.choose_threshold(confidence[:20], np.ones(20, bool)).threshold is None  # under MIN_SUPPORT
    with pytest.raises(ValueError):
        routing.choose_threshold(confidence, np.ones(3, bool))
