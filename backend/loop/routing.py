"""Routing between people and the model: which tasks the model may label, at an accuracy known with a bound.

The model labels a task when its top probability reaches a threshold. Two ways to choose it live here:

- The promise (labelloop finish): an audit. The labels so far only plan it (plan_audit: a region of open tasks
  above a confidence floor, and a sample size); people label a sample drawn at random from the region; the
  thresholds are tested on that sample in a fixed sequence (audit_threshold, fixed_sequence: Learn then Test), each
  at the full level with an exact Clopper-Pearson bound. Valid whatever order people labeled in: the argument is
  in fixed_sequence's docstring. Two other audits, measured beside it by labelloop simulate-finish: a sequential
  one (sequential_audit: the region labeled in random batches until a test by betting passes, valid at any stop),
  and a prediction-powered bound on the same sample (ppi_audit_threshold: asymptotic, not exact). The command keeps
  the exact test: the others saved 0.5-2.5 points of a pool where they saved anything (docs/learning.md).
- The estimate (a training run's record, /versions' coverage: routing_record, pool_coverage): the lowest threshold
  whose out-of-fold accuracy on the labels so far has its bound at the target (choose_threshold). Cheap and
  label-free, but the scan for the lowest pass is a selection the bound does not cover, and the labels are the ones
  the ranking chose: it says how much the model could take, not what finish promises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence, TypedDict, cast

import numpy as np
from scipy.stats import beta, norm

MIN_SUPPORT = 30  # human labels at or above a threshold before its bound is read at all


class ThresholdRecord(TypedDict):
    """A Threshold as records and files keep it."""

    threshold: float | None
    target: float
    confidence: float
    support: int
    accuracy: float | None
    lower_bound: float | None


@dataclass(frozen=True)
class Threshold:
    threshold: float | None  # None: no threshold reaches the target; people label everything
    target: float
    confidence: float
    support: int  # human-labeled tasks at or above the threshold
    accuracy: float | None  # the model's out-of-fold accuracy on them
    lower_bound: float | None  # its one-sided lower confidence bound

    def as_dict(self) -> ThresholdRecord:
        return cast(ThresholdRecord, asdict(self))  # the same fields


class RoutingRecord(TypedDict):
    """What a training run notes for routing (routing_record)."""

    model: ThresholdRecord  # the candidate model's, from its out-of-fold probabilities
    llm: ThresholdRecord  # the LLM alone's, which never trained on the labels


class Coverage(TypedDict):
    """How much of the pool the serving model may label now (pool_coverage; /versions "coverage")."""

    threshold: float | None
    target: float | None
    accuracy: float | None
    lower_bound: float | None
    support: int
    unlabeled: int  # open tasks without a human label
    model_can_label: int  # of those, at or above the threshold
    share: float
    measured: bool  # False: no training run has measured the serving model yet


def lower_bound(correct, total, confidence: float = 0.95):
    """One-sided lower confidence bound of a binomial proportion (Clopper-Pearson): a float, or an array for arrays."""
    correct, total = np.asarray(correct, dtype=float), np.asarray(total, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, correct, total - correct + 1)
    bound = np.where(correct > 0, bound, 0.0)  # no success: the bound is 0 (ppf is undefined there)
    return float(bound) if bound.ndim == 0 else bound


def _candidates(confidence: np.ndarray, correct: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, supports, hits): each distinct confidence, from the most confident down, with at least `start`
    answers at or above it (a threshold takes every task with that confidence or more)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be 1-D arrays of the same length")
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    hits = np.cumsum(correct[order])
    k = np.arange(1, len(order) + 1)
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True) if len(order) else np.zeros(0, dtype=bool)
    keep = last_of_tie & (k >= max(start, 1))
    return ranked[keep], k[keep], hits[keep]


def _check(target: float, level: float) -> None:
    if not 0 < target < 1 or not 0 < level < 1:
        raise ValueError("target and level must lie strictly between 0 and 1")


def _scan(
    confidence: np.ndarray, correct: np.ndarray, target: float, level: float, start: int, stop_at_failure: bool
) -> Threshold:
    _check(target, level)
    thresholds, supports, hits = _candidates(confidence, correct, start)
    bounds = lower_bound(hits, supports, level)
    passing = bounds >= target
    if stop_at_failure and not passing.all():
        passing[np.argmin(passing) :] = False  # the sequence ends at its first failure
    if not passing.any():
        return Threshold(None, target, level, 0, None, None)
    i = np.flatnonzero(passing)[-1]  # the lowest threshold that passed
    k, h = int(supports[i]), int(hits[i])
    return Threshold(float(thresholds[i]), target, level, k, h / k, float(bounds[i]))


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float = 0.95, level: float = 0.95
) -> Threshold:
    """The lowest confidence threshold whose out-of-fold accuracy has its lower bound at or above `target`.

    `confidence`: the model's top probability per human-labeled task (out of fold); `correct`: whether its argmax
    matched the human label."""
    return _scan(confidence, correct, target, level, MIN_SUPPORT, stop_at_failure=False)


@lru_cache(maxsize=32)  # plan_audit asks once per region floor it weighs
def smallest_passing_support(target: float, level: float) -> int:
    """The fewest held-out answers, all correct, whose lower bound reaches `target`: 59 at 0.95 / 0.95."""
    _check(target, level)
    n = 1
    while lower_bound(n, n, level) < target:
        n += 1
    return n


def fixed_sequence(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float = 0.95,
    level: float = 0.95,
    min_support: int | None = None,
) -> Threshold:
    """Learn then Test by fixed-sequence testing (Angelopoulos et al. 2021): the thresholds, from the most confident
    down, starting where `min_support` answers lie at or above one, are tested in that order, each at the full
    level (Clopper-Pearson bound at or above `target`); the first that fails ends the sequence and the last that
    passed is chosen.

    Why it is valid where choose_threshold is not: with `confidence` and `correct` from a sample drawn at random
    from the tasks to route (an audit), each test alone errs with probability at most 1 - level; a wrong choice
    needs the first true null in the fixed order to be rejected, which is one test's error, so the chosen
    threshold's accuracy is below the target with probability at most 1 - level, however many were scanned.
    (The audit is drawn without replacement from a finite region: the binomial bound is then conservative.)"""
    start = max(min_support or 0, smallest_passing_support(target, level))
    return _scan(confidence, correct, target, level, start, stop_at_failure=True)


AUDIT_MARGIN = 1.5  # audit this many times the fewest tasks that would pass at the expected accuracy


def fewest_passing(expected: float | None, most: int, target: float = 0.95, level: float = 0.95) -> int | None:
    """The fewest answers, at most `most`, whose bound reaches `target` were they as accurate as `expected`;
    None if none do."""
    if expected is None or expected <= target or most <= 0:
        return None
    n = np.arange(smallest_passing_support(target, level), most + 1)
    passing = n[lower_bound(np.floor(expected * n), n, level) >= target]
    return int(passing[0]) if passing.size else None


def audit_size(
    expected: float | None, available: int, target: float = 0.95, level: float = 0.95, margin: float = AUDIT_MARGIN
) -> int:
    """How many tasks, drawn at random from the `available` ones the model proposes to label, people label as an
    audit: `margin` times the fewest whose bound would reach the target were they as accurate as `expected` (the
    out-of-fold estimate, which chose no threshold here: it only sizes the sample). 0 when the audit would take
    half the region or more: it would cost more labels than it could save."""
    fewest = fewest_passing(expected, max(0, available) // 2, target, level)
    if fewest is None:
        return 0
    size = int(np.ceil(margin * fewest))
    return size if size < available / 2 else 0


def audit_threshold(
    confidence: np.ndarray, correct: np.ndarray, expected: float | None, target: float = 0.95, level: float = 0.95
) -> Threshold:
    """The threshold an audit supports: fixed_sequence on the audit's answers, its first test at the support the
    plan expected to pass (fewest_passing at `expected`). Why not at the top: its few most confident answers must
    then all be right (59 of 59 at 0.95), and one slip there ends the sequence; on Rotten Tomatoes (20 runs x 10
    audits) starting at the plan's support left 0.853 of the pool to people against 0.876 from the top, with the
    promise kept as often (0.995)."""
    start = fewest_passing(expected, len(confidence), target, level)
    return fixed_sequence(confidence, correct, target, level, min_support=start)


PLAN_FLOORS = 200  # region floors plan_audit weighs, evenly spaced in support: planning needs no finer grid


@dataclass(frozen=True)
class AuditPlan:
    region: float | None  # the model may label unlabeled tasks at or above this confidence; None: no audit pays
    size: int  # random tasks of the region people label as the audit
    expected: float | None  # the out-of-fold accuracy above `region` (smoothed) that sized the audit
    available: int  # unlabeled tasks in the region


def plan_audit(
    oof_confidence: np.ndarray,
    oof_correct: np.ndarray,
    open_confidence: np.ndarray,
    target: float = 0.95,
    level: float = 0.95,
) -> AuditPlan:
    """Where to audit: the region (a confidence floor) that leaves the model the most tasks once its audit is paid
    for, region size minus audit_size, by the out-of-fold answers of the labels so far (`oof_*`) and the open
    tasks' confidences. The labels the ranking chose only plan the audit here; the audit alone tests it, so a
    skewed plan can cost labels, never the promise. The accuracy above a floor is smoothed ((hits + 1) / (n + 2))
    so that a few lucky answers at the top do not promise a tiny audit."""
    open_sorted = np.sort(np.asarray(open_confidence, dtype=float))
    best, best_gain = AuditPlan(None, 0, None, 0), 0
    floors, supports, hits = _candidates(oof_confidence, oof_correct, MIN_SUPPORT)
    every = max(1, len(floors) // PLAN_FLOORS)
    for floor, k, h in zip(floors[::every], supports[::every], hits[::every]):
        floor, expected = float(floor), (int(h) + 1) / (int(k) + 2)
        available = int(len(open_sorted) - np.searchsorted(open_sorted, floor, side="left"))
        size = audit_size(expected, available, target, level)
        if size and available - size > best_gain:
            best, best_gain = AuditPlan(floor, size, round(expected, 4), available), available - size
    return best


DEFAULT_TARGET = 0.95
DEFAULT_LEVEL = 0.95


def threshold_for(
    heldout_probs: np.ndarray, y: np.ndarray, target: float = DEFAULT_TARGET, level: float = DEFAULT_LEVEL
) -> Threshold:
    """choose_threshold for a model's held-out probabilities (n, labels) on tasks with human label indices y."""
    y = np.asarray(y, dtype=int)
    if not len(y):
        return choose_threshold(np.zeros(0), np.zeros(0, bool), target, level)
    p = np.asarray(heldout_probs, dtype=float).reshape(len(y), -1)
    return choose_threshold(p.max(axis=1), p.argmax(axis=1) == y, target, level)


