"""The human labels most likely wrong: confident learning (cleanlab) on the served model's out-of-fold probabilities.

Each human-labeled task of the dataset (a project, or a Label Studio export read by backend/quality/agreement.py) has one
given label: the label most of its annotators chose (a tie goes to the label listed first in the config). The model
is the kind the backend trains (backend/loop/project_loop.py: the LLM's hidden state and calibrated probabilities), fitted on
those labels with 5-fold cross-validation, so the probabilities that judge a task come from a model that never saw
its label; they are averaged with the LLM's own probabilities, which never saw any label (`judging`). cleanlab's
`find_label_issues` says which labels are issues (as many as its confident joint estimates, the least likely
first) and `get_label_quality_scores` (the judging probability of the given label) orders them.

Gold tasks are judged against their known answer instead: a gold task whose annotators gave another label is an
issue whatever the model thinks, and never trains the model that judges the others. Synthetic tasks are never read
(the export reader leaves them out). A label a reviewer confirmed (passed in `confirmed`) is not flagged again
while it stays the same.

Where tasks have several annotators, `consensus` adds CROWDLAB (cleanlab.multiannotator): a consensus label per task
weighing each annotator by their estimated quality and the model's judging probabilities, a quality score per
consensus label and per annotator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from backend.labelstudio.export import Dataset
from backend.learning import classifier
from backend.quality.gold import GoldSet

# cleanlab's filter: as many issues as the confident joint estimates, the labels of lowest self-confidence. On planted
# noise (backend/bench/noise.py, seeds 0-2, chosen there) it beat "prune_by_noise_rate" (flag F1 0.64 / 0.66 against
# 0.57 / 0.56 for uniform / to-Neutral noise), once the probabilities were averaged with the LLM's.
FILTER_BY = "low_self_confidence"
QUALITY_METHOD = "self_confidence"  # the judging probability of the given label: easy to read, well ranked

# texts -> (vectors, calibrated LLM probabilities, info about the model) as the backend computes them
Scorer = Callable[[list[str]], tuple[np.ndarray, np.ndarray, dict]]


@dataclass(frozen=True)
class Judged:
    """One human-labeled task, ready to judge."""

    task: Any
    text: str
    given: str
    votes: Mapping[Any, str]  # annotator -> label
    answer: str | None = None  # the gold answer, for a gold task


def given_label(votes: Mapping[Any, str], labels: Sequence[str]) -> str:
    """The label most annotators chose; a tie goes to the label listed first in the config."""
    counts = Counter(votes.values())
    top = max(counts.values())
    return min((label for label, n in counts.items() if n == top), key=labels.index)


def tasks_of(dataset: Dataset, gold_set: GoldSet | None = None) -> list[Judged]:
    """The dataset's labeled tasks with a text, each with its given label and, for gold, the answer."""
    rows = []
    for item in dataset.items:
        if not isinstance(item.text, str) or not item.text.strip():
            continue
        answer = gold_set.label_for(item.text) if gold_set is not None else None
        rows.append(Judged(item.task_id, item.text, given_label(item.labels, dataset.labels), item.labels, answer))
    return rows


def judging(oof: np.ndarray, llm: np.ndarray) -> np.ndarray:
    """The probabilities that judge the labels: the out-of-fold model's averaged with the LLM's. The out-of-fold model
    learned from the other folds' labels, mistakes included; the LLM saw none, so the mean bends less to the noise
    (flag F1 on planted noise 0.57 -> 0.64 with the filter above)."""
    return (np.asarray(oof, dtype=float) + np.asarray(llm, dtype=float)) / 2


