"""Self-training below 50 labels: a project's first labels teach the chosen recipe, it answers a sample of the
project's unlabeled texts, its most confident answers join the labels as pseudo-labels, and the recipe is fitted
again on both.

The rule was fixed on the pool splits of the packaged corpora (posts, R8, Rotten Tomatoes; pool 400, ten seeds,
docs/data.md) before any test split was read: one round, as many pseudo-labels per predicted label as there are
labels per label, gained at 10, 20 and 30 labels on every corpus (+0.003 to +0.099 macro-F1) and lost from 50 labels
on (-0.003 on Rotten Tomatoes at 50, -0.004 to -0.015 on the mean at 100). Cross-validation cannot see the gain (the
self-trained folds scored higher in only 3 to 8 of 10 runs at 20-40 labels), so it is a rule by label count, not a
candidate the folds choose; the promotion gate still judges the recipe by its own out-of-fold answers.

The unlabeled texts are a fixed random sample of at most SAMPLE: the rule was measured with about 380 unlabeled
texts, a larger pool would hand out only its most extreme answers, and the sample bounds what a run reads.

Before the first label (teach, SELF_TEACH=1): the LLM's own surest answers on the sample, TEACH_SHARE of it split by
the shares of its answers, are the only labels of TEACH_RECIPE. Off by default: it gained on two packaged corpora and
lost on the third, so a team's pilot decides (labelloop compare-strategies reports it beside the LLM alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.learning import recipes
from backend.learning.classifier import Model

BELOW = 50  # labels: a question with fewer is self-trained
SAMPLE = 400  # unlabeled texts the pseudo-labels are drawn from, at most
# Before the first label (SELF_TEACH): the recipe the LLM's surest answers teach, and what share of the sample
# teaches it. Of mixed, state blend and MiniLM blend at 0.1 to 1.0 of the sample, the best mean gain over the LLM
# alone on the packaged corpora's pool splits (docs/data.md): +0.038 posts, +0.028 Rotten Tomatoes, -0.031 R8.
TEACH_RECIPE = "state_blend"
TEACH_SHARE = 0.4
TEACH_MIN = 2  # answers of each label the LLM gives, at least


@dataclass(frozen=True)
class Unlabeled:
    """Unlabeled texts as a recipe reads them: their vector sets (at least those the recipe reads) and the LLM's
    probabilities."""

    vectors: recipes.Vectors
    llm: np.ndarray

    def __len__(self) -> int:
        return len(self.llm)


@dataclass(frozen=True)
class SelfTrained:
    """The refitted model and what it learned from beyond the labels."""

    model: Model
    unlabeled: int  # the texts the pseudo-labels were drawn from
    pseudo_labels: int  # unlabeled texts joined with their predicted label
    per_label: dict[int, int]  # how many of them per predicted label index


def applies(recipe: recipes.Recipe, data: recipes.Labeled, below: int = BELOW) -> bool:
    """Whether the rule self-trains this fit: a trained recipe (one that reads vectors) on fewer than `below`
    single-choice labels (SELF_TRAIN_BELOW; 0: never). The LLM under a calibration is fitted to nothing and stays as
    it is."""
    return bool(recipe.reads) and np.ndim(data.y) == 1 and 0 < len(data.y) < below


def sample(n: int, seed: int = 0) -> np.ndarray:
    """Which of `n` texts (in a fixed order, e.g. by task id) the pseudo-labels are drawn from, the labeled among
    them left out: all of them up to SAMPLE, else a random SAMPLE, the same at every run for the same texts."""
    if n <= SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, SAMPLE, replace=False))


def self_train(
    recipe: recipes.Recipe, data: recipes.Labeled, model: Model, unlabeled: Unlabeled, seed: int = 0
) -> SelfTrained:
    """One round: `model` (recipe fitted on `data`) answers `unlabeled`; for each label the answers it gives most
    confidently, len(labels) / n_labels of them, join `data`; the recipe is fitted again on both."""
    probs = model.predict_proba(recipes.recipe_vectors(recipe, unlabeled.vectors), unlabeled.llm)
    per_label = max(1, len(data.y) // data.n_labels)
    extra, counts = _surest(probs, [per_label] * data.n_labels)
    joined = recipes.Labeled(
        {name: np.vstack([data.vectors[name], unlabeled.vectors[name][extra]]) for name in recipe.reads},
        None if data.llm is None else np.vstack([data.llm, unlabeled.llm[extra]]),
        np.concatenate([np.asarray(data.y, dtype=int), probs.argmax(axis=1)[extra]]),
        data.n_labels,
    )
    return SelfTrained(recipe.fit(joined, seed=seed), len(unlabeled), len(extra), counts)


def teach(recipe: recipes.Recipe, unlabeled: Unlabeled, share: float = TEACH_SHARE, seed: int = 0) -> SelfTrained:
    """Before the first label: `recipe` fitted on the LLM's surest answers (`unlabeled.llm`) alone, `share` of the
    texts in all, split by how often the LLM gives each label (at least TEACH_MIN of each it gives).
    TrainingError when they are too few to fit."""
    probs = np.asarray(unlabeled.llm)
    guess = probs.argmax(axis=1)
    given = np.bincount(guess, minlength=probs.shape[1])
    wanted = [max(TEACH_MIN, round(share * n)) if n else 0 for n in given]
    rows, counts = _surest(probs, wanted)
    taught = recipes.Labeled(
        {name: unlabeled.vectors[name][rows] for name in recipe.reads}, probs[rows], guess[rows], probs.shape[1]
    )
    return SelfTrained(recipe.fit(taught, seed=seed), len(unlabeled), len(rows), counts)


def _surest(probs: np.ndarray, wanted: list[int]) -> tuple[np.ndarray, dict[int, int]]:
    """Rows of the `wanted[label]` answers given most confidently per label, and how many each label got."""
    guess, confidence = probs.argmax(axis=1), probs.max(axis=1)
    chosen: list[np.ndarray] = []
    counts: dict[int, int] = {}
    for label, n in enumerate(wanted):
        rows = np.flatnonzero(guess == label)
        top = rows[np.argsort(-confidence[rows], kind="stable")][:n]
        if len(top):
            chosen.append(top)
            counts[label] = len(top)
    return (np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)), counts


def fit(
    recipe: recipes.Recipe,
    data: recipes.Labeled,
    unlabeled: Unlabeled | None,
    below: int = BELOW,
    seed: int = 0,
) -> tuple[Model, SelfTrained | None]:
    """The recipe fitted on `data`, self-trained on `unlabeled` where the rule applies (applies(..., below)); what
    self-training joined, or None. The one place training runs and the simulations fit a chosen recipe."""
    model = recipe.fit(data, seed=seed)
    if unlabeled is None or not len(unlabeled) or not applies(recipe, data, below):
        return model, None
    trained = self_train(recipe, data, model, unlabeled, seed)
    return trained.model, trained
