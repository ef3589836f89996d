"""Recipes: the models a project's labels may choose among, each one registered object (RECIPES) that knows what it
reads, how to fit it and how to judge it out of fold.

A recipe reads named sets of text vectors (STATES: the LLM's hidden state; MINILM: sentence embeddings) and the LLM's
calibrated probabilities:
- Regression: one learner (classifier.LEARNERS) over one set of vectors;
- Average: the mean of several regressions' probabilities ("mixed": the state blend and the MiniLM blend read
  different vectors and err differently; on the pool splits of the packaged corpora the mean beat either alone at 50
  and 100 labels, docs/data.md);
- Recalibration: the LLM alone under another label-free calibration, fitted to nothing (likeliest() makes one).

The project's own labels choose (`choose`): each candidate's cross-validated score on the labels the project has, the
best kept (ties to the one listed first). The candidates and the rule were chosen on the pool splits of the packaged
corpora, never their test splits (docs/data.md); on those splits the choice was worth +0.04 macro-F1 at 100 labels
over the state blend alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from backend.learning import classifier
from backend.learning.classifier import Model, TrainingError

STATES, MINILM = "states", "minilm"  # the text vectors a recipe reads: the LLM's hidden state, MiniLM embeddings

Vectors = dict[str, np.ndarray]  # {STATES: ..., MINILM: ...}, the rows a recipe reads
Done = dict  # out-of-fold probabilities already computed in one choice, by recipe: shared parts cost no fit more


@dataclass(frozen=True)
class Labeled:
    """What a recipe learns from: the labeled rows' vector sets, the LLM's probabilities a model reads beside them,
    the labels (label indices, or an (n, n_labels) 0/1 matrix for a multi-label question) and how many labels."""

    vectors: Vectors
    llm: np.ndarray | None
    y: np.ndarray
    n_labels: int


class Recipe(Protocol):
    """What every recipe is: a name (in records, `/versions` and the project page), the vector sets its models read
    (in order, side by side: recipe_vectors), a fit, and out-of-fold probabilities as fit() would answer them."""

    @property
    def name(self) -> str: ...

    @property
    def reads(self) -> tuple[str, ...]: ...

    def fit(self, data: Labeled, seed: int = 0) -> Model: ...

    def out_of_fold(self, data: Labeled, folds: int = 5, seed: int = 0, done: Done | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Regression:
    """One learner (classifier.LEARNERS) over one set of vectors; C None: the learner's."""

    learner: str
    vectors: str
    C: float | None = None

    @property
    def name(self) -> str:
        return self.learner if self.C is None else f"{self.learner}(C={self.C:g})"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.vectors,)

    def fit(self, data: Labeled, seed: int = 0) -> Model:
        x = data.vectors[self.vectors]
        return classifier.fit(self.learner, x, data.llm, data.y, data.n_labels, seed=seed, C=self.C)

    def out_of_fold(self, data: Labeled, folds: int = 5, seed: int = 0, done: Done | None = None) -> np.ndarray:
        done = {} if done is None else done
        if self not in done:
            x = data.vectors[self.vectors]
            done[self] = classifier.out_of_fold(
                self.learner, x, data.llm, data.y, data.n_labels, folds=folds, seed=seed, C=self.C
            )
        return done[self]


@dataclass(frozen=True)
class Average:
    """The mean of two regressions' probabilities, each over its own vectors (classifier.Mixed)."""

    name: str
    parts: tuple[Regression, Regression]

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(part.vectors for part in self.parts)

    def fit(self, data: Labeled, seed: int = 0) -> Model:
        fitted = tuple(part.fit(data, seed) for part in self.parts)
        return classifier.Mixed(fitted, data.vectors[self.parts[0].vectors].shape[1])

    def out_of_fold(self, data: Labeled, folds: int = 5, seed: int = 0, done: Done | None = None) -> np.ndarray:
        # The same seed and labels give both parts the same folds: each row is still held out of both.
        done = {} if done is None else done
        first, second = (part.out_of_fold(data, folds, seed, done) for part in self.parts)
        return (first + second) / 2