def flag(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is an issue, label quality) of each given label `y` under held-out probabilities `probs` (cleanlab)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = np.asarray(y, dtype=int)
    probs = np.asarray(probs, dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(y, probs, method=QUALITY_METHOD)
    present = np.unique(y)
    if len(present) < 2:  # one class given: nothing to estimate confusion from, so nothing is flagged
        return np.zeros(len(y), dtype=bool), quality
    # cleanlab estimates a noise matrix over the classes it sees; a config label nobody gave would be a zero row.
    sub = probs[:, present]
    sub = sub / sub.sum(axis=1, keepdims=True)
    remap = {c: i for i, c in enumerate(present)}
    issues = find_label_issues(np.array([remap[c] for c in y]), sub, filter_by=FILTER_BY)
    return np.asarray(issues, dtype=bool), quality


def judge(
    rows: Sequence[Judged],
    labels: Sequence[str],
    score: Scorer,
    recipe: Callable[[str], str],
    confirmed: Mapping[Any, str] | None = None,
) -> dict:
    """The report: every flagged task (worst first), per-annotator rates, counts and the model that judged."""
    labels = list(labels)
    confirmed = dict(confirmed or {})
    real = [r for r in rows if r.answer is None]
    gold_rows = [r for r in rows if r.answer is not None]
    n = len(labels)
    model: dict[str, Any] = {"kind": "llm", "trained_on": 0, "fallback": None}
    real_probs: np.ndarray = np.zeros((0, n))
    gold_probs: np.ndarray = np.zeros((0, n))
    y = np.array([labels.index(r.given) for r in real], dtype=int)
    texts = [r.text for r in real] + [r.text for r in gold_rows]
    if texts:
        vectors, llm, info = score(texts)
        model.update(info)
        h = len(real)
        kind = recipe(info.get("features", ""))
        try:
            real_probs = judging(classifier.out_of_fold(kind, vectors[:h], llm[:h], y, n), llm[:h])
            fitted = classifier.fit(kind, vectors[:h], llm[:h], y, n)
            gold_probs = judging(fitted.predict_proba(vectors[h:], llm[h:]), llm[h:]) if gold_rows else gold_probs
            model.update(kind=kind, trained_on=h)
        except classifier.TrainingError as e:
            # The LLM alone never trained on these labels, so its probabilities are held out already.
            real_probs, gold_probs = llm[:h], llm[h:]
            model["fallback"] = f"the LLM alone: {e}"
    issues_mask, quality = flag(y, real_probs) if real else (np.zeros(0, bool), np.zeros(0))

    issues, kept_confirmed = [], 0
    for row, is_issue, q, p in zip(real, issues_mask, quality, real_probs):
        if not is_issue:
            continue
        if confirmed.get(row.task) == row.given:
            kept_confirmed += 1
            continue
        issues.append(_issue(row, labels[int(p.argmax())], float(q), p, labels, "model", row.given))
    for row, p in zip(gold_rows, gold_probs):
        assert row.answer is not None  # gold_rows are the rows with an answer
        wrong = sorted({label for label in row.votes.values() if label != row.answer}, key=labels.index)
        if wrong:
            given = max(wrong, key=lambda label: sum(v == label for v in row.votes.values()))
            issues.append(_issue(row, row.answer, float(p[labels.index(given)]), p, labels, "gold", given))
    issues.sort(key=lambda i: (i["quality"], str(i["task"])))

    rates = annotator_rates(rows, issues)
    crowd = consensus(real, labels, real_probs)
    if crowd:
        for rate in rates:
            rate["crowdlab_quality"] = crowd["annotator_quality"].get(rate["annotator"])
    return {
        "issues": issues,
        "annotators": rates,
        "consensus": crowd,
        "counts": {
            "tasks": len(rows),
            "judged_by_model": len(real),
            "gold": len(gold_rows),
            "flagged": len(issues),
            "flagged_by_model": sum(i["reason"] == "model" for i in issues),
            "flagged_gold": sum(i["reason"] == "gold" for i in issues),
            "confirmed_not_flagged": kept_confirmed,
        },
        "model": model,
        "method": {
            "filter_by": FILTER_BY,
            "quality": QUALITY_METHOD,
            "probabilities": "mean of the served kind's 5-fold out-of-fold and the LLM's",
        },
    }


def _issue(
    row: Judged, suggested: str, quality: float, probs: np.ndarray, labels: list[str], reason: str, given: str
) -> dict:
    return {
        "task": row.task,
        "text": row.text,
        "given": given,
        "suggested": suggested,
        "quality": round(quality, 4),
        "annotators": sorted((str(a) for a, label in row.votes.items() if label == given)),
        "reason": reason,
        "probabilities": {label: round(float(p), 4) for label, p in zip(labels, probs)},
    }


def crowdlab(
    votes: Sequence[Mapping[Any, str]], labels: Sequence[str], probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """CROWDLAB (cleanlab.multiannotator) over tasks' votes (annotator -> label) and held-out probabilities: each
    task's consensus label index and its quality, and each annotator's quality. ValueError if cleanlab cannot run."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    labels = list(labels)
    names = sorted({str(a) for v in votes for a in v})
    column = {name: j for j, name in enumerate(names)}
    matrix = np.full((len(votes), len(names)), np.nan)
    for i, v in enumerate(votes):
        for annotator, label in v.items():
            matrix[i, column[str(annotator)]] = labels.index(label)
    probs = np.asarray(probs, dtype=float)
    out = get_label_quality_multiannotator(
        pd.DataFrame(matrix, columns=names), probs / probs.sum(1, keepdims=True), verbose=False
    )
    quality = out["label_quality"]
    annotators = {str(a): float(q) for a, q in out["annotator_stats"]["annotator_quality"].items()}
    return (
        quality["consensus_label"].to_numpy().astype(int),
        quality["consensus_quality_score"].to_numpy(),
        annotators,
    )


def crowdlab_labels(
    votes: Sequence[Sequence[tuple[str, str]]],
    y: np.ndarray,
    labels: Sequence[str],
    kind: str,
    vectors: np.ndarray,
    llm: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """Training labels with CROWDLAB's consensus in place of the majority on every task with several votes (CONSENSUS
    =crowdlab); the judging probabilities come from the served kind fitted out-of-fold on the majority labels. A task
    without votes (ground truth decided it) keeps its label. With nothing to weigh, or when cleanlab or the fit
    cannot run, the majority labels stay and the record says why."""
    y = np.asarray(y, dtype=int)
    multi = np.array([len(v) > 1 for v in votes], dtype=bool)
    record: dict[str, Any] = {"method": "crowdlab", "tasks": int(multi.sum()), "changed": 0}
    if not multi.any():
        return y, record
    labels = list(labels)
    try:
        probs = judging(classifier.out_of_fold(kind, vectors, llm, y, len(labels)), llm)
        voted = [dict(v) if v else {"ground truth": labels[c]} for v, c in zip(votes, y)]
        chosen, _, annotators = crowdlab(voted, labels, probs)
    except (ValueError, classifier.TrainingError) as e:
        record["error"] = str(e).splitlines()[0]
        return y, record
    out = np.where(multi, chosen, y)
    record.update(
        changed=int((out != y).sum()),
        annotator_quality={a: round(q, 4) for a, q in annotators.items() if a != "ground truth"},
    )
    return out, record


def consensus(rows: Sequence[Judged], labels: Sequence[str], probs: np.ndarray) -> dict | None:
    """CROWDLAB's consensus of the tasks, and each annotator's quality; None unless some task has two annotators."""
    if not any(len(r.votes) > 1 for r in rows):
        return None
    labels = list(labels)
    try:
        chosen, quality, annotators = crowdlab([r.votes for r in rows], labels, probs)
    except ValueError as e:  # e.g. an annotator whose labels cleanlab cannot weigh; the rest of the report stands
        return {"method": "crowdlab", "error": str(e).splitlines()[0]}
    tasks = [
        {
            "task": row.task,
            "majority": row.given,
            "consensus": labels[int(label)],
            "quality": round(float(q), 4),
            "annotators": len(row.votes),
        }
        for row, label, q in zip(rows, chosen, quality)
    ]
    return {
        "method": "crowdlab",
        "tasks": tasks,
        "changed": sum(t["consensus"] != t["majority"] for t in tasks),
        "annotator_quality": {a: round(q, 4) for a, q in annotators.items()},
    }


def annotator_rates(rows: Sequence[Judged], issues: Sequence[dict]) -> list[dict]:
    """Per annotator: labels given, how many of them were flagged, the rate; the highest rate first."""
    flagged = {(i["task"], a) for i in issues for a in i["annotators"]}
    given: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for row in rows:
        for annotator in row.votes:
            given[str(annotator)] += 1
            hits[str(annotator)] += (row.task, str(annotator)) in flagged
    out = [
        {"annotator": a, "labels": given[a], "flagged": hits[a], "rate": round(hits[a] / given[a], 4)} for a in given
    ]
    return sorted(out, key=lambda r: (-r["rate"], r["annotator"]))
