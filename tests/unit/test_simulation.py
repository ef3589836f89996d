"""The simulated annotation loop (backend/bench/simulation.py) on small synthetic arrays, no model needed; the corpus
split and the on-disk caches with the tiny model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from support.shapes import mismatches
from support.simulation import FakeEmbedder, synthetic_inputs

from backend import corpus
from backend.bench import evaluation, reports, simulation
from backend.bench.results import CompareResults
from backend.bench.simulation import Inputs, Run, SimulationError
from backend.learning import classifier, recipes
from backend.ranking import judge, strategies


@pytest.fixture(scope="module")
def inputs():
    return synthetic_inputs()


# ------------------------------------------------------------------------------------------------ one run


def test_run_labels_axis_and_order(inputs):
    run = simulation.simulate(inputs, "classifier", "margin", seed=1, seed_size=20, batch=20, budget=100)
    assert run.labels.tolist() == [20, 40, 60, 80, 100]
    assert len(run.f1) == len(run.labels) and np.all((run.f1 >= 0) & (run.f1 <= 1))
    assert len(run.order) == 100 and len(set(run.order.tolist())) == 100  # nothing labeled twice
    assert run.order.min() >= 0 and run.order.max() < len(inputs.pool_y)


def test_last_batch_is_cut_to_the_budget(inputs):
    run = simulation.simulate(inputs, "blend", "entropy", seed=0, seed_size=10, batch=20, budget=75)
    assert run.labels.tolist() == [10, 30, 50, 70, 75]
    assert len(run.order) == 75


def test_budget_equal_to_seed_set_measures_once(inputs):
    run = simulation.simulate(inputs, "classifier", "random", seed=0, seed_size=30, batch=20, budget=30)
    assert run.labels.tolist() == [30] and len(run.order) == 30


@pytest.mark.parametrize("setup", simulation.DEFAULT_SETUPS)
def test_every_strategy_runs_and_shares_the_seed_set(inputs, setup):
    runs = {
        s: simulation.simulate(inputs, setup, s, seed=3, seed_size=15, batch=10, budget=55)
        for s in simulation.known_strategies()
    }
    seed_sets = {tuple(sorted(r.order[:15].tolist())) for r in runs.values()}
    assert len(seed_sets) == 1  # paired comparison: same seed, same start
    for name, run in runs.items():
        assert run.labels.tolist() == [15, 25, 35, 45, 55], name
        assert len(set(run.order.tolist())) == 55, name
    # the strategies really choose differently after the seed set
    assert len({tuple(r.order[15:].tolist()) for r in runs.values()}) > 5


def test_runs_are_deterministic_per_seed(inputs):
    a = simulation.simulate(inputs, "blend", "hybrid", seed=4, seed_size=20, batch=20, budget=80)
    b = simulation.simulate(inputs, "blend", "hybrid", seed=4, seed_size=20, batch=20, budget=80)
    c = simulation.simulate(inputs, "blend", "hybrid", seed=5, seed_size=20, batch=20, budget=80)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.f1, b.f1)
    assert set(a.order[:20].tolist()) != set(c.order[:20].tolist())


def _served(inputs, setup: str, labeled: np.ndarray, seed: int):
    # As the simulation fits the served setup: below 50 labels AUTO self-trains on the pool rows not labeled.
    pool_v, _ = inputs.vectors(setup)
    rest = np.setdiff1d(np.arange(len(inputs.pool_y)), labeled)
    unlabeled = (pool_v[rest], inputs.pool_llm[rest])
    y = inputs.pool_y[labeled]
    return simulation.fit_setup(
        setup, pool_v[labeled], inputs.pool_llm[labeled], y, 3, seed=seed, split=inputs.split, unlabeled=unlabeled
    )


@pytest.mark.parametrize("setup", simulation.DEFAULT_SETUPS)
def test_the_model_that_ranks_is_the_kind_evaluated(inputs, setup):
    run = simulation.simulate(inputs, setup, "margin", seed=2, seed_size=20, batch=20, budget=40)
    seed_set = run.order[:20]
    pool_v, test_v = inputs.vectors(setup)
    model = _served(inputs, setup, seed_set, 2)
    probs = model.predict_proba(pool_v, inputs.pool_llm)
    expected = strategies.select(strategies.rank("margin", probs, labeled_idx=seed_set), 20)
    np.testing.assert_array_equal(run.order[20:], expected)
    f1 = simulation.macro_f1(inputs.test_y, model.predict_proba(test_v, inputs.test_llm), 3)
    assert run.f1[0] == pytest.approx(f1)


@pytest.mark.parametrize("setup", simulation.DEFAULT_SETUPS)
def test_committee_ranks_with_the_models_and_the_llms_probabilities(inputs, setup):
    run = simulation.simulate(inputs, setup, "committee", seed=1, seed_size=20, batch=20, budget=40)
    seed_set = run.order[:20]
    pool_v, _ = inputs.vectors(setup)
    model = _served(inputs, setup, seed_set, 1)
    probs = model.predict_proba(pool_v, inputs.pool_llm)
    u = strategies.rank("committee", probs, labeled_idx=seed_set, llm_probs=inputs.pool_llm)
    np.testing.assert_array_equal(run.order[20:], strategies.select(u, 20))
    # without the LLM's probabilities the batch would be entropy's, which differs here
    by_entropy = strategies.select(strategies.rank("entropy", probs, labeled_idx=seed_set), 20)
    assert set(run.order[20:].tolist()) != set(by_entropy.tolist())


def test_llm_judged_strategy_takes_the_top_judged_items(inputs):
    run = simulation.simulate(inputs, "classifier", "llm_difficult", seed=0, seed_size=20, batch=20, budget=60)
    u = inputs.judged["llm_difficult"].copy()
    u[run.order[:20]] = -np.inf
    np.testing.assert_array_equal(run.order[20:], np.argsort(-u, kind="stable")[:40])


def test_a_seed_set_too_small_to_fit_falls_back():
    inp = synthetic_inputs(n_pool=60, n_test=30)
    # one label per class at most: the classifier predicts label shares, the blend serves the LLM alone
    run = simulation.simulate(inp, "blend", "margin", seed=0, seed_size=2, batch=10, budget=12)
    assert run.f1[0] == pytest.approx(simulation.macro_f1(inp.test_y, inp.test_llm, 3))
    run = simulation.simulate(inp, "classifier", "margin", seed=0, seed_size=2, batch=10, budget=12)
    assert len(run.order) == 12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strategy="bald"), "unknown strategy bald"),
        (dict(budget=500), "exceeds the pool"),
        (dict(seed_size=50, budget=40), "exceeds the budget"),
        (dict(batch=0), "batch must be a positive integer"),
        (dict(seed_size=0), "seed size must be a positive integer"),
    ],
)
def test_simulate_errors(inputs, kwargs, match):
    args = dict(setup="classifier", strategy="margin", seed=0, seed_size=20, batch=20, budget=60)
    args.update(kwargs)
    with pytest.raises(SimulationError, match=match):
        simulation.simulate(inputs, **args)


def test_missing_judge_is_an_error(inputs):
    bare = Inputs(
        inputs.labels,
        inputs.pool_x,
        inputs.pool_llm,
        inputs.pool_y,
        inputs.test_x,
        inputs.test_llm,
        inputs.test_y,
        judged={},
    )
    with pytest.raises(SimulationError, match="needs the LLM judge"):
        simulation.simulate(bare, "classifier", "hybrid_llm", 0, 20, 20, 60)
    simulation.simulate(bare, "classifier", "hybrid", 0, 20, 20, 60)  # plain hybrid needs none


def test_needed_judges():
    assert simulation.needed_judges(["random", "margin"]) == []
    assert simulation.needed_judges(["llm_diverse", "llm_difficult"]) == ["difficult", "diverse"]
    assert simulation.needed_judges(["hybrid_llm"]) == ["informative"]
    assert set(simulation.JUDGED.values()) == set(judge.VARIANTS)


# ------------------------------------------------------------------------------------------------ curve measures


def test_labels_to_target_on_a_hand_made_curve():
    labels, f1 = [20, 40, 60, 80], [0.50, 0.70, 0.69, 0.80]
    assert simulation.labels_to_target(labels, f1, 0.70) == 40  # reaching exactly counts
    assert simulation.labels_to_target(labels, f1, 0.695) == 40  # first crossing, not the last
    assert simulation.labels_to_target(labels, f1, 0.75) == 80
    assert simulation.labels_to_target(labels, f1, 0.40) == 20
    assert simulation.labels_to_target(labels, f1, 0.81) is None


def test_curve_auc():
    assert simulation.curve_auc([20, 40, 60], [0.6, 0.6, 0.6]) == pytest.approx(0.6)
    assert simulation.curve_auc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    # uneven spacing weighs by labels: 0.2 over [0, 10], then 0.2 → 1.0 over [10, 30]
    assert simulation.curve_auc([0, 10, 30], [0.2, 0.2, 1.0]) == pytest.approx((2.0 + 12.0) / 30)
    assert simulation.curve_auc([20], [0.7]) == pytest.approx(0.7)


def test_summary_rule_for_labels_to_target():
    labels = np.array([20, 40, 60])
    runs = [
        Run(labels, np.array([0.5, 0.8, 0.9]), np.arange(60)),
        Run(labels, np.array([0.5, 0.6, 0.85]), np.arange(60)),
    ]
    s = simulation._summary(runs, target=0.8)
    assert s["labels_to_target_per_seed"] == [40, 60] and s["labels_to_target"] == 50 and s["reached"] == 2
    np.testing.assert_allclose(s["curve"]["mean"], [0.5, 0.7, 0.875])
    np.testing.assert_allclose(s["curve"]["std"], [0.0, 0.1, 0.025])
    s = simulation._summary(runs, target=0.88)  # one seed never gets there: null, not a flattering mean
    assert s["labels_to_target_per_seed"] == [60, None] and s["labels_to_target"] is None and s["reached"] == 1


# ------------------------------------------------------------------------------------------------ compare, report


@pytest.fixture(scope="module")
def results(inputs):
    return simulation.compare(
        inputs,
        ["random", "margin", "llm_informative", "hybrid_llm"],
        seeds=[0, 1],
        seed_size=20,
        batch=20,
        budget=120,
        progress=False,
    )


def test_compare_results_schema(results, inputs):
    assert mismatches(json.loads(json.dumps(results)), CompareResults) == []  # plain JSON types, as declared
    assert results["config"]["budget"] == 120 and results["config"]["curve_seeds"] == [0, 1]
    assert results["config"]["strategy_seeds"] == [100, 101]  # nothing a curve informed is judged on them
    assert results["served_kind"] == "llm_state"
    assert results["config"]["committee_weights"] == dict(strategies.COMMITTEE_WEIGHTS)
    assert results["llm_alone_macro_f1"] == pytest.approx(simulation.macro_f1(inputs.test_y, inputs.test_llm, 3))
    assert set(results["kinds"]) == {"llm", "classifier", "blend", "llm_state"}
    llm = simulation.macro_f1(inputs.test_y, inputs.test_llm, 3)
    assert results["kinds"]["llm"]["macro_f1_at"] == {str(n): pytest.approx(llm) for n in (20, 50, 100, 200)}
    for setup, block in results["kinds"].items():
        sizes = [n for n in simulation.CURVE_SIZES if n <= len(inputs.pool_y)]
        assert list(block["macro_f1_at"]) == [str(n) for n in sizes] and all(
            0 < v <= 1 for v in block["macro_f1_at"].values()
        )
        if setup == "llm":
            continue
        assert block["macro_f1_at"] == simulation.learning_curve(inputs, setup, [0, 1])
        assert block["target"] == pytest.approx(simulation.TARGET_FRACTION * block["full_pool_macro_f1"])
        assert block["full_pool_macro_f1"] == pytest.approx(simulation.full_pool_f1(inputs, setup))
        assert list(block["strategies"]) == ["random", "margin", "llm_informative", "hybrid_llm"]
        for s in block["strategies"].values():
            curve = s["curve"]
            assert curve["labels"] == [20, 40, 60, 80, 100, 120]
            assert len(curve["mean"]) == len(curve["std"]) == 6
            assert len(s["auc_per_seed"]) == 2 and s["auc"] == pytest.approx(np.mean(s["auc_per_seed"]))
            assert len(s["labels_to_target_per_seed"]) == 2
            l2t, base = s["labels_to_target"], block["strategies"]["random"]["labels_to_target"]
            if l2t is not None and base:
                assert s["ratio_to_random"] == pytest.approx(l2t / base)
            else:
                assert s["ratio_to_random"] is None
        random_ratio = block["strategies"]["random"]["ratio_to_random"]
        assert random_ratio is None or random_ratio == 1.0


def test_compare_errors(inputs):
    with pytest.raises(SimulationError, match="unknown model kind svm"):
        simulation.compare(inputs, ["random"], setups=["svm"], progress=False)
    with pytest.raises(SimulationError, match="unknown strategy"):
        simulation.compare(inputs, ["random", "bald"], progress=False)
    with pytest.raises(SimulationError, match="no seed"):
        simulation.compare(inputs, ["random"], seeds=[], progress=False)


def test_plot_and_table(results, tmp_path):
    path = tmp_path / "curves.png"
    reports.compare_plot(results, path)
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = reports.compare_table(results)
    for name in (
        "random",
        "margin",
        "llm_informative",
        "hybrid_llm",
        "classifier",
        "blend",
        "llm_state",
        "full pool",
        "served: llm_state",
    ):
        assert name in text


# ------------------------------------------------------------------------------------------------ corpus and caches


def test_pool_is_disjoint_from_test_and_calibration():
    pool, test = simulation.pool_and_test(300, test_size=90)
    full_test, calibration = evaluation.splits()
    assert len(pool) == 300 and len(test) == 90
    assert set(test["text"]) <= set(full_test["text"])
    assert not set(pool["text"]) & (set(full_test["text"]) | set(calibration["text"]))
    assert pool["text"].is_unique
    shares = pool["label"].value_counts(normalize=True)
    assert 0.04 < shares["Neutral"] < 0.12  # stratified: the corpus has ~8% Neutral
    bigger, _ = simulation.pool_and_test(600, test_size=90)
    assert set(pool["text"]) <= set(bigger["text"])  # a larger pool extends a smaller one, so caches carry over
    _, whole_test = simulation.pool_and_test(10, test_size=evaluation.TEST_SIZE)
    assert whole_test["text"].tolist() == full_test["text"].tolist()
    with pytest.raises(SimulationError, match="pool must be between"):
        simulation.pool_and_test(simulation.available_pool() + 1)
    with pytest.raises(SimulationError, match="test size"):
        simulation.pool_and_test(10, test_size=601)


def test_stratified_sample_has_the_exact_size():
    import pandas as pd

    df = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": ["a"] * 50 + ["b"] * 33 + ["c"] * 17})
    for size in (1, 3, 10, 59, 100):
        sample = corpus.stratified_sample(df, size)
        assert len(sample) == size and sample["text"].is_unique
    assert corpus.stratified_sample(df, 10)["label"].value_counts().to_dict() == {"a": 5, "b": 3, "c": 2}


def test_load_inputs_caches_llm_outputs(tmp_path):
    from helpers import tiny_predictor

    predictor = tiny_predictor()
    scored: list[int] = []
    real = predictor.scorer.logprobs_and_states

    def counting(prompt, texts, answers=None, layers=()):
        scored.append(len(texts))
        return real(prompt, texts, answers, layers)

    predictor.scorer.logprobs_and_states = counting  # label_logprobs goes through it too
    first = simulation.load_inputs(
        12,
        test_size=9,
        cache_dir=tmp_path,
        judge_variants=["difficult", "diverse"],
        predictor=predictor,
        embedder=FakeEmbedder(),
        progress=False,
    )
    assert first.pool_x.shape == (12, 8) and first.test_x.shape == (9, 8)
    assert first.pool_llm.shape == (12, 3) and first.test_llm.shape == (9, 3)
    assert first.pool_h.shape == (12, 64) and first.test_h.shape == (9, 64) and first.info["llm_state_layer"] == 1
    np.testing.assert_allclose(first.pool_llm.sum(axis=1), 1.0, atol=1e-6)
    assert set(first.judged) == {"llm_difficult", "llm_diverse"}
    assert all(u.shape == (12,) and np.isfinite(u).all() for u in first.judged.values())
    assert first.labels == ("Positive", "Negative", "Neutral")
    assert sorted(np.unique(np.concatenate([first.pool_y, first.test_y])).tolist()) == [0, 1, 2]
    assert sum(scored) >= 21 + 12 + 12  # labels for pool + test; each judge on the pool only
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(files) == 4 and sum(f.startswith("judge-") for f in files) == 2
    assert any(f.startswith("labels-") for f in files) and any(f.startswith("states-L1-") for f in files)

    scored.clear()
    again = simulation.load_inputs(
        12,
        test_size=9,
        cache_dir=tmp_path,
        judge_variants=["difficult", "diverse"],
        predictor=predictor,
        embedder=FakeEmbedder(),
        progress=False,
    )
    # Everything from the cache but the label-free calibrations' own inputs: content-free and random-word texts.
    assert scored == [len(simulation.cal.CONTENT_FREE), simulation.cal.DOMAIN_TEXTS]
    assert set(again.info["zero_shot"]) == {"none", "contextual", "domain", "pool"}
    assert again.info["calibration"] == "domain" and again.info["data"] == "rotten_tomatoes"
    assert again.info["resemblance"] is None  # no fitted file matches the tiny model
    # The served kind's labels choose among the LLM under every label-free calibration measured on the pool too.
    assert list(again.shifts) == ["domain", "none", "pool"] and again.shifts["domain"] == (0.0, 0.0, 0.0)
    assert again.pool_features.shape == (12, len(again.info["features"]))
    np.testing.assert_allclose(again.pool_llm, first.pool_llm)
    np.testing.assert_allclose(again.pool_h, first.pool_h)
    for name in first.judged:
        np.testing.assert_allclose(again.judged[name], first.judged[name])
    with pytest.raises(SimulationError, match="unknown judge variant"):
        simulation.load_inputs(
            12,
            cache_dir=tmp_path,
            judge_variants=["funny"],
            predictor=predictor,
            embedder=FakeEmbedder(),
            progress=False,
        )


def test_the_served_kind_fits_the_recipe_its_labels_choose(inputs):
    inputs = replace(inputs, shifts={"domain": (0.0, 0.0, 0.0), "pool": (0.4, 0.0, -0.6)})
    pool_v, _ = inputs.vectors("llm_state")
    assert pool_v.shape[1] == inputs.pool_h.shape[1] + inputs.pool_x.shape[1]  # the state, then MiniLM
    rows = np.arange(60)
    sets = {"states": inputs.pool_h[rows], "minilm": inputs.pool_x[rows]}
    y, llm = inputs.pool_y[rows], inputs.pool_llm[rows]
    likely = recipes.likeliest(inputs.shifts, llm, y)
    assert likely is not None and likely.calibration in inputs.shifts
    candidates = (likely, *recipes.candidates("states"))
    choice = recipes.choose(candidates, recipes.Labeled(sets, llm, y, 3), lambda t, p: simulation.macro_f1(t, p, 3))
    model = simulation.fit_setup("llm_state", pool_v[rows], llm, y, 3, split=inputs.split, shifts=inputs.shifts)
    assert model.recipe == choice.recipe
    expected = choice.recipe.fit(recipes.Labeled(sets, llm, y, 3)).predict_proba(
        recipes.recipe_vectors(choice.recipe, sets), llm
    )
    np.testing.assert_allclose(model.predict_proba(pool_v[rows], llm), expected)
    np.testing.assert_allclose(
        simulation.out_of_fold_setup("llm_state", pool_v[rows], llm, y, 3, split=inputs.split, shifts=inputs.shifts),
        choice.oof,
    )
    fixed = simulation.fit_setup("state_fixed", inputs.pool_h[rows], llm, y, 3)
    assert (fixed.learner, fixed.estimator.C) == ("state_blend", classifier.LEARNERS["state_blend"].C)


def test_taught_is_the_served_setups_recipe_fitted_on_the_llms_surest_pool_answers(inputs, results):
    from backend.learning import self_training

    taught = simulation.taught(inputs)
    recipe = recipes.RECIPES[self_training.TEACH_RECIPE]
    rows = self_training.sample(len(inputs.pool_y))
    pool_sets = {recipes.STATES: inputs.pool_h, recipes.MINILM: inputs.pool_x}
    expected = self_training.teach(
        recipe, self_training.Unlabeled({k: v[rows] for k, v in pool_sets.items()}, inputs.pool_llm[rows])
    )
    test_sets = {recipes.STATES: inputs.test_h, recipes.MINILM: inputs.test_x}
    test_probs = expected.model.predict_proba(recipes.recipe_vectors(recipe, test_sets), inputs.test_llm)
    assert taught["recipe"] == recipe.name and taught["pseudo_labels"] == expected.pseudo_labels
    assert abs(expected.pseudo_labels - self_training.TEACH_SHARE * len(rows)) <= 3  # split by label, each rounded
    assert taught["test"] == pytest.approx(simulation.macro_f1(inputs.test_y, test_probs, 3))
    # Without hidden states (an API engine) nothing is taught; the results and the table carry it.
    assert simulation.taught(replace(inputs, pool_h=None, test_h=None)) is None
    assert results["zero_shot"]["taught"] == taught
    assert "before the first label, state_blend taught by the LLM's" in reports.compare_table(results)
