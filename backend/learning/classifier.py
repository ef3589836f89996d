"""The trained model: a logistic regression over text vectors (sentence embeddings or the LLM's own hidden states,
read by backend/loop/features.py), alone or blended with the LLM's probabilities.

The learners (LEARNERS), each one logistic regression (scikit-learn's estimator API throughout) over the design
matrix design() builds for it; backend/learning/recipes.py puts them together into what a project's labels choose:

- "classifier": embeddings only; it knows nothing but the annotators' labels.
- "blend": embeddings plus the LLM's calibrated log-probabilities as extra features (stacking). The regression
  learns how far to trust the LLM from the labels themselves. The LLM columns are scaled up (Learner.llm_weight) so
  the L2 penalty barely holds their weights back: the fit starts from the LLM's answer and spends the embeddings'
  384 weights on correcting it. Unscaled, the LLM's three columns drown among the embedding dimensions and a
  blend on 20-100 labels falls far below the LLM alone (macro-F1 0.54 against 0.79 at 20 labels here); scaled
  by 10 it reaches 0.81 at 50 labels and 0.83 at 1,000, where the classifier alone has 0.74.
  With no labels there is nothing to fit and the LLM serves alone.
- "state_blend": the LLM's own hidden state (backend/loop/features.py) instead of sentence embeddings, with the LLM's
  log-probabilities as ordinary features (weight 1, not 10) and C=0.03. The state already carries the LLM's
  answer, so the fit need not be pinned to it: at weight 10 the regression followed the LLM and the state barely
  corrected it. Measured on the Rotten Tomatoes pool (600-review test split, 5 seeds; docs/learning.md), layer
  15 of 24 reaches macro-F1 0.850 at 100 labels and 0.877 at 1,000, where the MiniLM blend has 0.794 and 0.814;
  C chosen by cross-validation did no better (0.848 / 0.870) at three times the fitting time.
- "llm_refit": the LLM's log-probabilities alone, re-weighted by a regression (for an engine without hidden states).

The fitted models (Model: Classifier, MultiLabelClassifier, Mixed, Recalibrated) are registered in MODEL_TYPES and
saved as what they are made of (to_parts / from_parts).

Probabilities always come back with one column per label of the labeling config, so a label nobody has chosen yet
gets probability 0 instead of shifting the columns.

A multi-label question (y an (n, k) 0/1 matrix) is k yes/no questions: one regression per label, on the same
vectors and the LLM's yes and no probabilities of every label (MultiLabelClassifier). A label with fewer than two
yes and two no answers keeps the LLM's probability.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from backend.errors import LabelloopError


@dataclass(frozen=True)
class Learner:
    """One logistic regression over the design matrix design() builds for it. Registered once, in LEARNERS; a recipe
    (backend/learning/recipes.py) names it."""

    name: str
    C: float  # the fit's default inverse regularisation strength
    llm_weight: float | None = None  # the LLM's log-probabilities, scaled by this, as columns; None: not read
    reads_vectors: bool = True  # False: the LLM's columns alone

    @property
    def blend(self) -> bool:
        return self.llm_weight is not None


LEARNERS: dict[str, Learner] = {
    learner.name: learner
    for learner in (
        Learner("classifier", C=0.01),
        Learner("blend", C=0.01, llm_weight=10.0),
        Learner("state_blend", C=0.03, llm_weight=1.0),
        Learner("llm_refit", C=1.0, llm_weight=1.0, reads_vectors=False),
    )
}


def learner_of(name: str) -> Learner:
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; use one of {tuple(LEARNERS)}")
    return LEARNERS[name]


def is_blend(name: str) -> bool:
    """Whether a learner reads the LLM's probabilities."""
    return name in LEARNERS and LEARNERS[name].blend


LOG_FLOOR = 1e-6  # LLM probabilities are clipped here before the log, so a confident 0 stays a finite feature
MIN_LABELS = 2  # per class, for a fit (a fold's model too: out_of_fold)


class TrainingError(LabelloopError, ValueError):
    """Too few labels, or labels of a single class: nothing to fit."""

    http_status = 422