def routing_record(
    candidate_oof: np.ndarray,
    llm_probs: np.ndarray,
    y: np.ndarray,
    target: float = DEFAULT_TARGET,
    level: float = DEFAULT_LEVEL,
) -> RoutingRecord:
    """What a training run notes for routing (backend/loop/project_loop.py puts it in the run's record): the threshold of the
    candidate model, from its out-of-fold probabilities, and of the LLM alone, which never trained on the labels."""
    return {
        "model": threshold_for(candidate_oof, y, target, level).as_dict(),
        "llm": threshold_for(llm_probs, y, target, level).as_dict(),
    }


def serving_rule(records: Sequence[Mapping[str, Any]], serving: str | None) -> ThresholdRecord | None:
    """The threshold (a Threshold.as_dict()) the run that trained the serving version measured for it; with
    `serving` None (the LLM alone), the newest run's measurement of the LLM. None when no run measured it."""
    for record in reversed(records or []):
        noted = record.get("routing")
        if not isinstance(noted, dict):
            continue
        if serving is None:
            return noted.get("llm")
        if record.get("version") == serving:
            return noted.get("model")
    return None


def pool_coverage(
    probs: np.ndarray, task_ids, records: Sequence[Mapping[str, Any]], serving: str | None, labeled=()
) -> Coverage:
    """How much of the pool the serving model may label now, by the threshold measured when it was trained.

    `probs`: the serving model's probabilities for the pool (task_ids, same order); `records`: the project's
    training records, oldest first (ModelStore.versions()); `serving`: the promoted version that serves, None when
    the LLM serves alone (then the newest run's measurement of the LLM counts); `labeled`: task ids that already
    have a human label, left out of the count. labelloop finish computes the same afresh from every label."""
    rule = serving_rule(records, serving)
    labeled = set(labeled)
    open_ = np.array([task_id not in labeled for task_id in task_ids], dtype=bool)
    confidence = np.asarray(probs, dtype=float).reshape(len(open_), -1).max(axis=1) if len(open_) else np.zeros(0)
    threshold = rule.get("threshold") if isinstance(rule, dict) else None
    can = int((confidence[open_] >= threshold).sum()) if threshold is not None else 0
    unlabeled = int(open_.sum())
    return {
        "threshold": threshold,
        "target": rule.get("target") if isinstance(rule, dict) else None,
        "accuracy": rule.get("accuracy") if isinstance(rule, dict) else None,
        "lower_bound": rule.get("lower_bound") if isinstance(rule, dict) else None,
        "support": rule.get("support", 0) if isinstance(rule, dict) else 0,
        "unlabeled": unlabeled,
        "model_can_label": can,
        "share": round(can / unlabeled, 4) if unlabeled else 0.0,
        "measured": rule is not None,
    }


