"""The loop on a config with several questions, simulated: every question learns from the labels, and the pool is
ranked across the questions (the backend's default), by the first question alone, or at random.

People label a random seed set of the pool, then batches of the tasks the ranking puts first; a person answers
every question of a task. After each batch every question's model is fitted again on its labels (the mixed recipe,
the first of the loop's candidates: backend/learning/classifier.py; a question with too few labels keeps the LLM's
answers) and scored on a held-out test split: macro-F1 per question (a multi-label question's over its labels).
The ranking reads each question's probabilities on the pool as the backend's re-score does (ranking/questions.py,
loop/answers.py). The yardstick of the comparison: the labels each ranking needs before the mean over questions of
the test macro-F1 reaches 95% of what models fitted on the whole pool reach.

The texts' hidden states and the LLM's calibrated answers come from the backend's own feature code
(loop/features.py), cached under the cache directory, so a second run only simulates.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from backend.bench.questions import scores, truth
from backend.bench.results import QuestionsResults, QuestionStep
from backend.errors import LabelloopError
from backend.labelstudio.schema import Config, Schema
from backend.learning import classifier, recipes
from backend.loop import training
from backend.loop.answers import ranking_inputs
from backend.loop.features import MINILM, TextFeatures
from backend.ranking import questions as question_ranking

RECIPE = recipes.RECIPES["mixed"]  # the loop's first candidate
# The mean over questions (the default); weighed by what each still has to learn (RANK_QUESTIONS=learning); the
# first question alone; uniform draws.
RANKINGS = ("across", "learning", "first", "random")
REACH = 0.95  # of the full-pool models' mean macro-F1


class QuestionLoopError(LabelloopError, ValueError):
    """A run that cannot be simulated (too small a set, an unknown ranking); the message says why."""

    http_status = 400


@dataclass
class Features:
    """What the simulation reads, one row per item (pool first, then test)."""

    vectors: dict[str, np.ndarray]  # recipes.STATES and recipes.MINILM
    llm: dict[str, np.ndarray]  # every question's calibrated LLM probabilities
    y: dict[str, np.ndarray]  # every question's truth (label indices, or a 0/1 matrix for a multi-label question)
    version: str  # the LLM version that answered
    seconds: float  # the LLM's pass, when it was not cached


def features(
    text: TextFeatures, config: Config, items: Sequence[dict], chunk: int = 64, progress: bool = True
) -> Features:
    """The items' vectors and LLM answers through the backend's caches (`text`), saved after every chunk."""
    texts = [item["text"] for item in items]
    states = text.features()
    if states == MINILM:
        raise QuestionLoopError("the simulation reads the LLM's hidden states: LLM_FEATURE_DEPTH must be above 0")
    started = time.perf_counter()
    for start in tqdm(range(0, len(texts), chunk), desc="LLM pass", unit="chunk", disable=not progress):
        text.vectors(config, texts[start : start + chunk], states)
        text.save()
    seconds = time.perf_counter() - started
    vectors = {
        recipes.STATES: text.vectors(config, texts, states),
        recipes.MINILM: text.vectors(config, texts, MINILM),
    }
    text.save()
    llm, version = text.llm_answers(config, texts)
    return Features(vectors, llm, {q.from_name: truth(q, items) for q in config.questions}, version, seconds)


def _fit_and_score(
    config: Config, f: Features, train: np.ndarray, rows: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every question's probabilities on `rows` from a model fitted on `train` (the LLM's where none can be), and
    the labels each fitted model learned (as ModelSet.learned gives the ranking)."""
    out, learned = {}, {}
    for q in config.questions:
        name = q.from_name
        try:
            own = {k: v[train] for k, v in f.vectors.items()}
            model = RECIPE.fit(recipes.Labeled(own, f.llm[name][train], f.y[name][train], len(q.labels)))
            out[name] = model.predict_proba(
                recipes.recipe_vectors(RECIPE, {k: v[rows] for k, v in f.vectors.items()}), f.llm[name][rows]
            )
            learned[name] = model.learned
        except classifier.TrainingError:
            out[name] = f.llm[name][rows]
    return out, learned


def _test_f1(config: Config, f: Features, probs: dict[str, np.ndarray], test: np.ndarray) -> dict[str, float]:
    return {q.from_name: scores(q, f.y[q.from_name][test], probs[q.from_name])["macro_f1"] for q in config.questions}