def design(learner: str, embeddings: np.ndarray, llm_probs: np.ndarray | None) -> np.ndarray:
    """The feature matrix of `learner` for these rows."""
    spec = learner_of(learner)
    # Rows scaled to unit length (sentence embeddings already are; an LLM's hidden states are not, and a few of
    # their dimensions are huge), then back to entries of about unit variance, so one C suits every set of vectors.
    x = np.asarray(embeddings, dtype=np.float32)
    if not spec.reads_vectors:
        if llm_probs is None:
            raise ValueError("a blend needs the LLM's probabilities")
        x = np.zeros((len(llm_probs), 0), dtype=np.float32)
    elif x.ndim == 2 and x.shape[1]:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1) * np.float32(np.sqrt(x.shape[1]))
    if spec.llm_weight is None:
        return x
    if llm_probs is None:
        raise ValueError("a blend needs the LLM's probabilities")
    weight = np.float32(spec.llm_weight)
    return np.hstack([x, weight * np.log(np.clip(np.asarray(llm_probs, dtype=np.float32), LOG_FLOOR, 1.0))])


def make_estimator(seed: int = 0, learner: str = "blend", C: float | None = None) -> LogisticRegression:
    # Balanced class weights: annotation pools are skewed (Neutral is rare here) and macro-F1 is what we report.
    # C=0.01 was the best of 0.01-1 for both embedding learners from 20 to 1,400 labels on the Rotten Tomatoes pool.
    # newton-cg converges in about a dozen iterations here where lbfgs needs 300-400 (the scaled LLM columns make
    # the problem ill-conditioned): 0.18 s against 0.33 s at 1,000 labels. Its tolerance of 1e-3 (scikit-learn's
    # default is 1e-4) halves a training run at 1,000 labels and moved no chosen recipe and no macro-F1 by 0.005 on
    # a validation slice (docs/questions.md).
    return LogisticRegression(
        C=learner_of(learner).C if C is None else C,
        class_weight="balanced",
        solver="newton-cg",
        tol=1e-3,
        max_iter=200,
        random_state=seed,
    )


class Model(Protocol):
    """What every trained model is to the rest of the backend (Classifier, MultiLabelClassifier, Mixed,
    Recalibrated): the label indices it learned, and (n, n_labels) probabilities in the config's label order from
    the vectors its recipe reads (recipe_vectors) and the LLM's calibrated probabilities."""

    @property
    def learned(self) -> np.ndarray: ...

    def predict_proba(self, vectors: np.ndarray, llm_probs: np.ndarray | None = None) -> np.ndarray: ...

    def as_parts(self) -> dict[str, Any]:
        """What it is made of, as plain values and numpy arrays (to_parts adds its type, from_parts rebuilds it)."""
        ...


def _estimator_parts(estimator: LogisticRegression) -> dict[str, Any]:
    return {
        "C": float(estimator.C),
        "classes": estimator.classes_,
        "coef": estimator.coef_,
        "intercept": estimator.intercept_,
    }


def _estimator(parts: dict[str, Any]) -> LogisticRegression:
    # A fitted logistic regression is its coefficients: predict_proba reads nothing else.
    estimator = make_estimator(C=float(parts["C"]))
    estimator.classes_ = np.asarray(parts["classes"])
    estimator.coef_ = np.asarray(parts["coef"])  # in the dtype it was fitted in, so it answers bit for bit the same
    estimator.intercept_ = np.asarray(parts["intercept"])
    estimator.n_features_in_ = estimator.coef_.shape[1]
    return estimator


def _former_state(model: Any, state: dict[str, Any]) -> None:
    # A model pickled by a release before format 3 (backend/loop/model_store.py) names its learner "kind".
    state = dict(state)
    if "kind" in state:
        state.setdefault("learner", state.pop("kind"))
    model.__dict__.update(state)


