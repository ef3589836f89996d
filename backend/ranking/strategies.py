"""Ranking strategies for the unlabeled pool: which task an annotator should see next.

Plain functions in the style of small-text and modAL; nothing here holds data. Three kinds:

- utilities map inputs to one number per task, HIGHER = MORE INFORMATIVE:
  `least_confidence`, `margin`, `entropy` (over the probability matrix `probs`, tasks × labels in config order),
  `disagreement` (between `probs` and the LLM's own probabilities), `random_utility`, and `diversity_utility`
  (over sentence embeddings);
- selectors turn a utility into an order: `select` (top-n indices) and `priority_scores` (a score per task in
  [0, 1] where LOWER = ASK SOONER, which is what Label Studio's uncertainty sampling serves first);
- combinations: `rank_fusion` (weighted mean of percentile ranks) and `k_center_greedy` (batch diversity);
  the strategies `hybrid` (margin + diversity) and `committee` (entropy + disagreement) are rank fusions.

Every strategy a project may choose is one `Strategy` in `REGISTRY` (`get(name)` looks one up): its name, what it
needs (embeddings, the LLM's probabilities, an LLM-judged utility), whether it ranks per task or over the pool, and
the function computing its utility. Ranking, the loop, re-scoring, the simulation and settings validation all read
the registry, so a new strategy is one entry there.

`rank(strategy, probs, ...)` is the one entry point the backend needs: it validates its inputs, computes the
strategy's utility for every task and marks the labeled tasks with -inf (never selected, scored last). Typical use:

    u = strategies.rank("hybrid", probs, embeddings, labeled_idx=done)
    scores = strategies.priority_scores(u)          # send as each prediction's `score`
    batch = strategies.select(u, 50)                # or: the next 50 tasks to ask

Design choices
--------------
* Distances on embeddings are COSINE distances, 1 - cos(a, b), in [0, 2]: sentence embeddings (e.g. the 384-d
  MiniLM family) are trained and compared by cosine, and their norms carry little meaning. A zero vector has cosine
  0 with everything (distance 1). Computations run in float32 (embeddings are converted once if they are not).
* `k_center_greedy` keeps one running vector, each task's highest cosine similarity to the labeled/chosen set
  (the running min-distance, as a similarity): O(n·k·d) time at worst, O(n + frontier·d) extra memory, never an
  n × n matrix. Updating all n rows after every pick is one memory-bound matrix-vector product per pick (7-17 s for
  k = 1,000 over 100,000 × 384 here), so updates are lazy: picks come from a small exact "frontier" of the farthest
  rows and the full vector is brought up to date with one matrix product only when the frontier can no longer
  prove it holds the farthest row (details in `_greedy`); same picks, about 1 s. The initial similarity to the
  labeled set is a blocked matrix product (blocks of 4096 × 2048), so memory stays bounded however many tasks are
  labeled.
* `rank_fusion` is a weighted mean of percentile ranks, not reciprocal-rank fusion (RRF). Percentile ranks make
  utilities on different scales (an entropy, a cosine distance, an LLM log-probability) comparable without any
  calibration; the mean is linear in rank, so a task that is good on every signal beats one that is first on one
  signal and last on another, and a weight is simply that signal's share (weight 0 removes it exactly). RRF,
  sum w / (60 + rank), was designed for merging the top of search result lists: it rewards being first anywhere,
  and over a pool of 100,000 its scores below the first few hundred ranks are almost flat, so the tail order is
  decided by tiny differences. Ties get their average rank.
* `priority_scores` is 1 - the ORDINAL percentile rank: position in `select`'s order divided by (n - 1). Sorting
  tasks by score ascending therefore reproduces `select`'s order exactly, ties included (lower index first),
  instead of leaving ties to whatever order Label Studio picks; scores are spread uniformly over [0, 1].
* Labeled tasks (`labeled_idx`, row indices into `probs`) are part of the pool matrix: diversity measures distances
  to them, and `rank` returns -inf for them. Percentile ranks in `hybrid` and `committee` are computed over the
  unlabeled tasks only, so labeled rows cannot shift the fused order.
* `committee` is query-by-committee with the LLM as the second member, next to the model's own uncertainty: a task
  ranks high when the model is unsure (entropy) and when the model and the LLM disagree (Jensen-Shannon divergence
  of their label distributions). The LLM knows the rare labels from the start, so disagreement finds the minority
  class (Neutral here) much sooner than uncertainty alone; in the simulation (labelloop compare-strategies) the
  classifier alone reached 95% of its full-pool macro-F1 with 0.45 of random sampling's labels (margin: 0.72),
  while for the blend all strategies were level. It needs `llm_probs` (the calibrated LLM probabilities the blend
  is built on); when the serving model IS the LLM, disagreement is 0 everywhere and the order is entropy's.

The "llm" hook
--------------
Utilities computed elsewhere, e.g. an LLM's log-probability that a task is informative/hard (the registry's
LLM-judged strategies, `llm_judged=True`, read theirs this way under their own name), enter through
`rank(..., extra_utilities={"llm": u})`, u a finite array with one value per task, higher = ask sooner. Any key of
`extra_utilities` is then accepted as a strategy name (`rank("llm", probs, extra_utilities=...)`) and as a `hybrid`
weight (`weights={"margin": 1, "diversity": 1, "llm": 2}`); with `weights=None` hybrid fuses every extra utility at
weight 1 next to its defaults. Because fusion uses ranks, any monotone scale works (log-probabilities, logits,
probabilities). Extra names must not clash with the registered strategies that compute their own utility.
"""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping

