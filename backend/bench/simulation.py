"""Simulated annotation: how many labels each ranking strategy needs, with the corpus labels as the annotator.

The set-up (`load_inputs`): the fixed 600-item test split of `evaluation.splits()` (optionally subsampled), and a
pool, a stratified sample of the rest of the Rotten Tomatoes corpus, disjoint from the test and calibration splits.
Everything the models read is computed once per text and cached on disk: sentence embeddings, the LLM's label
log-probabilities (calibrated on the fly) and, for the pool, the LLM judges' Yes/No log-probabilities
(backend/ranking/judge.py). Cache files are named by a hash of the model identity and the prompt, rows by the text's
SHA-256 (backend/learning/vectors.py), so a re-run only scores texts it has not seen.

The loop (`simulate`), for one setup (--kind), strategy and seed: label `seed_size` random pool items, then repeat
fit → measure macro-F1 on the test split → rank the unlabeled pool with the strategy → label the top `batch`,
until `budget` labels. The model that ranks is the setup being evaluated (the blend's probabilities feed the
blend's uncertainty strategies); "disagreement" and "committee" also read the LLM's calibrated probabilities of
the pool, which the backend has at serving time as well. The same seed gives every strategy the same seed set, so strategies are compared
on paired runs.

The summary (`compare`): per setup and strategy, the learning curve (mean and std over seeds), its area (mean
macro-F1 over the labels axis, trapezoids), and the labels needed to reach TARGET_FRACTION (95%) of the macro-F1 of
a model of the same setup trained on the whole pool. Rule for `labels_to_target`: the mean over seeds when every
seed reaches the target within the budget, else null (a mean over only the seeds that got there would flatter a
strategy); `labels_to_target_per_seed` and `reached` show the rest.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from backend import corpus
from backend.bench import datasets, evaluation, lexicon
from backend.bench.results import CompareResults, InputsInfo, SetupBlock, StrategyRuns, Taught
from backend.errors import LabelloopError
from backend.learning import classifier, recipes, self_training
from backend.llm import calibration as cal
from backend.paths import DEMO_CONFIG
from backend.ranking import judge, strategies

TARGET_FRACTION = 0.95
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "labelloop" / "simulation"
POOL_SEED = 0
EMBEDDING_MODEL = "all-MiniLM-L6-v2"

# Strategy name -> judge variant, for the LLM-judged strategies.
JUDGED = {name: name.removeprefix("llm_") for name, s in strategies.REGISTRY.items() if s.llm_judged}
# A hybrid with one LLM judge next to the default signals; "informative" was picked before any run, as the
# question closest to what a ranking wants. A variant of the simulation's own, not a strategy a project can serve.
HYBRID_LLM = "hybrid_llm"
HYBRID_LLM_WEIGHTS: Mapping[str, float] = {**strategies.DEFAULT_HYBRID_WEIGHTS, "llm_informative": 1.0}


def known_strategies() -> tuple[str, ...]:
    """Every strategy the simulation can run: the registered ones (backend/ranking/strategies.py), then hybrid_llm."""
    return (*strategies.REGISTRY, HYBRID_LLM)


AUTO = "auto"
EMBEDDINGS, STATES = "embeddings", "states"


@dataclass(frozen=True)
class Setup:
    """What a simulated project trains (the commands' --kind, the results' "kinds"): one learner
    (classifier.LEARNERS) over one set of text vectors (MiniLM embeddings, or the LLM's own hidden state where the
    answer begins, as the loop serves it), or AUTO: the recipe its labels choose (recipes.choose) on the hidden state
    and MiniLM, as the backend serves it."""

    name: str
    learner: str  # a classifier.LEARNERS name, or AUTO
    vectors: str  # EMBEDDINGS or STATES


# "llm_state" is what the backend serves; "state_fixed" the one recipe it served before (the state blend at
# C = 0.03), "llm_refit" the LLM's log-probabilities alone re-weighted, for comparison.
SETUPS: dict[str, Setup] = {
    setup.name: setup
    for setup in (
        Setup("classifier", "classifier", EMBEDDINGS),
        Setup("blend", "blend", EMBEDDINGS),
        Setup("llm_state", AUTO, STATES),
        Setup("state_fixed", "state_blend", STATES),
        Setup("llm_refit", "llm_refit", EMBEDDINGS),  # reads no vectors; EMBEDDINGS so any engine can run it
    )
}
DEFAULT_SETUPS = ("classifier", "blend", "llm_state")  # compared by default; the others on request
SERVED_SETUP = "llm_state"
CURVE_SIZES = (20, 50, 100, 200, 500, 1000)
# Learning curves and the strategy comparison use disjoint seeds, so nothing a curve informed is judged on them.
STRATEGY_SEED_OFFSET = 100
LABELS_TO_TARGET_RULE = (
    "mean over seeds of the first labels-axis point whose macro-F1 reaches the target; "
    "null unless every seed reaches it within the budget"
)


class SimulationError(LabelloopError, ValueError):
    """Settings the simulation cannot run with; the message says which and why."""

    http_status = 400


@dataclass
class Inputs:
    """Everything the loop reads, as arrays: rows of the pool and of the test split."""

    labels: tuple[str, ...]
    pool_x: np.ndarray  # (n_pool, dim) sentence embeddings
    pool_llm: np.ndarray  # (n_pool, n_labels) calibrated LLM probabilities
    pool_y: np.ndarray  # (n_pool,) label indices: the simulated annotator's answers
    test_x: np.ndarray
    test_llm: np.ndarray
    test_y: np.ndarray
    pool_h: np.ndarray | None = None  # (n_pool, hidden) the LLM's hidden state where the answer begins
    test_h: np.ndarray | None = None
    judged: dict[str, np.ndarray] = field(default_factory=dict)  # strategy name -> pool utility (llm_*)
    # The test and pool rows' raw log-probabilities of the calibration's feature strings (info["features"]), for
    # comparing calibrations without scoring the texts again.
    test_features: np.ndarray | None = None
    pool_features: np.ndarray | None = None
    # The LLM under each label-free calibration, as shifts of the served probabilities (calibration.shifts): the
    # served setup's labels choose among them too, as the backend's do.
    shifts: dict[str, tuple[float, ...]] = field(default_factory=dict)
    info: InputsInfo = field(default_factory=lambda: InputsInfo())  # where the inputs came from, for the results
    # What a trained model reads beside its vectors where it is not the served answers (a cascade: its first model's
    # own, backend/llm/cascade.py); None: the served ones.
    pool_read: np.ndarray | None = None
    test_read: np.ndarray | None = None

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def split(self) -> int:
        """The hidden state's width: where the served setup's side-by-side vectors change to MiniLM's."""
        return 0 if self.pool_h is None else self.pool_h.shape[1]

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(pool, test) LLM probabilities a trained model reads."""
        if self.pool_read is None or self.test_read is None:
            return self.pool_llm, self.test_llm
        return self.pool_read, self.test_read

    def vectors(self, setup: str) -> tuple[np.ndarray, np.ndarray]:
        """(pool, test) vectors a model of `setup` reads: the served setup's are the hidden state and the MiniLM
        embedding side by side (its candidates read either or both)."""
        if SETUPS[setup].vectors == EMBEDDINGS:
            return self.pool_x, self.test_x
        if self.pool_h is None or self.test_h is None:
            raise SimulationError(f"kind {setup!r} needs the LLM's hidden states, which this engine does not expose")
        if SETUPS[setup].learner == AUTO:
            return np.hstack([self.pool_h, self.pool_x]), np.hstack([self.test_h, self.test_x])
        return self.pool_h, self.test_h


@dataclass
class Run:
    """One simulated annotation: macro-F1 on the test split after each batch."""

    labels: np.ndarray  # labels-axis: number of labeled pool items at each measurement, increasing
    f1: np.ndarray  # macro-F1 on the test split at each point
    order: np.ndarray  # pool rows in the order they were labeled (seed set first)


# ---------------------------------------------------------------------------------------------------------------
# the loop


def macro_f1(y_true: np.ndarray, probs: np.ndarray, n_labels: int) -> float:
    return float(f1_score(y_true, probs.argmax(axis=1), labels=list(range(n_labels)), average="macro", zero_division=0))


def _sets(vectors: np.ndarray, split: int) -> dict[str, np.ndarray]:
    # The served setup's vectors are the hidden state and MiniLM side by side (Inputs.vectors), split back here.
    return {recipes.STATES: vectors[:, :split], recipes.MINILM: vectors[:, split:]}


def _chosen(
    vectors: np.ndarray,
    llm: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    seed: int,
    split: int,
    shifts: Mapping[str, tuple[float, ...]] | None = None,
) -> recipes.Choice:
    likely = recipes.likeliest(dict(shifts or {}), llm, y)
    return recipes.choose(
        ((likely,) if likely else ()) + recipes.candidates(recipes.STATES),
        recipes.Labeled(_sets(vectors, split), llm, y, n_labels),
        lambda t, p: macro_f1(t, p, n_labels),
        seed=seed,
        folds=3 if len(y) > 500 else 5,
    )  # as backend/loop/training.py


def fit_setup(
    setup: str,
    vectors: np.ndarray,
    llm: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    *,
    seed: int = 0,
    split: int = 0,
    shifts: Mapping[str, tuple[float, ...]] | None = None,
    unlabeled: tuple[np.ndarray, np.ndarray] | None = None,
):
    """A model of `setup` on these rows, as the backend fits it (AUTO: the recipe the rows' labels choose among the
    trained ones and the LLM alone under the calibration in `shifts` the labels find likeliest, recipes.likeliest,
    as the backend chooses before any trained model serves, self-trained below 50 labels on `unlabeled` (vectors,
    LLM probabilities) where given; `split` the hidden state's width in Inputs.vectors' side-by-side matrix); its
    predict_proba reads the same vectors."""
    learner = SETUPS[setup].learner
    if learner == AUTO:
        choice = _chosen(vectors, llm, y, n_labels, seed, split, shifts)
        data = recipes.Labeled(_sets(vectors, split), llm, y, n_labels)
        rest = None if unlabeled is None else self_training.Unlabeled(_sets(unlabeled[0], split), unlabeled[1])
        model, _ = self_training.fit(choice.recipe, data, rest, seed=seed)
        return _Reading(model, choice.recipe, split)
    return classifier.fit(learner, vectors, llm, y, n_labels, seed=seed)


@dataclass
class _Reading:
    """A chosen model fed the columns its recipe reads out of the served setup's side-by-side vectors."""

    model: Any
    recipe: recipes.Recipe
    split: int

    def predict_proba(self, vectors: np.ndarray, llm: np.ndarray | None = None) -> np.ndarray:
        return self.model.predict_proba(recipes.recipe_vectors(self.recipe, _sets(vectors, self.split)), llm)