@dataclass
class Classifier:
    learner: str
    n_labels: int
    estimator: LogisticRegression

    __setstate__ = _former_state

    @property
    def learned(self) -> np.ndarray:
        """The label indices it was fitted on; the others keep the LLM's probability (predict_proba)."""
        return self.estimator.classes_.astype(int)

    def predict_proba(self, embeddings: np.ndarray, llm_probs: np.ndarray | None = None) -> np.ndarray:
        """(n, n_labels) probabilities in the config's label order."""
        x = design(self.learner, embeddings, llm_probs)
        p = _full_columns(self.estimator.predict_proba(x), self.estimator.classes_, self.n_labels)
        unknown = np.setdiff1d(np.arange(self.n_labels), self.estimator.classes_.astype(int))
        if (
            is_blend(self.learner)
            and llm_probs is not None
            and unknown.size
            and np.shape(llm_probs)[1] == self.n_labels
        ):
            # A label with too few annotations to learn keeps the LLM's probability, and the fitted model shares
            # out the rest: otherwise a blend fitted before anyone chose Neutral could never answer Neutral.
            llm = np.asarray(llm_probs, dtype=np.float64)
            kept = llm[:, unknown]
            p = p * (1.0 - kept.sum(axis=1, keepdims=True))
            p[:, unknown] = kept
        return p

    def as_parts(self) -> dict[str, Any]:
        return {"learner": self.learner, "n_labels": self.n_labels, "estimator": _estimator_parts(self.estimator)}

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> "Classifier":
        return cls(parts["learner"], int(parts["n_labels"]), _estimator(parts["estimator"]))


