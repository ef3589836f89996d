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
from backend.learning import classifier
from backend.llm import calibration as cal
from backend.llm import prompt as prompts
from backend.llm.predictor import Predictor, form_columns, form_probabilities

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
        return {
            "micro_f1": round(float(f1_score(y, guess, average="micro", zero_division=0)), 4),
            "macro_f1": round(float(f1_score(y, guess, average="macro", zero_division=0)), 4),
            "hamming_loss": round(float(hamming_loss(y, guess)), 4),
        }
    labels = list(range(len(question.labels)))
    return {
        "macro_f1": round(float(f1_score(y, probs.argmax(1), labels=labels, average="macro", zero_division=0)), 4),
        "accuracy": round(float((probs.argmax(1) == y).mean()), 4),
    }


def fit_form_calibration(
    config: Config, logprobs: np.ndarray, items: Sequence[dict], unfitted: dict[str, cal.Calibration]
) -> dict[str, cal.Calibration]:
    """Every question's calibration fitted on labeled items (their answer lines' log-probabilities): a balanced
    multinomial regression per single-choice question; for a multi-label question the unfitted calibration with a
    threshold per label, the one of a few (the default times 1/4 to 3) with the best F1 on the items: a finer
    search followed the 100 items' noise and scored worse on new ones."""
    out = {}
    for q, labels, cols in form_columns(config):
        y = truth(q, items)
        base = unfitted[q.from_name]
        if q.multiple:
            shares = cal.replace(base, thresholds=(0.5,) * len(q.names)).apply_multilabel(logprobs[:, cols])
            default = base.thresholds[0]
            grid = [t for t in (default / 4, default / 2, default, default * 2, default * 3) if t < 1]
            thresholds = [
                max(grid, key=lambda t: f1_score(y[:, j], shares[:, j] >= t, zero_division=0))
                for j in range(len(q.names))
            ]
            out[q.from_name] = cal.replace(base, method="fitted", thresholds=tuple(thresholds), fitted_on=len(items))
            continue
        try:
            out[q.from_name] = cal.fit(labels, base.features, logprobs[:, cols], y)
        except cal.CalibrationError:
            out[q.from_name] = base  # a label the items never use: nothing to fit
    return out


def yes_no(predictor: Predictor, question: Schema, texts: Sequence[str]) -> np.ndarray:
    """The other way to a multi-label question's per-label probability, for comparison: the question alone, a yes
    or a no asked per label (`aspects[Acting]: yes`), contextually calibrated per label."""
    guidelines = predictor.guidelines.for_question(question.from_name) if predictor.guidelines else None
    system = prompts.system_message(guidelines, question.names).replace(
        f"Answer with exactly one label: {', '.join(question.names)}.",
        f"For each label, answer `{question.from_name}[<label>]: yes` if it applies, else `...: no`.",
    )
    lines = [f"{question.from_name}[{name}]: {word}" for name in question.names for word in ("yes", "no")]
    prompt = prompts.render(predictor.scorer.tokenizer, [{"role": "system", "content": system}], lines)
    free = predictor.scorer.label_logprobs(prompt, list(cal.CONTENT_FREE))
    lp = predictor.scorer.label_logprobs(prompt, list(texts))
    return np.stack(
        [
            cal.contextual(("yes", "no"), free[:, [2 * j, 2 * j + 1]]).apply(lp[:, [2 * j, 2 * j + 1]])[:, 0]
            for j in range(len(question.names))
        ],
        axis=1,
    )


def best_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the threshold with the best F1 on labeled rows (a calibrated threshold per label)."""
    grid = np.unique(np.concatenate([probs.ravel(), [0.5]]))
    out = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        f1 = [f1_score(y[:, j], probs[:, j] >= t, zero_division=0) for t in grid]
        out[j] = grid[int(np.argmax(f1))]
    return out


def after_labels(
    question: Schema, vectors: np.ndarray, llm: np.ndarray, y: np.ndarray, n: int, test: slice, recipe: str
) -> np.ndarray:
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


def run(
    predictor: Predictor,
    config: Config,
    sample: list[dict],
    test_size: int,
    label_counts: Sequence[int],
    layer: int,
    speed_configs: dict[str, Config],
) -> dict[str, Any]:
    train, test = split(sample, test_size)
    items = train + test
    texts = [item["text"] for item in items]
    at = slice(len(train), len(items))
    answers, states = (
        predictor.answers_and_states(config, texts, layer) if layer else (predictor.answers(config, texts), None)
    )
    vectors, recipe = (states, "state_blend") if states is not None else (_minilm(texts), "blend")
    setup = predictor.form_setup(config)
    logprobs = predictor.scorer.label_logprobs(setup.prompt, texts)
    fitted = fit_form_calibration(config, logprobs[: len(train)], train, setup.calibrations)
    calibrated = form_probabilities(config, fitted, logprobs)
    out: dict[str, Any] = {"train": len(train), "test": len(test), "questions": {}}
    for q in config.questions:
        y = truth(q, items)
        probs = answers[q.from_name]
        row: dict[str, Any] = {
            "multiple": q.multiple,
            "zero_shot": scores(q, y[at], probs[at]),
            "calibrated_on_train": scores(q, y[at], calibrated[q.from_name][at]),
        }
        for n in label_counts:
            if n > len(train):
                row[f"after_{n}"] = None  # the sample is too small to hold this many labels and the test split
                continue
            try:
                row[f"after_{n}"] = scores(q, y[at], after_labels(q, vectors, probs, y, n, at, recipe))
            except classifier.TrainingError as e:
                row[f"after_{n}"] = {"error": str(e)}
        if q.multiple:
            other = yes_no(predictor, q, texts)
            other_tuned = best_thresholds(y[: len(train)], other[: len(train)])
            row["methods"] = {
                "among_the_set (served)": {
                    "default thresholds": scores(q, y[at], probs[at]),
                    "thresholds fitted on train": scores(q, y[at], calibrated[q.from_name][at]),
                },
                "yes_no_per_label": {
                    "threshold 0.5": scores(q, y[at], other[at]),
                    "thresholds fitted on train": scores(q, y[at], other[at], other_tuned),
                },
            }
        out["questions"][q.from_name] = row
    speed_texts = [item["text"] for item in test]
    out["reviews_per_s"] = {
        name: round(reviews_per_second(predictor, c, speed_texts), 2) for name, c in speed_configs.items()
    }
    return out


def _minilm(texts: Sequence[str]) -> np.ndarray:
    from backend.learning.embeddings import Embedder

    return Embedder(None).encode(list(texts))