import numpy as np
from scipy.special import entr
from scipy.stats import rankdata

try:  # a scikit-learn dependency; only used to keep BLAS single-threaded in k-center greedy's loop
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

PROB_ATOL = 1e-4  # tolerance on row sums (and on negative entries) of `probs`

DEFAULT_HYBRID_WEIGHTS: Mapping[str, float] = {"margin": 1.0, "diversity": 1.0}
# Equal weights, the simplest choice; entropy rather than margin beside disagreement because it did better in the
# simulation (it weighs every label, the rare one too, where margin only looks at the top two).
COMMITTEE_WEIGHTS: Mapping[str, float] = {"entropy": 1.0, "disagreement": 1.0}

_BLOCK_ROWS = 4096
_BLOCK_COLS = 2048
_FRONTIER = 4096  # rows k-center greedy keeps exact between full updates (see _greedy)


# ---------------------------------------------------------------------------------------------------------------
# validation


def validate_probs(probs, atol: float = PROB_ATOL) -> np.ndarray:
    """`probs` as a float64 (n_tasks, n_labels) array, clipped to [0, 1]; ValueError if it is not a probability
    matrix: not 2-D, no label column, NaN/inf, an entry below -atol, or a row whose sum is off 1 by more than atol."""
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"probs must be a numeric (n_tasks, n_labels) array: {e}") from None
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (n_tasks, n_labels), got shape {p.shape}")
    if p.shape[1] < 1:
        raise ValueError(f"probs has no label column (shape {p.shape})")
    finite = np.isfinite(p).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"probs contains NaN or infinite values ({int((~finite).sum())} rows, first: row {row})")
    negative = (p < -atol).any(axis=1)
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(f"probs has negative entries (first: row {row}: {p[row].tolist()})")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"probs rows must sum to 1 (tolerance {atol}): {int(off.sum())} rows do not, "
            f"first: row {row} sums to {sums[row]:.6g}"
        )
    return np.clip(p, 0.0, 1.0)


def _labeled_indices(labeled_idx, n_tasks: int) -> np.ndarray:
    """Sorted unique int64 row indices; ValueError for booleans, non-integers, negatives or out-of-range rows."""
    if labeled_idx is None:
        return np.empty(0, dtype=np.int64)
    idx = np.asarray(labeled_idx)
    if idx.size == 0:
        return np.empty(0, dtype=np.int64)
    if idx.dtype == bool:
        raise ValueError("labeled_idx must hold row indices, not a boolean mask (use np.flatnonzero(mask))")
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"labeled_idx must be a 1-D sequence of integer row indices, got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= n_tasks:
        raise ValueError(f"labeled_idx out of range: rows must lie in [0, {n_tasks}), got {idx.min()}..{idx.max()}")
    return np.unique(idx.astype(np.int64))


def _check_count(n, what: str = "n") -> int:
    try:
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {n!r}") from None
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    return n


