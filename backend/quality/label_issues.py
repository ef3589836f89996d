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

A config of several questions is judged question by question (`judge` once per question, `combine` for the report).
A multi-label question's given label is the set of labels most annotators chose (a tie goes to the set whose labels
come first in the config); its model is one regression per label (classifier.py), and cleanlab's multi-label issue
finder (cleanlab.multilabel_classification.filter.find_label_issues, the same finder as cleanlab.filter's with
multi_label=True, whose entry point that one now warns is deprecated) flags the tasks where any label looks wrong,
from each label's probability of applying; the quality is cleanlab's multi-label score (each label's self-confidence,
aggregated). CROWDLAB reads single-choice labels only: a multi-label question gets no consensus.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from backend.labelstudio.export import Dataset
from backend.labelstudio.schema import SET_SEPARATOR, Schema
from backend.learning import classifier
from backend.quality.gold import NO_LABEL, GoldSet

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


def members(label: str) -> list[str]:
    """The labels of a multi-label answer (Schema.key: joined by SET_SEPARATOR; "" is the empty set)."""
    return [m for m in label.split(SET_SEPARATOR) if m]


def _order(label: str, labels: Sequence[str]) -> tuple[int, ...]:
    # A label's place in the config; a set's, its labels' places (the empty set first).
    return (labels.index(label),) if label in labels else tuple(labels.index(m) for m in members(label))


def given_label(votes: Mapping[Any, str], labels: Sequence[str]) -> str:
    """The label most annotators chose; a tie goes to the label listed first in the config (for a multi-label
    question, the set whose labels come first)."""
    counts = Counter(votes.values())
    top = max(counts.values())
    return min((label for label, n in counts.items() if n == top), key=lambda label: _order(label, labels))


def set_key(answer: str, labels: Sequence[str]) -> str:
    """A multi-label gold answer (gold.set_label: "Acting + Story", "(none)") as the dataset's labels are (a key)."""
    chosen = set() if answer == NO_LABEL else {m.strip() for m in answer.split(" + ")}
    return SET_SEPARATOR.join(label for label in labels if label in chosen)


def tasks_of(dataset: Dataset, gold_set: GoldSet | None = None, gold_answers: bool = True) -> list[Judged]:
    """The dataset's labeled tasks with a text, each with its given label and, for gold, the answer. With
    `gold_answers` False (the gold file answers another question) gold tasks are left out: never judged, never
    trained on."""
    rows = []
    for item in dataset.items:
        if not isinstance(item.text, str) or not item.text.strip():
            continue
        answer = gold_set.label_for(item.text) if gold_set is not None else None
        if answer is not None and not gold_answers:
            continue
        if answer is not None and dataset.multiple:
            answer = set_key(answer, dataset.labels)
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


def multilabel_quality(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's multi-label label quality of each given set (y: (n, k) 0/1) under `probs` (each label's
    probability of applying): every label's self-confidence, aggregated (lower: more likely wrong)."""
    from cleanlab.internal.multilabel_scorer import MultilabelScorer
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    y, probs = np.asarray(y, dtype=int), np.asarray(probs, dtype=float)
    if not len(y):
        return np.zeros(0)
    if np.unique(y).size < 2:
        # cleanlab's functions refuse sets that hold every label, or none, throughout; its scorer (the same default
        # self-confidence per label and aggregation the public function uses) scores them all the same.
        scorer = MultilabelScorer()
        return np.asarray(scorer.aggregate(scorer.get_class_label_quality_scores(y, probs)))
    return np.asarray(get_label_quality_scores([list(np.flatnonzero(row)) for row in y], probs))


