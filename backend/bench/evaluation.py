"""Measuring the LLM against corpus labels, and fitting its calibration on a disjoint labeled sample."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence, cast

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from backend import corpus
from backend.labelstudio.schema import Schema
from backend.llm import calibration as cal
from backend.llm.predictor import Predictor

TEST_SIZE = 600
CALIBRATION_SIZE = 400
SEED = 0


def splits(test_size: int = TEST_SIZE, calibration_size: int = CALIBRATION_SIZE, seed: int = SEED):
    """The fixed test sample and the calibration sample, stratified and disjoint; the same on every run."""
    test, calibration = corpus.stratified_split(corpus.load(), [test_size, calibration_size], seed=seed)
    return test, calibration


def fit_calibration(predictor: Predictor, schema: Schema, sample: pd.DataFrame) -> cal.Calibration:
    """A calibration fitted on `sample` (columns text, label), stamped with the prompt and model it belongs to."""
    y = sample["label"].map(list(schema.labels).index).to_numpy()
    setup = predictor.setup(schema)
    features = cal.verbalizers(setup.prompt.labels)
    logprobs = predictor.feature_logprobs(setup, sample["text"], features)
    names = list(setup.prompt.labels)
    examples = [
        (t, names.index(lab))
        for t, lab in (predictor.guidelines.examples if predictor.guidelines else [])
        if lab in names
    ]
    anchors = None
    if examples:
        anchor_x = predictor.feature_logprobs(setup, [t for t, _ in examples], features)
        anchors = (anchor_x, np.array([i for _, i in examples]))
    fitted = cal.fit(setup.prompt.labels, features, logprobs, y, anchors=anchors)
    return replace(
        fitted, prompt_sha256=predictor.setup(schema).prompt.sha256, model_identity=predictor.source.identity
    )


def report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and Cohen's κ on all labels, and accuracy on Positive vs Negative items only."""
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    out = {
        "n": int(len(truth)),
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, labels=list(labels), average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(truth, pred)),
        "per_label_f1": dict(
            zip(labels, map(float, f1_score(truth, pred, labels=list(labels), average=None, zero_division=0)))
        ),
    }
    return out


def polar_accuracy(
    probs: np.ndarray, y_true: Sequence[str], labels: Sequence[str], polar=("Positive", "Negative")
) -> float:
    """Accuracy on the items whose true label is one of `polar`, choosing between those two labels only."""
    truth = np.asarray(y_true)
    cols = [list(labels).index(p) for p in polar]
    keep = np.isin(truth, polar)
    chosen = np.asarray(polar)[probs[keep][:, cols].argmax(1)]
    return float((chosen == truth[keep]).mean())


def free_text_labels(predictor: Predictor, schema: Schema, texts: Sequence[str], max_new_tokens: int = 4) -> list:
    """The usual LLM-backend way, as a baseline: the same prompt per task, a few generated tokens, matched to a label.

    Nothing is shared between tasks (no prefix cache) and an answer that names no label counts as None.
    """
    import torch

    scorer, setup = predictor.scorer, predictor.setup(schema)
    out = []
    for text in texts:
        ids, _ = scorer.text_ids(text)
        prompt_ids = scorer.encode(setup.prompt.prefix) + ids + scorer.encode(setup.prompt.suffix)
        with torch.inference_mode():
            generated = cast(Any, scorer).model.generate(  # the local engine's transformers model
                torch.tensor([prompt_ids]),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=scorer.tokenizer.pad_token_id,
            )
        answer = scorer.tokenizer.decode(generated[0, len(prompt_ids) :], skip_special_tokens=True).strip().lower()
        out.append(
            next((lab for lab, name in zip(schema.labels, schema.names) if answer.startswith(name.lower())), None)
        )
    return out