def _check_utility(u, name: str = "utility", allow_neg_inf: bool = False) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per task), got shape {u.shape}")
    if np.isnan(u).any():
        raise ValueError(f"{name} contains NaN")
    bad = np.isposinf(u) if allow_neg_inf else ~np.isfinite(u)
    if bad.any():
        raise ValueError(f"{name} contains {'+inf' if allow_neg_inf else 'infinite values'}")
    return u


def _prepare_embeddings(embeddings, n_tasks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 embeddings (no copy if they already are) and each row's inverse norm (0 for a zero row)."""
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"embeddings must be 2-D (n_tasks, dim), got shape {x.shape}")
    if n_tasks is not None and x.shape[0] != n_tasks:
        raise ValueError(f"embeddings have {x.shape[0]} rows but probs has {n_tasks} tasks")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    inv = np.zeros_like(norms)
    np.divide(1.0, norms, out=inv, where=norms > 0)
    return x, inv


# ---------------------------------------------------------------------------------------------------------------
# utilities over probs


def least_confidence(probs) -> np.ndarray:
    """1 - max_k p_k per task, in [0, 1 - 1/n_labels]."""
    p = validate_probs(probs)
    return 1.0 - p.max(axis=1)


def margin(probs) -> np.ndarray:
    """1 - (p_top1 - p_top2) per task, in [0, 1]: 1 when the two leading labels tie (0 second label with 1 label)."""
    p = validate_probs(probs)
    if p.shape[1] == 1:
        return 1.0 - p[:, 0]
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs) -> np.ndarray:
    """Shannon entropy (natural log) divided by log(n_labels), in [0, 1]: 1 for the uniform row, 0 for a one-hot
    row (and for every row when there is a single label)."""
    p = validate_probs(probs)
    k = p.shape[1]
    if k == 1:
        return np.zeros(p.shape[0])
    return np.clip(entr(p).sum(axis=1) / np.log(k), 0.0, 1.0)


def disagreement(probs, llm_probs) -> np.ndarray:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between each task's row of `probs` and of `llm_probs`: 0 when the
    model and the LLM give the same distribution, 1 when they are certain of different labels. Query-by-committee
    with the LLM as the second member; both matrices must have the same shape."""
    p = validate_probs(probs)
    try:
        q = validate_probs(llm_probs)
    except ValueError as e:
        raise ValueError(f"llm_probs: {e}") from None
    if p.shape != q.shape:
        raise ValueError(f"llm_probs must have the shape of probs {p.shape}, got {q.shape}")
    # JS = H(mean) - mean of H; rounding can leave a tiny negative for equal rows, hence the clip.
    js = entr((p + q) / 2.0).sum(axis=1) - (entr(p).sum(axis=1) + entr(q).sum(axis=1)) / 2.0
    return np.clip(js / np.log(2.0), 0.0, 1.0)


def random_utility(n: int, seed: int = 0) -> np.ndarray:
    """n uniform draws in [0, 1) from numpy's default generator seeded with `seed`: the random baseline."""
    return np.random.default_rng(seed).random(_check_count(n))


# ---------------------------------------------------------------------------------------------------------------
# diversity over embeddings (cosine)


