"""Several questions per task, measured on the review-facets sample (guidelines/samples/review_facets.jsonl).

Per question: macro-F1 (single choice), micro/macro-F1 and Hamming loss (multi-label), zero-shot and after a
number of labels (the loop's own blend fitted on that question's labels, as the loop fits its first question);
the two ways of getting a probability per label of a multi-label question; and reviews/s of one, two and three
questions on the same texts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import f1_score, hamming_loss

from backend.labelstudio.schema import Config, Schema, as_config
from backend.llm import calibration as cal
from backend.llm import prompt as prompts
from backend.llm.predictor import Predictor, form_columns, form_probabilities
from backend.loop import classifier

SEED = 0


def load_sample(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def split(sample: list[dict], test_size: int, seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """(train, test): a random test split of `test_size`, the rest to learn from."""
    order = np.random.default_rng(seed).permutation(len(sample))
    return [sample[i] for i in order[test_size:]], [sample[i] for i in order[:test_size]]


def truth(question: Schema, items: Sequence[dict]) -> np.ndarray:
    """Label indices (single choice) or a 0/1 matrix (multi-label) of the sample's answers to the question."""
    if question.multiple:
        return np.array([[int(label in item[question.from_name]) for label in question.labels] for item in items])
    return np.array([question.labels.index(item[question.from_name]) for item in items])


def scores(question: Schema, y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | float = 0.5) -> dict:
    if question.multiple:
        guess = (probs >= thresholds).astype(int)
        return {"micro_f1": round(float(f1_score(y, guess, average="micro", zero_division=0)), 4),
                "macro_f1": round(float(f1_score(y, guess, average="macro", zero_division=0)), 4),
                "hamming_loss": round(float(hamming_loss(y, guess)), 4)}
    labels = list(range(len(question.labels)))
    return {"macro_f1": round(float(f1_score(y, probs.argmax(1), labels=labels, average="macro", zero_division=0)), 4),
            "accuracy": round(float((probs.argmax(1) == y).mean()), 4)}


def fit_form_calibration(config: Config, logprobs: np.ndarray, items: Sequence[dict]) -> dict[str, tuple[cal.Calibration, ...]]:
    """Every question's calibration fitted on labeled items (their answer lines' log-probabilities): a multinomial
    regression per single-choice question, a yes/no one per label of a multi-label question, which puts each
    label's threshold where the labels say. A label the items never (or always) choose keeps no bias."""
    lines = [line for q in config.questions for line in prompts.answers(q)]
    out = {}
    for q, parts in form_columns(config):
        y = truth(q, items)
        fitted = []
        for j, (labels, cols) in enumerate(parts):
            features = [lines[c] for c in cols]
            target = 1 - y[:, j] if q.multiple else y  # yes is column 0 of a label's two answers
            try:
                fitted.append(cal.fit(labels, features, logprobs[:, cols], target))
            except cal.CalibrationError:
                fitted.append(cal.identity(labels, features))
        out[q.from_name] = tuple(fitted)
    return out


def best_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the threshold with the best F1 on labeled rows (a calibrated threshold per label)."""
    grid = np.unique(np.concatenate([probs.ravel(), [0.5]]))
    out = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        f1 = [f1_score(y[:, j], probs[:, j] >= t, zero_division=0) for t in grid]
        out[j] = grid[int(np.argmax(f1))]
    return out


def among_set(predictor: Predictor, question: Schema, texts: Sequence[str]) -> np.ndarray:
    """The other way to a multi-label question's per-label probability: the question asked as a choice among its
    labels and "None", each label's calibrated probability of being that answer."""
    as_choice = Schema(**{**question.__dict__, "names": (*question.names, "None"),
                          "labels": (*question.labels, "None"), "multiple": False})
    return predictor.probabilities(as_choice, texts)[:, : len(question.labels)]


def after_labels(question: Schema, vectors: np.ndarray, llm: np.ndarray, y: np.ndarray, n: int,
                 test: slice, recipe: str) -> np.ndarray:
    """The loop's model for this question, fitted on the first n training rows, its probabilities on `test`."""
    model = classifier.fit(recipe, vectors[:n], llm[:n], y[:n], len(question.labels))
    return model.predict_proba(vectors[test], llm[test])


def reviews_per_second(predictor: Predictor, config: Config | Schema, texts: Sequence[str], repeats: int = 2) -> float:
    """Best of `repeats` timed passes over the texts, after a warm-up that computes the prompt's prefix."""
    config = as_config(config)
    predictor.answers(config, texts[:4])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.answers(config, texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def run(predictor: Predictor, config: Config, sample: list[dict], test_size: int, label_counts: Sequence[int],
        layer: int, speed_configs: dict[str, Config]) -> dict[str, Any]:
    train, test = split(sample, test_size)
    items = train + test
    texts = [item["text"] for item in items]
    at = slice(len(train), len(items))
    answers, states = predictor.answers_and_states(config, texts, layer) if layer else (predictor.answers(config, texts), None)
    vectors, recipe = (states, "state_blend") if layer else (_minilm(texts), "blend")
    logprobs = predictor.scorer.label_logprobs(predictor.form_setup(config).prompt, texts)
    calibrated = form_probabilities(config, fit_form_calibration(config, logprobs[: len(train)], train), logprobs)
    out: dict[str, Any] = {"train": len(train), "test": len(test), "questions": {}}
    for q in config.questions:
        y = truth(q, items)
        probs = answers[q.from_name]
        row: dict[str, Any] = {"multiple": q.multiple, "zero_shot": scores(q, y[at], probs[at]),
                               "calibrated_on_train": scores(q, y[at], calibrated[q.from_name][at])}
        for n in label_counts:
            if n > len(train):
                row[f"after_{n}"] = None  # the sample is too small to hold this many labels and the test split
                continue
            try:
                row[f"after_{n}"] = scores(q, y[at], after_labels(q, vectors, probs, y, n, at, recipe))
            except classifier.TrainingError as e:
                row[f"after_{n}"] = {"error": str(e)}
        if q.multiple:
            tuned = best_thresholds(y[: len(train)], probs[: len(train)])
            other = among_set(predictor, q, texts)
            other_tuned = best_thresholds(y[: len(train)], other[: len(train)])
            row["methods"] = {
                "yes_no_per_label": {"threshold 0.5": scores(q, y[at], probs[at]),
                                     "thresholds fitted on train": scores(q, y[at], probs[at], tuned)},
                "among_the_set": {f"threshold 1/{len(q.labels) + 1}": scores(q, y[at], other[at], 1 / (len(q.labels) + 1)),
                                  "thresholds fitted on train": scores(q, y[at], other[at], other_tuned)},
            }
        out["questions"][q.from_name] = row
    speed_texts = [item["text"] for item in test]
    out["reviews_per_s"] = {name: round(reviews_per_second(predictor, c, speed_texts), 2)
                            for name, c in speed_configs.items()}
    return out


def _minilm(texts: Sequence[str]) -> np.ndarray:
    from backend.loop.embeddings import Embedder

    return Embedder(None).encode(list(texts))
