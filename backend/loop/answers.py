"""From a task's probabilities to what Label Studio stores and what the ranking reads, for every question of a config."""

from __future__ import annotations

import numpy as np

from backend.labelstudio.schema import Config, Schema
from backend.ranking import strategies


def chosen(question: Schema, row: np.ndarray) -> list[str]:
    """The labels a question's probabilities choose: the likeliest one, or (multi-label) every label at 0.5 or more;
    a calibrated probability puts the threshold that suits each label at 0.5."""
    if question.multiple:
        return [label for label, p in zip(question.labels, row) if p >= 0.5]
    return [question.labels[int(np.argmax(row))]]


def regions(config: Config, rows: dict[str, np.ndarray]) -> list[dict]:
    """One result per question of a task's prediction; a multi-label question with no label chosen has none."""
    out = []
    for q in config.questions:
        labels = chosen(q, rows[q.from_name])
        if labels:
            out.append(q.result(*labels))
    return out


def ranked_probs(question: Schema, probs: np.ndarray, llm: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """What the ranking strategies read for a question: its label distribution, or a multi-label question's most
    uncertain label as a yes/no distribution."""
    return strategies.most_uncertain_label(probs, llm) if question.multiple else (probs, llm)
