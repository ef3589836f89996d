"""From a task's probabilities to what Label Studio stores and what the ranking reads, for every question of a config."""

from __future__ import annotations

import numpy as np

from backend.labelstudio.schema import Config, Schema
from backend.ranking import strategies


def regions(config: Config, rows: dict[str, np.ndarray]) -> list[dict]:
    """One result per question of a task's prediction; a multi-label question with no label chosen has none."""
    out = []
    for q in config.questions:
        labels = q.chosen(rows[q.from_name])
        if labels:
            out.append(q.result(*labels))
    return out


def ranked_probs(
    question: Schema, probs: np.ndarray, llm: np.ndarray | None, learned: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the ranking strategies read for a question: its label distribution, or a multi-label question's most
    uncertain label as a yes/no distribution.

    `learned`: the labels the question's trained model was fitted on (None: the LLM serves it). A label with too few
    annotations to learn keeps the LLM's probability, an unchecked guess; where that guess decides the answer (a
    single-choice task whose likeliest label it is, a multi-label label the LLM says applies) the task reads as
    undecided. Otherwise a class nobody has labeled twice yet is never asked for: the LLM's confident guesses at it,
    right or wrong, look settled. On the post facets, ranking across both questions starved a topic of 75 posts in
    1,000 at one label for 300 labels, its false positives unquestioned (docs/questions.md)."""
    if learned is not None:
        probs = _undecided(question, np.asarray(probs, dtype=np.float64), np.asarray(learned, dtype=int))
    return strategies.most_uncertain_label(probs, llm) if question.multiple else (probs, llm)


def ranking_inputs(
    config: Config,
    answers: dict[str, np.ndarray],
    llm: dict[str, np.ndarray] | None,
    learned: dict[str, np.ndarray],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """ranked_probs for every question, by from_name: what ranking/questions.py reads. `learned` holds the labels of
    each question a trained model serves (ModelSet.learned); a question not in it is served by the LLM."""
    return {
        q.from_name: ranked_probs(q, answers[q.from_name], llm[q.from_name] if llm else None, learned.get(q.from_name))
        for q in config.questions
    }


def _undecided(question: Schema, probs: np.ndarray, learned: np.ndarray) -> np.ndarray:
    unknown = np.setdiff1d(np.arange(probs.shape[1]), learned)
    if not unknown.size or not len(probs):
        return probs
    probs = probs.copy()
    if question.multiple:
        guessed = probs[:, unknown]
        probs[:, unknown] = np.where(guessed >= 0.5, 0.5, guessed)
    else:
        probs[np.isin(probs.argmax(axis=1), unknown)] = 1.0 / probs.shape[1]
    return probs
