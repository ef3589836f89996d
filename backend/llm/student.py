"""A cascade's student (backend/llm/cascade.py): a logistic readout of the first model's hidden state, fitted to the
second model's answers on the pool's calibration sample. No label is read: it carries the second model's answers to
every text at the first model's cost (knowledge distillation into a probe).

Why a readout of the state and not the first model's own probabilities: the second model's answers are what it
learns, and the state holds far more than the first model's few label log-probabilities (docs/benchmark.md).
Stored in the project's PoolCalibration as plain numbers, so it survives a restart and names its own version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from backend.errors import LabelloopError

C = 0.01  # the readout's inverse regularisation: the rule fixed on the pool splits (docs/benchmark.md)
FLOOR = (
    1e-4  # of probability mass spread over every label, so a label the sample never showed is unlikely, not impossible
)


class StudentError(LabelloopError, ValueError):
    """A stored student cannot be read."""

    http_status = 500  # the backend's own data


@dataclass(frozen=True)
class Student:
    layer: int  # the first model's decoder layer whose output it reads
    n_labels: int
    classes: tuple[int, ...]  # the label indices the second model gave on the sample, in coef's row order
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]  # (1 for two classes, else one row per class) x hidden
    intercept: tuple[float, ...]

    @classmethod
    def fit(cls, states: np.ndarray, answers: np.ndarray, layer: int, c: float = C) -> "Student | None":
        """Fitted to the second model's answers (n, n_labels) on the sample's `states` (n, hidden); None when the
        second model gave one label only (nothing to tell apart)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        target = np.asarray(answers).argmax(axis=1)
        if len(np.unique(target)) < 2:
            return None
        scaler = StandardScaler().fit(states)
        model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(states), target)
        rows = lambda a: tuple(tuple(float(x) for x in row) for row in np.atleast_2d(a))  # noqa: E731
        return cls(
            layer=layer,
            n_labels=int(np.asarray(answers).shape[1]),
            classes=tuple(int(k) for k in model.classes_),
            mean=tuple(float(x) for x in scaler.mean_),
            scale=tuple(float(x) for x in scaler.scale_),
            coef=rows(model.coef_),
            intercept=tuple(float(x) for x in model.intercept_),
        )

    def apply(self, states: np.ndarray) -> np.ndarray:
        """(n, n_labels) probabilities from the first model's states at `layer`."""
        x = (np.asarray(states, dtype=float) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = x @ np.asarray(self.coef).T + np.asarray(self.intercept)
        if len(self.classes) == 2:  # a binary readout: one row, the second class's log-odds
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            inner = np.stack([1.0 - p, p], axis=1)
        else:
            z = z - z.max(axis=1, keepdims=True)
            inner = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out = np.zeros((len(x), self.n_labels))
        out[:, list(self.classes)] = inner
        return out * (1 - FLOOR) + FLOOR / self.n_labels

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict()).encode()).hexdigest()

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "n_labels": self.n_labels,
            "classes": list(self.classes),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": [list(r) for r in self.coef],
            "intercept": list(self.intercept),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Student":
        try:
            return cls(
                layer=int(data["layer"]),
                n_labels=int(data["n_labels"]),
                classes=tuple(int(k) for k in data["classes"]),
                mean=tuple(float(x) for x in data["mean"]),
                scale=tuple(float(x) for x in data["scale"]),
                coef=tuple(tuple(float(x) for x in r) for r in data["coef"]),
                intercept=tuple(float(x) for x in data["intercept"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StudentError(f"unreadable student: {e}") from None


def out_of_fold(states: np.ndarray, answers: np.ndarray, layer: int, c: float = C, folds: int = 5) -> np.ndarray:
    """The student's probabilities on the sample, each text's from a student fitted without it: what its answers on
    texts it never saw look like (the margins a threshold is set on). The in-sample answers where a label is too
    rare to split."""
    from sklearn.model_selection import StratifiedKFold

    target = np.asarray(answers).argmax(axis=1)
    counts = np.bincount(target)
    splits = min(folds, int(counts[counts > 0].min()))
    whole = Student.fit(states, answers, layer, c)
    if whole is None:
        return np.asarray(answers, dtype=float)
    if splits < 2:
        return whole.apply(states)
    out = np.zeros((len(states), np.asarray(answers).shape[1]))
    for train, held in StratifiedKFold(splits, shuffle=True, random_state=0).split(states, target):
        part = Student.fit(states[train], np.asarray(answers)[train], layer, c)
        out[held] = part.apply(states[held]) if part else whole.apply(states[held])
    return out