def flag_multilabel(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is an issue, label quality) of each given set `y` ((n, k) 0/1) under held-out per-label probabilities
    `probs`: cleanlab's multi-label issue finder, on the labels given to some tasks and not to all (as `flag` reads
    only the classes given: a label nobody or everybody chose is no noise to estimate)."""
    from cleanlab.multilabel_classification.filter import find_label_issues

    y, probs = np.asarray(y, dtype=int), np.asarray(probs, dtype=float)
    quality = multilabel_quality(y, probs)
    given = y.sum(axis=0)
    varied = np.flatnonzero((given > 0) & (given < len(y)))
    if not len(varied):
        return np.zeros(len(y), dtype=bool), quality
    sub = [list(np.flatnonzero(row)) for row in y[:, varied]]
    with warnings.catch_warnings():
        # It counts through cleanlab.filter's multi_label=True path, which warns that entry point is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        issues = find_label_issues(sub, probs[:, varied], filter_by=FILTER_BY, n_jobs=1)
    return np.asarray(issues, dtype=bool), quality


def judge(
    rows: Sequence[Judged],
    labels: Sequence[str],
    score: Scorer,
    recipe: Callable[[str], str],
    confirmed: Mapping[Any, str] | None = None,
    multiple: bool = False,
) -> dict:
    """The report: every flagged task (worst first), per-annotator rates, counts and the model that judged. With
    `multiple`, the labels are multi-label sets (Schema.key) and `score` gives each label's probability of applying.
    """
    labels = list(labels)
    question = Schema.of_labels(labels, multiple)
    confirmed = dict(confirmed or {})
    real = [r for r in rows if r.answer is None]
    gold_rows = [r for r in rows if r.answer is not None]
    n = len(labels)
    model: dict[str, Any] = {"kind": "llm", "trained_on": 0, "fallback": None}
    real_probs: np.ndarray = np.zeros((0, n))
    gold_probs: np.ndarray = np.zeros((0, n))
    y = question.targets(r.given for r in real)
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
    if not real:
        issues_mask, quality = np.zeros(0, bool), np.zeros(0)
    else:
        issues_mask, quality = flag_multilabel(y, real_probs) if multiple else flag(y, real_probs)

    issues, kept_confirmed = [], 0
    for row, is_issue, q, p in zip(real, issues_mask, quality, real_probs):
        if not is_issue:
            continue
        if confirmed.get(row.task) == row.given:
            kept_confirmed += 1
            continue
        issues.append(
            _issue(
                row, question.answer(p), float(q), p, labels=labels, reason="model", given=row.given, multiple=multiple
            )
        )
    for row, p in zip(gold_rows, gold_probs):
        assert row.answer is not None  # gold_rows are the rows with an answer
        wrong = sorted(
            {label for label in row.votes.values() if label != row.answer}, key=lambda label: _order(label, labels)
        )
        if wrong:
            given = max(wrong, key=lambda label: sum(v == label for v in row.votes.values()))
            if multiple:
                worth = float(multilabel_quality(question.targets([given]), p[None, :])[0])
            else:
                worth = float(p[labels.index(given)])
            issues.append(
                _issue(row, row.answer, worth, p, labels=labels, reason="gold", given=given, multiple=multiple)
            )
    issues.sort(key=lambda i: (i["quality"], str(i["task"])))

    rates = annotator_rates(rows, issues)
    crowd = None if multiple else consensus(real, labels, real_probs)  # CROWDLAB reads single-choice labels
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
    row: Judged,
    suggested: str,
    quality: float,
    probs: np.ndarray,
    *,
    labels: list[str],
    reason: str,
    given: str,
    multiple: bool = False,
) -> dict:
    """One flagged label; a multi-label one's given and suggested sets as lists of labels, its probabilities each
    label's of applying."""
    return {
        "task": row.task,
        "text": row.text,
        "given": members(given) if multiple else given,
        "suggested": members(suggested) if multiple else suggested,
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


def combine(reports: Mapping[str, dict], multiple: Mapping[str, bool], labels: Mapping[str, Sequence[str]]) -> dict:
    """One report over the questions judged (`reports` by question, in the config's order): every question's issues,
    each naming its "question", worst first; each annotator's rate over every label they gave; the counts summed;
    the first question's model and consensus, as a report of one question has them; and under "questions" each
    question's counts, annotators, model and consensus."""
    names = list(reports)
    first = reports[names[0]]
    issues = sorted(
        ({**issue, "question": name} for name, report in reports.items() for issue in report["issues"]),
        key=lambda i: (i["quality"], str(i["task"]), names.index(i["question"])),
    )
    if len(names) == 1:
        annotators = first["annotators"]
    else:
        given: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        for report in reports.values():
            for rate in report["annotators"]:
                given[rate["annotator"]] += rate["labels"]
                hits[rate["annotator"]] += rate["flagged"]
        annotators = sorted(
            (
                {"annotator": a, "labels": given[a], "flagged": hits[a], "rate": round(hits[a] / given[a], 4)}
                for a in given
            ),
            key=lambda r: (-r["rate"], r["annotator"]),
        )
    counts = {key: sum(r["counts"][key] for r in reports.values()) for key in first["counts"]}
    method = dict(first["method"])
    if any(multiple.values()):
        method["multi_label"] = "cleanlab.multilabel_classification.filter.find_label_issues"
    return {
        "issues": issues,
        "annotators": annotators,
        "consensus": first["consensus"],
        "counts": counts,
        "model": first["model"],
        "method": method,
        "questions": {
            name: {
                "multiple": bool(multiple[name]),
                "labels": list(labels[name]),
                **{key: report[key] for key in ("counts", "annotators", "model", "consensus")},
            }
            for name, report in reports.items()
        },
    }