# The sequential audit: people label the region's tasks in random order, a batch at a time, and the audit stops as
# soon as its test passes, instead of a fixed-size sample sized on an estimate (audit_size).
AUDIT_BATCH = 10  # tasks people label between two looks at the test
# The thresholds tested, from the top: each leaves the model this share of the region. The first sees only its share
# of the draws, so a sequence from the top costs 1 / 0.8 the draws of the floor's test alone where all is well, and
# keeps 80-90% of the region where the floor's test does not pass.
AUDIT_SHARES = (0.8, 0.9, 1.0)
BET_CAP = 0.75  # the most of its wealth a bet may stake on one task being right: one wrong answer costs at most this
SEQUENTIAL_MOST = (
    2.0  # the audit labels at most this many times the fixed audit's size (audit_size), and half the region
)


def betting_rejected(
    correct: np.ndarray, population: int, target: float = 0.95, level: float = 0.95, prior: float | None = None
) -> np.ndarray:
    """Per draw, whether "the accuracy of these `population` tasks is below `target`" is rejected by then, with
    `correct` the model's answers on tasks drawn at random without replacement from them, in draw order.

    A test by betting (Waudby-Smith and Ramdas, JRSS-B 2024): a wealth starts at 1 and stakes a share of itself on
    each answer being right, at the odds the null allows; under the null it is a nonnegative supermartingale, so it
    ever reaches 1 / (1 - level) with probability at most 1 - level (Ville): the test may be read after every draw
    and the audit stopped whenever it passes. Without replacement the null's mean of the next draw is that of the
    tasks not drawn yet, which sharpens the bets as the sample grows. Each stake is Kelly's for the accuracy seen so
    far (with `prior`, the plan's estimate, counted as ten draws), capped at BET_CAP."""
    _check(target, level)
    correct = np.asarray(correct, dtype=float)
    prior = min(max(prior if prior is not None else target + 0.02, 0.0), 1.0)
    wealth, hits, rejected = 1.0, 0.0, np.zeros(len(correct), dtype=bool)
    for i, x in enumerate(correct):
        left = population - i
        null_mean = (population * target - hits) / left if left > 0 else 0.0  # the untested tasks' mean at the null
        if null_mean <= 0:
            rejected[i:] = True  # enough right answers drawn already: the null cannot hold
            break
        if null_mean < 1:
            seen = (hits + 10 * prior) / (i + 10)
            if seen > null_mean:
                stake = (seen - null_mean) / (null_mean * (1 - null_mean))
                wealth *= 1 + min(stake, BET_CAP / null_mean) * (x - null_mean)
        hits += x
        if wealth >= 1 / (1 - level):
            rejected[i:] = True
            break
    return rejected


