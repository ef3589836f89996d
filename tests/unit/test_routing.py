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


# ---------------------------------------------------------------- fixed-sequence testing on an audit


def test_fixed_sequence_stops_at_the_first_threshold_that_fails():
    # 200 answers, most confident first: right except two errors at ranks 70 and 71 (1-based).
    confidence = np.linspace(1.0, 0.5, 200)
    correct = np.ones(200, bool)
    correct[[69, 70]] = False
    chosen = routing.fixed_sequence(confidence, correct, target=0.95)
    # 59 right in a row is the first threshold it tests; the two errors fail the bound at 70 already, so the
    # sequence stops there, although lower thresholds (160 right of 162...) would pass again.
    assert routing.smallest_passing_support(0.95, 0.95) == 59
    assert chosen.support == 69 and chosen.accuracy == 1.0 and chosen.lower_bound >= 0.95
    assert routing.lower_bound(198, 200) >= 0.95  # the whole set would pass: choose_threshold takes it
    assert routing.choose_threshold(confidence, correct).support == 200
    assert routing.fixed_sequence(confidence[:58], correct[:58]).threshold is None  # fewer than 59
    assert routing.fixed_sequence(confidence, correct, min_support=100).threshold is None  # 98/100 fails at once


def test_fixed_sequence_keeps_its_promise_where_the_lowest_pass_does_not():
    """Many draws of a model whose accuracy is 0.95 at every confidence: the promise "at or above 0.95" holds in
    truth only at the border. The rule may then choose a threshold at most 5% of the time (level 0.95)."""
    rng = np.random.default_rng(3)
    wrong_fixed = wrong_lowest = 0
    draws = 400
    for _ in range(draws):
        confidence = rng.uniform(0.5, 1.0, 300)
        correct = rng.random(300) < 0.945  # just below the target everywhere: every threshold is a true null
        wrong_fixed += routing.fixed_sequence(confidence, correct).threshold is not None
        wrong_lowest += routing.choose_threshold(confidence, correct).threshold is not None
    assert wrong_fixed / draws <= 0.05
    assert wrong_lowest > wrong_fixed  # the scan for the lowest pass is a selection the bound does not cover


def test_the_audit_is_tested_from_the_support_the_plan_expected_to_pass():
    # 300 audit answers, 0.985 right, one slip among the 59 most confident: a sequence from the top ends there.
    confidence = np.linspace(1.0, 0.5, 300)
    correct = np.ones(300, bool)
    correct[[10, 150, 200, 250]] = False
    assert routing.fixed_sequence(confidence, correct).threshold is None
    start = routing.fewest_passing(0.985, 300)
    assert start > 59 and routing.lower_bound(int(np.floor(0.985 * start)), start) >= 0.95
    assert routing.lower_bound(int(np.floor(0.985 * (start - 1))), start - 1) < 0.95
    chosen = routing.audit_threshold(confidence, correct, expected=0.985)
    assert chosen == routing.fixed_sequence(confidence, correct, min_support=start)
    assert chosen.support == 300 and chosen.lower_bound >= 0.95  # 296 of 300: the whole audit passes
    assert routing.fewest_passing(0.95, 300) is None and routing.fewest_passing(None, 300) is None
    # Without an expectation (or one that cannot pass) the sequence starts at the top, as fixed_sequence does.
    assert routing.audit_threshold(confidence, correct, None) == routing.fixed_sequence(confidence, correct)


def test_the_audit_is_sized_by_the_expected_accuracy_and_refused_where_it_cannot_pay():
    small, large = routing.audit_size(0.99, 3000), routing.audit_size(0.97, 3000)
    assert 59 <= small < large < 1500
    n = int(np.ceil(small / routing.AUDIT_MARGIN))
    assert routing.lower_bound(int(np.floor(0.99 * n)), n) >= 0.95  # that many, as right as expected, would pass
    assert routing.audit_size(0.95, 3000) == 0 and routing.audit_size(None, 3000) == 0
    assert routing.audit_size(0.97, 600) == 0  # it would take half the region or more
    assert routing.audit_size(0.99, 0) == 0


def test_the_audit_plan_leaves_the_model_the_most_tasks_after_paying_for_the_audit():
    rng = np.random.default_rng(4)
    oof_conf = rng.uniform(0.34, 1.0, 600)
    oof_right = rng.random(600) < oof_conf**0.25  # 0.97 right at 0.9 confidence, 0.99 at 0.96
    open_conf = rng.uniform(0.34, 1.0, 5000)
    plan = routing.plan_audit(oof_conf, oof_right, open_conf)
    assert plan.region is not None and 0 < plan.size < plan.available / 2
    assert plan.available == (open_conf >= plan.region).sum()
    above = oof_conf >= plan.region
    assert plan.expected == pytest.approx((oof_right[above].sum() + 1) / (above.sum() + 2), abs=1e-4)
    gain = plan.available - plan.size
    for floor in np.quantile(oof_conf, [0.5, 0.7, 0.8, 0.9, 0.95]):  # no other floor leaves more
        ok = oof_conf >= floor
        size = routing.audit_size((oof_right[ok].sum() + 1) / (ok.sum() + 2), int((open_conf >= floor).sum()))
        assert not size or (open_conf >= floor).sum() - size <= gain
    # A model that is never right enough plans no audit.
    assert routing.plan_audit(oof_conf, rng.random(600) < 0.7, open_conf) == routing.AuditPlan(None, 0, None, 0)


