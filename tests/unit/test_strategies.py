"""Ranking strategies (backend/ranking/strategies.py): utilities against hand-computed values, k-center greedy against a
naive float64 reference, fusion, selectors, the `rank` entry point and its errors, and labelloop bench-ranking on a
tiny pool. Everything runs on small arrays (the whole file takes a few seconds)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import warm

from backend.ranking import strategies as st

ROOT = Path(__file__).resolve().parents[2]
BENCH = warm.labelloop("bench-ranking")

# [0.5, 0.5] is the most uncertain row for every measure, [1, 0] the least.
P2 = np.array([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]])
H09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)


def naive_k_center(x, n, labeled):
    """Reference: cosine distances in float64, recomputed from scratch for every pick (labeled must be non-empty)."""
    u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    chosen = list(labeled)
    picks = []
    for _ in range(n):
        dist = 1.0 - (u @ u[chosen].T).max(axis=1)
        dist[chosen] = -np.inf
        i = int(np.argmax(dist))
        picks.append(i)
        chosen.append(i)
    return np.array(picks)


def clusters():
    """Unit-ish vectors: rows 0-1 near e1, row 2 = -e1 (cosine distance 2 from e1), row 3 = e2 (distance 1)."""
    return np.array([[1.0, 0.0, 0.0], [0.99, 0.05, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)


# ------------------------------------------------------------------------------------------------ utilities


def test_utilities_hand_computed():
    np.testing.assert_allclose(st.least_confidence(P2), [0.5, 0.0, 0.1], atol=1e-12)
    np.testing.assert_allclose(st.margin(P2), [1.0, 0.0, 0.2], atol=1e-12)
    np.testing.assert_allclose(st.entropy(P2), [1.0, 0.0, H09], atol=1e-12)
    for f in (st.least_confidence, st.margin, st.entropy):
        u = f(P2)
        assert int(np.argmax(u)) == 0 and int(np.argmin(u)) == 1, f.__name__


def test_entropy_bounds():
    for k in range(2, 7):
        np.testing.assert_allclose(st.entropy(np.full((1, k), 1.0 / k)), [1.0], atol=1e-12)
        np.testing.assert_array_equal(st.entropy(np.eye(k)), np.zeros(k))
    p = np.random.default_rng(0).dirichlet([0.3, 0.3, 0.3, 0.3], size=500)
    h = st.entropy(p)
    assert h.min() >= 0.0 and h.max() <= 1.0
    assert h.max() > 0.9 and h.min() < 0.1  # spread over the range, not constant


def test_margin_and_least_confidence_disagree():
    # a: two labels tie, third empty; b: flatter, but with a clear leader.
    p = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
    np.testing.assert_allclose(st.least_confidence(p), [0.5, 0.6], atol=1e-12)
    np.testing.assert_allclose(st.margin(p), [1.0, 0.9], atol=1e-12)
    np.testing.assert_allclose(st.entropy(p), [math.log(2) / math.log(3), 0.9911594714], atol=1e-9)
    assert st.select(st.least_confidence(p), 1).tolist() == [1]
    assert st.select(st.margin(p), 1).tolist() == [0]
    assert st.select(st.entropy(p), 1).tolist() == [1]


def test_single_label_is_never_uncertain():
    p = np.ones((3, 1))
    for f in (st.least_confidence, st.margin, st.entropy):
        np.testing.assert_array_equal(f(p), np.zeros(3))


def test_random_utility_is_seeded():
    a, b, c = st.random_utility(50, 1), st.random_utility(50, 1), st.random_utility(50, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (50,) and a.min() >= 0.0 and a.max() < 1.0


# ------------------------------------------------------------------------------------------------ diversity


def test_k_center_picks_the_far_cluster_first():
    x = clusters()
    assert st.k_center_greedy(x, 3, labeled_idx=[0]).tolist() == [2, 3, 1]
    # labeled on the other side: the e1 rows are now the far ones (row 0 exactly opposite, so first)
    assert st.k_center_greedy(x, 3, labeled_idx=[2]).tolist() == [0, 3, 1]


def test_k_center_matches_the_naive_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((80, 6)).astype(np.float32)
    labeled = [5, 17, 40]
    got = st.k_center_greedy(x, 30, labeled_idx=labeled)
    np.testing.assert_array_equal(got, naive_k_center(x, 30, labeled))


@pytest.mark.parametrize("frontier_size", [1, 3, 10])
def test_lazy_frontier_gives_the_same_picks(frontier_size):
    """Tiny frontiers force the full-update path over and over; the picks must not change."""
    rng = np.random.default_rng(4)
    centers = rng.standard_normal((6, 8))
    x = (centers[rng.integers(6, size=120)] + 0.2 * rng.standard_normal((120, 8))).astype(np.float32)
    labeled = np.array([0, 1])
    xs, inv = st._prepare_embeddings(x)
    picks, _ = st._greedy(xs, inv, st._initial_maxsim(xs, inv, labeled), 60, np.random.default_rng(0), frontier_size)
    np.testing.assert_array_equal(picks, naive_k_center(x, 60, labeled))


def test_k_center_never_repeats_and_skips_labeled():
    x = np.random.default_rng(5).standard_normal((40, 4)).astype(np.float32)
    labeled = [0, 7, 9]
    picks = st.k_center_greedy(x, 100, labeled_idx=labeled)  # more than the pool: clipped to 37
    assert len(picks) == 37
    assert sorted(picks.tolist()) == sorted(set(range(40)) - set(labeled))


def test_k_center_is_deterministic_per_seed():
    x = np.random.default_rng(6).standard_normal((60, 5)).astype(np.float32)
    runs = {seed: st.k_center_greedy(x, 10, seed=seed) for seed in range(5)}
    for seed in runs:
        np.testing.assert_array_equal(runs[seed], st.k_center_greedy(x, 10, seed=seed))
    assert len({int(r[0]) for r in runs.values()}) > 1  # nothing labeled: the seed draws the first pick
    for r in runs.values():  # after the first pick, each is the farthest from the earlier ones
        np.testing.assert_array_equal(r[1:], naive_k_center(x, 9, [int(r[0])]))
    # with labeled rows the seed plays no part
    np.testing.assert_array_equal(st.k_center_greedy(x, 10, [3], seed=0), st.k_center_greedy(x, 10, [3], seed=9))


def test_k_center_accepts_float64_and_leaves_input_alone():
    x = np.random.default_rng(7).standard_normal((30, 4))
    before = x.copy()
    np.testing.assert_array_equal(st.k_center_greedy(x, 8, [1]), st.k_center_greedy(x.astype(np.float32), 8, [1]))
    np.testing.assert_array_equal(x, before)
    assert st.k_center_greedy(x, 0, [1]).tolist() == []


def test_diversity_utility_hand_computed():
    x = clusters()
    u = st.diversity_utility(x, labeled_idx=[0])
    cos01 = 0.99 / math.hypot(0.99, 0.05)
    np.testing.assert_allclose(u, [0.0, (1 - cos01) / 2, 1.0, 0.5], atol=1e-6)
    np.testing.assert_array_equal(st.diversity_utility(x), np.ones(4))  # nothing labeled: all equally novel


def test_diversity_utility_with_k_puts_the_greedy_picks_first():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    labeled = [3, 50]
    u = st.diversity_utility(x, labeled, k=12)
    picks = st.k_center_greedy(x, 12, labeled)
    np.testing.assert_array_equal(st.select(u, 12), picks)
    assert np.all(np.diff(u[picks]) <= 0)  # distances at pick time never grow
    rest = np.setdiff1d(np.arange(200), np.concatenate([picks, labeled]))
    assert u[rest].max() <= u[picks].min()
    # rows not picked: distance to labeled ∪ picks, from scratch in float64
    v = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    ref = (1 - (v[rest] @ v[np.concatenate([labeled, picks])].T).max(axis=1)) / 2
    np.testing.assert_allclose(u[rest], ref, atol=1e-6)
    assert not np.allclose(st.diversity_utility(x, labeled)[rest], ref, atol=1e-3)  # k changed them


# ------------------------------------------------------------------------------------------------ fusion, selectors


def test_rank_fusion_weight_zero_follows_the_other_input():
    rng = np.random.default_rng(9)
    a, b = rng.random(300), rng.random(300)
    fused = st.rank_fusion({"a": a, "b": b}, {"a": 1.0, "b": 0.0})
    np.testing.assert_array_equal(st.select(fused, 300), st.select(a, 300))
    assert not np.array_equal(st.select(fused, 300), st.select(b, 300))
    fused_b = st.rank_fusion({"a": a, "b": b}, {"a": 0.0, "b": 2.5})
    np.testing.assert_array_equal(st.select(fused_b, 300), st.select(b, 300))


def test_rank_fusion_hand_computed_and_scale_free():
    a, b = np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(st.rank_fusion({"a": a, "b": b}), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(st.rank_fusion({"a": a, "b": b}, {"a": 3, "b": 1}), [0.75, 0.5, 0.25])
    np.testing.assert_allclose(st.rank_fusion({"a": 1000 * a + 5, "b": np.log(b)}, {"a": 3, "b": 1}), [0.75, 0.5, 0.25])
    np.testing.assert_allclose(st.rank_fusion({"a": np.array([1.0, 1.0, 2.0])}), [0.25, 0.25, 1.0])  # ties: average


def test_select_is_stable_and_skips_minus_inf():
    u = np.array([1.0, 3.0, 3.0, 2.0, 3.0, -np.inf])
    assert st.select(u, 3).tolist() == [1, 2, 4]
    assert st.select(u, 10).tolist() == [1, 2, 4, 3, 0]
    assert st.select(u, 0).tolist() == []


def test_priority_scores_reverse_utility():
    rng = np.random.default_rng(10)
    u = rng.random(50)
    u[[4, 20]] = u[30]  # a tie: lower index first, as in select
    s = st.priority_scores(u)
    assert s.min() == 0.0 and s.max() == 1.0
    np.testing.assert_array_equal(np.argsort(s, kind="stable"), st.select(u, 50))
    assert int(np.argmin(s)) == int(np.argmax(u)) and int(np.argmax(s)) == int(np.argmin(u))
    assert s[4] < s[20] < s[30]
    lab = np.array([0.2, -np.inf, 0.9])  # labeled rows (-inf) come last
    np.testing.assert_array_equal(st.priority_scores(lab), [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(st.priority_scores(np.array([0.3])), [0.0])


# ------------------------------------------------------------------------------------------------ disagreement


def test_disagreement_hand_computed():
    p = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    # [1, 0] vs [0.5, 0.5]: H([0.75, 0.25]) - (0 + log 2) / 2, in bits
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(st.disagreement(p, q), [1.0, (h - math.log(2) / 2) / math.log(2), 0.0, 0.0], atol=1e-12)


def test_disagreement_matches_scipy_and_is_symmetric():
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(3)
    p, q = rng.dirichlet([0.4] * 4, size=300), rng.dirichlet([0.4] * 4, size=300)
    d = st.disagreement(p, q)
    np.testing.assert_allclose(d, jensenshannon(p, q, axis=1, base=2) ** 2, atol=1e-9)
    np.testing.assert_allclose(d, st.disagreement(q, p), atol=1e-12)
    assert d.min() >= 0.0 and d.max() <= 1.0
    np.testing.assert_array_equal(st.disagreement(p, p), np.zeros(300))


def test_disagreement_prefers_conflict_over_shared_doubt():
    # both unsure the same way (row 0) is no disagreement; confident and opposed (row 1) is the most
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])
    q = np.array([[0.5, 0.5], [0.1, 0.9], [0.5, 0.5]])
    assert st.select(st.disagreement(p, q), 3).tolist() == [1, 2, 0]


def test_disagreement_errors():
    with pytest.raises(ValueError, match="shape of probs"):
        st.disagreement(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match="llm_probs: .*sums to"):
        st.disagreement(np.eye(2), np.array([[0.5, 0.6], [0.5, 0.5]]))


# ------------------------------------------------------------------------------------------------ rank


def pool(n=60, seed=11):
    rng = np.random.default_rng(seed)
    return rng.dirichlet([0.7, 0.7, 0.7], size=n), rng.standard_normal((n, 8)).astype(np.float32)


def test_rank_single_strategies_match_the_utilities():
    p, x = pool()
    labeled = [2, 5]
    expected = {
        "least_confidence": st.least_confidence(p),
        "margin": st.margin(p),
        "entropy": st.entropy(p),
        "random": st.random_utility(60, 4),
        "diversity": st.diversity_utility(x, labeled),
    }
    for name, e in expected.items():
        u = st.rank(name, p, x, labeled_idx=labeled, seed=4)
        assert np.isneginf(u[labeled]).all(), name
        mask = np.ones(60, bool)
        mask[labeled] = False
        np.testing.assert_array_equal(u[mask], e[mask], err_msg=name)
        assert not set(st.select(u, 60).tolist()) & set(labeled)
    assert {name for name, s in st.REGISTRY.items() if not s.llm_judged} == {
        "random",
        "least_confidence",
        "margin",
        "entropy",
        "disagreement",
        "diversity",
        "hybrid",
        "committee",
    }


def test_rank_hybrid_fuses_over_unlabeled_rows():
    p, x = pool()
    labeled = [0, 1, 2, 3]
    u = st.rank("hybrid", p, x, labeled_idx=labeled)
    un = np.arange(4, 60)
    expected = st.rank_fusion({"margin": st.margin(p)[un], "diversity": st.diversity_utility(x, labeled)[un]})
    np.testing.assert_allclose(u[un], expected)
    assert np.isneginf(u[labeled]).all()
    only_margin = st.rank("hybrid", p, x, labeled, weights={"margin": 1.0, "entropy": 0.0})
    np.testing.assert_array_equal(st.select(only_margin, 56), st.select(st.rank("margin", p, None, labeled), 56))
    assert not np.array_equal(st.select(u, 56), st.select(only_margin, 56))
    # diversity at weight 0 does not need embeddings
    st.rank("hybrid", p, None, labeled, weights={"entropy": 1.0, "diversity": 0.0})


def test_rank_disagreement_and_committee():
    p, _ = pool()
    llm = np.random.default_rng(13).dirichlet([0.7, 0.7, 0.7], size=60)
    labeled = [3, 9]
    un = np.setdiff1d(np.arange(60), labeled)
    d = st.rank("disagreement", p, labeled_idx=labeled, llm_probs=llm)
    np.testing.assert_array_equal(d[un], st.disagreement(p, llm)[un])
    c = st.rank("committee", p, labeled_idx=labeled, llm_probs=llm)
    assert np.isneginf(c[labeled]).all() and np.isneginf(d[labeled]).all()
    expected = st.rank_fusion({"entropy": st.entropy(p)[un], "disagreement": st.disagreement(p, llm)[un]})
    np.testing.assert_allclose(c[un], expected)
    # the same fusion through hybrid's weights
    h = st.rank("hybrid", p, labeled_idx=labeled, weights=dict(st.COMMITTEE_WEIGHTS), llm_probs=llm)
    np.testing.assert_array_equal(h, c)
    # the committee really differs from either member alone
    order = st.select(c, 58)
    assert not np.array_equal(order, st.select(st.rank("entropy", p, labeled_idx=labeled), 58))
    assert not np.array_equal(order, st.select(d, 58))


def test_committee_without_disagreement_is_entropy():
    # the serving model is the LLM itself: nothing to disagree about, so the model's uncertainty decides
    p, _ = pool()
    c = st.rank("committee", p, labeled_idx=[0], llm_probs=p)
    np.testing.assert_array_equal(st.select(c, 59), st.select(st.rank("entropy", p, labeled_idx=[0]), 59))


def test_pointwise_priority_with_and_without_llm_probs():
    p, _ = pool()
    llm = np.random.default_rng(14).dirichlet([0.7, 0.7, 0.7], size=60)
    np.testing.assert_allclose(st.pointwise_priority("disagreement", p, llm), 1.0 - st.disagreement(p, llm))
    committee = st.pointwise_priority("committee", p, llm)
    np.testing.assert_allclose(committee, 1.0 - (st.entropy(p) + st.disagreement(p, llm)) / 2.0)
    assert committee.min() >= 0.0 and committee.max() <= 1.0
    for name in ("committee", "disagreement", "hybrid"):  # no LLM probabilities: margin until the pool is ranked
        np.testing.assert_allclose(st.pointwise_priority(name, p), 1.0 - st.margin(p))
    np.testing.assert_allclose(st.pointwise_priority("entropy", p, llm), 1.0 - st.entropy(p))


def test_rank_llm_hook():
    p, x = pool()
    llm = np.random.default_rng(12).normal(size=60)  # e.g. log-probabilities judged elsewhere
    u = st.rank("llm", p, labeled_idx=[7], extra_utilities={"llm": llm})
    np.testing.assert_array_equal(np.delete(u, 7), np.delete(llm, 7))
    assert np.isneginf(u[7])
    h = st.rank("hybrid", p, labeled_idx=[7], weights={"llm": 1, "margin": 0}, extra_utilities={"llm": llm})
    np.testing.assert_array_equal(st.select(h, 59), st.select(u, 59))
    # default hybrid weights take every extra utility at weight 1
    d = st.rank("hybrid", p, x, extra_utilities={"llm": llm})
    expected = st.rank_fusion({"margin": st.margin(p), "diversity": st.diversity_utility(x), "llm": llm})
    np.testing.assert_allclose(d, expected)


def test_rank_accepts_rows_within_tolerance():
    p = np.array([[0.5, 0.50005], [0.2, 0.8]])
    np.testing.assert_allclose(st.rank("margin", p), [1.0, 0.4], atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strategy="bald"), "unknown strategy 'bald'"),
        (dict(probs=np.array([0.5, 0.5])), "must be 2-D"),
        (dict(probs=np.zeros((2, 0))), "no label column"),
        (dict(probs=np.array([[0.5, np.nan], [0.5, 0.5]])), "NaN"),
        (dict(probs=np.array([[0.5, 0.5], [0.6, 0.5]])), "row 1 sums to 1.1"),
        (dict(probs=np.array([[1.5, -0.5], [0.5, 0.5]])), "negative"),
        (dict(probs=[[0.5, 0.5], [0.5]]), "numeric"),
        (dict(strategy="diversity", embeddings=None), "needs embeddings"),
        (dict(strategy="hybrid", embeddings=None), "needs embeddings"),
        (dict(embeddings=np.zeros((3, 4))), r"shape \(2, dim\)"),
        (dict(strategy="diversity", embeddings=np.array([[1.0, np.inf], [0.0, 1.0]])), "NaN or infinite"),
        (dict(labeled_idx=[2]), "out of range"),
        (dict(labeled_idx=[-1]), "out of range"),
        (dict(labeled_idx=np.array([True, False])), "boolean mask"),
        (dict(labeled_idx=[0.0]), "integer row indices"),
        (dict(weights={"margin": 1.0}), "only to the 'hybrid'"),
        (dict(strategy="hybrid", weights={"bald": 1.0}), "unknown utilities"),
        (dict(strategy="hybrid", weights={"margin": -1.0}), "finite and >= 0"),
        (dict(strategy="hybrid", weights={"margin": 0.0}), "at least one weight"),
        (dict(extra_utilities={"llm": np.ones(3)}), "has 3 values"),
        (dict(extra_utilities={"entropy": np.ones(2)}), "clashes"),
        (dict(extra_utilities={"llm": np.array([1.0, np.nan])}), "NaN"),
        (dict(diversity_k=-1), "diversity_k must be >= 0"),
        (dict(strategy="disagreement"), "needs llm_probs"),
        (dict(strategy="committee"), "needs llm_probs"),
        (dict(strategy="hybrid", weights={"disagreement": 1.0}), "needs llm_probs"),
        (dict(strategy="committee", llm_probs=np.eye(2), weights={"entropy": 1.0}), "only to the 'hybrid'"),
        (dict(strategy="committee", llm_probs=np.eye(3)), "shape of probs"),
        (dict(strategy="disagreement", llm_probs=np.array([[0.5, np.nan], [0.5, 0.5]])), "llm_probs: .*NaN"),
        (dict(extra_utilities={"committee": np.ones(2)}), "clashes"),
    ],
)
def test_rank_errors(kwargs, match):
    args = dict(strategy="margin", probs=np.array([[0.5, 0.5], [0.9, 0.1]]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        st.rank(**args)


def test_other_errors():
    with pytest.raises(ValueError, match="n must be >= 0"):
        st.k_center_greedy(np.eye(3), -1)
    with pytest.raises(ValueError, match="must be 2-D"):
        st.k_center_greedy(np.ones(3), 1)
    with pytest.raises(ValueError, match="NaN"):
        st.select(np.array([1.0, np.nan]), 1)
    with pytest.raises(ValueError, match="differ in length"):
        st.rank_fusion({"a": np.ones(2), "b": np.ones(3)})
    with pytest.raises(ValueError, match="exactly the utilities"):
        st.rank_fusion({"a": np.ones(2), "b": np.ones(2)}, {"a": 1.0})
    with pytest.raises(ValueError, match="at least one utility"):
        st.rank_fusion({})


# ------------------------------------------------------------------------------------------------ script


def test_bench_script_runs_on_a_tiny_pool():
    help_ = subprocess.run([sys.executable, *BENCH, "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "--n" in help_.stdout and "--k" in help_.stdout
    run = subprocess.run(
        [sys.executable, *BENCH, "--n", "3000", "--k", "20", "--labeled", "50", "--dim", "32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for name in sorted(name for name, s in st.REGISTRY.items() if not s.llm_judged) + ["k_center_greedy"]:
        assert name in run.stdout, name