def audit_thresholds(region_confidence: np.ndarray, shares: tuple[float, ...] = AUDIT_SHARES) -> np.ndarray:
    """The thresholds a sequential audit tests, from the most confident down: each leaves the model `share` of the
    region's tasks; fixed by the region alone, before any audit answer is read."""
    ranked = np.sort(np.asarray(region_confidence, dtype=float))[::-1]
    if not len(ranked):
        return np.zeros(0)
    return np.unique([ranked[max(0, int(np.ceil(s * len(ranked))) - 1)] for s in shares])[::-1]


def sequential_audit(
    region_confidence: np.ndarray,
    drawn_confidence: np.ndarray,
    drawn_correct: np.ndarray,
    expected: float | None,
    target: float = 0.95,
    level: float = 0.95,
    batch: int = AUDIT_BATCH,
) -> tuple[Threshold, int]:
    """The threshold a sequential audit supports, and how many of the drawn tasks it read: the region's tasks
    (`region_confidence`) are drawn at random, in order (`drawn_*`: the model's confidence and whether people's
    label agreed), `batch` at a time. audit_thresholds are tested in a fixed sequence from the top, each by betting
    on the draws above it (betting_rejected); the audit stops at the first batch whose end finds the whole region
    passed, or when the draws run out. The chosen threshold is the lowest one whose test and every test above it
    passed by then. Valid at any stop: a wrong choice needs the first threshold in the sequence whose true accuracy
    is below the target to have been rejected at some time, which has probability at most 1 - level."""
    confidence = np.asarray(region_confidence, dtype=float)
    drawn_confidence = np.asarray(drawn_confidence, dtype=float)
    drawn_correct = np.asarray(drawn_correct, dtype=bool)
    thresholds = audit_thresholds(confidence)
    if not len(drawn_correct) or not len(thresholds):
        return Threshold(None, target, level, 0, None, None), 0
    # passed[j, i]: threshold j's test has passed once i + 1 tasks are drawn
    passed = np.zeros((len(thresholds), len(drawn_correct)), dtype=bool)
    for j, t in enumerate(thresholds):
        above = drawn_confidence >= t
        rejected = betting_rejected(drawn_correct[above], int((confidence >= t).sum()), target, level, expected)
        at = np.cumsum(above) - 1  # per draw, the index among those above t seen by then (-1: none yet)
        passed[j] = np.where(at >= 0, rejected[np.maximum(at, 0)], False) if len(rejected) else False
    sequence = np.cumprod(passed, axis=0).astype(bool)  # threshold j passed and every one above it
    looks = [*range(batch - 1, len(drawn_correct) - 1, batch), len(drawn_correct) - 1]
    stop = next(i for i in looks if sequence[-1, i] or i == looks[-1])
    n = stop + 1
    chosen = np.flatnonzero(sequence[:, stop])
    if not chosen.size:
        return Threshold(None, target, level, 0, None, None), n
    t = float(thresholds[chosen[-1]])
    above = drawn_correct[:n][drawn_confidence[:n] >= t]
    return Threshold(t, target, level, len(above), float(above.mean()), None), n