def _population(n: int, accuracy: float, seed: int) -> np.ndarray:
    right = np.zeros(n, dtype=bool)
    right[: round(accuracy * n)] = True
    return np.random.default_rng(seed).permutation(right)


def test_the_test_by_betting_rejects_a_false_null_rarely_whenever_it_is_read():
    """Population accuracy 0.94 < 0.95: over 300 audits read after every draw to the end, at most 5% ever pass
    (plus the sampling error of 300 runs)."""
    ever = [routing.betting_rejected(_population(800, 0.94, s), 800, prior=0.99).any() for s in range(300)]
    assert np.mean(ever) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def test_the_test_by_betting_passes_an_accurate_region_soon():
    perfect = routing.betting_rejected(np.ones(1000, dtype=bool), 100_000)
    first = int(np.argmax(perfect))
    assert perfect.any() and 59 <= first < 100  # no test passes on fewer right answers than Clopper-Pearson's 59
    assert np.all(perfect[first:])
    firsts = [np.argmax(routing.betting_rejected(_population(2000, 0.99, s), 2000)) for s in range(20)]
    assert all(f > 0 for f in firsts) and np.median(firsts) < 300
    # A population whose right answers alone reach the target passes once they are drawn, whatever the rest.
    small = routing.betting_rejected(np.ones(20, dtype=bool), 20)
    assert small[19] and not small[18]


def test_a_sequential_audit_stops_when_the_whole_region_passes_and_otherwise_keeps_what_passed():
    rng = np.random.default_rng(0)
    confidence = np.sort(rng.uniform(0.6, 1.0, 3000))
    order = rng.permutation(3000)
    right = np.ones(3000, dtype=bool)
    chosen, read = routing.sequential_audit(confidence, confidence[order], right[order], 0.98)
    assert chosen.threshold == confidence.min() and read % routing.AUDIT_BATCH == 0 and read < 150
    # The least confident 15% are right only 60% of the time (the region 94%): the floor never passes, so the audit
    # reads every draw, and a threshold above it passed.
    right[:450] = _population(450, 0.6, 1)
    chosen, read = routing.sequential_audit(confidence, confidence[order][:600], right[order][:600], 0.98)
    assert read == 600
    assert chosen.threshold in routing.audit_thresholds(confidence)[:-1]
    assert chosen.accuracy >= 0.95 and chosen.lower_bound is None
    # Nothing drawn: nothing passes.
    assert routing.sequential_audit(confidence, np.zeros(0), np.zeros(0, dtype=bool), 0.98) == (
        routing.Threshold(None, 0.95, 0.95, 0, None, None),
        0,
    )


def test_the_prediction_powered_bound_corrects_the_confidences_by_the_sample():
    region = np.full(1000, 0.9)
    # The sample shows the model right 80% of the time where it says 90%: the bound follows the sample, below 0.8.
    sample_correct = np.array([True] * 80 + [False] * 20)
    bound = routing.ppi_lower_bound(region, np.full(100, 0.9), sample_correct)
    gap = sample_correct - 0.9
    expected = 0.8 - 1.6448536 * gap.std(ddof=1) * np.sqrt((1 - 100 / 1000) / 100)
    assert bound == pytest.approx(expected, abs=1e-6) and bound < 0.8
    # Over random audits of a region whose confidences are calibrated, the bound lies below the truth about 95% of
    # the time.
    rng = np.random.default_rng(0)
    below = []
    for _ in range(300):
        confidence = rng.uniform(0.85, 1.0, 2000)
        right = rng.random(2000) < confidence
        sample = rng.choice(2000, 200, replace=False)
        below.append(routing.ppi_lower_bound(confidence, confidence[sample], right[sample]) <= right.mean())
    assert 0.9 <= np.mean(below) <= 0.99


def test_the_prediction_powered_audit_tests_thresholds_in_a_fixed_sequence():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.9, 1.0, 3000)
    right = rng.random(3000) < np.where(confidence > 0.95, 1.0, 0.9)
    sample = rng.choice(3000, 300, replace=False)
    chosen = routing.ppi_audit_threshold(confidence, confidence[sample], right[sample], 0.97)
    assert chosen.threshold is not None and chosen.lower_bound >= 0.95 and chosen.support >= routing.MIN_SUPPORT
    above = confidence >= chosen.threshold
    assert right[above].mean() >= 0.95
    # Nothing to test on: no threshold.
    assert routing.ppi_audit_threshold(confidence, np.zeros(0), np.zeros(0, dtype=bool), 0.97).threshold is None