def run_one(
    config: Config,
    f: Features,
    pool: np.ndarray,
    test: np.ndarray,
    *,
    ranking: str,
    seed: int,
    seed_size: int,
    batch: int,
    budget: int,
    strategy: str = "margin",
) -> list[dict]:
    """One simulated loop: a step per batch, each with the labels so far and every question's test macro-F1."""
    if ranking not in RANKINGS:
        raise QuestionLoopError(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")
    rng = np.random.default_rng(seed)
    labeled = list(rng.choice(len(pool), size=min(seed_size, len(pool)), replace=False))
    weights = {config.primary.from_name: 1.0} if ranking == "first" else {q.from_name: 1.0 for q in config.questions}
    steps = []
    while True:
        both = np.concatenate([pool, test])
        probs, learned = _fit_and_score(config, f, pool[labeled], both)
        f1 = _test_f1(config, f, {k: v[len(pool) :] for k, v in probs.items()}, test)
        steps.append({"labels": len(labeled), "macro_f1": f1, "mean": round(float(np.mean(list(f1.values()))), 4)})
        left = len(pool) - len(labeled)
        if len(labeled) >= budget or not left:
            return steps
        take = min(batch, left, budget - len(labeled))
        if ranking == "random":
            open_rows = np.setdiff1d(np.arange(len(pool)), labeled)
            labeled += list(rng.choice(open_rows, size=take, replace=False))
            continue
        inputs = ranking_inputs(
            config, {k: v[: len(pool)] for k, v in probs.items()}, {k: v[pool] for k, v in f.llm.items()}, learned
        )
        if ranking == "learning":
            weights = question_ranking.learning_weights(_serving_scores(config, f, pool[labeled]))
        utility = question_ranking.rank(strategy, inputs, weights, labeled_idx=labeled)
        order = np.argsort(-utility, kind="stable")
        labeled += [int(i) for i in order[:take]]


def training_seconds(config: Config, f: Features, rows: np.ndarray) -> dict[str, float]:
    """A training run's fits on `rows`, timed as the backend runs them (each question's recipe chosen by
    cross-validation among the loop's candidates, then fitted; the questions in threads): each question's part as
    its thread saw it, and the whole run's wall-clock time."""
    own = {k: v[rows] for k, v in f.vectors.items()}

    def one(q: Schema) -> float:
        started = time.perf_counter()
        llm, y = f.llm[q.from_name][rows], f.y[q.from_name][rows]
        data = recipes.Labeled(own, llm, y, len(q.labels))
        choice = training.choose(q, recipes.candidates(recipes.STATES), data)
        choice.recipe.fit(data)
        return round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    out = dict(zip(config.names, training.each_question(one, config.questions)))
    return {**out, "all": round(time.perf_counter() - started, 3)}


def _serving_scores(config: Config, f: Features, train: np.ndarray) -> dict[str, float]:
    """Each question's macro-F1 on its labels of what would serve it: the model's out-of-fold, or the LLM's when
    no model can be fitted yet (what a training run records)."""
    out = {}
    own = {k: v[train] for k, v in f.vectors.items()}
    for q in config.questions:
        name = q.from_name
        y, llm = f.y[name][train], f.llm[name][train]
        try:
            oof = RECIPE.out_of_fold(recipes.Labeled(own, llm, y, len(q.labels)), folds=3)
        except classifier.TrainingError:
            oof = llm
        out[name] = training.macro_f1(y, q.decisions(oof))
    return out


def labels_to_reach(steps: Sequence[dict], target: float) -> int | None:
    """The labels of the first step whose mean macro-F1 is at or above `target`; None if none is."""
    return next((s["labels"] for s in steps if s["mean"] >= target), None)


def simulate(
    config: Config,
    f: Features,
    pool_size: int,
    *,
    seeds: int,
    seed_size: int,
    batch: int,
    budget: int,
    rankings: Sequence[str] = RANKINGS,
    strategy: str = "margin",
    progress: bool = True,
) -> QuestionsResults:
    """Every ranking, `seeds` times, on the first `pool_size` items as the pool and the rest as the test split."""
    n = len(next(iter(f.y.values())))
    if not 0 < pool_size < n:
        raise QuestionLoopError(f"the set has {n} items: the pool of {pool_size} must leave some to test on")
    pool, test = np.arange(pool_size), np.arange(pool_size, n)
    zero = _test_f1(config, f, {k: v[test] for k, v in f.llm.items()}, test)
    full, _ = _fit_and_score(config, f, pool, test)
    full_f1 = _test_f1(config, f, full, test)
    target = REACH * float(np.mean(list(full_f1.values())))
    out: QuestionsResults = {
        "pool": len(pool),
        "test": len(test),
        "seeds": seeds,
        "seed_size": seed_size,
        "batch": batch,
        "budget": budget,
        "strategy": strategy,
        "recipe": RECIPE.name,
        "zero_shot": zero,
        "full_pool": {**full_f1, "mean": round(float(np.mean(list(full_f1.values()))), 4)},
        "target": round(target, 4),
        "training_seconds": training_seconds(config, f, pool),
        "load_average": round(os.getloadavg()[0], 2),
        "rankings": {},
    }
    runs = [(r, s) for r in rankings for s in range(seeds)]
    done: dict[str, list[list[dict]]] = {r: [] for r in rankings}
    for ranking, seed in tqdm(runs, desc="loops", unit="run", disable=not progress):
        done[ranking].append(
            run_one(
                config,
                f,
                pool,
                test,
                ranking=ranking,
                seed=seed,
                seed_size=seed_size,
                batch=batch,
                budget=budget,
                strategy=strategy,
            )
        )
    for ranking, per_seed in done.items():
        reached = [labels_to_reach(steps, target) for steps in per_seed]
        out["rankings"][ranking] = {
            "curve": _mean_curve(per_seed),
            "labels_to_target": reached,
            "labels_to_target_mean": (
                round(float(np.mean([r for r in reached if r is not None])), 1) if None not in reached else None
            ),
        }
    return out


def _mean_curve(per_seed: list[list[dict]]) -> list[QuestionStep]:
    """The steps averaged over seeds (every seed takes the same steps)."""
    curve: list[QuestionStep] = []
    for steps in zip(*per_seed):
        names = steps[0]["macro_f1"]
        curve.append(
            {
                "labels": steps[0]["labels"],
                "macro_f1": {k: round(float(np.mean([s["macro_f1"][k] for s in steps])), 4) for k in names},
                "mean": round(float(np.mean([s["mean"] for s in steps])), 4),
            }
        )
    return curve


def plot(result: QuestionsResults, path: Path) -> None:
    """Mean macro-F1 over questions against labels, a line per ranking, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in result["rankings"].items():
        ax.plot([s["labels"] for s in r["curve"]], [s["mean"] for s in r["curve"]], label=name, marker=".")
    ax.axhline(result["target"], linestyle="--", color="grey", label=f"{REACH:.0%} of the full pool's")
    ax.set_xlabel("labeled tasks (every question answered)")
    ax.set_ylabel("macro-F1 on test, mean over questions")
    ax.set_title(f"{result.get('config', '')}: ranking across questions or by the first")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