def ppi_lower_bound(
    region_confidence: np.ndarray, sample_confidence: np.ndarray, sample_correct: np.ndarray, level: float = 0.95
) -> float:
    """A lower bound on the accuracy of a region's tasks by prediction-powered inference (Angelopoulos et al.,
    Science 2023): the model's confidence is its predicted accuracy on every task of the region, known without a
    label, and a random sample people labeled corrects its bias. Estimate: the region's mean confidence plus the
    sample's mean of (right - confidence); bound: minus the normal quantile times that difference's standard error,
    with the finite-population correction. Asymptotic only: where the sample is small and every answer right, the
    spread of (right - confidence) is that of the confidences alone."""
    n, population = len(sample_correct), len(region_confidence)
    if n < 2:
        return 0.0
    gap = np.asarray(sample_correct, dtype=float) - np.asarray(sample_confidence, dtype=float)
    spread = float(gap.std(ddof=1)) * np.sqrt(max(0.0, 1 - n / population) / n)
    return float(np.mean(region_confidence) + gap.mean() - norm.ppf(level) * spread)


def ppi_audit_threshold(
    region_confidence: np.ndarray,
    sample_confidence: np.ndarray,
    sample_correct: np.ndarray,
    expected: float | None,
    target: float = 0.95,
    level: float = 0.95,
) -> Threshold:
    """audit_threshold with ppi_lower_bound in place of Clopper-Pearson's: the same sample, the same fixed sequence
    from the support the plan expected to pass, each threshold's bound read from the region's tasks above it."""
    region_confidence = np.asarray(region_confidence, dtype=float)
    sample_confidence = np.asarray(sample_confidence, dtype=float)
    sample_correct = np.asarray(sample_correct, dtype=bool)
    start = max(fewest_passing(expected, len(sample_correct), target, level) or 0, MIN_SUPPORT)
    thresholds, supports, hits = _candidates(sample_confidence, sample_correct, start)
    chosen = Threshold(None, target, level, 0, None, None)
    for t, k, h in zip(thresholds, supports, hits):
        above = sample_confidence >= t
        bound = ppi_lower_bound(
            region_confidence[region_confidence >= t], sample_confidence[above], sample_correct[above], level
        )
        if bound < target:
            break
        chosen = Threshold(float(t), target, level, int(k), int(h) / int(k), bound)
    return chosen