def _max_similarity(x: np.ndarray, inv: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float32 vector: each row's highest cosine similarity to the rows `targets` (non-empty), blocked."""
    t = x[targets] * inv[targets, None]  # unit rows (zero rows stay zero)
    out = np.empty(x.shape[0], dtype=np.float32)
    for r0 in range(0, x.shape[0], _BLOCK_ROWS):
        block = x[r0 : r0 + _BLOCK_ROWS]
        best = np.full(block.shape[0], -np.inf, dtype=np.float32)
        for c0 in range(0, t.shape[0], _BLOCK_COLS):
            np.maximum(best, (block @ t[c0 : c0 + _BLOCK_COLS].T).max(axis=1), out=best)
        out[r0 : r0 + _BLOCK_ROWS] = best * inv[r0 : r0 + _BLOCK_ROWS]
    return out


def _greedy(
    x: np.ndarray, inv: np.ndarray, maxsim: np.ndarray, k: int, rng, frontier_size: int = _FRONTIER
) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy in place on `maxsim`, each row's highest cosine similarity to the labeled/chosen rows
    (float32; +inf = labeled/chosen, all -inf = nothing labeled). k must not exceed the rows left.

    Each pick is the row with the LOWEST `maxsim` (= the largest cosine distance to its nearest labeled/chosen
    row), ties to the lowest index; with nothing labeled the first pick is drawn from `rng`. Returns the picks and
    each pick's similarity when it was picked (-inf for a random first pick). On return `maxsim` is up to date.

    Lazy, frontier-based: similarities only grow as rows are chosen, so a stale value is a lower bound. Picks are
    taken from a frontier, the `frontier_size` rows of lowest `maxsim`, kept exact with one frontier × dim product
    per pick. While the frontier's best value is strictly below θ, the lowest stale value outside it, that row is
    provably the farthest of all. Otherwise (and every _BLOCK_COLS picks) the whole vector is brought up to date
    with ONE blocked matrix product over the pending picks, and the frontier is rebuilt. Same picks as updating
    all n rows after every pick (O(n·k·d) either way in the worst case), up to float32 rounding of near-ties, but
    reading the n × d matrix a handful of times instead of k times: for 100,000 × 384 and k = 1,000, about 1 s
    instead of 7-17 s (memory-bound matrix-vector products) on the 2 shared cores this was written on."""
    n = x.shape[0]
    picks = np.empty(k, dtype=np.int64)
    sims = np.empty(k, dtype=np.float64)
    pending: list[int] = []

    def flush() -> None:
        if pending:
            q = x[pending] * inv[pending, None]
            for r0 in range(0, n, _BLOCK_ROWS):
                r1 = r0 + _BLOCK_ROWS
                s = (x[r0:r1] @ q.T).max(axis=1)
                s *= inv[r0:r1]
                np.maximum(maxsim[r0:r1], s, out=maxsim[r0:r1])
            pending.clear()

    def frontier():
        avail = np.flatnonzero(maxsim < np.inf)
        if avail.size <= frontier_size:
            f, theta = avail, np.inf
        else:
            part = np.argpartition(maxsim, frontier_size)
            f, theta = np.sort(part[:frontier_size]), float(maxsim[part[frontier_size]])
        return f, x[f], maxsim[f], inv[f], theta, np.empty(f.size, dtype=np.float32)

    start = 0
    if k and np.isneginf(maxsim).all():
        i = int(rng.integers(n))
        picks[0], sims[0] = i, -np.inf
        maxsim[:] = _max_similarity(x, inv, np.array([i]))
        maxsim[i] = np.inf
        start = 1
    f, fx, fm, finv, theta, buf = frontier()
    # Thousands of small products: a second BLAS thread only adds synchronisation, and when the cores are busy
    # with other work it made this loop ~9x slower (9 s instead of 1 s for k = 1,000), so one thread here.
    with _single_threaded_blas():
        for t in range(start, k):
            j = int(np.argmin(fm)) if f.size else -1
            if j >= 0 and fm[j] < theta:
                i = int(f[j])
            else:  # the frontier cannot prove its best is the farthest: update every row, take the exact argmin
                flush()
                i = int(np.argmin(maxsim))
                f, fx, fm, finv, theta, buf = frontier()
                j = int(np.searchsorted(f, i))
                if j == f.size or f[j] != i:
                    j = -1
            picks[t], sims[t] = i, maxsim[i] if j < 0 else fm[j]
            maxsim[i] = np.inf
            if j >= 0:
                fm[j] = np.inf
            pending.append(i)
            if len(pending) >= _BLOCK_COLS:
                flush()
            np.dot(fx, x[i], out=buf)
            buf *= finv
            buf *= inv[i]
            np.maximum(fm, buf, out=fm)
    flush()
    return picks, sims


def _single_threaded_blas():
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _initial_maxsim(x: np.ndarray, inv: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    if labeled.size == 0:
        return np.full(x.shape[0], -np.inf, dtype=np.float32)
    maxsim = _max_similarity(x, inv, labeled)
    maxsim[labeled] = np.inf
    return maxsim


def k_center_greedy(embeddings, n: int, labeled_idx=None, seed: int = 0) -> np.ndarray:
    """Indices of up to `n` unlabeled rows in the order k-center greedy chooses them (int64).

    Each choice is the row farthest, in cosine distance, from its nearest labeled-or-already-chosen row (ties to
    the lowest index), so no row is chosen twice and labeled rows never are. With nothing labeled the first row is
    drawn at random with `seed`; everything else is deterministic (with labeled rows `seed` is unused). `n` larger
    than the unlabeled pool is clipped to it. Cost: one (n_rows × dim) matrix-vector product per choice."""
    n = _check_count(n)
    x, inv = _prepare_embeddings(embeddings)
    labeled = _labeled_indices(labeled_idx, x.shape[0])
    k = min(n, x.shape[0] - labeled.size)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    picks, _ = _greedy(x, inv, _initial_maxsim(x, inv, labeled), k, np.random.default_rng(seed))
    return picks


def diversity_utility(embeddings, labeled_idx=None, k: int = 0, seed: int = 0) -> np.ndarray:
    """Per-task novelty in [0, 1]: cosine distance to the nearest labeled row, divided by 2 (its maximum).

    Dividing by the fixed maximum (rather than by the pool's largest distance) keeps values comparable between
    calls: a pool close to what is labeled stays low. Labeled rows get 0. With nothing labeled every task is
    equally novel and gets 1 (the order then falls back to other utilities, or to the index).

    k > 0 makes the top of the ranking batch-aware: the first k choices of k-center greedy get, in choice order,
    their distance to labeled ∪ earlier choices at the moment they were chosen (a non-increasing sequence), and
    every other row its distance to labeled ∪ all k choices, which is no larger. So `select(u, k)` equals
    `k_center_greedy(embeddings, k, labeled_idx, seed)` up to exact ties, and the rest keep a meaningful order."""
    k = _check_count(k, "k")
    x, inv = _prepare_embeddings(embeddings)
    labeled = _labeled_indices(labeled_idx, x.shape[0])
    maxsim = _initial_maxsim(x, inv, labeled)
    k = min(k, x.shape[0] - labeled.size)
    picks, pick_sims = _greedy(x, inv, maxsim, k, np.random.default_rng(seed)) if k else ((), ())
    sim = np.clip(maxsim.astype(np.float64), -1.0, 1.0)  # -inf (nothing labeled) → distance 2 → utility 1
    if k:
        sim[picks] = np.clip(pick_sims, -1.0, 1.0)
    u = (1.0 - sim) / 2.0
    u[labeled] = 0.0
    return np.clip(u, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# selectors and fusion


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights as floats; ValueError unless all are finite and >= 0 with at least one positive."""
    try:
        w = {name: float(v) for name, v in weights.items()}
    except (TypeError, ValueError):
        raise ValueError(f"weights must be numbers, got {dict(weights)}") from None
    if any(not np.isfinite(v) or v < 0 for v in w.values()):
        raise ValueError(f"weights must be finite and >= 0, got {w}")
    if sum(w.values()) <= 0:
        raise ValueError(f"at least one weight must be positive, got {w}")
    return w


def percentile_rank(utility) -> np.ndarray:
    """Rank of each value scaled to [0, 1] (0 = lowest, 1 = highest; ties share their average rank; a single
    value gets 0.5)."""
    u = _check_utility(utility, allow_neg_inf=True)
    if u.size <= 1:
        return np.full(u.size, 0.5)
    return (rankdata(u, method="average") - 1.0) / (u.size - 1)


def rank_fusion(utilities: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weighted mean of the utilities' percentile ranks, in [0, 1] (higher = more informative).

    `utilities` maps names to finite 1-D arrays of equal length; `weights` (default: 1 each) must name exactly the
    same utilities, with finite non-negative weights, at least one positive. Weight 0 drops a utility exactly.
    See the module docstring for why percentile ranks rather than reciprocal-rank fusion."""
    if not utilities:
        raise ValueError("rank_fusion needs at least one utility")
    us = {name: _check_utility(u, f"utility {name!r}") for name, u in utilities.items()}
    lengths = {u.size for u in us.values()}
    if len(lengths) != 1:
        raise ValueError(f"utilities differ in length: { {name: u.size for name, u in us.items()} }")
    if weights is None:
        weights = {name: 1.0 for name in us}
    if set(weights) != set(us):
        raise ValueError(f"weights must name exactly the utilities {sorted(us)}, got {sorted(weights)}")
    w = _check_weights(weights)
    total = sum(w.values())
    fused = np.zeros(lengths.pop())
    for name, u in us.items():
        if w[name] > 0:
            fused += (w[name] / total) * percentile_rank(u)
    return np.clip(fused, 0.0, 1.0)


def select(utilities, n: int) -> np.ndarray:
    """Indices of the n highest utilities, highest first; equal utilities in index order (stable). Entries of -inf
    (labeled tasks in `rank`'s output) are never selected, so fewer than n may come back."""
    u = _check_utility(utilities, "utilities", allow_neg_inf=True)
    n = _check_count(n)
    candidates = np.flatnonzero(u > -np.inf)
    order = candidates[np.argsort(-u[candidates], kind="stable")]
    return order[:n]


def priority_scores(utility) -> np.ndarray:
    """Label Studio prediction scores in [0, 1], LOWER = ASK SOONER (its uncertainty sampling serves the lowest
    score first): 1 - ordinal percentile rank, i.e. position in `select`'s order / (n - 1). Sorting by score
    ascending gives exactly `select(utility, n)` followed by the -inf (labeled) rows. A single task gets 0."""
    u = _check_utility(utility, allow_neg_inf=True)
    scores = np.zeros(u.size)
    if u.size > 1:
        scores[np.argsort(-u, kind="stable")] = np.arange(u.size) / (u.size - 1)
    return scores


def most_uncertain_label(probs, llm_probs=None) -> tuple[np.ndarray, np.ndarray | None]:
    """A multi-label question's (n, k) per-label probabilities as every strategy reads them: for each task, the
    yes/no distribution of its most uncertain label (nearest 0.5), and the LLM's for that same label. Each label is
    a question of its own; a task is as informative as the label the model is least sure of."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    rows = np.arange(len(p))
    pick = np.argmin(np.abs(p - 0.5), axis=1) if p.size else np.zeros(0, dtype=int)
    chosen = p[rows, pick]
    binary = np.stack([chosen, 1.0 - chosen], axis=1)
    if llm_probs is None:
        return binary, None
    other = np.clip(np.asarray(llm_probs, dtype=np.float64), 0.0, 1.0)[rows, pick]
    return binary, np.stack([other, 1.0 - other], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# the registry: every strategy a project may choose, with what it needs


@dataclass(frozen=True)
class Inputs:
    """What a strategy's utility may read, one row per task (`rank` checks them first)."""

    probs: np.ndarray
    embeddings: Any = None
    labeled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    seed: int = 0
    diversity_k: int = 0
    llm_probs: Any = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)  # a fusion's utilities, each weight > 0


@dataclass(frozen=True)
class Strategy:
    """A ranking strategy: what it needs, how it ranks, and the function computing its utility (higher = ask
    sooner). `needs_embeddings` and `needs_llm_probs` hold for the default weights of a fusion; an `llm_judged`
    strategy reads its utility, which the backend asks the LLM for, from `extra_utilities` under its own name.
    scope "task": a task's utility reads only its own row, so a prediction can carry it before the pool is ranked;
    "pool": it needs the whole pool, and `pointwise` (if any) stands in per task until then."""

    name: str
    description: str
    utility: Callable[[Inputs], np.ndarray]
    scope: Literal["task", "pool"] = "pool"
    needs_embeddings: bool = False
    needs_llm_probs: bool = False
    llm_judged: bool = False
    fuses: Mapping[str, float] = field(default_factory=dict)  # a rank fusion of these utilities at these weights
    tunable: bool = False  # accepts `rank(weights=...)` in place of `fuses`, which then also takes every extra at 1
    pointwise: Callable[[Inputs], np.ndarray] | None = None
    reads_probs: bool = True  # False: the same order whatever the model answers (one rank serves every question)


def _fusion(x: Inputs) -> np.ndarray:
    """Percentile ranks over the unlabeled rows only, so labeled rows cannot shift the fused order."""
    unlabeled = np.ones(x.probs.shape[0], dtype=bool)
    unlabeled[x.labeled] = False
    us = {name: _component(name, x)[unlabeled] for name in x.weights}
    u = np.full(x.probs.shape[0], -np.inf)
    u[unlabeled] = rank_fusion(us, x.weights)
    return u


def _component(name: str, x: Inputs) -> np.ndarray:
    return x.extras[name].copy() if name in x.extras else REGISTRY[name].utility(x)


def _judged(name: str) -> Strategy:
    variant = name.removeprefix("llm_")
    return Strategy(
        name,
        f"the LLM's judgement that labeling the task is {variant} (backend/ranking/judge.py)",
        lambda x: x.extras[name].copy(),
        llm_judged=True,
        reads_probs=False,
    )


def _committee_pointwise(x: Inputs) -> np.ndarray:
    # Entropy and disagreement both lie in [0, 1], so their mean stands in for the pool's rank fusion.
    return (entropy(x.probs) + disagreement(x.probs, x.llm_probs)) / 2.0


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "random",
            "uniform draws: the baseline",
            lambda x: random_utility(x.probs.shape[0], x.seed),
            reads_probs=False,
        ),
        Strategy(
            "least_confidence", "1 - the top label's probability", lambda x: least_confidence(x.probs), scope="task"
        ),
        Strategy("margin", "1 - the gap between the two leading labels", lambda x: margin(x.probs), scope="task"),
        Strategy("entropy", "normalized entropy of the label distribution", lambda x: entropy(x.probs), scope="task"),
        Strategy(
            "diversity",
            "cosine distance to the nearest labeled task (k-center greedy at the top)",
            lambda x: diversity_utility(x.embeddings, x.labeled, k=x.diversity_k, seed=x.seed),
            needs_embeddings=True,
            reads_probs=False,
        ),
        Strategy(
            "hybrid",
            "rank fusion of margin and diversity (weights tunable)",
            _fusion,
            needs_embeddings=True,
            fuses=DEFAULT_HYBRID_WEIGHTS,
            tunable=True,
        ),
        Strategy(
            "disagreement",
            "Jensen-Shannon divergence between the model's and the LLM's probabilities",
            lambda x: disagreement(x.probs, x.llm_probs),
            scope="task",
            needs_llm_probs=True,
        ),
        Strategy(
            "committee",
            "rank fusion of entropy and disagreement (query-by-committee with the LLM)",
            _fusion,
            needs_llm_probs=True,
            fuses=COMMITTEE_WEIGHTS,
            pointwise=_committee_pointwise,
        ),
        _judged("llm_informative"),
        _judged("llm_difficult"),
        _judged("llm_diverse"),
    )
}