def _full_columns(p: np.ndarray, classes: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros((p.shape[0], n_labels))
    out[:, classes.astype(int)] = p
    return out


def _check(y: ArrayLike, n_labels: int) -> np.ndarray:
    y = np.asarray(y, dtype=int)
    if y.size and (y.min() < 0 or y.max() >= n_labels):
        raise ValueError(f"label indices must lie in [0, {n_labels})")
    counts = np.bincount(y, minlength=n_labels)
    if (counts >= MIN_LABELS).sum() < 2:
        raise TrainingError(f"need at least {MIN_LABELS} labels in each of two classes; have {counts.tolist()}")
    return y


@dataclass
class MultiLabelClassifier:
    learner: str
    n_labels: int
    estimators: list[LogisticRegression | None]  # None: too few answers either way; the LLM's probability serves

    __setstate__ = _former_state

    @property
    def learned(self) -> np.ndarray:
        """The label indices with a fitted yes/no model."""
        return np.flatnonzero([e is not None for e in self.estimators])

    def predict_proba(self, embeddings: np.ndarray, llm_probs: np.ndarray | None = None) -> np.ndarray:
        """(n, n_labels) probability that each label applies."""
        x = design(self.learner, embeddings, _yes_no(llm_probs))
        out = _fallback(llm_probs, len(x), self.n_labels)
        for j, estimator in enumerate(self.estimators):
            if estimator is not None:
                out[:, j] = estimator.predict_proba(x)[:, 1]
        return out

    def as_parts(self) -> dict[str, Any]:
        estimators = [None if e is None else _estimator_parts(e) for e in self.estimators]
        return {"learner": self.learner, "n_labels": self.n_labels, "estimators": estimators}

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> "MultiLabelClassifier":
        estimators = [None if e is None else _estimator(e) for e in parts["estimators"]]
        return cls(parts["learner"], int(parts["n_labels"]), estimators)


def _yes_no(llm_probs: np.ndarray | None) -> np.ndarray | None:
    # Each label's yes and no: log(p) alone flattens out near p = 1, where the log of the no still tells.
    return None if llm_probs is None else np.hstack([llm_probs, 1.0 - np.asarray(llm_probs)])


def _fallback(llm_probs: np.ndarray | None, n: int, n_labels: int) -> np.ndarray:
    return np.array(llm_probs, dtype=np.float64) if llm_probs is not None else np.full((n, n_labels), 0.5)


def _learnable(y: np.ndarray) -> np.ndarray:
    """The labels (columns of a 0/1 matrix) with at least MIN_LABELS yes and MIN_LABELS no answers."""
    yes = y.sum(axis=0)
    return (yes >= MIN_LABELS) & (len(y) - yes >= MIN_LABELS)


def _check_multilabel(y: ArrayLike, n_labels: int) -> np.ndarray:
    y = np.asarray(y, dtype=int)
    if y.ndim != 2 or y.shape[1] != n_labels or not np.isin(y, (0, 1)).all():
        raise ValueError(f"a multi-label y must be an (n, {n_labels}) matrix of 0 and 1")
    if not _learnable(y).any():
        raise TrainingError(
            f"need at least {MIN_LABELS} yes and {MIN_LABELS} no answers for some label; "
            f"have {y.sum(axis=0).tolist()} yes of {len(y)}"
        )
    return y


def fit(
    learner: str,
    embeddings: np.ndarray,
    llm_probs: np.ndarray | None,
    y: Sequence[int] | np.ndarray,
    n_labels: int,
    seed: int = 0,
    C: float | None = None,
) -> Classifier | MultiLabelClassifier:
    if np.ndim(y) == 2:
        y = _check_multilabel(y, n_labels)
        x = design(learner, embeddings, _yes_no(llm_probs))
        with one_thread():
            estimators = [
                make_estimator(seed, learner, C).fit(x, y[:, j]) if ok else None for j, ok in enumerate(_learnable(y))
            ]
        return MultiLabelClassifier(learner, n_labels, estimators)
    y = _check(y, n_labels)
    # Classes seen only once cannot be learned; dropping them keeps the fit from failing on the first stray label.
    keep = np.isin(y, np.flatnonzero(np.bincount(y, minlength=n_labels) >= MIN_LABELS))
    x = design(learner, embeddings, llm_probs)
    with one_thread():
        estimator = make_estimator(seed, learner, C).fit(x[keep], y[keep])
    return Classifier(learner, n_labels, estimator)


def one_thread():
    """These fits are far too small to gain from BLAS threads, and a BLAS that spins its threads while other processes
    hold the cores made one fit 100x slower here (38 s instead of 0.33 s at 1,000 labels on 2 busy cores). The limit
    is process-wide: code that fits in several threads at once holds it around all of them (training.each_question),
    so that no thread's exit lifts it under another's fit."""
    return threadpool_limits(1)


def out_of_fold(
    learner: str,
    embeddings: np.ndarray,
    llm_probs: np.ndarray | None,
    y: Sequence[int] | np.ndarray,
    n_labels: int,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float | None = None,
) -> np.ndarray:
    """Cross-validated probabilities: each row predicted by a model that never saw it, answering as fit()'s model
    would from its fold's labels (a class with fewer than MIN_LABELS there left to the LLM's probability). (n, n_labels)

    A blend always gets `folds` folds: fewer, as many as the rarest class has labels, trained its fold models on half
    the labels where a class had two, and the LLM alone (which reads no labels) then won on that handicap alone.
    A learner without the LLM keeps as many folds as the rarest class allows, so that every fold can learn it."""
    if np.ndim(y) == 2:
        return _out_of_fold_multilabel(learner, embeddings, llm_probs, y, n_labels, folds=folds, seed=seed, C=C)
    y = _check(y, n_labels)
    blend = is_blend(learner) and llm_probs is not None
    if blend:
        k = min(folds, len(y))
    else:  # no LLM to answer a class a fold cannot learn: as many folds as the rarest class has labels
        counts = np.bincount(y)
        k = int(min(folds, counts[counts > 0].min())) if counts[counts > 0].min() >= 2 else min(folds, len(y))
    x = design(learner, embeddings, llm_probs)
    out = np.zeros((len(y), n_labels))
    if np.bincount(y).max() < k:
        splitter = _plain_kfold(len(y), k, seed)
    else:
        with warnings.catch_warnings():  # a class with fewer labels than folds: it is spread over as many as it has
            warnings.simplefilter("ignore", UserWarning)
            splitter = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y))
    with one_thread():
        for train, test in splitter:
            # A blend's fold model learns what fit() would (a class seen once is left to the LLM); a learner without
            # the LLM learns every class its fold holds, having nothing else to answer with.
            learnable = np.flatnonzero(np.bincount(y[train], minlength=n_labels) >= (MIN_LABELS if blend else 1))
            keep = np.isin(y[train], learnable)
            if len(learnable) < 2:  # nothing to fit: a blend's project keeps the LLM, a classifier knows nothing
                out[test] = np.asarray(llm_probs)[test] if blend else 1.0 / n_labels
                continue
            est = make_estimator(seed, learner, C).fit(x[train][keep], y[train][keep])
            llm_test = None if llm_probs is None else np.asarray(llm_probs)[test]
            out[test] = Classifier(learner, n_labels, est).predict_proba(np.asarray(embeddings)[test], llm_test)
    return out