def out_of_fold_setup(
    setup: str,
    vectors: np.ndarray,
    llm: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    *,
    seed: int = 0,
    split: int = 0,
    shifts: Mapping[str, tuple[float, ...]] | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities of a model of `setup` (AUTO: of the recipe chosen on all these rows, as the backend's
    promotion gate reads them)."""
    learner = SETUPS[setup].learner
    if learner == AUTO:
        return _chosen(vectors, llm, y, n_labels, seed, split, shifts).oof
    return classifier.out_of_fold(learner, vectors, llm, y, n_labels, seed=seed)


def reads_llm(setup: str) -> bool:
    learner = SETUPS[setup].learner
    return learner == AUTO or classifier.is_blend(learner)


def _fit_predict(
    inputs: Inputs, setup: str, labeled: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(pool probabilities, test probabilities) of a model of `setup` trained on the labeled pool rows, and the recipe
    its labels chose (AUTO; "llm" when too few labels left the LLM serving; None for a fixed recipe)."""
    pool_v, test_v = inputs.vectors(setup)
    pool_read, test_read = inputs.read()
    auto = SETUPS[setup].learner == AUTO
    # As a training run samples the unlabeled tasks: drawn from the whole pool, the labeled left out.
    rest = np.setdiff1d(self_training.sample(len(inputs.pool_y)), labeled)
    try:
        model = fit_setup(
            setup,
            pool_v[labeled],
            pool_read[labeled],
            inputs.pool_y[labeled],
            inputs.n_labels,
            seed=seed,
            split=inputs.split,
            shifts=inputs.shifts,
            unlabeled=(pool_v[rest], pool_read[rest]),
        )
        chosen = model.recipe.name if auto else None
        return model.predict_proba(pool_v, pool_read), model.predict_proba(test_v, test_read), chosen
    except classifier.TrainingError:
        # Too few labels of too few classes to fit: a blend serves the LLM alone (as the backend does); the
        # classifier knows nothing but the label counts, so it predicts their (smoothed) shares everywhere.
        if reads_llm(setup):
            return inputs.pool_llm, inputs.test_llm, "llm" if auto else None
        prior = np.bincount(inputs.pool_y[labeled], minlength=inputs.n_labels) + 1.0
        prior /= prior.sum()
        return np.tile(prior, (len(inputs.pool_y), 1)), np.tile(prior, (len(inputs.test_y), 1)), None


def taught(inputs: Inputs) -> Taught | None:
    """What the served setup serves before the first label: its recipe taught by the LLM's surest answers on the
    pool's unlabeled sample (self_training.teach, as a re-score teaches it); None without hidden states or when the
    LLM's answers cannot teach (one label only)."""
    if inputs.pool_h is None:
        return None
    pool_v, test_v = inputs.vectors(SERVED_SETUP)
    pool_read, test_read = inputs.read()
    rows = self_training.sample(len(inputs.pool_y))
    recipe = recipes.RECIPES[self_training.TEACH_RECIPE]
    sample = {name: v[rows] for name, v in _sets(pool_v, inputs.split).items()}
    try:
        trained = self_training.teach(recipe, self_training.Unlabeled(sample, pool_read[rows]))
    except classifier.TrainingError:
        return None
    model = _Reading(trained.model, recipe, inputs.split)
    return {
        "test": macro_f1(inputs.test_y, model.predict_proba(test_v, test_read), inputs.n_labels),
        "pool": macro_f1(inputs.pool_y, model.predict_proba(pool_v, pool_read), inputs.n_labels),
        "recipe": recipe.name,
        "pseudo_labels": trained.pseudo_labels,
    }


def _rank(strategy: str, probs: np.ndarray, inputs: Inputs, labeled: np.ndarray, seed: int, batch: int) -> np.ndarray:
    weights = None
    name = strategy
    if strategy == HYBRID_LLM:
        name, weights = "hybrid", dict(HYBRID_LLM_WEIGHTS)
    elif strategies.REGISTRY[strategy].tunable:  # explicit, or rank() would fuse every judge passed as an extra too
        weights = dict(strategies.REGISTRY[strategy].fuses)
    # diversity_k = batch: the batch is chosen by k-center greedy, not the batch points nearest each other's gap.
    # llm_probs: the LLM's probabilities, which the backend has for every task too (disagreement, committee).
    return strategies.rank(
        name,
        probs,
        inputs.pool_x,
        labeled,
        seed=seed,
        weights=weights,
        extra_utilities=inputs.judged,
        diversity_k=batch,
        llm_probs=inputs.pool_llm,
    )


def check_settings(n_pool: int, seed_size: int, batch: int, budget: int) -> None:
    for name, value in (("seed size", seed_size), ("batch", batch), ("budget", budget), ("pool", n_pool)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise SimulationError(f"{name} must be a positive integer, got {value!r}")
    if budget > n_pool:
        raise SimulationError(f"budget ({budget}) exceeds the pool ({n_pool} items)")
    if seed_size > budget:
        raise SimulationError(f"seed size ({seed_size}) exceeds the budget ({budget})")


def needed_judges(names: Iterable[str]) -> list[str]:
    """The judge variants the strategies `names` read."""
    names = set(names)
    needed = {JUDGED[n] for n in names if n in JUDGED}
    if HYBRID_LLM in names:
        needed |= {JUDGED[w] for w in HYBRID_LLM_WEIGHTS if w in JUDGED}
    return [v for v in judge.VARIANTS if v in needed]


def check_strategies(names: Sequence[str]) -> None:
    known = known_strategies()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SimulationError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(known)}")
    if not names:
        raise SimulationError("no strategy given")


def simulate(inputs: Inputs, setup: str, strategy: str, seed: int, seed_size: int, batch: int, budget: int) -> Run:
    """One annotation run (see the module docstring); deterministic for a given seed."""
    n_pool = len(inputs.pool_y)
    check_settings(n_pool, seed_size, batch, budget)
    check_strategies([strategy])
    missing = [v for v in needed_judges([strategy]) if f"llm_{v}" not in inputs.judged]
    if missing:
        raise SimulationError(f"strategy {strategy} needs the LLM judge(s) {', '.join(missing)}, not in the inputs")
    rng = np.random.default_rng(seed)
    order = list(rng.choice(n_pool, size=seed_size, replace=False))
    points, scores = [], []
    while True:
        labeled = np.array(order, dtype=np.int64)
        pool_probs, test_probs, _ = _fit_predict(inputs, setup, labeled, seed)
        points.append(len(order))
        scores.append(macro_f1(inputs.test_y, test_probs, inputs.n_labels))
        if len(order) >= budget:
            break
        u = _rank(strategy, pool_probs, inputs, labeled, seed, batch)
        order.extend(strategies.select(u, min(batch, budget - len(order))).tolist())
    return Run(np.array(points), np.array(scores), np.array(order, dtype=np.int64))


def curve_auc(labels: Sequence[float] | np.ndarray, f1: Sequence[float] | np.ndarray) -> float:
    """Mean macro-F1 over the labels axis (trapezoids / span); the single value when the curve has one point."""
    x, y = np.asarray(labels, dtype=float), np.asarray(f1, dtype=float)
    if x.size == 1:
        return float(y[0])
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def labels_to_target(labels: Sequence[int] | np.ndarray, f1: Sequence[float] | np.ndarray, target: float) -> int | None:
    """The first labels-axis point whose macro-F1 reaches `target`, or None if the curve never does."""
    hits = np.flatnonzero(np.asarray(f1) >= target)
    return int(labels[hits[0]]) if hits.size else None


def full_pool_f1(inputs: Inputs, setup: str, seed: int = 0) -> float:
    """Macro-F1 on the test split of a model of `setup` trained on every pool item."""
    pool_v, test_v = inputs.vectors(setup)
    pool_read, test_read = inputs.read()
    model = fit_setup(
        setup,
        pool_v,
        pool_read,
        inputs.pool_y,
        inputs.n_labels,
        seed=seed,
        split=inputs.split,
        shifts=inputs.shifts,
    )
    return macro_f1(inputs.test_y, model.predict_proba(test_v, test_read), inputs.n_labels)


def learning_curve(
    inputs: Inputs, setup: str, seeds: Sequence[int], sizes: Sequence[int] = CURVE_SIZES, chosen: dict | None = None
) -> dict[str, float]:
    """{labels: mean macro-F1 on the test split over seeds} for `setup` trained on that many random pool items
    (sizes above the pool are left out); setup "llm" is the LLM alone, the same at every size. `chosen`, if given,
    collects {labels: {recipe: seeds}}: what the labels chose, for a setup that chooses (AUTO)."""
    curve = {}
    for size in (s for s in sizes if s <= len(inputs.pool_y)):
        scores = []
        for seed in seeds:
            if setup == "llm":
                scores.append(macro_f1(inputs.test_y, inputs.test_llm, inputs.n_labels))
                continue
            labeled = np.random.default_rng(seed).choice(len(inputs.pool_y), size, replace=False)
            _, test_probs, recipe = _fit_predict(inputs, setup, labeled, seed)
            scores.append(macro_f1(inputs.test_y, test_probs, inputs.n_labels))
            if chosen is not None and recipe is not None:
                counts = chosen.setdefault(str(size), {})
                counts[recipe] = counts.get(recipe, 0) + 1
        curve[str(size)] = float(np.mean(scores))
    return curve


def _summary(runs: list[Run], target: float) -> StrategyRuns:
    labels = runs[0].labels
    curves = np.stack([r.f1 for r in runs])
    aucs = [curve_auc(r.labels, r.f1) for r in runs]
    per_seed = [labels_to_target(r.labels, r.f1, target) for r in runs]
    reached = [v for v in per_seed if v is not None]
    return {
        "auc": float(np.mean(aucs)),
        "auc_std": float(np.std(aucs)),
        "auc_per_seed": aucs,
        "labels_to_target": float(np.mean(reached)) if len(reached) == len(runs) else None,
        "labels_to_target_per_seed": per_seed,
        "reached": len(reached),
        "final_f1": float(curves[:, -1].mean()),
        "curve": {
            "labels": labels.tolist(),
            "mean": curves.mean(axis=0).tolist(),
            "std": curves.std(axis=0).tolist(),
        },
    }


def compare(
    inputs: Inputs,
    strategy_names: Sequence[str] | None = None,
    setups: Sequence[str] = DEFAULT_SETUPS,
    seeds: Sequence[int] = range(5),
    *,
    seed_size: int = 20,
    batch: int = 20,
    budget: int = 400,
    progress: bool = True,
) -> CompareResults:
    """Every setup's learning curve on random labels (seeds `seeds`), and every (setup, strategy) run on seeds offset
    by STRATEGY_SEED_OFFSET, summarised as the results.json the script writes; `strategy_names` None: all."""
    strategy_names = known_strategies() if strategy_names is None else strategy_names
    check_strategies(strategy_names)
    bad = [k for k in setups if k not in SETUPS]
    if bad or not setups:
        raise SimulationError(f"unknown model kind {', '.join(bad) or '(none)'}; choose from {', '.join(SETUPS)}")
    seeds = list(seeds)
    if not seeds:
        raise SimulationError("no seed given")
    strategy_seeds = [seed + STRATEGY_SEED_OFFSET for seed in seeds]
    check_settings(len(inputs.pool_y), seed_size, batch, budget)
    started = time.perf_counter()
    results: CompareResults = {
        "config": {
            "pool": int(len(inputs.pool_y)),
            "test_size": int(len(inputs.test_y)),
            "curve_seeds": seeds,
            "strategy_seeds": strategy_seeds,
            "curve_sizes": list(CURVE_SIZES),
            "seed_size": seed_size,
            "batch": batch,
            "budget": budget,
            "strategies": list(strategy_names),
            "kinds": list(setups),
            "target_fraction": TARGET_FRACTION,
            "labels_to_target_rule": LABELS_TO_TARGET_RULE,
            "hybrid_weights": dict(strategies.DEFAULT_HYBRID_WEIGHTS),
            "hybrid_llm_weights": dict(HYBRID_LLM_WEIGHTS),
            "committee_weights": dict(strategies.COMMITTEE_WEIGHTS),
            **inputs.info,
        },
        "llm_alone_macro_f1": macro_f1(inputs.test_y, inputs.test_llm, inputs.n_labels),
        "zero_shot": {
            "macro_f1": macro_f1(inputs.test_y, inputs.test_llm, inputs.n_labels),
            "calibration": inputs.info.get("calibration"),
            "by_calibration": inputs.info.get("zero_shot", {}),
            # how close the pool lies to a matching fitted file's texts; it serves auto only at RESEMBLANCE or above
            "resemblance": inputs.info.get("resemblance"),
            "lexicon_macro_f1": inputs.info.get("lexicon_macro_f1"),
            "taught": taught(inputs),
        },
        "served_kind": SERVED_SETUP if SERVED_SETUP in setups else None,
        "kinds": {"llm": {"macro_f1_at": learning_curve(inputs, "llm", seeds)}},
    }
    bar = tqdm(
        total=len(setups) * len(strategy_names) * len(seeds), desc="simulating", unit="run", disable=not progress
    )
    for setup in setups:
        chosen: dict[str, dict[str, int]] = {}
        curve = learning_curve(inputs, setup, seeds, chosen=chosen)
        full = full_pool_f1(inputs, setup)
        target = TARGET_FRACTION * full
        by_strategy: dict[str, StrategyRuns] = {}
        for name in strategy_names:
            runs = []
            for seed in strategy_seeds:
                bar.set_postfix_str(f"{setup} {name} seed {seed}")
                runs.append(simulate(inputs, setup, name, seed, seed_size, batch, budget))
                bar.update()
            by_strategy[name] = _summary(runs, target)
        base = by_strategy["random"].get("labels_to_target") if "random" in by_strategy else None
        for summary in by_strategy.values():
            mine = summary["labels_to_target"]
            summary["ratio_to_random"] = mine / base if mine is not None and base else None
        block: SetupBlock = {
            "macro_f1_at": curve,
            "full_pool_macro_f1": full,
            "target": target,
            "strategies": by_strategy,
        }
        if chosen:
            block["chosen_at"] = chosen
        results["kinds"][setup] = block
    bar.close()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


# ---------------------------------------------------------------------------------------------------------------
# inputs from the corpus and the real models


def available_pool() -> int:
    """How many corpus items lie outside the test and calibration splits."""
    return len(_rest())


def check_pool(pool: int) -> None:
    """SimulationError unless the corpus has `pool` items outside the test and calibration splits."""
    available = available_pool()
    if pool > available:
        raise SimulationError(
            f"--pool {pool} is larger than the {available} corpus items outside the test and calibration splits"
        )


def _rest() -> pd.DataFrame:
    df = corpus.load()
    test, calibration = evaluation.splits()
    return df[~df["text"].isin(set(test["text"]) | set(calibration["text"]))]


def pool_and_test(pool_size: int, test_size: int = evaluation.TEST_SIZE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pool (stratified, disjoint from the test and calibration splits) and the test split or a stratified
    subsample of it; the same on every run."""
    rest = _rest()
    if not 1 <= pool_size <= len(rest):
        raise SimulationError(f"pool must be between 1 and {len(rest)} items (the corpus outside test and calibration)")
    if not 1 <= test_size <= evaluation.TEST_SIZE:
        raise SimulationError(f"test size must be between 1 and {evaluation.TEST_SIZE}")
    test = evaluation.splits()[0]
    if test_size < len(test):
        test = corpus.stratified_sample(test, test_size)
    return corpus.stratified_sample(rest, pool_size), test.reset_index(drop=True)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _cached(
    get: Callable[[list[str]], np.ndarray],
    save: Callable[[], None],
    texts: list[str],
    desc: str,
    progress: bool,
    chunk: int = 128,
) -> np.ndarray:
    """`get` (a cached computation) in chunks, saving after each, so an interrupted run keeps what it scored."""
    rows = []
    for start in tqdm(range(0, len(texts), chunk), desc=desc, unit="chunk", disable=not progress):
        rows.append(get(texts[start : start + chunk]))
        save()
    return np.concatenate(rows)


def load_inputs(
    pool_size: int,
    test_size: int = evaluation.TEST_SIZE,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    judge_variants: Sequence[str] = tuple(judge.VARIANTS),
    *,
    predictor=None,
    embedder=None,
    progress: bool = True,
    feature_depth: float | None = None,
    source: "datasets.Source | None" = None,
    calibration: str = "auto",
) -> Inputs:
    """Pool and test arrays from the corpus (or `source`: a team's file or a packaged corpus, with its config and
    guidelines), the LLM (`predictor`, default: the configured model) and the sentence embedder (default:
    all-MiniLM-L6-v2), through the on-disk caches in `cache_dir`. The LLM's hidden states are taken at
    `feature_depth` of its layers (default: the backend's LLM_FEATURE_DEPTH), in the pass that scores the labels;
    an engine without them leaves the states out.

    The LLM's probabilities are calibrated as the backend would serve a new project on these texts: a fitted file
    matching model and prompt, else the pool calibration measured on the pool's texts (no labels read). Every other
    label-free calibration is measured beside it, on the test split and on the pool, in info["zero_shot"];
    `calibration` names another of them to feed the models instead (e.g. "contextual", what a new project was
    served before the pool was read)."""
    from backend.labelstudio import schema as schemas
    from backend.learning.embeddings import Embedder
    from backend.learning.vectors import VectorCache
    from backend.llm.predictor import SCORER_VERSION
    from backend.serving import service

    for v in judge_variants:
        if v not in judge.VARIANTS:
            raise SimulationError(f"unknown judge variant {v!r}; choose from {', '.join(judge.VARIANTS)}")
    if source is None:
        pool, test = pool_and_test(pool_size, test_size)
        config_xml = DEMO_CONFIG.read_text()
    else:
        pool, test, config_xml = source.pool, source.test, source.config
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)

    from backend.settings import Settings

    settings = Settings.from_env()
    if source is not None:
        settings = replace(settings, guidelines=source.guidelines)
    if predictor is None:
        predictor = service.load_predictor(settings)
    layer = round((settings.llm_feature_depth if feature_depth is None else feature_depth) * predictor.depth)
    if embedder is None:
        embedder = Embedder(cache_dir / f"embeddings-{EMBEDDING_MODEL}.npz")
    schema = schemas.parse_single(config_xml)
    setup = predictor.setup(schema)
    identity = predictor.source.identity
    timings: dict[str, float] = {}

    pool_texts, test_texts = pool["text"].tolist(), test["text"].tolist()
    both = pool_texts + test_texts

    t = time.perf_counter()
    x = _cached(embedder.encode, embedder.save, both, "embeddings", progress)
    timings["embeddings"] = time.perf_counter() - t

    # The calibration's feature log-probabilities are cached, not its output, so a refitted calibration for the
    # same prompt reuses them; every label's verbalizers are scored, which every calibration can read.
    features = tuple(cal.verbalizers(setup.prompt.labels))
    label_cache = VectorCache(
        cache_dir / f"labels-{_digest(SCORER_VERSION, identity, setup.prompt.sha256, *features)}.npz"
    )
    state_cache = VectorCache(
        cache_dir / f"states-L{layer}-{_digest(SCORER_VERSION, identity, setup.prompt.sha256, *features)}.npz"
    )

    def scored(batch: list[str]) -> np.ndarray:
        """Feature log-probabilities, then the hidden states, of one batch; one pass for texts new to both."""
        if not layer:
            return label_cache.get(batch, lambda m: predictor.feature_logprobs(setup, m))

        def compute(missing: list[str]) -> np.ndarray:
            logprobs, states = predictor.scorer.logprobs_and_states(setup.prompt, missing, features, layers=[layer])
            label_cache.put(missing, logprobs)
            return states[:, 0]

        states = state_cache.get(batch, compute)
        return np.hstack([label_cache.get(batch, lambda m: predictor.feature_logprobs(setup, m)), states])

    t = time.perf_counter()

    def save() -> None:
        label_cache.save()
        state_cache.save()

    scores = _cached(scored, save, both, "LLM labels", progress)
    timings["llm_labels"] = time.perf_counter() - t
    n_pool = len(pool_texts)
    raw = scores[:, : len(features)]
    zero_shot = zero_shot_calibrations(predictor, setup, features, raw[:n_pool], pool_texts)
    resemblance = None
    if "fitted" in zero_shot:  # as the backend judges it: the pool's sample against the file's fitting sample
        resemblance = cal.resemblance(zero_shot["fitted"].centroid, cal.centroid(x[sample_rows(pool_texts)]))
    if calibration == "auto":  # as auto serves
        applies = resemblance is None or resemblance >= cal.RESEMBLANCE
        served = zero_shot["fitted"] if "fitted" in zero_shot and applies else zero_shot["domain"]
    elif calibration in zero_shot:
        served = zero_shot[calibration]
    else:
        raise SimulationError(
            f"calibration {calibration!r} is not measured here; choose from auto, {', '.join(zero_shot)}"
        )
    llm = served.apply(raw[:, [features.index(f) for f in served.features]])
    states = scores[:, len(features) :] if layer else None

    judged = {}
    for variant in judge_variants:
        prompt = judge.judge_prompt(predictor.scorer.tokenizer, variant)
        cache = VectorCache(cache_dir / f"judge-{variant}-{_digest(identity, prompt.sha256)}.npz")
        t = time.perf_counter()
        # Only the pool is ranked, so the test split is never judged.
        judged[f"llm_{variant}"] = _cached(
            functools.partial(judge.utilities, predictor.scorer, variant=variant, cache=cache),
            cache.save,
            pool_texts,
            f"LLM judge {variant}",
            progress,
        )
        timings[f"llm_judge_{variant}"] = time.perf_counter() - t

    index = {label: i for i, label in enumerate(schema.labels)}
    pool_y, test_y = pool["label"].map(index).to_numpy(), test["label"].map(index).to_numpy()
    lexicon_f1 = None
    if set(schema.labels) == set(lexicon.LABELS):
        lexicon_f1 = lexicon.lexicon_macro_f1(test_texts, test["label"].tolist())
    return Inputs(
        labels=tuple(schema.labels),
        pool_x=x[:n_pool],
        pool_llm=llm[:n_pool],
        pool_y=pool_y,
        test_x=x[n_pool:],
        test_llm=llm[n_pool:],
        test_y=test_y,
        pool_h=states[:n_pool] if states is not None else None,
        test_h=states[n_pool:] if states is not None else None,
        judged=judged,
        test_features=raw[n_pool:],
        pool_features=raw[:n_pool],
        shifts=cal.shifts(served, {served.method: served, **{m: zero_shot[m] for m in ALTERNATIVES if m in zero_shot}}),
        info={
            "data": source.name if source else "rotten_tomatoes",
            "labels": list(schema.labels),
            "calibration": served.method,
            "resemblance": resemblance,
            "zero_shot": {
                method: {
                    "test": macro_f1(
                        test_y, c.apply(raw[n_pool:, [features.index(f) for f in c.features]]), len(schema.labels)
                    ),
                    "pool": macro_f1(
                        pool_y, c.apply(raw[:n_pool, [features.index(f) for f in c.features]]), len(schema.labels)
                    ),
                }
                for method, c in zero_shot.items()
            },
            "lexicon_macro_f1": lexicon_f1,
            "features": list(features),
            "llm": identity,
            "llm_version": setup.model_version,
            "llm_state_layer": layer or None,
            "embeddings": EMBEDDING_MODEL,
            "pool_label_counts": pool["label"].value_counts().to_dict(),
            "test_label_counts": test["label"].value_counts().to_dict(),
            "input_seconds": {k: round(v, 1) for k, v in timings.items()},
        },
    )


# The label-free calibrations the backend measures on a pool beside the one it serves (predictor._alternatives).
ALTERNATIVES = ("none", "domain", "pool", "fitted+pool")


def sample_rows(pool_texts: Sequence[str]) -> list[int]:
    """The pool rows the backend's pool calibration reads (predictor.pool_sample)."""
    from backend.llm.predictor import pool_sample

    sample = set(pool_sample(pool_texts))
    return [i for i, t in enumerate(pool_texts) if t in sample]


def zero_shot_calibrations(
    predictor, setup, features: Sequence[str], pool_logprobs: np.ndarray, pool_texts: Sequence[str]
) -> dict[str, "cal.Calibration"]:
    """Every label-free calibration of a single question, by method: none, contextual (content-free inputs), domain
    (Fei et al. 2023: random words of the pool), pool (batch calibration on the backend's sample of the pool, as
    served), and fitted when a file matches the model and prompt. `pool_logprobs`: the pool's log-probabilities of
    `features` (the labels' verbalizers)."""
    from backend.llm.predictor import pool_sample

    labels = setup.prompt.labels
    cols = [features.index(label) for label in labels]
    out = {"none": cal.identity(labels)}
    out["contextual"] = cal.contextual(labels, predictor.scorer.label_logprobs(setup.prompt, list(cal.CONTENT_FREE)))
    out["domain"] = cal.domain(
        labels, predictor.scorer.label_logprobs(setup.prompt, cal.domain_texts(pool_sample(pool_texts)))
    )
    rows = sample_rows(pool_texts)
    out["pool"] = cal.pool(cal.identity(labels), pool_logprobs[rows][:, cols])
    if setup.calibration.method == "fitted":
        out["fitted"] = setup.calibration
        fitted_cols = [features.index(f) for f in setup.calibration.features]
        out["fitted+pool"] = cal.pool(setup.calibration, pool_logprobs[rows][:, fitted_cols])
    return out