@dataclass(frozen=True)
class Recalibration:
    """The LLM alone under another label-free calibration: its name and the shift it adds to the served LLM's
    log-probabilities (calibration.shifts)."""

    calibration: str
    shift: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"llm:{self.calibration}"

    @property
    def reads(self) -> tuple[str, ...]:
        return ()

    def fit(self, data: Labeled, seed: int = 0) -> Model:
        return classifier.Recalibrated(self.shift, data.n_labels)

    def out_of_fold(self, data: Labeled, folds: int = 5, seed: int = 0, done: Done | None = None) -> np.ndarray:
        return self.fit(data).predict_proba(np.zeros((len(data.y), 0)), data.llm)  # fitted to nothing


def _registry(*recipes: Recipe) -> dict[str, Recipe]:
    return {recipe.name: recipe for recipe in recipes}


RECIPES: dict[str, Recipe] = _registry(
    Average("mixed", (Regression("state_blend", STATES), Regression("blend", MINILM))),
    Regression("state_blend", STATES),
    Regression("blend", MINILM),
    Regression("classifier", MINILM),
    Regression("llm_refit", MINILM),  # reads no vectors (its learner), listed with MiniLM so any engine can run it
)

# What a project's labels choose among (choose()), by whether the engine hands out hidden states; ties go to the
# first listed.
CANDIDATES: dict[str, tuple[str, ...]] = {
    STATES: ("mixed", "state_blend", "blend"),
    MINILM: ("blend", "llm_refit"),
}


def candidates(vectors: str) -> tuple[Recipe, ...]:
    """The registered recipes a project's labels choose among when its vectors are `vectors` (STATES or MINILM)."""
    return tuple(RECIPES[name] for name in CANDIDATES[vectors])


def recipe_vectors(recipe: Recipe, vectors: Vectors) -> np.ndarray:
    """The matrix a model of `recipe` reads from the vector sets: an average's side by side."""
    if not recipe.reads:
        return np.zeros((len(next(iter(vectors.values()))) if vectors else 0, 0), dtype=np.float32)
    return np.hstack([vectors[name] for name in recipe.reads])


def log_likelihoods(shifts: dict[str, tuple[float, ...]], llm_probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The mean log-likelihood of single-choice labels `y` under the LLM recalibrated by each shift."""
    rows = np.arange(len(y))
    out = {}
    for name, shift in shifts.items():
        probs = classifier.Recalibrated(shift, np.shape(llm_probs)[1]).predict_proba(None, llm_probs)
        out[name] = float(np.log(np.clip(probs[rows, np.asarray(y, dtype=int)], 1e-12, None)).mean())
    return out


def likeliest(shifts: dict[str, tuple[float, ...]], llm_probs: np.ndarray, y: np.ndarray) -> Recalibration | None:
    """The LLM under the label-free calibration in `shifts` that finds single-choice labels `y` likeliest (mean
    log-likelihood), as a candidate for choose(); the first of `shifts` (the served one) on a tie. None without
    shifts or for a multi-label question.

    The likelihood, not macro-F1: on the pool splits of the packaged corpora, letting 20 labels' macro-F1 choose
    among every calibration cost 0.03 of macro-F1 against the likelihood's choice, which named each corpus's best
    measured calibration in 14 of 15 runs (docs/data.md)."""
    if not shifts or np.ndim(y) != 1 or not len(y):
        return None
    likelihoods = log_likelihoods(shifts, llm_probs, y)
    name = max(likelihoods, key=lambda k: likelihoods[k])  # max keeps the first of equals
    return Recalibration(name, shifts[name])


@dataclass
class Choice:
    """The recipe a project's labels chose, its out-of-fold probabilities, and every candidate's score."""

    recipe: Recipe
    oof: np.ndarray
    scores: dict[str, float]


def choose(
    candidates: Sequence[Recipe],
    data: Labeled,
    score: Callable[[np.ndarray, np.ndarray], float],
    seed: int = 0,
    folds: int = 5,
) -> Choice:
    """The candidate whose out-of-fold probabilities score best by `score(y, oof)` on these labels; the first listed
    wins a tie. TrainingError when no candidate can be fitted."""
    best, best_value, scores = None, -np.inf, {}
    done: Done = {}
    for recipe in candidates:
        oof = recipe.out_of_fold(data, folds, seed, done)
        value = float(score(np.asarray(data.y), oof))
        scores[recipe.name] = round(value, 4)
        if value > best_value:
            best, best_value = Choice(recipe, oof, scores), value
    if best is None:
        raise TrainingError("no candidate recipe")
    return best