def _plain_kfold(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    return [(np.concatenate(parts[:i] + parts[i + 1 :]), part) for i, part in enumerate(parts)]


def _out_of_fold_multilabel(
    learner, embeddings, llm_probs, y, n_labels: int, *, folds: int, seed: int, C
) -> np.ndarray:
    y = _check_multilabel(y, n_labels)
    x = design(learner, embeddings, _yes_no(llm_probs))
    out = _fallback(llm_probs, len(y), n_labels)
    with one_thread():
        for train, test in _plain_kfold(len(y), min(folds, len(y)), seed):
            for j in np.flatnonzero(_learnable(y[train])):
                out[test, j] = make_estimator(seed, learner, C).fit(x[train], y[train, j]).predict_proba(x[test])[:, 1]
    return out


@dataclass
class Mixed:
    """The mean of two models' probabilities over vectors side by side: the state blend on columns [:split] (the LLM's
    hidden state), the MiniLM blend on the rest."""

    parts: tuple
    split: int

    @property
    def learned(self) -> np.ndarray:
        return np.intersect1d(self.parts[0].learned, self.parts[1].learned)

    def predict_proba(self, vectors: np.ndarray, llm_probs: np.ndarray | None = None) -> np.ndarray:
        a = self.parts[0].predict_proba(vectors[:, : self.split], llm_probs)
        b = self.parts[1].predict_proba(vectors[:, self.split :], llm_probs)
        return (a + b) / 2

    def as_parts(self) -> dict[str, Any]:
        return {"models": [to_parts(model) for model in self.parts], "split": self.split}

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> "Mixed":
        return cls(tuple(from_parts(model) for model in parts["models"]), int(parts["split"]))


@dataclass
class Recalibrated:
    """The LLM's probabilities moved by a fixed shift of their logs: the LLM under another label-free calibration
    (calibration.shifts). It learns nothing from the labels, so it answers every label."""

    shift: tuple[float, ...]
    n_labels: int

    @property
    def learned(self) -> np.ndarray:
        return np.arange(self.n_labels)

    def predict_proba(self, vectors: np.ndarray | None, llm_probs: np.ndarray | None = None) -> np.ndarray:
        if llm_probs is None:
            raise ValueError("a recalibrated LLM needs the LLM's probabilities")
        # A floor far below LOG_FLOOR: the shift must reproduce the other calibration exactly, not a clipped one.
        z = np.log(np.clip(np.asarray(llm_probs, dtype=np.float64), 1e-300, None)) + np.asarray(self.shift)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def as_parts(self) -> dict[str, Any]:
        return {"shift": list(self.shift), "n_labels": self.n_labels}

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> "Recalibrated":
        return cls(tuple(float(v) for v in parts["shift"]), int(parts["n_labels"]))


# Every model type a project may save, by the name its parts carry. Saved as parts, not pickled: a module or class a
# refactor moves cannot strand a deployment's models (backend/loop/model_store.py).
MODEL_TYPES: dict[str, Any] = {
    "classifier": Classifier,
    "multilabel": MultiLabelClassifier,
    "mixed": Mixed,
    "recalibrated": Recalibrated,
}


def to_parts(model: Model) -> dict[str, Any]:
    """A model as plain values and numpy arrays, its type named."""
    names = {cls: name for name, cls in MODEL_TYPES.items()}
    if type(model) not in names:
        raise TypeError(f"{type(model).__name__} is not a registered model type ({', '.join(MODEL_TYPES)})")
    return {"type": names[type(model)], **model.as_parts()}


def from_parts(parts: dict[str, Any]) -> Model:
    """The model to_parts described."""
    if parts.get("type") not in MODEL_TYPES:
        raise ValueError(f"unknown model type {parts.get('type')!r}; this release knows {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[parts["type"]].from_parts(parts)
