"""Calibration: from the LLM's log-probabilities of a few answer strings to calibrated label probabilities.

A small model rarely puts Neutral first even for a plot synopsis, yet Neutral's log-probability separates
synopses from reviews well (ROC AUC ~0.9 on the demo corpus): the signal is there, the thresholds are wrong.
Every calibration here is `softmax(features @ weights.T + bias)`, where the features are the log-probabilities
of answer strings scored in the same forward pass as the labels:
- none: the labels themselves, identity weights, no bias;
- contextual (Zhao et al. 2021): no labels needed; the bias cancels the model's prior on content-free inputs;
- domain (domain-context calibration, Fei et al. 2023): no labels needed; contextual calibration whose content-free
  inputs are random words of the project's own texts, which the backend reads from Label Studio at connect time.
  The prior of the domain's words, not of "N/A": auto's choice where no fitted file matches (docs/data.md);
- pool (batch calibration, Zhou et al. 2023): no labels needed; the bias divides out the mean answer distribution
  over the project's texts. It assumes the labels about equally frequent, and failed where they are not (docs/data.md);
- fitted: a class-balanced multinomial logistic regression on a small labeled set, over each label's
  verbalizers (the label, its lower case, its first three letters, the label after a space). The variants cost
  nothing extra (mostly single tokens whose logits the pass computes anyway) and carry what one string misses:
  on the demo corpus macro-F1 rose from 0.65 (a bias per label) to 0.79 with them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_sample_weight

from backend.errors import LabelloopError
from backend.files import write_json

CONTENT_FREE = ("N/A", "", "[MASK]")


class CalibrationError(LabelloopError, ValueError):
    http_status = 422


@dataclass(frozen=True)
class Setting:
    """A CALIBRATION value: which calibration serves a project's questions (Predictor, backend/llm/predictor.py)."""

    name: str
    doc: str
    # A fitted file matching the model, prompt and labels: "never" read, "prefer" (it serves where the pool's texts
    # resemble those it was fitted on), or "require" (it must exist).
    fitted: str = "never"
    # The calibration measured on the project's own pool that serves once measured (pool_method: "domain" or
    # "pool"); "" when none is measured.
    pool: str = ""
    # Without a fitted file or a measured pool: "contextual" (the content-free inputs) or "none".
    fallback: str = "contextual"


# Every CALIBRATION value but a calibration file's path. auto is domain-context by the rule in docs/data.md (the best
# mean macro-F1 on the pool splits of the packaged corpora) unless a fitted file resembles the pool.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "auto",
            "a fitted file where the pool resembles its texts, else domain-context measured on the pool",
            fitted="prefer",
            pool="domain",
        ),
        Setting("none", "the LLM's probabilities as they are", fallback="none"),
        Setting("contextual", "contextual calibration on content-free inputs"),
        Setting("domain", "domain-context calibration measured on the pool", pool="domain"),
        Setting("pool", "batch calibration of the pool's own texts", pool="pool"),
        Setting(
            "fitted", "the fitted file matching the model, prompt and labels (labelloop calibrate)", fitted="require"
        ),
    )
}


def setting(name: str) -> Setting | None:
    """The CALIBRATION value's Setting; None for a calibration file's path."""
    return SETTINGS.get(name)


def normalize(logprobs: np.ndarray) -> np.ndarray:
    """Log-probabilities renormalised over the columns only."""
    return logprobs - np.logaddexp.reduce(logprobs, axis=1, keepdims=True)


def verbalizers(labels: Sequence[str]) -> tuple[str, ...]:
    """The answer strings a fitted calibration reads, label by label."""
    return tuple(v for label in labels for v in (label, label.lower(), label[:3], " " + label))