def get(name: Any) -> Strategy:
    """The registered strategy `name`; ValueError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def fusable() -> list[str]:
    """Utilities a fusion may weigh (besides any extra utility): the registered ones that compute their own."""
    return [name for name, s in REGISTRY.items() if not s.fuses and not s.llm_judged]


def pointwise_priority(strategy: str, probs, llm_probs=None) -> np.ndarray:
    """A priority in [0, 1] (LOWER = ASK SOONER) each task gets on its own, for a prediction made before the pool is
    ranked as a whole: 1 - the strategy's utility when its scope is "task", or its `pointwise` stand-in. Strategies
    without either (diversity, hybrid, LLM-judged, random), those missing the `llm_probs` they need, and unknown
    names fall back to margin, a good pointwise signal in the comparison, until the pool is ranked."""
    s = REGISTRY.get(strategy)
    own = None
    if s is not None and (llm_probs is not None or not s.needs_llm_probs):
        own = s.utility if s.scope == "task" else s.pointwise
    if own is None:
        return 1.0 - margin(probs)
    return 1.0 - own(Inputs(probs, llm_probs=llm_probs))


# ---------------------------------------------------------------------------------------------------------------
# entry point


def _check_extras(extra_utilities, n_tasks: int) -> dict[str, np.ndarray]:
    if not extra_utilities:
        return {}
    extras = {}
    for name, u in extra_utilities.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"extra utility names must be non-empty strings, got {name!r}")
        if name in REGISTRY and not REGISTRY[name].llm_judged:
            raise ValueError(f"extra utility {name!r} clashes with a built-in strategy name; rename it (e.g. 'llm')")
        u = _check_utility(u, f"extra utility {name!r}")
        if u.size != n_tasks:
            raise ValueError(f"extra utility {name!r} has {u.size} values but probs has {n_tasks} tasks")
        extras[name] = u
    return extras


def _check_needs(name: str, embeddings, llm_probs, fusion: str | None = None) -> None:
    s = REGISTRY[name]
    if s.needs_embeddings and embeddings is None:
        raise ValueError(
            f"{fusion} fuses {name!r} and needs embeddings; pass embeddings or weights without {name!r}"
            if fusion
            else f"the {name!r} utility needs embeddings (one row per task)"
        )
    if s.needs_llm_probs and llm_probs is None:
        raise ValueError(
            f"{fusion} fuses {name!r} and needs llm_probs (the LLM's probabilities)"
            if fusion
            else f"the {name!r} utility needs llm_probs (the LLM's probabilities, shaped like probs)"
        )


def rank(
    strategy: str,
    probs,
    embeddings=None,
    labeled_idx=None,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    *,
    extra_utilities: Mapping[str, np.ndarray] | None = None,
    diversity_k: int = 0,
    llm_probs=None,
) -> np.ndarray:
    """Utilities (float64, one per row of `probs`, higher = ask sooner) of `strategy`; labeled rows get -inf.

    strategy: a name in REGISTRY or a key of `extra_utilities` (the "llm" hook, see the module docstring); an
    LLM-judged strategy finds its utility in `extra_utilities` under its name.
    probs: (n_tasks, n_labels), rows summing to 1 within PROB_ATOL. embeddings: (n_tasks, dim), needed whenever
    diversity is used. labeled_idx: row indices of labeled tasks. seed: for "random" (and k-center's first pick when
    nothing is labeled). weights: only for a tunable fusion ("hybrid") — names from `fusable()` or extra utilities
    → weight ≥ 0; None = its `fuses` (margin 1, diversity 1) plus every extra utility at 1; utilities of weight 0
    are not computed. A fusion fuses percentile ranks over the unlabeled rows (`rank_fusion`) and lies in [0, 1].
    diversity_k: k-center greedy picks at the top of the diversity utility (`diversity_utility`'s k).
    llm_probs: the LLM's calibrated probabilities, shaped like probs; needed whenever disagreement is used
    ("disagreement", "committee" = fusion of COMMITTEE_WEIGHTS, or a hybrid weight on it).

    ValueError: unknown strategy, malformed probs or llm_probs (shape, NaN/inf, negative, row sums), embeddings or
    extra utilities not matching the number of tasks, a need of the strategy not given (embeddings, llm_probs, an
    LLM-judged utility), bad labeled_idx, bad weights, or weights given to a strategy that is not tunable."""
    p = validate_probs(probs)
    n_tasks = p.shape[0]
    extras = _check_extras(extra_utilities, n_tasks)
    if not isinstance(strategy, str) or (strategy not in REGISTRY and strategy not in extras):
        known = list(REGISTRY) + sorted(extras)
        raise ValueError(
            f"unknown strategy {strategy!r}; choose one of {known} (other names must be keys of extra_utilities)"
        )
    if embeddings is not None:
        shape = np.shape(embeddings)
        if len(shape) != 2 or shape[0] != n_tasks:
            raise ValueError(f"embeddings must have shape ({n_tasks}, dim) to match probs, got {shape}")
    labeled = _labeled_indices(labeled_idx, n_tasks)
    diversity_k = _check_count(diversity_k, "diversity_k")
    s = REGISTRY.get(strategy)
    if weights is not None and not (s and s.tunable):
        tunable = " or ".join(repr(name) for name, t in REGISTRY.items() if t.tunable)
        raise ValueError(f"weights apply only to the {tunable} strategy, not {strategy!r}")
    x = Inputs(p, embeddings, labeled, seed, diversity_k, llm_probs, extras)

    if s is None:  # an extra utility ranks on its own
        u = extras[strategy].copy()
    elif s.fuses:
        if weights is None:
            weights = {**s.fuses, **({name: 1.0 for name in extras} if s.tunable else {})}
        unknown = set(weights) - set(fusable()) - set(extras)
        if unknown:
            raise ValueError(
                f"{strategy} weights name unknown utilities {sorted(unknown)}; known: {fusable() + sorted(extras)}"
            )
        used = {name: w for name, w in _check_weights(weights).items() if w > 0}
        for name in used:
            if name not in extras:
                _check_needs(name, embeddings, llm_probs, fusion=strategy)
        u = s.utility(replace(x, weights=used))
    else:
        if s.llm_judged and strategy not in extras:
            raise ValueError(f"the {strategy!r} strategy needs its LLM-judged utility in extra_utilities")
        _check_needs(strategy, embeddings, llm_probs)
        u = s.utility(x)
    u[labeled] = -np.inf
    return u