@dataclass(frozen=True)
class Calibration:
    method: str  # "none", "contextual", "domain", "pool", "fitted" or "fitted+pool"
    labels: tuple[str, ...]
    features: tuple[str, ...]  # the strings whose log-probabilities are the input
    weights: tuple[tuple[float, ...], ...]  # n_labels × n_features
    bias: tuple[float, ...]
    prompt_sha256: str = ""
    model_identity: str = ""
    fitted_on: int = 0
    # A multi-label question's: its labels plus "none" above, and a threshold per label (not for "none").
    thresholds: tuple[float, ...] = ()
    # A fitted calibration's: the unit mean MiniLM embedding of the texts it was fitted on. It serves a project only
    # when the project's pool resembles them (resemblance()); () for a file written before it was kept.
    centroid: tuple[float, ...] = ()

    def apply(self, feature_logprobs: np.ndarray) -> np.ndarray:
        """(n, n_features) log-probabilities of the feature strings → (n, n_labels) probabilities."""
        z = feature_logprobs @ np.asarray(self.weights).T + np.asarray(self.bias)
        return np.exp(normalize(z))

    def apply_multilabel(self, feature_logprobs: np.ndarray) -> np.ndarray:
        """A multi-label question's (n, k) per-label probabilities, each moved so that its threshold lands on 0.5:
        logit(p) - logit(threshold), p being the label's share among the labels and "none"."""
        p = np.clip(self.apply(feature_logprobs)[:, : len(self.thresholds)], 1e-9, 1 - 1e-9)
        t = np.asarray(self.thresholds)
        z = np.log(p / (1 - p)) - np.log(t / (1 - t))
        return 1.0 / (1.0 + np.exp(-z))

    @property
    def sha256(self) -> str:
        # Contextual biases are a function of model and prompt, which the model version already names; hashing
        # their float values would let last-digit noise change the version.
        values = (
            list(CONTENT_FREE)
            if self.method == "contextual"
            else [[round(w, 6) for w in row] for row in self.weights] + [[round(b, 6) for b in self.bias]]
        )
        payload = json.dumps(
            [self.method, self.labels, self.features, values]
            + ([[round(t, 6) for t in self.thresholds]] if self.thresholds else [])
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """as_dict()'s inverse; ValueError, KeyError or TypeError on a malformed dict."""
        calibration = cls(
            method=str(data["method"]),
            labels=tuple(data["labels"]),
            features=tuple(data["features"]),
            weights=tuple(tuple(float(w) for w in row) for row in data["weights"]),
            bias=tuple(float(b) for b in data["bias"]),
            prompt_sha256=data.get("prompt_sha256", ""),
            model_identity=data.get("model_identity", ""),
            fitted_on=int(data.get("fitted_on", 0)),
            thresholds=tuple(float(t) for t in data.get("thresholds", ())),
            centroid=tuple(float(v) for v in data.get("centroid", ())),
        )
        shape = np.asarray(calibration.weights).shape
        if shape != (len(calibration.labels), len(calibration.features)) or len(calibration.bias) != len(
            calibration.labels
        ):
            raise ValueError(f"weights {shape} do not match its labels and features")
        return calibration

    def save(self, path: str | os.PathLike) -> None:
        write_json(Path(path), self.as_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"cannot read calibration {path}: {e}") from None


def _on_labels(
    method: str, labels: Sequence[str], bias: Sequence[float], features: Sequence[str] | None
) -> Calibration:
    eye = tuple(tuple(float(i == j) for j in range(len(labels))) for i in range(len(labels)))
    return Calibration(method, tuple(labels), tuple(features or labels), eye, tuple(float(b) for b in bias))


def identity(labels: Sequence[str], features: Sequence[str] | None = None) -> Calibration:
    """The answer strings' probabilities as they are; `features` are the strings scored for the labels (default:
    the labels themselves)."""
    return _on_labels("none", labels, [0.0] * len(labels), features)


def contextual(
    labels: Sequence[str], content_free_logprobs: np.ndarray, features: Sequence[str] | None = None
) -> Calibration:
    return _on_labels("contextual", labels, -normalize(content_free_logprobs).mean(axis=0), features)


DOMAIN_TEXTS = 20  # Fei et al. 2023 average over 20 random-word texts


def domain_texts(texts: Sequence[str], n: int = DOMAIN_TEXTS, seed: int = 0) -> list[str]:
    """Domain-context calibration's inputs (Fei et al. 2023): `n` texts of the sample's mean length in words, each
    word drawn at random from the sample's words, so they carry the domain's vocabulary and no meaning."""
    words = [w for t in texts for w in t.split()]
    if not words:
        return list(CONTENT_FREE)
    length = max(1, round(len(words) / max(len(texts), 1)))
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=length)) for _ in range(n)]


def domain(labels: Sequence[str], domain_logprobs: np.ndarray, features: Sequence[str] | None = None) -> Calibration:
    """Domain-context calibration: contextual calibration whose content-free inputs are domain_texts() of the
    project's pool, so the bias cancels the prior the domain's words alone put on each label."""
    return replace(contextual(labels, domain_logprobs, features), method="domain")


def pool(base: Calibration, pool_logprobs: np.ndarray) -> Calibration:
    """Batch calibration on top of `base` (identity(labels) for the raw answers, or a fitted calibration) from a
    pool's (n, len(base.features)) log-probabilities: the bias moves by minus the log of the mean answer distribution
    under `base`, so the average calibrated answer over the pool is as near uniform as a bias can make it. The mean
    of probabilities, as published, not of log-probabilities: one text the model is sure about moves it by at most
    1/n, where its log-probability of the other labels would be unbounded."""
    if len(pool_logprobs) == 0:
        raise CalibrationError("pool calibration needs at least one text")
    mean = base.apply(np.asarray(pool_logprobs, dtype=np.float64)).mean(axis=0)
    bias = np.asarray(base.bias) - np.log(np.clip(mean, 1e-12, None))
    method = "pool" if base.method == "none" else f"{base.method}+pool"
    return replace(base, method=method, bias=tuple(float(b) for b in bias))


def multilabel(calibration: Calibration, k: int) -> Calibration:
    """A calibration over a multi-label question's k labels and "none", with the default threshold per label:
    1/(k+1), a label's share were the k+1 answers equally likely."""
    return replace(calibration, thresholds=(1.0 / (k + 1),) * k)


_FIELDS = ("method", "labels", "features", "weights", "bias", "fitted_on", "thresholds", "centroid")


def save_form(
    path: str | os.PathLike, calibrations: dict[str, Calibration], prompt_sha256: str, model_identity: str
) -> None:
    """The calibrations of a several-question prompt in one file, one per question."""
    questions = {q: {k: getattr(c, k) for k in _FIELDS} for q, c in calibrations.items()}
    write_json(
        Path(path), {"prompt_sha256": prompt_sha256, "model_identity": model_identity, "questions": questions}, indent=2
    )


def load_form(path: str | os.PathLike) -> tuple[dict[str, Calibration], str, str]:
    """save_form's file: (the calibration per question, prompt_sha256, model_identity)."""
    try:
        data = json.loads(Path(path).read_text())
        calibrations = {q: Calibration.from_dict(c) for q, c in data["questions"].items()}
        return calibrations, str(data["prompt_sha256"]), str(data["model_identity"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CalibrationError(f"cannot read calibration {path}: {e}") from None


def shifts(served: Calibration, others: dict[str, Calibration]) -> dict[str, tuple[float, ...]]:
    """Of the calibrations `others`, those that differ from `served` only by their bias, each as what it adds to
    served's log-probabilities: softmax(log(served.apply(f)) + shift) == other.apply(f) for any features f. So the
    LLM under another label-free calibration is a candidate the project's labels can score from the served
    probabilities alone, with no pass over the texts (none, contextual, domain and pool share identity weights;
    a fitted file and fitted+pool share theirs)."""
    out = {}
    for name, other in others.items():
        if (other.labels, other.features) == (served.labels, served.features) and np.allclose(
            other.weights, served.weights
        ):
            out[name] = tuple(float(b) for b in np.asarray(other.bias) - np.asarray(served.bias))
    return out


# A fitted calibration serves a pool whose texts' centroid lies at least this close (cosine) to its fitting sample's;
# the rule that chose it, on the packaged corpora before any test split was read, is in docs/data.md.
RESEMBLANCE = 0.72


def centroid(vectors: np.ndarray) -> tuple[float, ...]:
    """The unit mean of unit text vectors (MiniLM embeddings): where a sample of texts sits."""
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    return tuple(float(v) for v in (mean / norm if norm > 0 else mean))


def resemblance(fitted_centroid: Sequence[float], pool_centroid: Sequence[float] | None) -> float | None:
    """Cosine between the centroid of the texts a calibration was fitted on and a pool's; None when either is missing
    (a file written before it kept one) or the two come from different embeddings."""
    if not fitted_centroid or not pool_centroid or len(fitted_centroid) != len(pool_centroid):
        return None
    return float(np.dot(fitted_centroid, pool_centroid))


def fit(
    labels: Sequence[str],
    features: Sequence[str],
    feature_logprobs: np.ndarray,
    y: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray] | None = None,
    anchor_weight: float = 5.0,
    C: float = 1.0,
) -> Calibration:
    """Balanced multinomial logistic regression from feature log-probabilities to label indices `y`.

    `anchors` (log-probabilities and labels of the guidelines' own examples) are added with extra weight: a
    sample drawn from one corpus teaches that corpus's idea of a label (on the demo corpus, Neutral means a
    long plot synopsis), and without anchors the fit overrode the model on short facts such as "The film runs
    118 minutes", which the guidelines call Neutral. With them, macro-F1 on the corpus stayed the same.
    """
    n_labels = len(labels)
    if len(y) == 0 or feature_logprobs.shape != (len(y), len(features)):
        raise CalibrationError("calibration needs one row of feature log-probabilities per labeled example")
    if len(set(y.tolist())) < n_labels:
        missing = [labels[i] for i in range(n_labels) if i not in set(y.tolist())]
        raise CalibrationError(f"the labeled sample has no example of {', '.join(missing)}")
    # Balanced: plain log-loss would keep the rare class rare, which is the failure being fixed.
    weights = compute_sample_weight("balanced", y)
    x = feature_logprobs
    if anchors is not None and len(anchors[1]):
        x = np.vstack([x, anchors[0]])
        weights = np.concatenate([weights, np.full(len(anchors[1]), anchor_weight)])
        y = np.concatenate([y, anchors[1]])
    model = LogisticRegression(C=C, max_iter=5000).fit(x, y, sample_weight=weights)
    coef, intercept = model.coef_, model.intercept_
    if n_labels == 2:  # scikit-learn keeps one row for two classes: the log-odds of the second
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return Calibration(
        "fitted",
        tuple(labels),
        tuple(features),
        tuple(tuple(float(w) for w in row) for row in coef),
        tuple(float(b) for b in intercept),
        fitted_on=len(feature_logprobs),
    )
